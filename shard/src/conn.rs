//! What the reactor needs from a connection, as a trait, so the reactor can
//! be driven by the real sans-IO core ([`shardtgt_core::conn::Connection`])
//! or by a scripted stand-in in tests. [`CoreConns`] makes real ones.
//!
//! It never adds behaviour: the impl for `Connection` only forwards.

use std::sync::Arc;

use shardtgt_core::conn::{BackendRequest, ConnInfo, ConnState, Connection, WriteBudget};
use shardtgt_core::scsi::BackendStatus;
use shardtgt_core::session::Registry;
use shardtgt_core::target::TargetSet;

/// The connection contract the reactor relies on (see
/// `shardtgt_core::conn`'s module docs).
///
/// # Safety
/// The reactor hands raw pointers from these methods to the kernel and to
/// backends, so an implementation must guarantee, as long as the value is
/// not dropped or moved:
/// - the slice from [`ConnCore::recv_buf`] stays valid and is not read or
///   written by the implementation until the matching `recv_done` (or
///   `peer_closed`);
/// - the bytes from [`ConnCore::poll_transmit`] stay valid and unchanged
///   until `transmit_done`;
/// - the slice from [`ConnCore::backend_buffer`] stays valid and untouched
///   until `handle_backend` for that tag;
/// - [`ConnCore::backend_in_flight`] counts requests handed out by
///   `poll_backend` and not yet completed.
pub unsafe trait ConnCore {
    /// Where the next received bytes go.
    fn recv_buf(&mut self) -> &mut [u8];
    /// `n` bytes were written at the start of the last `recv_buf` slice.
    fn recv_done(&mut self, n: usize, now_ms: u64);
    /// The peer closed its side or the socket failed.
    fn peer_closed(&mut self);
    /// Bytes to send next.
    fn poll_transmit(&mut self) -> Option<&[u8]>;
    /// `n` bytes of the last `poll_transmit` slice were sent.
    fn transmit_done(&mut self, n: usize, now_ms: u64);
    /// Next backend request.
    fn poll_backend(&mut self) -> Option<BackendRequest>;
    /// Task buffer of an outstanding backend request.
    fn backend_buffer(&mut self, tag: u32) -> &mut [u8];
    /// A backend request finished.
    fn handle_backend(&mut self, tag: u32, status: BackendStatus, now_ms: u64);
    /// When `handle_timeout` is due next (absolute ms).
    fn next_deadline(&self) -> Option<u64>;
    /// Run timers.
    fn handle_timeout(&mut self, now_ms: u64);
    /// Graceful shutdown requested.
    fn shutdown(&mut self, now_ms: u64);
    /// Current state.
    fn state(&self) -> ConnState;
    /// Backend requests outstanding.
    fn backend_in_flight(&self) -> usize;
    /// New configuration snapshot.
    fn set_targets(&mut self, targets: Arc<TargetSet>);
    /// TSIH of the session, once logged in (listings only).
    fn tsih(&self) -> Option<u16> {
        None
    }
    /// Initiator name, once logged in (listings only).
    fn initiator_name(&self) -> Option<&str> {
        None
    }
}

// SAFETY: `Connection` documents exactly these guarantees in its transport
// contract (core/src/conn/mod.rs): receive slice untouched until
// `recv_done`, transmit bytes unchanged until `transmit_done`, task buffers
// in place until `handle_backend`.
unsafe impl ConnCore for Connection {
    fn recv_buf(&mut self) -> &mut [u8] {
        Connection::recv_buf(self)
    }
    fn recv_done(&mut self, n: usize, now_ms: u64) {
        Connection::recv_done(self, n, now_ms)
    }
    fn peer_closed(&mut self) {
        Connection::peer_closed(self)
    }
    fn poll_transmit(&mut self) -> Option<&[u8]> {
        Connection::poll_transmit(self)
    }
    fn transmit_done(&mut self, n: usize, now_ms: u64) {
        Connection::transmit_done(self, n, now_ms)
    }
    fn poll_backend(&mut self) -> Option<BackendRequest> {
        Connection::poll_backend(self)
    }
    fn backend_buffer(&mut self, tag: u32) -> &mut [u8] {
        Connection::backend_buffer(self, tag)
    }
    fn handle_backend(&mut self, tag: u32, status: BackendStatus, now_ms: u64) {
        Connection::handle_backend(self, tag, status, now_ms)
    }
    fn next_deadline(&self) -> Option<u64> {
        Connection::next_deadline(self)
    }
    fn handle_timeout(&mut self, now_ms: u64) {
        Connection::handle_timeout(self, now_ms)
    }
    fn shutdown(&mut self, now_ms: u64) {
        Connection::shutdown(self, now_ms)
    }
    fn state(&self) -> ConnState {
        Connection::state(self)
    }
    fn backend_in_flight(&self) -> usize {
        Connection::backend_in_flight(self)
    }
    fn set_targets(&mut self, targets: Arc<TargetSet>) {
        Connection::set_targets(self, targets)
    }
    fn tsih(&self) -> Option<u16> {
        Connection::tsih(self).map(|t| t.0)
    }
    fn initiator_name(&self) -> Option<&str> {
        Connection::initiator_name(self)
    }
}

/// Makes the connections a shard owns. Cloned into every shard thread.
pub trait ConnFactory: Clone + Send + 'static {
    /// The connection type.
    type Conn: ConnCore;
    /// A new connection (login phase) for a freshly accepted socket.
    fn open(&mut self, targets: &Arc<TargetSet>, info: ConnInfo, now_ms: u64) -> Self::Conn;
    /// The write-buffer counters of the connections this factory opened
    /// (read once per reactor loop, published in the shard's stats).
    fn write_buffers(&self) -> crate::stats::WriteBufferStats {
        crate::stats::WriteBufferStats::default()
    }
}

/// Makes real [`Connection`]s sharing one session registry. Each clone (one
/// per shard) has its own [`WriteBudget`], shared by the connections it
/// opens, so `write_buffer_budget` bounds write buffers per shard.
#[derive(Debug)]
pub struct CoreConns {
    /// Target-wide session table.
    pub registry: Arc<Registry>,
    budget: Arc<WriteBudget>,
}

impl CoreConns {
    /// A factory for connections registered in `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        CoreConns { registry, budget: Arc::new(WriteBudget::new()) }
    }

    /// The write budget of the connections this factory opens.
    pub fn write_budget(&self) -> &Arc<WriteBudget> {
        &self.budget
    }
}

impl Clone for CoreConns {
    /// Same registry, a budget of its own (a clone goes to another shard).
    fn clone(&self) -> Self {
        CoreConns::new(self.registry.clone())
    }
}

impl ConnFactory for CoreConns {
    type Conn = Connection;
    fn open(&mut self, targets: &Arc<TargetSet>, info: ConnInfo, now_ms: u64) -> Connection {
        let mut c = Connection::new(targets.clone(), self.registry.clone(), info, now_ms);
        c.set_write_budget(self.budget.clone());
        c
    }
    fn write_buffers(&self) -> crate::stats::WriteBufferStats {
        let b = &self.budget;
        crate::stats::WriteBufferStats {
            held: b.held(),
            peak: b.peak(),
            waits: b.waits(),
            data_timeouts: b.data_timeouts(),
        }
    }
}
