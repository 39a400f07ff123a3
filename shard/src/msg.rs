//! What crosses threads into a shard: accepted sockets and configuration
//! snapshots through its bounded inbox, plus a shutdown flag, an eventfd to
//! wake it and its counters. Nothing here is locked.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

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
}

/// State shared between a shard and the control side.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) stats: ShardStats,
    pub(crate) shutdown: AtomicBool,
    pub(crate) wake: EventFd,
}
