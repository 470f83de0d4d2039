//! libipvs's `ipvs_strerror`: the message for an errno depends on which libipvs function ran
//! last, then on a few errnos any function may return, then falls back to `strerror`.

use std::ffi::CStr;

/// The libipvs function that ran last (`ipvs_func`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    Init,
    AddService,
    UpdateService,
    DelService,
    ZeroService,
    AddDest,
    UpdateDest,
    DelDest,
    SetTimeout,
    StartDaemon,
    StopDaemon,
    GetServices,
    GetDests,
    GetService,
    GetTimeout,
    /// rvs's mark commands: rvsd's sentence is the message.
    MarkRule,
}

/// Rows that apply after one function only.
const BY_FUNC: &[(Func, i32, &str)] = &[
    (Func::AddService, libc::EEXIST, "Service already exists"),
    (
        Func::AddService,
        libc::ENOENT,
        "Scheduler or persistence engine not found",
    ),
    (Func::UpdateService, libc::ESRCH, "No such service"),
    (
        Func::UpdateService,
        libc::ENOENT,
        "Scheduler or persistence engine not found",
    ),
    (Func::DelService, libc::ESRCH, "No such service"),
    (Func::ZeroService, libc::ESRCH, "No such service"),
    (Func::AddDest, libc::ESRCH, "Service not defined"),
    (Func::AddDest, libc::EEXIST, "Destination already exists"),
    (Func::UpdateDest, libc::ESRCH, "Service not defined"),
    (Func::UpdateDest, libc::ENOENT, "No such destination"),
    (Func::DelDest, libc::ESRCH, "Service not defined"),
    (Func::DelDest, libc::ENOENT, "No such destination"),
    (Func::StartDaemon, libc::EEXIST, "Daemon has already run"),
    (Func::StopDaemon, libc::ESRCH, "No daemon is running"),
    (Func::GetServices, libc::ESRCH, "No such service"),
    (Func::GetDests, libc::ESRCH, "No such service"),
    (Func::GetService, libc::ESRCH, "No such service"),
];

/// Rows that apply whatever ran.
const ANY_FUNC: &[(i32, &str)] = &[
    (libc::EPERM, "Permission denied (you must be root)"),
    (
        libc::EINVAL,
        "Invalid operation.  Possibly wrong module version, address not unicast, ...",
    ),
    (libc::ENOPROTOOPT, "Protocol not available"),
    (libc::ENOMEM, "Memory allocation problem"),
    (libc::EOPNOTSUPP, "Operation not supported with IPv6"),
    (
        libc::EAFNOSUPPORT,
        "Operation not supported with specified address family",
    ),
    (libc::EMSGSIZE, "Module is wrong version"),
];

/// Errnos only rvs returns, for refusals the kernel has no word for: ENOSYS for what this rvs
/// does not do yet, EIO for a data plane that refused a change, E2BIG for what does not fit
/// (a wrr period longer than the slot map, a request line too long). For them rvsd's own
/// sentence (`detail`) is printed; every errno the kernel returns gets ipvsadm's message, byte
/// for byte.
const RVS_ONLY: &[i32] = &[libc::ENOSYS, libc::EIO, libc::E2BIG];

/// The message ipvsadm prints for `errno` after `func` (or rvsd's sentence for rvs-only errnos).
pub fn ipvs_strerror(func: Func, errno: i32, detail: &str) -> String {
    if (func == Func::MarkRule || RVS_ONLY.contains(&errno)) && !detail.is_empty() {
        return detail.to_owned();
    }
    let by_func = BY_FUNC
        .iter()
        .find(|(f, e, _)| *f == func && *e == errno)
        .map(|(_, _, m)| *m);
    let any = || ANY_FUNC.iter().find(|(e, _)| *e == errno).map(|(_, m)| *m);
    match by_func.or_else(any) {
        Some(message) => message.to_owned(),
        None => strerror(errno),
    }
}

/// glibc's text for an errno (`Unknown error N` for unknown ones).
pub fn strerror(errno: i32) -> String {
    let mut buf = [0 as libc::c_char; 256];
    // SAFETY: the buffer is writable for its whole length, and strerror_r (XSI) NUL-terminates
    // what it writes.
    let rc = unsafe { libc::strerror_r(errno, buf.as_mut_ptr(), buf.len()) };
    if rc != 0 && buf[0] == 0 {
        return format!("Unknown error {errno}");
    }
    // SAFETY: NUL-terminated by strerror_r (or still all zeros).
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// The text for an error talking to rvsd: `strerror` for system errors (as ipvsadm would print
/// for a failed socket call), otherwise the error's own description.
pub fn io_error_text(func: Func, e: &std::io::Error) -> String {
    match e.raw_os_error() {
        // The socket's mode keeps a user who is not root out, as the kernel's netlink does.
        Some(libc::EACCES) => ipvs_strerror(func, libc::EPERM, ""),
        Some(errno) => ipvs_strerror(func, errno, ""),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_rows_win_then_generic_then_strerror_and_rvs_only_errnos_explain() {
        assert_eq!(
            ipvs_strerror(Func::AddService, libc::EEXIST, "x"),
            "Service already exists"
        );
        assert_eq!(
            ipvs_strerror(Func::AddDest, libc::EEXIST, ""),
            "Destination already exists"
        );
        assert_eq!(
            ipvs_strerror(Func::AddDest, libc::ESRCH, ""),
            "Service not defined"
        );
        assert_eq!(
            ipvs_strerror(Func::DelService, libc::ESRCH, ""),
            "No such service"
        );
        assert_eq!(
            ipvs_strerror(Func::UpdateDest, libc::ENOENT, ""),
            "No such destination"
        );
        assert_eq!(
            ipvs_strerror(Func::StopDaemon, libc::ESRCH, ""),
            "No daemon is running"
        );
        // Stale or unrelated function: only the generic rows apply.
        assert_eq!(ipvs_strerror(Func::Init, libc::EEXIST, ""), "File exists");
        assert_eq!(
            ipvs_strerror(Func::AddService, libc::EINVAL, "detail"),
            "Invalid operation.  Possibly wrong module version, address not unicast, ..."
        );
        assert_eq!(
            ipvs_strerror(Func::AddService, libc::EOPNOTSUPP, "not in rvs"),
            "Operation not supported with IPv6"
        );
        assert_eq!(
            ipvs_strerror(Func::AddDest, libc::ERANGE, ""),
            "Numerical result out of range"
        );
        // Kernel errnos keep ipvsadm's text even when rvsd explains more...
        assert_eq!(
            ipvs_strerror(Func::AddDest, libc::ERANGE, "lower above upper"),
            "Numerical result out of range"
        );
        // ...rvs-only ones print rvsd's sentence.
        assert_eq!(
            ipvs_strerror(Func::AddService, libc::ENOSYS, "rvs: wlc not yet"),
            "rvs: wlc not yet"
        );
        assert_eq!(
            ipvs_strerror(Func::AddService, libc::ENOSYS, ""),
            "Function not implemented"
        );
        assert_eq!(
            ipvs_strerror(Func::StartDaemon, libc::ENODEV, ""),
            "No such device"
        );
        assert_eq!(
            ipvs_strerror(Func::Init, libc::EPERM, ""),
            "Permission denied (you must be root)"
        );
    }

    #[test]
    fn strerror_texts() {
        assert_eq!(strerror(libc::ENOENT), "No such file or directory");
        assert_eq!(strerror(libc::ECONNREFUSED), "Connection refused");
        assert_eq!(strerror(100_000), "Unknown error 100000");
        let e = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(io_error_text(Func::Init, &e), "No such file or directory");
        let e = std::io::Error::other("rvsd closed the connection");
        assert_eq!(io_error_text(Func::Init, &e), "rvsd closed the connection");
    }
}
