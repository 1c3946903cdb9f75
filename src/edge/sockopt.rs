//! The one socket option the safe crates do not wrap. `TCP_DEFER_ACCEPT` (Linux): the
//! kernel completes `accept()` only once data has arrived, or after the given seconds. A
//! socket that connects and says nothing then costs a kernel request slot, not a file
//! descriptor, a task and a table slot — nginx's `listen … deferred`. socket2 0.6, nix 0.30
//! and rustix 1 have no setter for it, hence the one `unsafe` call of the crate below.

use std::io;

/// Asks the kernel to defer `accept()` until data arrives or `secs` have passed.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn set_defer_accept(socket: &socket2::Socket, secs: u32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let value = libc::c_int::try_from(secs).unwrap_or(libc::c_int::MAX);
    // SAFETY: `socket` owns a valid descriptor for the duration of the call, and the option
    // value is a live `c_int` whose exact size is passed as the length.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Elsewhere: not available (silent sockets reach `accept()`, where the first-byte timeout
/// and the connection table's reclaim handle them).
#[cfg(not(target_os = "linux"))]
pub fn set_defer_accept(_: &socket2::Socket, _: u32) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "TCP_DEFER_ACCEPT is Linux only",
    ))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn the_option_is_set_and_read_back() {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        set_defer_accept(&s, 3).unwrap();
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: a valid descriptor and a live c_int with its size.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_DEFER_ACCEPT,
                std::ptr::from_mut(&mut v).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0);
        // The kernel stores it as SYN-ACK retransmits and reads back the seconds those
        // cover, which is at least what was asked.
        assert!(v >= 3, "read back {v}");
    }
}
