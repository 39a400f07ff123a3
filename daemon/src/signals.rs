//! Signals as a file descriptor (signalfd): SIGTERM, SIGINT (stop) and
//! SIGHUP (reload the configuration)
//! are blocked in every thread (the mask is set before any thread starts
//! and inherited), and the main thread reads them at its leisure. No signal
//! handler ever runs, so nothing here is async-signal-unsafe.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// A signalfd for SIGTERM, SIGINT and SIGHUP.
#[derive(Debug)]
pub struct Signals {
    fd: OwnedFd,
}

impl Signals {
    /// Block SIGTERM and SIGINT in the calling thread (and every thread it
    /// spawns afterwards) and open a signalfd for them. Call before spawning
    /// threads.
    pub fn install() -> io::Result<Signals> {
        // SAFETY: `set` is initialised by sigemptyset before use; the calls
        // only read and write that local value and the thread's mask.
        let fd = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGHUP);
            let r = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if r != 0 {
                return Err(io::Error::from_raw_os_error(r));
            }
            libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nothing else owns.
        Ok(Signals { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// For poll(2).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }

    /// Wait up to `timeout` for a signal; returns its number.
    pub fn wait(&self, timeout: Duration) -> io::Result<Option<i32>> {
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one live pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(None) } else { Err(e) };
        }
        if r == 0 {
            return Ok(None);
        }
        // SAFETY: signalfd_siginfo is plain data; zeroed is valid and the
        // read writes at most its size.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reads at most `size` bytes into `info`.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
        if n as usize == size {
            Ok(Some(info.ssi_signo as i32))
        } else {
            Ok(None)
        }
    }
}
