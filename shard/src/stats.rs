//! Per-shard counters, written by the shard (published once per loop
//! iteration, so the hot path does no atomic read-modify-write) and read by
//! the control thread. `load` is the one counter both sides change: the
//! dispatcher adds a connection when it hands one over, the shard removes
//! it when it closes.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Counters of one shard.
#[derive(Debug, Default)]
pub struct ShardStats {
    /// Connections assigned to the shard and not yet closed (balancing key).
    pub load: AtomicUsize,
    /// Connections the shard currently owns.
    pub conns_live: AtomicU64,
    /// Connections the shard has taken over since start.
    pub conns_total: AtomicU64,
    /// Bytes received.
    pub bytes_in: AtomicU64,
    /// Bytes sent.
    pub bytes_out: AtomicU64,
    /// Backend requests completed.
    pub backend_ops: AtomicU64,
    /// Times a connection had to wait for backend capacity (budget spent or
    /// a backend busy).
    pub backend_waits: AtomicU64,
    /// Reactor loop iterations.
    pub loops: AtomicU64,
    /// Write-buffer budget of the shard's connections: bytes held now, the
    /// most ever held, waits for budget, and connections dropped because
    /// Data-Out they owed did not come in time ([`WriteBufferStats`]).
    pub write_held: AtomicU64,
    /// See [`ShardStats::write_held`].
    pub write_peak: AtomicU64,
    /// See [`ShardStats::write_held`].
    pub write_waits: AtomicU64,
    /// See [`ShardStats::write_held`].
    pub data_timeouts: AtomicU64,
}

/// Write-buffer counters a connection factory reports for its shard
/// (`ConnFactory::write_buffers`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct WriteBufferStats {
    /// Bytes of write buffers held now.
    pub held: u64,
    /// The most bytes held at any one time.
    pub peak: u64,
    /// Times a command waited for budget.
    pub waits: u64,
    /// Connections dropped because Data-Out they owed did not come in time.
    pub data_timeouts: u64,
}

/// A plain copy of [`ShardStats`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct StatsSnapshot {
    /// See [`ShardStats::load`].
    pub load: usize,
    /// See [`ShardStats::conns_live`].
    pub conns_live: u64,
    /// See [`ShardStats::conns_total`].
    pub conns_total: u64,
    /// See [`ShardStats::bytes_in`].
    pub bytes_in: u64,
    /// See [`ShardStats::bytes_out`].
    pub bytes_out: u64,
    /// See [`ShardStats::backend_ops`].
    pub backend_ops: u64,
    /// See [`ShardStats::backend_waits`].
    pub backend_waits: u64,
    /// See [`ShardStats::loops`].
    pub loops: u64,
    /// See [`ShardStats::write_held`].
    pub write: WriteBufferStats,
}

impl ShardStats {
    /// Read every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            load: self.load.load(Ordering::Relaxed),
            conns_live: self.conns_live.load(Ordering::Relaxed),
            conns_total: self.conns_total.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            backend_ops: self.backend_ops.load(Ordering::Relaxed),
            backend_waits: self.backend_waits.load(Ordering::Relaxed),
            loops: self.loops.load(Ordering::Relaxed),
            write: WriteBufferStats {
                held: self.write_held.load(Ordering::Relaxed),
                peak: self.write_peak.load(Ordering::Relaxed),
                waits: self.write_waits.load(Ordering::Relaxed),
                data_timeouts: self.data_timeouts.load(Ordering::Relaxed),
            },
        }
    }
}

/// The shard's private running totals, published with [`LocalStats::publish`].
#[derive(Debug, Default)]
pub(crate) struct LocalStats {
    pub(crate) conns_live: u64,
    pub(crate) conns_total: u64,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) backend_ops: u64,
    pub(crate) backend_waits: u64,
    pub(crate) loops: u64,
}

impl LocalStats {
    pub(crate) fn publish(&self, s: &ShardStats, w: WriteBufferStats) {
        s.write_held.store(w.held, Ordering::Relaxed);
        s.write_peak.store(w.peak, Ordering::Relaxed);
        s.write_waits.store(w.waits, Ordering::Relaxed);
        s.data_timeouts.store(w.data_timeouts, Ordering::Relaxed);
        s.conns_live.store(self.conns_live, Ordering::Relaxed);
        s.conns_total.store(self.conns_total, Ordering::Relaxed);
        s.bytes_in.store(self.bytes_in, Ordering::Relaxed);
        s.bytes_out.store(self.bytes_out, Ordering::Relaxed);
        s.backend_ops.store(self.backend_ops, Ordering::Relaxed);
        s.backend_waits.store(self.backend_waits, Ordering::Relaxed);
        s.loops.store(self.loops, Ordering::Relaxed);
    }
}
