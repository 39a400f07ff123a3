//! One iSCSI connection, target role, sans-IO (RFC 7143).
//!
//! ```text
//!  Login ──(T to FFP)──► FullFeature ──(Logout / shutdown)──► LoggingOut ──► Closed
//!    │                        │
//!    └──(error, timeout)──────┴──(fatal protocol error, dead peer)──────────► Closed
//! ```
//!
//! Contract with the transport (the shard):
//! - receive: write bytes into [`Connection::recv_buf`], then call
//!   [`Connection::recv_done`]. The slice stays untouched by the core until
//!   `recv_done`, so it may be the target of an in-flight io_uring recv.
//! - send: [`Connection::poll_transmit`] returns bytes to send; they stay
//!   valid and unchanged until [`Connection::transmit_done`] reports how many
//!   went out.
//! - backend: [`Connection::poll_backend`] yields requests; the task buffer
//!   ([`Connection::backend_buffer`]) stays put until
//!   [`Connection::handle_backend`] completes the request, even if the task
//!   is aborted meanwhile.
//! - time: [`Connection::next_deadline`] / [`Connection::handle_timeout`].
//! - [`Connection::state`] says when to close.

use std::sync::Arc;

use crate::scsi::{BackendOp, BackendStatus};
use crate::session::Registry;
use crate::target::TargetSet;

/// Where a connection is in its life.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ConnState {
    /// Login phase (security / operational negotiation).
    Login,
    /// Full feature phase.
    FullFeature,
    /// Logout accepted or requested; closes once everything is sent.
    LoggingOut,
    /// Send what is queued, then close the socket.
    CloseAfterFlush,
    /// Close the socket now (nothing more will be sent).
    Closed,
}

/// A request to the backend for one task.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BackendRequest {
    /// Opaque tag to hand back in [`Connection::handle_backend`] and [`Connection::backend_buffer`].
    pub tag: u32,
    /// Backend index (from [`crate::target::LuConfig::backend`]).
    pub backend: usize,
    /// Operation.
    pub op: BackendOp,
    /// Byte offset on the LU.
    pub offset: u64,
    /// Byte length; the task buffer has exactly this length.
    pub len: u32,
    /// Force unit access.
    pub fua: bool,
}

/// Facts about the peer and the portal the connection came in on.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// Peer address, for logs and session listings.
    pub peer: String,
    /// Target portal group tag of the portal the connection arrived on.
    pub tpgt: u16,
}

/// One connection (and, since MaxConnections=1, its session).
#[derive(Debug)]
pub struct Connection {
    _targets: Arc<TargetSet>,
    _registry: Arc<Registry>,
    _info: ConnInfo,
}

#[allow(clippy::todo, unused_variables)] // INTERFACE STUB: replaced by the real implementation
impl Connection {
    /// A fresh connection in the login phase.
    pub fn new(targets: Arc<TargetSet>, registry: Arc<Registry>, info: ConnInfo, now_ms: u64) -> Self {
        todo!()
    }
    /// Where the next received bytes go (never empty while the connection is open).
    pub fn recv_buf(&mut self) -> &mut [u8] {
        todo!()
    }
    /// `n` bytes were written at the start of the last [`Self::recv_buf`] slice.
    pub fn recv_done(&mut self, n: usize, now_ms: u64) {
        todo!()
    }
    /// The peer closed its side (recv returned 0) or the socket failed.
    pub fn peer_closed(&mut self) {
        todo!()
    }
    /// Bytes to send next, or `None` when nothing is queued.
    pub fn poll_transmit(&mut self) -> Option<&[u8]> {
        todo!()
    }
    /// `n` bytes of the last [`Self::poll_transmit`] slice were sent.
    pub fn transmit_done(&mut self, n: usize, now_ms: u64) {
        todo!()
    }
    /// The next backend request, if any.
    pub fn poll_backend(&mut self) -> Option<BackendRequest> {
        todo!()
    }
    /// The task buffer of an outstanding backend request (exactly `len` bytes).
    pub fn backend_buffer(&mut self, tag: u32) -> &mut [u8] {
        todo!()
    }
    /// A backend request finished.
    pub fn handle_backend(&mut self, tag: u32, status: BackendStatus, now_ms: u64) {
        todo!()
    }
    /// When [`Self::handle_timeout`] must be called next (absolute ms).
    pub fn next_deadline(&self) -> Option<u64> {
        todo!()
    }
    /// Time passed: run timers (login timeout, NOP-In, reinstatement check).
    pub fn handle_timeout(&mut self, now_ms: u64) {
        todo!()
    }
    /// Graceful shutdown: ask the initiator to log out (Async Message), then
    /// close at the logout deadline.
    pub fn shutdown(&mut self, now_ms: u64) {
        todo!()
    }
    /// Current state.
    pub fn state(&self) -> ConnState {
        todo!()
    }
    /// Backend requests handed out and not yet completed. The connection may
    /// be dropped only when this is 0.
    pub fn backend_in_flight(&self) -> usize {
        todo!()
    }
    /// Swap in a new configuration snapshot.
    pub fn set_targets(&mut self, targets: Arc<TargetSet>) {
        todo!()
    }
}
