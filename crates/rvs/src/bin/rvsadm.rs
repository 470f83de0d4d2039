//! rvsadm: ipvsadm's command line for rvs. It talks to rvsd over its Unix socket, chosen with
//! `--socket PATH` (an rvs option, taken out before ipvsadm's parsing), `RVS_SOCKET`, or the
//! default.

use std::{
    ffi::OsString,
    io::{self, Write},
    os::unix::ffi::OsStrExt,
    path::PathBuf,
    process::ExitCode,
};

use rvs::{
    control::{
        self,
        client::{Backend, Client},
    },
    ipvsadm,
};

/// Removes every `--socket PATH` / `--socket=PATH` before a `--`, returning the rest of the
/// arguments and the last path given.
fn take_socket_option(args: Vec<OsString>) -> Result<(Vec<OsString>, Option<OsString>), String> {
    let mut rest = Vec::with_capacity(args.len());
    let mut socket = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let bytes = arg.as_bytes();
        if bytes == b"--" {
            rest.push(arg);
            rest.extend(args);
            break;
        }
        if bytes == b"--socket" {
            socket = Some(args.next().ok_or("--socket: missing argument")?);
        } else if let Some(path) = bytes.strip_prefix(b"--socket=") {
            socket = Some(OsString::from(std::ffi::OsStr::from_bytes(path)));
        } else {
            rest.push(arg);
        }
    }
    Ok((rest, socket))
}

fn main() -> ExitCode {
    let (argv, socket) = match take_socket_option(std::env::args_os().collect()) {
        Ok(split) => split,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(255);
        }
    };
    let socket: PathBuf = socket
        .or_else(|| std::env::var_os("RVS_SOCKET"))
        .map_or_else(|| PathBuf::from(control::DEFAULT_SOCKET), PathBuf::from);
    let mut connect =
        || -> io::Result<Box<dyn Backend>> { Ok(Box::new(Client::connect(&socket)?)) };

    let mut stdin = io::stdin().lock();
    let mut stdout = io::stdout().lock();
    let mut stderr = io::stderr().lock();
    let code = ipvsadm::run(&argv, &mut connect, &mut stdin, &mut stdout, &mut stderr);
    let _ = stdout.flush();
    ExitCode::from(u8::try_from(code).unwrap_or(255))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(words: &[&str]) -> Result<(Vec<String>, Option<String>), String> {
        let args = words.iter().map(OsString::from).collect();
        take_socket_option(args).map(|(rest, socket)| {
            (
                rest.into_iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect(),
                socket.map(|s| s.to_string_lossy().into_owned()),
            )
        })
    }

    #[test]
    fn socket_option_is_taken_out() {
        assert_eq!(
            split(&["rvsadm", "--socket", "/tmp/s", "-Ln"]).unwrap(),
            (vec!["rvsadm".into(), "-Ln".into()], Some("/tmp/s".into()))
        );
        assert_eq!(
            split(&["rvsadm", "-L", "--socket=/a", "-n", "--socket=/b"]).unwrap(),
            (
                vec!["rvsadm".into(), "-L".into(), "-n".into()],
                Some("/b".into())
            )
        );
        assert_eq!(
            split(&["rvsadm", "-A", "--", "--socket=/a"]).unwrap().0,
            vec!["rvsadm", "-A", "--", "--socket=/a"]
        );
        assert!(split(&["rvsadm", "-L", "--socket"]).is_err());
    }
}
