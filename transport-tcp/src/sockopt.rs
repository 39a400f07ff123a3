//! Options for accepted iSCSI sockets. It never changes blocking mode:
//! io_uring handles blocking and non-blocking sockets alike.

use std::io;
use std::net::TcpStream;
use std::os::fd::AsRawFd;

/// Seconds of idleness before TCP keepalive probes start. The iSCSI NOP-In
/// ping is the real liveness check; keepalive only reaps half-open sockets
/// whose peer vanished while the session was idle and pings were off.
pub const KEEPALIVE_IDLE_S: i32 = 60;

fn setsockopt_int(fd: i32, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: `value` lives on the stack for the duration of the call and
    // its size is passed; `fd` is a socket the caller owns.
    let r = unsafe {
        libc::setsockopt(fd, level, name, (&value as *const i32).cast(), std::mem::size_of::<i32>() as libc::socklen_t)
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Prepare a freshly accepted socket: `TCP_NODELAY` (responses must not wait
/// for Nagle; the shard already batches what it sends) and keepalive.
pub fn prepare_accepted(s: &TcpStream) -> io::Result<()> {
    s.set_nodelay(true)?;
    let fd = s.as_raw_fd();
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, KEEPALIVE_IDLE_S)?;
    setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 10)?;
    setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 6)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn sets_nodelay() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        prepare_accepted(&s).unwrap();
        assert!(s.nodelay().unwrap());
        drop(c);
    }
}
