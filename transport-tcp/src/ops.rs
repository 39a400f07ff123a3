//! io_uring entries for a connected TCP socket and the meaning of their
//! results.
//!
//! Receive placement: the core hands out the slice the next bytes belong
//! in (a header buffer, or straight into a task's data buffer); the shard
//! receives into exactly that slice, capped at [`RECV_MAX`] per operation.
//! Sends carry `MSG_NOSIGNAL` (a reset peer is an error value, never a
//! SIGPIPE). Building an entry is safe; pushing it is the caller's unsafe
//! promise that the buffer outlives the operation.

use io_uring::{opcode, squeue, types};

/// Largest receive issued at once (bytes).
pub const RECV_MAX: usize = 1 << 20;
/// Largest send issued at once (bytes).
pub const SEND_MAX: usize = 1 << 20;

/// A receive of up to `len` bytes (capped at [`RECV_MAX`]) into `buf`.
pub fn recv(fd: i32, buf: *mut u8, len: usize) -> squeue::Entry {
    opcode::Recv::new(types::Fd(fd), buf, len.min(RECV_MAX) as u32).build()
}

/// A send of up to `len` bytes (capped at [`SEND_MAX`]) from `buf`.
pub fn send(fd: i32, buf: *const u8, len: usize) -> squeue::Entry {
    opcode::Send::new(types::Fd(fd), buf, len.min(SEND_MAX) as u32).flags(libc::MSG_NOSIGNAL).build()
}

/// Cancel the operation tagged `user_data`.
pub fn cancel(user_data: u64) -> squeue::Entry {
    opcode::AsyncCancel::new(user_data).build()
}

/// What a completed receive or send means for the connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IoOutcome {
    /// `n > 0` bytes moved.
    Bytes(usize),
    /// Nothing moved, try again (interrupted, no buffer space, spurious).
    Retry,
    /// The operation was cancelled (we asked for it while closing).
    Cancelled,
    /// The peer closed its side (receive returned 0).
    Eof,
    /// The socket failed (reset, broken pipe, timeout...): close it.
    Failed(i32),
}

fn classify_err(errno: i32) -> IoOutcome {
    match errno {
        libc::EINTR | libc::EAGAIN | libc::ENOBUFS | libc::ENOMEM => IoOutcome::Retry,
        libc::ECANCELED => IoOutcome::Cancelled,
        e => IoOutcome::Failed(e),
    }
}

/// Classify a receive CQE result.
pub fn recv_outcome(res: i32) -> IoOutcome {
    match res {
        n if n > 0 => IoOutcome::Bytes(n as usize),
        0 => IoOutcome::Eof,
        e => classify_err(-e),
    }
}

/// Classify a send CQE result. A send of 0 bytes on a non-empty buffer
/// means the socket is unusable.
pub fn send_outcome(res: i32) -> IoOutcome {
    match res {
        n if n > 0 => IoOutcome::Bytes(n as usize),
        0 => IoOutcome::Failed(libc::EPIPE),
        e => classify_err(-e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes() {
        assert_eq!(recv_outcome(48), IoOutcome::Bytes(48));
        assert_eq!(recv_outcome(0), IoOutcome::Eof);
        assert_eq!(recv_outcome(-libc::EAGAIN), IoOutcome::Retry);
        assert_eq!(recv_outcome(-libc::ECANCELED), IoOutcome::Cancelled);
        assert_eq!(recv_outcome(-libc::ECONNRESET), IoOutcome::Failed(libc::ECONNRESET));
        assert_eq!(send_outcome(0), IoOutcome::Failed(libc::EPIPE));
        assert_eq!(send_outcome(-libc::EPIPE), IoOutcome::Failed(libc::EPIPE));
        assert_eq!(send_outcome(-libc::EINTR), IoOutcome::Retry);
        assert_eq!(send_outcome(4096), IoOutcome::Bytes(4096));
    }

    #[test]
    fn entries_cap_lengths() {
        // Building entries touches no memory; only their fields are set.
        let _ = recv(3, std::ptr::null_mut(), usize::MAX);
        let _ = send(3, std::ptr::null(), usize::MAX);
        let _ = cancel(42);
    }
}
