//! `apmatrix exec`'s private network namespace: the command and the server
//! share it, so the server's udev broadcasts reach the command's monitors
//! and nothing else. It has only a loopback interface, which is brought up
//! so that programs that talk to themselves over 127.0.0.1 still work.

use std::io;

use crate::CliError;

/// Moves this process into a new network namespace with loopback up.
/// Call it before any thread starts, so that every thread is in it.
pub fn enter() -> Result<(), CliError> {
    // SAFETY: unshare takes flags only; it moves just this process.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        let e = io::Error::last_os_error();
        return Err(CliError::Failed(format!(
            "cannot create a private network namespace (unshare: {e}); \
             `apmatrix exec --host-network` runs without one, and without udev events"
        )));
    }
    loopback_up().map_err(|e| CliError::Failed(format!("cannot bring up loopback: {e}")))
}

fn loopback_up() -> io::Result<()> {
    // SAFETY: socket(2) with constant arguments; the descriptor is closed
    // below on every path.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a zeroed ifreq is valid; its name is "lo" NUL-terminated, and
    // both ioctls read and write only the ifreq they are given.
    let result = unsafe {
        let mut request: libc::ifreq = std::mem::zeroed();
        for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
            *slot = *byte as libc::c_char;
        }
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut request) < 0 {
            Err(io::Error::last_os_error())
        } else {
            request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS, &request) < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: fd is ours and not used after this.
    unsafe { libc::close(fd) };
    result
}
