//! What crosses threads into a shard: accepted sockets and configuration
//! snapshots through its bounded inbox, plus a shutdown flag, an eventfd to
//! wake it and its counters. Nothing here is locked.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crossbeam::channel::Sender;
use shardtgt_backends::Backend;
use shardtgt_core::target::TargetSet;

use crate::stats::ShardStats;
use crate::wake::EventFd;

/// A socket the acceptor took, with where it came from.
#[derive(Debug)]
pub struct Accepted {
    /// The connected socket (options already set).
    pub stream: TcpStream,
    /// The peer's address.
    pub peer: SocketAddr,
    /// Target portal group tag of the portal it arrived on.
    pub tpgt: u16,
}

/// Messages in a shard's inbox.
#[derive(Debug)]
pub(crate) enum ShardMsg {
    /// Take over a connection.
    NewConn(Accepted),
    /// Serve this configuration from now on.
    SetTargets(Arc<TargetSet>),
    /// Open a shard handle on a backend created at runtime; `index` is the
    /// next free slot of the shard's backend table (the control thread
    /// hands indices out in order, so it always equals the table's length).
    AddBackend { index: usize, backend: Arc<dyn Backend> },
    /// No snapshot names this backend slot any more: drop the shard's
    /// handle once no backend request is in flight on the shard (the slot
    /// then fails requests with ENODEV; slots are never reused).
    RetireBackend(usize),
    /// Describe every connection (for `session list`); the reply channel
    /// has room for the one answer.
    ListConns(Sender<Vec<ConnSummary>>),
}

/// One connection as a shard sees it, for session listings.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ConnSummary {
    /// Shard that owns the connection.
    pub shard: usize,
    /// Peer address (`10.0.0.5:51234`, `[::1]:40000`).
    pub peer: String,
    /// Initiator name, once logged in.
    pub initiator: Option<String>,
    /// TSIH of its session, once logged in.
    pub tsih: Option<u16>,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Backend requests completed (reads, writes, flushes…).
    pub backend_ops: u64,
}

/// State shared between a shard and the control side.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) stats: ShardStats,
    pub(crate) shutdown: AtomicBool,
    pub(crate) wake: EventFd,
}
