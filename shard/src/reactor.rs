//! The per-core reactor: one thread, one io_uring, the connections it owns.
//!
//! Each loop iteration takes new connections and configuration from the
//! inbox, runs timers, drives every connection that something happened to
//! (backend requests, then transmit, then receive), submits everything with
//! one `io_uring_enter` that also waits for the next completion or the next
//! timer (`IORING_ENTER_EXT_ARG` timeout: no timer entries to track or
//! cancel), and reaps a bounded batch of completions.
//!
//! Per connection at most one receive and one send are in flight. Receives
//! land directly in the core's `recv_buf`; sends go straight from its
//! `poll_transmit`. A connection is dropped only when no
//! operation of it is in flight in the kernel and the core has no backend
//! request outstanding, so no buffer the kernel or a backend writes to is
//! freed early; a backend completion therefore always finds its connection
//! (even one the core has already closed) and its tag.
//!
//! Backend requests are bounded per shard (`max_pending_io`). When that
//! budget is spent, or a backend answers [`Submit::Busy`] (its own queues or
//! bounce buffers are full), the connection stops taking requests from its
//! core (a refused request waits in the connection's single `stalled` slot)
//! and is driven again after the next backend completion: backpressure
//! reaches the initiator through the core's command window, and no queue
//! grows without bound. Entries that do not fit the submission queue even
//! after a flush wait in a bounded overflow list, pushed before the next
//! `io_uring_enter`.
//!
//! It never decides anything about the protocol: the core's state says when
//! to close, the core's deadlines say when to call it back.

use std::collections::VecDeque;
use std::io;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam::channel::Receiver;
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use shardtgt_backends::{Completion, IoBuf, IoId, IoRequest, QueueFull, ShardBackend, Submit, SubmitQueue};
use shardtgt_core::conn::{BackendRequest, ConnInfo, ConnState};
use shardtgt_core::scsi::BackendStatus;
use shardtgt_core::target::TargetSet;
use shardtgt_transport_tcp::addr::format_portal;
use shardtgt_transport_tcp::ops::{self, IoOutcome};
use tracing::{debug, info, warn};

use crate::clock::Clock;
use crate::conn::{ConnCore, ConnFactory};
use crate::msg::ConnSummary;
use crate::msg::{ShardMsg, Shared};
use crate::slab::{Key, Slab};
use crate::stats::LocalStats;
use crate::user_data::{ConnOp, UserData, MAX_BACKENDS, MAX_SLOTS};

/// Every connection gets `handle_timeout` at least this often (the core
/// checks session reinstatement there).
pub const TICK_MS: u64 = 100;
/// After connections close, give freed memory back to the system this much
/// later (at most once per this interval per shard), so that a burst of
/// connections does not leave the daemon's RSS at its high-water mark.
const TRIM_DELAY_MS: u64 = 1_000;
/// Backend requests executed for one connection per drive, before others get a turn.
const BACKEND_PER_DRIVE: usize = 64;
/// Time given after the logout deadline for cancelled operations to finish.
const HARD_EXIT_GRACE_MS: u64 = 2_000;

/// Sizes and bounds of one shard.
#[derive(Clone, Debug)]
pub struct ShardConfig {
    /// Submission queue entries (the completion queue gets 4x).
    pub ring_entries: u32,
    /// Connections one shard may own.
    pub max_conns: usize,
    /// Capacity of the inbox channel (new connections, config snapshots).
    pub inbox_capacity: usize,
    /// Completions processed per loop iteration.
    pub cqe_batch: usize,
    /// Backend requests one shard may have in flight (the budget); more
    /// wait in their connections' cores.
    pub max_pending_io: usize,
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig { ring_entries: 512, max_conns: 4096, inbox_capacity: 256, cqe_batch: 1024, max_pending_io: 1024 }
    }
}

/// Build the ring: single issuer (only this thread submits), cooperative
/// task running (completions are posted when we enter the kernel anyway).
pub(crate) fn build_ring(entries: u32) -> io::Result<IoUring> {
    let ring = IoUring::builder()
        .setup_single_issuer()
        .setup_coop_taskrun()
        .setup_taskrun_flag()
        .setup_cqsize(entries.saturating_mul(4))
        .build(entries)
        .or_else(|_| IoUring::builder().setup_cqsize(entries.saturating_mul(4)).build(entries))?;
    if !ring.params().is_feature_ext_arg() {
        return Err(io::Error::other("io_uring lacks IORING_FEAT_EXT_ARG (Linux 5.11 or later needed)"));
    }
    Ok(ring)
}

/// Push one entry, flushing the submission queue once if it is full.
///
/// # Safety
/// Every buffer the entry points to must stay valid until its completion.
unsafe fn push(ring: &mut IoUring, e: &squeue::Entry) -> io::Result<()> {
    // SAFETY: the caller guarantees the entry's buffers outlive the operation.
    if unsafe { ring.submission().push(e) }.is_ok() {
        return Ok(());
    }
    ring.submit()?;
    // SAFETY: as above.
    unsafe { ring.submission().push(e) }.map_err(|_| io::Error::other("submission queue full"))
}

/// The shard's ring as a backend sees it.
struct RingQueue<'a> {
    ring: &'a mut IoUring,
    /// Entries that did not fit even after a flush (bounded by `overflow_max`).
    overflow: &'a mut VecDeque<squeue::Entry>,
    overflow_max: usize,
    backend: u16,
}

impl SubmitQueue for RingQueue<'_> {
    unsafe fn push(&mut self, entry: squeue::Entry, cookie: u64) -> Result<(), QueueFull> {
        if cookie > shardtgt_backends::COOKIE_MAX {
            return Err(QueueFull);
        }
        let e = entry.user_data(UserData::Backend { backend: self.backend, cookie }.encode());
        // SAFETY: the backend promised (this method's contract) that the
        // entry's buffers outlive its completion.
        if unsafe { push(self.ring, &e) }.is_ok() {
            return Ok(());
        }
        if self.overflow.len() < self.overflow_max {
            // Pushed before the next io_uring_enter (`Reactor::wait`); the
            // same contract holds until then.
            self.overflow.push_back(e);
            return Ok(());
        }
        Err(QueueFull)
    }
}

/// One connection and what the shard knows about its operations.
struct ConnSlot<C> {
    conn: C,
    /// Owns the descriptor; dropping the slot closes it.
    stream: TcpStream,
    peer: String,
    recv_in_flight: bool,
    send_in_flight: bool,
    recv_cancelled: bool,
    send_cancelled: bool,
    cancels_in_flight: u32,
    /// The peer's side is gone (recv gave 0 or an error): no more receives.
    peer_gone: bool,
    /// Closing: no new operations; dropped once nothing is in flight.
    closing: bool,
    /// Shutdown deadline passed: cancel sends too.
    forced: bool,
    /// In the dirty list.
    queued: bool,
    /// In the stalled list (waiting for backend capacity).
    stall_listed: bool,
    /// A request taken from the core that a backend refused (`Busy`);
    /// offered again before any new one.
    stalled: Option<BackendRequest>,
    deadline: Option<u64>,
    /// Bytes received on this connection (for session listings).
    bytes_in: u64,
    /// Bytes sent on this connection.
    bytes_out: u64,
    /// Backend requests completed for this connection.
    backend_ops: u64,
}

impl<C> ConnSlot<C> {
    fn ops_in_flight(&self) -> bool {
        self.recv_in_flight || self.send_in_flight || self.cancels_in_flight > 0
    }
}

#[derive(Clone, Copy, Debug)]
struct PendingIo {
    conn: Key,
    tag: u32,
}

#[derive(Clone, Copy, Debug)]
struct Shutdown {
    soft_deadline: u64,
    hard_deadline: u64,
    forced: bool,
}

/// What a retired backend slot holds: every request fails with ENODEV
/// (none should arrive: no snapshot names the slot).
#[derive(Debug)]
struct Retired;

impl ShardBackend for Retired {
    fn submit(&mut self, _id: IoId, _req: &IoRequest, _buf: IoBuf, _q: &mut dyn SubmitQueue) -> Submit {
        Submit::Done(BackendStatus::Other(libc::ENODEV))
    }
}

/// Everything a shard thread owns.
pub(crate) struct Reactor<F: ConnFactory> {
    id: usize,
    cfg: ShardConfig,
    factory: F,
    conns: Slab<Box<ConnSlot<F::Conn>>>,
    pending: Slab<PendingIo>,
    backends: Vec<Box<dyn ShardBackend>>,
    /// Backend slots to drop once idle ([`ShardMsg::RetireBackend`]).
    retiring: Vec<usize>,
    rx: Receiver<ShardMsg>,
    shared: Arc<Shared>,
    targets: Arc<TargetSet>,
    clock: Clock,
    local: LocalStats,
    cqes: Vec<(u64, i32, u32)>,
    io_done: Vec<(IoId, BackendStatus)>,
    dirty: Vec<Key>,
    dirty_spare: Vec<Key>,
    /// Connections waiting for backend capacity (each at most once).
    stalled: Vec<Key>,
    /// Backend entries waiting for room in the submission queue.
    overflow: VecDeque<squeue::Entry>,
    wake_armed: bool,
    next_sweep_ms: u64,
    last_full_sweep_ms: u64,
    /// Connections open after the previous loop (to notice closes).
    conns_seen: usize,
    /// When to return freed heap memory to the system (after closes).
    trim_at_ms: Option<u64>,
    shutdown: Option<Shutdown>,
    /// Declared last: dropped after the connections it may still reference.
    ring: IoUring,
}

impl<F: ConnFactory> std::fmt::Debug for Reactor<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor").field("id", &self.id).field("conns", &self.conns.len()).finish()
    }
}

/// What a new reactor needs.
pub(crate) struct ReactorParts<F> {
    pub(crate) id: usize,
    pub(crate) cfg: ShardConfig,
    pub(crate) factory: F,
    pub(crate) ring: IoUring,
    pub(crate) backends: Vec<Box<dyn ShardBackend>>,
    pub(crate) rx: Receiver<ShardMsg>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) targets: Arc<TargetSet>,
    pub(crate) clock: Clock,
}

impl<F: ConnFactory> Reactor<F> {
    pub(crate) fn new(p: ReactorParts<F>) -> Self {
        assert!(p.backends.len() <= MAX_BACKENDS);
        let max_conns = p.cfg.max_conns.min(MAX_SLOTS as usize);
        let now = p.clock.now_ms();
        Reactor {
            id: p.id,
            conns: Slab::with_capacity(max_conns),
            pending: Slab::with_capacity(p.cfg.max_pending_io),
            backends: p.backends,
            retiring: Vec::new(),
            rx: p.rx,
            shared: p.shared,
            targets: p.targets,
            factory: p.factory,
            clock: p.clock,
            local: LocalStats::default(),
            cqes: Vec::with_capacity(p.cfg.cqe_batch),
            io_done: Vec::with_capacity(64),
            dirty: Vec::with_capacity(max_conns.min(4096)),
            dirty_spare: Vec::with_capacity(max_conns.min(4096)),
            stalled: Vec::with_capacity(max_conns.min(4096)),
            overflow: VecDeque::new(),
            wake_armed: false,
            next_sweep_ms: now + TICK_MS,
            last_full_sweep_ms: now,
            conns_seen: 0,
            trim_at_ms: None,
            shutdown: None,
            cfg: p.cfg,
            ring: p.ring,
        }
    }

    /// Run until shut down and drained. An error is a ring failure.
    pub(crate) fn run(mut self) -> io::Result<()> {
        loop {
            self.local.loops += 1;
            let now = self.clock.now_ms();
            if !self.wake_armed && self.shutdown.is_none() {
                self.arm_wake()?;
            }
            self.take_messages(now);
            self.check_shutdown(now);
            self.sweep_timers(now);
            self.drive_dirty();
            self.trim_after_closes(now);
            self.local.publish(&self.shared.stats, self.factory.write_buffers());
            if let Some(sd) = self.shutdown {
                if self.conns.is_empty() {
                    info!(shard = self.id, "shard stopped");
                    return Ok(());
                }
                if self.clock.now_ms() >= sd.hard_deadline {
                    warn!(
                        shard = self.id,
                        conns = self.conns.len(),
                        "operations still in flight at the exit deadline; leaving them"
                    );
                    return Ok(());
                }
            }
            self.wait()?;
            self.reap();
        }
    }

    /// Connections closed: a second later, ask the allocator to return free
    /// heap pages (receive buffers, task buffers) to the system. Never on the
    /// I/O path: only after closes, and at most once per [`TRIM_DELAY_MS`].
    fn trim_after_closes(&mut self, now: u64) {
        let n = self.conns.len();
        if n < self.conns_seen && self.trim_at_ms.is_none() {
            self.trim_at_ms = Some(now + TRIM_DELAY_MS);
        }
        self.conns_seen = n;
        if self.trim_at_ms.is_some_and(|t| now >= t) {
            self.trim_at_ms = None;
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            // SAFETY: malloc_trim only releases free memory of glibc's own
            // arenas; it takes their locks and touches no live allocation.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        let e = opcode::PollAdd::new(types::Fd(self.shared.wake.raw_fd()), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(UserData::Wake.encode());
        // SAFETY: a poll references no memory of ours; the eventfd lives in
        // `shared`, which this reactor holds until it exits.
        unsafe { push(&mut self.ring, &e) }?;
        self.wake_armed = true;
        Ok(())
    }

    fn mark(conns: &mut Slab<Box<ConnSlot<F::Conn>>>, dirty: &mut Vec<Key>, key: Key) {
        if let Some(s) = conns.get_mut(key) {
            if !s.queued {
                s.queued = true;
                dirty.push(key);
            }
        }
    }

    fn for_each_conn(&mut self, mut f: impl FnMut(&mut ConnSlot<F::Conn>)) {
        for i in 0..self.conns.slots() {
            if let Some(key) = self.conns.key_at(i) {
                if let Some(s) = self.conns.get_mut(key) {
                    f(s);
                }
                Self::mark(&mut self.conns, &mut self.dirty, key);
            }
        }
    }

    fn take_messages(&mut self, now: u64) {
        // Bounded by the channel's capacity: at most that many are queued.
        for _ in 0..self.cfg.inbox_capacity {
            let Ok(msg) = self.rx.try_recv() else { break };
            match msg {
                ShardMsg::NewConn(a) => {
                    if self.shutdown.is_some() {
                        self.shared.stats.load.fetch_sub(1, Ordering::Relaxed);
                        debug!(shard = self.id, peer = %a.peer, "shutting down: connection refused");
                        continue;
                    }
                    self.add_conn(a.stream, format_portal(&a.peer), a.tpgt, now);
                }
                ShardMsg::SetTargets(t) => {
                    self.targets = t.clone();
                    self.for_each_conn(|s| s.conn.set_targets(t.clone()));
                }
                ShardMsg::AddBackend { index, backend } => {
                    if index != self.backends.len() || index >= MAX_BACKENDS {
                        warn!(
                            shard = self.id,
                            index,
                            have = self.backends.len(),
                            "backend index out of order: ignored"
                        );
                        continue;
                    }
                    match backend.open_shard() {
                        Ok(b) => self.backends.push(b),
                        Err(e) => warn!(shard = self.id, index, "cannot open backend {}: {e}", backend.kind()),
                    }
                }
                ShardMsg::RetireBackend(index) => {
                    if index < self.backends.len() && !self.retiring.contains(&index) {
                        self.retiring.push(index);
                    }
                }
                ShardMsg::ListConns(reply) => {
                    let mut v = Vec::with_capacity(self.conns.len());
                    for i in 0..self.conns.slots() {
                        if let Some(s) = self.conns.key_at(i).and_then(|k| self.conns.get(k)) {
                            v.push(ConnSummary {
                                shard: self.id,
                                peer: s.peer.clone(),
                                initiator: s.conn.initiator_name().map(str::to_string),
                                tsih: s.conn.tsih(),
                                bytes_in: s.bytes_in,
                                bytes_out: s.bytes_out,
                                backend_ops: s.backend_ops,
                            });
                        }
                    }
                    let _ = reply.try_send(v);
                }
            }
        }
    }

    fn add_conn(&mut self, stream: TcpStream, peer: String, tpgt: u16, now: u64) {
        let info = ConnInfo { peer: peer.clone(), tpgt };
        let conn = self.factory.open(&self.targets, info, now);
        let slot = Box::new(ConnSlot {
            conn,
            stream,
            peer,
            recv_in_flight: false,
            send_in_flight: false,
            recv_cancelled: false,
            send_cancelled: false,
            cancels_in_flight: 0,
            peer_gone: false,
            closing: false,
            forced: false,
            queued: false,
            stall_listed: false,
            stalled: None,
            deadline: None,
            bytes_in: 0,
            bytes_out: 0,
            backend_ops: 0,
        });
        match self.conns.insert(slot) {
            Ok(key) => {
                self.local.conns_total += 1;
                self.local.conns_live += 1;
                if let Some(s) = self.conns.get(key) {
                    debug!(shard = self.id, peer = %s.peer, "connection accepted");
                }
                Self::mark(&mut self.conns, &mut self.dirty, key);
            }
            Err(slot) => {
                warn!(shard = self.id, peer = %slot.peer, max = self.conns.capacity(), "shard full: connection dropped");
                self.shared.stats.load.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    fn check_shutdown(&mut self, now: u64) {
        if self.shutdown.is_none() && self.shared.shutdown.load(Ordering::Acquire) {
            let soft = now + self.targets.limits.logout_timeout_ms + 1_000;
            self.shutdown =
                Some(Shutdown { soft_deadline: soft, hard_deadline: soft + HARD_EXIT_GRACE_MS, forced: false });
            info!(shard = self.id, conns = self.conns.len(), "shutting down: asking initiators to log out");
            self.for_each_conn(|s| s.conn.shutdown(now));
        }
        if let Some(sd) = self.shutdown.as_mut() {
            if !sd.forced && now >= sd.soft_deadline {
                sd.forced = true;
                if !self.conns.is_empty() {
                    warn!(shard = self.id, conns = self.conns.len(), "logout deadline passed: closing connections");
                }
                self.for_each_conn(|s| {
                    s.closing = true;
                    s.forced = true;
                });
            }
        }
    }

    /// Drop retired backend handles, but only while nothing is in flight on
    /// any backend of this shard (a handle may own memory the kernel or a
    /// worker still writes into); retried every tick.
    fn retire_idle_backends(&mut self) {
        if self.retiring.is_empty() || !self.pending.is_empty() || !self.overflow.is_empty() {
            return;
        }
        for i in self.retiring.drain(..) {
            if let Some(slot) = self.backends.get_mut(i) {
                *slot = Box::new(Retired);
                debug!(shard = self.id, backend = i, "backend handle dropped");
            }
        }
    }

    fn sweep_timers(&mut self, now: u64) {
        if now < self.next_sweep_ms {
            return;
        }
        let full = now >= self.last_full_sweep_ms + TICK_MS;
        for i in 0..self.conns.slots() {
            let Some(key) = self.conns.key_at(i) else { continue };
            let Some(s) = self.conns.get_mut(key) else { continue };
            if full || s.deadline.is_some_and(|d| now >= d) {
                if !s.closing && s.conn.state() != ConnState::Closed {
                    s.conn.handle_timeout(now);
                }
                Self::mark(&mut self.conns, &mut self.dirty, key);
            }
        }
        if full {
            self.last_full_sweep_ms = now;
            self.retire_idle_backends();
        }
        self.next_sweep_ms = self.last_full_sweep_ms + TICK_MS;
    }

    fn drive_dirty(&mut self) {
        let mut list = std::mem::take(&mut self.dirty_spare);
        std::mem::swap(&mut list, &mut self.dirty);
        for key in list.drain(..) {
            self.drive(key);
        }
        self.dirty_spare = list;
    }

    /// Do everything a connection can do now.
    fn drive(&mut self, key: Key) {
        let now = self.clock.now_ms();
        let Reactor {
            conns,
            pending,
            backends,
            ring,
            local,
            dirty,
            shared,
            id,
            next_sweep_ms,
            stalled,
            overflow,
            cfg,
            ..
        } = self;
        let Some(s) = conns.get_mut(key) else { return };
        s.queued = false;
        let mut again = false;
        let overflow_max = cfg.max_pending_io + backends.len();

        // 1. Backend requests (synchronous backends complete right here,
        //    which may produce more output or more requests). Stop when the
        //    shard's budget is spent or a backend is busy: the connection
        //    waits in `stalled` for a completion.
        let mut n = 0;
        loop {
            if n == BACKEND_PER_DRIVE {
                again = true;
                break;
            }
            if pending.len() >= pending.capacity() {
                local.backend_waits += 1;
                if !s.stall_listed {
                    s.stall_listed = true;
                    stalled.push(key);
                }
                break;
            }
            let Some(req) = s.stalled.take().or_else(|| s.conn.poll_backend()) else { break };
            n += 1;
            let io = IoRequest { op: req.op, offset: req.offset, len: req.len, fua: req.fua };
            let Some(b) = backends.get_mut(req.backend) else {
                s.conn.handle_backend(req.tag, BackendStatus::Other(libc::ENODEV), now);
                continue;
            };
            let Ok(pk) = pending.insert(PendingIo { conn: key, tag: req.tag }) else {
                unreachable!("the budget check above leaves room in `pending`");
            };
            let buf = s.conn.backend_buffer(req.tag);
            // SAFETY: the core keeps a task buffer in place and leaves it
            // alone until `handle_backend(tag)`, which we call only when the
            // backend reports completion; the connection is not dropped
            // while `backend_in_flight() > 0` (a stalled request counts).
            let iobuf = unsafe { IoBuf::from_raw(buf.as_mut_ptr(), buf.len()) };
            let mut q = RingQueue { ring, overflow, overflow_max, backend: req.backend as u16 };
            match b.submit(IoId(pk.index), &io, iobuf, &mut q) {
                Submit::Done(st) => {
                    pending.remove(pk);
                    local.backend_ops += 1;
                    s.backend_ops += 1;
                    s.conn.handle_backend(req.tag, st, now);
                }
                Submit::Pending => {}
                Submit::Busy => {
                    pending.remove(pk);
                    local.backend_waits += 1;
                    s.stalled = Some(req);
                    if !s.stall_listed {
                        s.stall_listed = true;
                        stalled.push(key);
                    }
                    break;
                }
            }
        }

        let fd = s.stream.as_raw_fd();
        let state = s.conn.state();

        // 2. Transmit.
        let mut nothing_to_send = !s.send_in_flight;
        if !s.send_in_flight && state != ConnState::Closed && !s.forced {
            if let Some(bytes) = s.conn.poll_transmit() {
                if !bytes.is_empty() {
                    nothing_to_send = false;
                    let e = ops::send(fd, bytes.as_ptr(), bytes.len())
                        .user_data(UserData::Conn { op: ConnOp::Send, slot: key.index, gen: key.gen }.encode());
                    // SAFETY: the core keeps these bytes valid and unchanged
                    // until `transmit_done`, which we call on this send's
                    // completion; the connection is boxed (its address is
                    // stable) and never dropped while `send_in_flight`.
                    match unsafe { push(ring, &e) } {
                        Ok(()) => s.send_in_flight = true,
                        Err(_) => again = true,
                    }
                }
            }
        }

        // 3. Close, or keep receiving.
        let close_now = match state {
            ConnState::Closed => true,
            ConnState::CloseAfterFlush => nothing_to_send && !again,
            _ => false,
        };
        if close_now {
            s.closing = true;
        }
        if s.closing {
            let cancel_send = state == ConnState::Closed || s.forced || s.peer_gone;
            if s.recv_in_flight && !s.recv_cancelled {
                let target = UserData::Conn { op: ConnOp::Recv, slot: key.index, gen: key.gen }.encode();
                let e = ops::cancel(target)
                    .user_data(UserData::Conn { op: ConnOp::Cancel, slot: key.index, gen: key.gen }.encode());
                // SAFETY: a cancel references no memory.
                match unsafe { push(ring, &e) } {
                    Ok(()) => {
                        s.recv_cancelled = true;
                        s.cancels_in_flight += 1;
                    }
                    Err(_) => again = true,
                }
            }
            if cancel_send && s.send_in_flight && !s.send_cancelled {
                let target = UserData::Conn { op: ConnOp::Send, slot: key.index, gen: key.gen }.encode();
                let e = ops::cancel(target)
                    .user_data(UserData::Conn { op: ConnOp::Cancel, slot: key.index, gen: key.gen }.encode());
                // SAFETY: a cancel references no memory.
                match unsafe { push(ring, &e) } {
                    Ok(()) => {
                        s.send_cancelled = true;
                        s.cancels_in_flight += 1;
                    }
                    Err(_) => again = true,
                }
            }
            if !s.ops_in_flight() && s.conn.backend_in_flight() == 0 {
                // Nothing references the slot any more: drop it (closes the socket).
                if let Some(s) = conns.remove(key) {
                    debug!(shard = *id, peer = %s.peer, "connection closed");
                }
                local.conns_live -= 1;
                shared.stats.load.fetch_sub(1, Ordering::Relaxed);
                return;
            }
        } else if !s.recv_in_flight && !s.peer_gone && state != ConnState::CloseAfterFlush {
            let buf = s.conn.recv_buf();
            if !buf.is_empty() {
                let e = ops::recv(fd, buf.as_mut_ptr(), buf.len())
                    .user_data(UserData::Conn { op: ConnOp::Recv, slot: key.index, gen: key.gen }.encode());
                // SAFETY: the core leaves the receive slice untouched until
                // `recv_done`, which we call on this receive's completion;
                // the connection is boxed and never dropped while
                // `recv_in_flight`.
                match unsafe { push(ring, &e) } {
                    Ok(()) => s.recv_in_flight = true,
                    Err(_) => again = true,
                }
            }
        }

        // 4. Timers.
        s.deadline = s.conn.next_deadline();
        if let Some(d) = s.deadline {
            *next_sweep_ms = (*next_sweep_ms).min(d.max(now + 1));
        }
        if again {
            Self::mark(conns, dirty, key);
        }
    }

    /// Submit what is queued and wait for a completion, a timer, or nothing
    /// (when work is left over).
    fn wait(&mut self) -> io::Result<()> {
        // Entries that overflowed the submission queue go first.
        while let Some(e) = self.overflow.front() {
            // SAFETY: queued by `RingQueue::push` under the backend's
            // promise that its buffers outlive the operation.
            if unsafe { self.ring.submission().push(e) }.is_err() {
                // Full: the submit below makes room; the rest goes next
                // time round (the wait below does not block meanwhile).
                break;
            }
            self.overflow.pop_front();
        }
        // Stalled connections with nothing of the shard's in flight would
        // never see a completion: let them try again now.
        if !self.stalled.is_empty() && self.pending.is_empty() {
            self.unstall();
        }
        let now = self.clock.now_ms();
        let mut wake_at = self.next_sweep_ms;
        if let Some(sd) = self.shutdown {
            wake_at = wake_at.min(if sd.forced { sd.hard_deadline } else { sd.soft_deadline });
        }
        let r = if !self.dirty.is_empty() || !self.overflow.is_empty() || wake_at <= now {
            self.ring.submit()
        } else {
            let ms = wake_at - now;
            let ts = types::Timespec::new().sec(ms / 1000).nsec(((ms % 1000) * 1_000_000) as u32);
            let args = types::SubmitArgs::new().timespec(&ts);
            self.ring.submitter().submit_with_args(1, &args)
        };
        match r {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)) => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Drive every connection that waits for backend capacity.
    fn unstall(&mut self) {
        for key in std::mem::take(&mut self.stalled) {
            if let Some(s) = self.conns.get_mut(key) {
                s.stall_listed = false;
            }
            Self::mark(&mut self.conns, &mut self.dirty, key);
        }
    }

    /// Handle up to `cqe_batch` completions.
    fn reap(&mut self) {
        self.cqes.clear();
        {
            let cq = self.ring.completion();
            for cqe in cq.take(self.cfg.cqe_batch) {
                self.cqes.push((cqe.user_data(), cqe.result(), cqe.flags()));
            }
        }
        let now = self.clock.now_ms();
        let mut backend_done = false;
        for i in 0..self.cqes.len() {
            let (ud, res, flags) = self.cqes[i];
            match UserData::decode(ud) {
                Some(UserData::Wake) => {
                    self.shared.wake.drain();
                    if !cqueue::more(flags) {
                        self.wake_armed = false;
                    }
                }
                Some(UserData::Conn { op, slot, gen }) => self.conn_completion(op, Key { index: slot, gen }, res, now),
                Some(UserData::Backend { backend, cookie }) => {
                    backend_done = true;
                    self.backend_completion(backend, Completion { cookie, result: res, flags }, now);
                }
                None => warn!(shard = self.id, user_data = ud, "completion with unknown user_data"),
            }
        }
        if backend_done && !self.stalled.is_empty() {
            self.unstall();
        }
    }

    fn conn_completion(&mut self, op: ConnOp, key: Key, res: i32, now: u64) {
        let Some(s) = self.conns.get_mut(key) else {
            warn!(shard = self.id, ?op, "completion for a closed connection");
            return;
        };
        match op {
            ConnOp::Recv => {
                s.recv_in_flight = false;
                match ops::recv_outcome(res) {
                    IoOutcome::Bytes(n) => {
                        self.local.bytes_in += n as u64;
                        s.bytes_in += n as u64;
                        if s.conn.state() != ConnState::Closed {
                            s.conn.recv_done(n, now);
                        }
                    }
                    IoOutcome::Retry | IoOutcome::Cancelled => {}
                    IoOutcome::Eof => {
                        s.peer_gone = true;
                        s.conn.peer_closed();
                    }
                    IoOutcome::Failed(e) => {
                        debug!(shard = self.id, peer = %s.peer, errno = e, "receive failed");
                        s.peer_gone = true;
                        s.conn.peer_closed();
                    }
                }
            }
            ConnOp::Send => {
                s.send_in_flight = false;
                match ops::send_outcome(res) {
                    IoOutcome::Bytes(n) => {
                        self.local.bytes_out += n as u64;
                        s.bytes_out += n as u64;
                        s.conn.transmit_done(n, now);
                    }
                    IoOutcome::Retry | IoOutcome::Cancelled => {}
                    IoOutcome::Eof | IoOutcome::Failed(_) => {
                        debug!(shard = self.id, peer = %s.peer, res, "send failed");
                        s.peer_gone = true;
                        s.conn.peer_closed();
                    }
                }
            }
            ConnOp::Cancel => s.cancels_in_flight = s.cancels_in_flight.saturating_sub(1),
        }
        Self::mark(&mut self.conns, &mut self.dirty, key);
    }

    fn backend_completion(&mut self, backend: u16, c: Completion, now: u64) {
        let overflow_max = self.cfg.max_pending_io + self.backends.len();
        let Some(b) = self.backends.get_mut(usize::from(backend)) else { return };
        let done = &mut self.io_done;
        let mut q = RingQueue { ring: &mut self.ring, overflow: &mut self.overflow, overflow_max, backend };
        b.complete(c, &mut q, &mut |id, st| done.push((id, st)));
        for (id, st) in self.io_done.drain(..) {
            let Some(pk) = self.pending.key_at(id.0 as usize) else {
                warn!(shard = self.id, backend, io = id.0, "backend reported a request that is not pending");
                continue;
            };
            let Some(p) = self.pending.remove(pk) else { continue };
            self.local.backend_ops += 1;
            match self.conns.get_mut(p.conn) {
                Some(s) => {
                    s.backend_ops += 1;
                    s.conn.handle_backend(p.tag, st, now);
                    Self::mark(&mut self.conns, &mut self.dirty, p.conn);
                }
                // Cannot happen: a connection with backend requests in
                // flight is never dropped.
                None => warn!(shard = self.id, backend, "backend completion for a dropped connection"),
            }
        }
    }
}

impl<F: ConnFactory> Drop for Reactor<F> {
    fn drop(&mut self) {
        // A connection the kernel (or a backend) may still write into must
        // not be freed: leak those. This happens only at a forced exit.
        for s in self.conns.drain() {
            if s.ops_in_flight() || s.conn.backend_in_flight() > 0 {
                std::mem::forget(s);
            }
        }
        // Backend handles with requests in flight own memory the kernel or
        // their workers may still write (bounce buffers): leak them too.
        if !self.pending.is_empty() {
            warn!(
                shard = self.id,
                in_flight = self.pending.len(),
                "backend requests in flight at exit; leaking their handles"
            );
            std::mem::forget(std::mem::take(&mut self.backends));
        }
    }
}
