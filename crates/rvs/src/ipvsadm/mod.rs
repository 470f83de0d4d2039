//! ipvsadm 1.31's command line, messages and output formats, over rvsd's control protocol.
//!
//! The flow is ipvsadm's: connect and ask for the version first ("ipvs_init"), list the table
//! when there are no arguments, otherwise parse one command line with popt's rules
//! (`options`), check it (`check`, `command`) and run it (`exec`); `-R` runs every line
//! of stdin the same way. rvs additions: `-h`/`-v` work without rvsd, and `--dataplane` (as the
//! command) prints the data plane's counters.

mod addr;
mod check;
mod command;
mod conns;
mod entry;
mod exec;
mod format;
mod help;
mod messages;
mod options;
mod resolve;
mod restore;
mod sort;
mod table;

#[cfg(test)]
mod testing;

/// The fuzz target's way in: every line of a restore file (`-R`), split as ipvsadm splits it
/// and parsed and checked as one command line; names resolve only as numbers.
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_restore(data: &[u8]) {
    struct Numeric;
    impl resolve::Resolver for Numeric {
        fn host_v4(&self, name: &str) -> Option<std::net::Ipv4Addr> {
            resolve::pton4(name)
        }
        fn service_port(&self, name: &str, _: &str) -> Option<u16> {
            name.parse().ok()
        }
        fn host_name(&self, _: std::net::IpAddr) -> Option<String> {
            None
        }
        fn service_name(&self, _: u16, _: &str) -> Option<String> {
            None
        }
    }
    let mut input = data;
    let mut stream = restore::ConfigStream::new(&mut input);
    while let Ok(Some(mut line)) = stream.next_line() {
        line.insert(0, "rvsadm".to_owned());
        let _ = command::parse(&line, false, &Numeric);
    }
}
#[cfg(test)]
mod tests;

use std::{
    ffi::OsString,
    io::{self, BufRead, Write},
};

use exec::{Exit, Session};
use messages::{Func, io_error_text, ipvs_strerror};
use resolve::{Resolver, SystemResolver};
use table::OptId;

use crate::control::{
    client::Backend,
    proto::{Info, Request, Response},
};

/// Runs rvsadm with `argv` (element 0 is the program name) and returns the exit code.
/// `connect` opens the connection to rvsd; it is not called for `-h` and `-v`.
pub fn run(
    argv: &[OsString],
    connect: &mut dyn FnMut() -> io::Result<Box<dyn Backend>>,
    stdin: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    // Arguments that are not UTF-8 are read with replacement characters.
    let argv: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // popt stops at the first non-option word when either variable is set.
    let posixly_correct = std::env::var_os("POSIXLY_CORRECT").is_some()
        || std::env::var_os("POSIX_ME_HARDER").is_some();
    let io = Io { stdin, out, err };
    run_with(&argv, connect, &SystemResolver, posixly_correct, io)
}

/// Where rvsadm reads and writes.
struct Io<'a> {
    stdin: &'a mut dyn BufRead,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
}

fn run_with(
    argv: &[String],
    connect: &mut dyn FnMut() -> io::Result<Box<dyn Backend>>,
    resolver: &dyn Resolver,
    posixly_correct: bool,
    io: Io<'_>,
) -> i32 {
    let program = argv.first().map_or("rvsadm", String::as_str);
    // ipvsadm initialises before looking at its arguments; rvsadm answers -h and -v without
    // rvsd, so that help works when the daemon is down.
    if argv.len() > 1 {
        let text = match command::first_option(argv, posixly_correct) {
            Some(OptId::Help) => Some(help::usage(program)),
            Some(OptId::Version) => Some(help::version()),
            _ => None,
        };
        if let Some(text) = text {
            let _ = io.out.write_all(text.as_bytes());
            let _ = io.out.flush();
            return 0;
        }
    }

    let (backend, info) = match init(connect) {
        Ok(ok) => ok,
        Err(reason) => {
            let _ = writeln!(
                io.err,
                "Can't initialize ipvs: {reason}\nAre you sure that IP Virtual Server is built in the kernel or as module?"
            );
            return 2;
        }
    };
    if let Some(warning) = version_warning(&info.ipvs_version) {
        let _ = io.err.write_all(warning.as_bytes());
    }

    let mut session = Session {
        backend,
        info,
        resolver,
        posixly_correct,
        last_func: Func::Init,
        stdin: io.stdin,
        out: io.out,
        err: io.err,
    };
    let code = if argv.len() <= 1 {
        match session.list_all(&format::Format::default()) {
            Ok(()) => 0,
            Err(Exit(code)) => code,
        }
    } else {
        match session.process_options(argv, false) {
            Ok(true) => 0,
            Ok(false) => 255,
            Err(Exit(code)) => code,
        }
    };
    let _ = session.out.flush();
    code
}

/// ipvs_init: connect and fetch the version and table size.
fn init(
    connect: &mut dyn FnMut() -> io::Result<Box<dyn Backend>>,
) -> Result<(Box<dyn Backend>, Info), String> {
    let mut backend = connect().map_err(|e| io_error_text(Func::Init, &e))?;
    match backend.call(&Request::Info) {
        Ok(Response::Info(info)) => Ok((backend, info)),
        Ok(Response::Error { errno, detail }) => Err(ipvs_strerror(Func::Init, errno, &detail)),
        Ok(other) => Err(format!("unexpected answer from rvsd: {other:?}")),
        Err(e) => Err(io_error_text(Func::Init, &e)),
    }
}

/// ipvsadm's warning for kernels older than IPVS 1.1.4 (rvsd reports 1.2.1, so this is for
/// completeness).
fn version_warning(version: &str) -> Option<String> {
    let parts: Vec<u32> = version
        .split('.')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [major, minor, patch] = parts[..] else {
        return None;
    };
    ((major, minor, patch) < (1, 1, 4)).then(|| {
        format!(
            "Warning: IPVS version mismatch: \n  Kernel compiled with IPVS version {major}.{minor}.{patch}\n  ipvsadm v1.31  requires minimum IPVS version 1.1.4\n\n"
        )
    })
}
