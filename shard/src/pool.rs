//! Starting, feeding and stopping the shards.
//!
//! [`ShardPool::start`] spawns one pinned thread per shard, each building
//! its own ring and its own backend handles, and returns only when all are
//! up (or with the first failure). The [`Dispatcher`] it hands out is what
//! the acceptor uses to give a socket to the least-loaded shard. It never
//! touches a connection itself.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Sender, TrySendError};
use shardtgt_backends::Backend;
use shardtgt_core::target::TargetSet;
use tracing::{debug, error, warn};

use crate::balance::{pick_least_loaded, EXCLUDED};
use crate::clock::Clock;
use crate::conn::ConnFactory;
use crate::msg::{Accepted, ConnSummary, ShardMsg, Shared};
use crate::reactor::{build_ring, Reactor, ReactorParts, ShardConfig};
use crate::stats::{ShardStats, StatsSnapshot};
use crate::wake::EventFd;

/// How many shards and how they are set up.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Number of shards (threads), at least 1.
    pub shards: usize,
    /// Pin shard `i` to the i-th CPU this process may run on (wrapping).
    pub pin: bool,
    /// Per-shard sizes.
    pub shard: ShardConfig,
}

/// What every shard serves.
#[derive(Clone, Debug)]
pub struct ShardContext {
    /// Configuration snapshot.
    pub targets: Arc<TargetSet>,
    /// Backends, indexed by `LuConfig::backend`.
    pub backends: Vec<Arc<dyn Backend>>,
    /// The process clock.
    pub clock: Clock,
}

/// A shard failed to start or died.
#[derive(Debug)]
pub struct ShardError {
    /// Which shard.
    pub shard: usize,
    /// What happened.
    pub reason: String,
}

impl fmt::Display for ShardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard {}: {}", self.shard, self.reason)
    }
}

impl std::error::Error for ShardError {}

/// A new connection could not be handed to any shard.
#[derive(Debug)]
pub struct DispatchError(pub Accepted);

#[derive(Debug)]
struct Link {
    tx: Sender<ShardMsg>,
    shared: Arc<Shared>,
}

/// Hands connections and configuration to shards. Shared with the acceptor.
#[derive(Debug)]
pub struct Dispatcher {
    links: Vec<Link>,
    rr: AtomicUsize,
}

impl Dispatcher {
    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.links.len()
    }

    /// Give a connection to the shard with the fewest connections (ties
    /// round-robin). A shard whose inbox is full is skipped; when none can
    /// take it, the connection comes back in the error.
    pub fn dispatch(&self, a: Accepted) -> Result<usize, DispatchError> {
        let mut loads: Vec<usize> = self
            .links
            .iter()
            .map(|l| {
                if l.shared.shutdown.load(Ordering::Relaxed) {
                    EXCLUDED
                } else {
                    l.shared.stats.load.load(Ordering::Relaxed)
                }
            })
            .collect();
        let start = self.rr.fetch_add(1, Ordering::Relaxed);
        let mut msg = ShardMsg::NewConn(a);
        while let Some(i) = pick_least_loaded(&loads, start) {
            let link = &self.links[i];
            link.shared.stats.load.fetch_add(1, Ordering::Relaxed);
            match link.tx.try_send(msg) {
                Ok(()) => {
                    link.shared.wake.signal();
                    return Ok(i);
                }
                Err(TrySendError::Full(m)) | Err(TrySendError::Disconnected(m)) => {
                    link.shared.stats.load.fetch_sub(1, Ordering::Relaxed);
                    loads[i] = EXCLUDED;
                    msg = m;
                }
            }
        }
        match msg {
            ShardMsg::NewConn(a) => Err(DispatchError(a)),
            _ => unreachable!("only NewConn is dispatched"),
        }
    }

    /// Counters of every shard.
    pub fn stats(&self) -> Vec<StatsSnapshot> {
        self.links.iter().map(|l| l.shared.stats.snapshot()).collect()
    }

    /// Live counters of shard `i`.
    pub fn shard_stats(&self, i: usize) -> Option<&ShardStats> {
        self.links.get(i).map(|l| &l.shared.stats)
    }
}

/// The running shards.
#[derive(Debug)]
pub struct ShardPool {
    dispatcher: Arc<Dispatcher>,
    threads: Vec<Option<JoinHandle<io::Result<()>>>>,
    stopping: AtomicBool,
}

impl ShardPool {
    /// Spawn the shards, whose connections `factory` makes (normally
    /// [`crate::CoreConns`]), and wait until every one has its ring and backend
    /// handles, or fail with the first error (already started shards are
    /// stopped again).
    pub fn start<F: ConnFactory>(cfg: &PoolConfig, ctx: &ShardContext, factory: F) -> Result<ShardPool, ShardError> {
        let n = cfg.shards.max(1);
        let cores = if cfg.pin { core_affinity::get_core_ids().unwrap_or_default() } else { Vec::new() };
        let mut links = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        let mut first_err = None;
        for id in 0..n {
            let wake = EventFd::new().map_err(|e| ShardError { shard: id, reason: format!("eventfd: {e}") })?;
            let shared = Arc::new(Shared { stats: ShardStats::default(), shutdown: AtomicBool::new(false), wake });
            let (tx, rx) = channel::bounded(cfg.shard.inbox_capacity.max(1));
            let (ready_tx, ready_rx) = channel::bounded::<Result<(), String>>(1);
            let core = cores.get(id % cores.len().max(1)).copied();
            let shard_cfg = cfg.shard.clone();
            let ctx = ctx.clone();
            let factory = factory.clone();
            let sh = shared.clone();
            let spawned = std::thread::Builder::new().name(format!("shard-{id}")).spawn(move || {
                if let Some(c) = core {
                    if !core_affinity::set_for_current(c) {
                        warn!(shard = id, core = c.id, "could not pin shard thread");
                    }
                }
                let setup = || -> Result<Reactor<F>, String> {
                    let ring = build_ring(shard_cfg.ring_entries).map_err(|e| format!("io_uring setup: {e}"))?;
                    let mut backends = Vec::with_capacity(ctx.backends.len());
                    for (i, b) in ctx.backends.iter().enumerate() {
                        backends.push(b.open_shard().map_err(|e| format!("backend {i} ({}): {e}", b.kind()))?);
                    }
                    Ok(Reactor::new(ReactorParts {
                        id,
                        cfg: shard_cfg,
                        factory,
                        ring,
                        backends,
                        rx,
                        shared: sh,
                        targets: ctx.targets,
                        clock: ctx.clock,
                    }))
                };
                match setup() {
                    Ok(r) => {
                        let _ = ready_tx.send(Ok(()));
                        debug!(shard = id, core = ?core.map(|c| c.id), "shard running");
                        let res = r.run();
                        if let Err(e) = &res {
                            error!(shard = id, "shard failed: {e}");
                        }
                        res
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.clone()));
                        Err(io::Error::other(e))
                    }
                }
            });
            let handle = match spawned {
                Ok(h) => h,
                Err(e) => {
                    first_err = Some(ShardError { shard: id, reason: format!("spawn: {e}") });
                    break;
                }
            };
            threads.push(Some(handle));
            links.push(Link { tx, shared });
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => {
                    first_err = Some(ShardError { shard: id, reason });
                    break;
                }
                Err(_) => {
                    first_err = Some(ShardError { shard: id, reason: "died during start".into() });
                    break;
                }
            }
        }
        let pool = ShardPool {
            dispatcher: Arc::new(Dispatcher { links, rr: AtomicUsize::new(0) }),
            threads,
            stopping: AtomicBool::new(false),
        };
        if let Some(e) = first_err {
            pool.shutdown();
            let _ = pool.join(Duration::from_secs(5));
            return Err(e);
        }
        Ok(pool)
    }

    /// The dispatcher (for the acceptor).
    pub fn dispatcher(&self) -> Arc<Dispatcher> {
        self.dispatcher.clone()
    }

    /// Number of shards.
    pub fn len(&self) -> usize {
        self.dispatcher.links.len()
    }

    /// No shards (never true for a started pool).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Send a new configuration snapshot to every shard (waits while an
    /// inbox is full, at most `timeout` per shard). Returns how many took it.
    pub fn set_targets(&self, targets: Arc<TargetSet>, timeout: Duration) -> usize {
        let mut ok = 0;
        for l in &self.dispatcher.links {
            if l.tx.send_timeout(ShardMsg::SetTargets(targets.clone()), timeout).is_ok() {
                l.shared.wake.signal();
                ok += 1;
            }
        }
        ok
    }

    /// Counters of every shard.
    pub fn stats(&self) -> Vec<StatsSnapshot> {
        self.dispatcher.stats()
    }

    /// Give every shard a handle on `backend`, created at runtime, at slot
    /// `index` (must be the next free slot: indices are handed out in order
    /// and never reused). Returns how many shards took the message.
    pub fn add_backend(&self, index: usize, backend: Arc<dyn Backend>, timeout: Duration) -> usize {
        let mut ok = 0;
        for l in &self.dispatcher.links {
            let msg = ShardMsg::AddBackend { index, backend: backend.clone() };
            if l.tx.send_timeout(msg, timeout).is_ok() {
                l.shared.wake.signal();
                ok += 1;
            }
        }
        ok
    }

    /// Tell every shard that no snapshot uses backend slot `index` any more
    /// (send after the snapshot that dropped it). Returns how many shards
    /// took the message.
    pub fn retire_backend(&self, index: usize, timeout: Duration) -> usize {
        let mut ok = 0;
        for l in &self.dispatcher.links {
            if l.tx.send_timeout(ShardMsg::RetireBackend(index), timeout).is_ok() {
                l.shared.wake.signal();
                ok += 1;
            }
        }
        ok
    }

    /// Ask every shard for its connections; shards that do not answer
    /// within `timeout` are left out.
    pub fn list_conns(&self, timeout: Duration) -> Vec<ConnSummary> {
        let deadline = Instant::now() + timeout;
        let mut waiting = Vec::new();
        for l in &self.dispatcher.links {
            let (tx, rx) = channel::bounded(1);
            if l.tx.send_timeout(ShardMsg::ListConns(tx), timeout).is_ok() {
                l.shared.wake.signal();
                waiting.push(rx);
            }
        }
        let mut all = Vec::new();
        for rx in waiting {
            if let Ok(v) = rx.recv_deadline(deadline) {
                all.extend(v);
            }
        }
        all
    }

    /// Ask every shard to shut down gracefully (returns at once).
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        for l in &self.dispatcher.links {
            l.shared.shutdown.store(true, Ordering::Release);
            l.shared.wake.signal();
        }
    }

    /// A shard whose thread ended although no shutdown was asked for (it
    /// panicked or its ring failed).
    pub fn dead_shard(&self) -> Option<usize> {
        if self.stopping.load(Ordering::Relaxed) {
            return None;
        }
        self.threads.iter().position(|t| t.as_ref().is_some_and(|h| h.is_finished()))
    }

    /// Wait up to `timeout` for every shard to exit. Reports the first shard
    /// that failed, panicked or is still running at the timeout.
    pub fn join(mut self, timeout: Duration) -> Result<(), ShardError> {
        let deadline = Instant::now() + timeout;
        let mut result = Ok(());
        for (id, slot) in self.threads.iter_mut().enumerate() {
            let Some(h) = slot.take() else { continue };
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if !h.is_finished() {
                if result.is_ok() {
                    result = Err(ShardError { shard: id, reason: "did not stop in time".into() });
                }
                continue;
            }
            let r = match h.join() {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(ShardError { shard: id, reason: e.to_string() }),
                Err(_) => Err(ShardError { shard: id, reason: "panicked".into() }),
            };
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}
