//! Worker threads for backends whose calls block (pread/pwrite in `rdwr`,
//! later librbd): per-shard queues, round-robin, completions back to the
//! owning shard through an eventfd on its ring.
//!
//! ```text
//!  shard 0 ──q(0,0)──► worker 0 ──c(0,0)──► shard 0   (eventfd 0 polled on shard 0's ring)
//!          ──q(0,1)──► worker 1 ──c(0,1)──►
//!  shard 1 ──q(1,0)──► worker 0 ──c(1,0)──► shard 1   (eventfd 1 on shard 1's ring)
//!          ──q(1,1)──► worker 1 ──c(1,1)──►
//! ```
//! Every queue has one producer and one consumer and is bounded
//! ([`QUEUE_DEPTH`]); a shard dispatches round-robin over its queues and
//! gets [`Submit::Busy`] when every one of them is full. No list is shared
//! by all workers (Linux tgt's bs_thread pending list and its mutex), and a
//! completion costs no signal: a worker writes the shard's eventfd only when
//! the shard has not been woken since it last drained its completions
//! (an atomic flag), so a busy shard sees one wake-up for many completions.
//!
//! A worker serves its shards fairly (one request from each in turn) and
//! blocks in a crossbeam `Select` only when all are empty. It never touches
//! the shard's ring and never shares a buffer between requests.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam::channel::{self, Receiver, Select, Sender, TrySendError};
use io_uring::{opcode, types};

use crate::{BackendError, BackendStatus, Completion, IoBuf, IoId, IoRequest, ShardBackend, Submit, SubmitQueue};

/// Requests one shard may queue to one worker.
pub const QUEUE_DEPTH: usize = 64;

/// Cookie of a shard handle's eventfd poll.
const WAKE_COOKIE: u64 = 0;

/// The blocking part of a backend: runs one request on a worker thread.
pub trait BlockingIo: Send + Sync + fmt::Debug + 'static {
    /// Per-worker scratch state (a bounce buffer, a library handle).
    type Scratch: Default;
    /// Do `req` on `buf` (exactly `req.len` bytes; empty for a flush).
    fn execute(&self, req: &IoRequest, buf: &mut [u8], scratch: &mut Self::Scratch) -> BackendStatus;
}

/// A task buffer on its way to a worker.
struct SendBuf(IoBuf);

// SAFETY: `IoBuf::from_raw`'s contract gives the request exclusive use of
// the region until it completes, wherever that happens; the shard does not
// touch it until the worker's completion comes back through the channel
// (which orders the worker's writes before the shard's reads).
unsafe impl Send for SendBuf {}

struct Job {
    id: IoId,
    req: IoRequest,
    buf: SendBuf,
}

struct Done {
    id: IoId,
    status: BackendStatus,
}

/// A shard's wake-up: an eventfd the shard polls on its ring, and whether
/// it has been signalled since the shard last drained.
#[derive(Debug)]
struct Wake {
    fd: OwnedFd,
    notified: AtomicBool,
}

impl Wake {
    fn new() -> io::Result<Self> {
        // SAFETY: plain syscall without pointers.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        Ok(Wake { fd: unsafe { OwnedFd::from_raw_fd(fd) }, notified: AtomicBool::new(false) })
    }

    /// Called by a worker after queuing a completion.
    fn notify(&self) {
        // AcqRel: the shard's `swap(false)` that reads this `true` sees the
        // completion sent before it.
        if !self.notified.swap(true, Ordering::AcqRel) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live value to our own eventfd;
            // EAGAIN (counter overflow) means a wake-up is pending anyway.
            let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }

    /// Called by the shard before draining completions.
    fn clear(&self) {
        self.notified.swap(false, Ordering::AcqRel);
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live value from our own eventfd.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }
}

/// What a worker holds for one shard.
struct ShardSide {
    jobs: Receiver<Job>,
    done: Sender<Done>,
    wake: Arc<Wake>,
}

/// The worker threads of one backend.
pub struct WorkerPool<E: BlockingIo> {
    exec: Arc<E>,
    /// One control channel per worker: new shards register through it.
    ctl: Vec<Sender<ShardSide>>,
    name: String,
}

impl<E: BlockingIo> fmt::Debug for WorkerPool<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerPool").field("name", &self.name).field("workers", &self.ctl.len()).finish()
    }
}

impl<E: BlockingIo> WorkerPool<E> {
    /// Start `workers` threads (at least 1) named `name-N` running `exec`.
    /// They exit when the pool and every shard handle are gone.
    pub fn start(name: &str, workers: usize, exec: Arc<E>) -> Result<Self, BackendError> {
        let mut ctl = Vec::with_capacity(workers.max(1));
        for i in 0..workers.max(1) {
            // A shard registers once per worker; bounded like everything else.
            let (tx, rx) = channel::bounded::<ShardSide>(1024);
            let exec = exec.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || worker_loop(&*exec, rx))
                .map_err(|e| BackendError(format!("cannot start worker thread: {e}")))?;
            ctl.push(tx);
        }
        Ok(WorkerPool { exec, ctl, name: name.to_string() })
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.ctl.len()
    }

    /// The executor the workers run.
    pub fn exec(&self) -> &Arc<E> {
        &self.exec
    }

    /// A shard's handle: its own queue to every worker and its own eventfd.
    pub fn open_shard(&self) -> Result<WorkerShard, BackendError> {
        let wake = Arc::new(Wake::new().map_err(|e| BackendError(format!("eventfd: {e}")))?);
        let mut links = Vec::with_capacity(self.ctl.len());
        for ctl in &self.ctl {
            let (jtx, jrx) = channel::bounded(QUEUE_DEPTH);
            // One more than the jobs that can be outstanding: a worker never
            // blocks handing back a completion.
            let (dtx, drx) = channel::bounded(QUEUE_DEPTH + 1);
            ctl.send(ShardSide { jobs: jrx, done: dtx, wake: wake.clone() })
                .map_err(|_| BackendError("a worker thread is gone".into()))?;
            links.push(Link { jobs: jtx, done: drx, in_flight: 0 });
        }
        Ok(WorkerShard { links, next: 0, wake, armed: false, in_flight: 0 })
    }
}

fn worker_loop<E: BlockingIo>(exec: &E, ctl: Receiver<ShardSide>) {
    let mut shards: Vec<ShardSide> = Vec::new();
    let mut ctl_open = true;
    let mut scratch = E::Scratch::default();
    let run = |side: &ShardSide, job: Job, scratch: &mut E::Scratch| {
        let Job { id, req, buf: SendBuf(mut buf) } = job;
        let status = exec.execute(&req, buf.as_mut_slice(), scratch);
        // Cannot be full (see `open_shard`); a disconnected shard is gone
        // and the result has nowhere to go.
        let _ = side.done.try_send(Done { id, status });
        side.wake.notify();
    };
    loop {
        // Take new shards.
        while let Ok(s) = ctl.try_recv() {
            shards.push(s);
        }
        // One request from each shard in turn while there is work.
        let mut worked = false;
        let mut i = 0;
        while i < shards.len() {
            match shards[i].jobs.try_recv() {
                Ok(job) => {
                    run(&shards[i], job, &mut scratch);
                    worked = true;
                    i += 1;
                }
                Err(channel::TryRecvError::Empty) => i += 1,
                Err(channel::TryRecvError::Disconnected) => {
                    shards.swap_remove(i);
                }
            }
        }
        if worked {
            continue;
        }
        if !ctl_open && shards.is_empty() {
            return;
        }
        // Idle: block until any queue or the control channel has something.
        let mut sel = Select::new();
        for s in &shards {
            sel.recv(&s.jobs);
        }
        let ctl_index = ctl_open.then(|| sel.recv(&ctl));
        let oper = sel.select();
        let k = oper.index();
        if Some(k) == ctl_index {
            match oper.recv(&ctl) {
                Ok(s) => shards.push(s),
                Err(_) => ctl_open = false,
            }
        } else {
            match oper.recv(&shards[k].jobs) {
                Ok(job) => run(&shards[k], job, &mut scratch),
                Err(_) => {
                    shards.swap_remove(k);
                }
            }
        }
    }
}

#[derive(Debug)]
struct Link {
    jobs: Sender<Job>,
    done: Receiver<Done>,
    in_flight: usize,
}

/// A shard's handle on a [`WorkerPool`].
#[derive(Debug)]
pub struct WorkerShard {
    links: Vec<Link>,
    next: usize,
    wake: Arc<Wake>,
    /// The eventfd poll is on the ring.
    armed: bool,
    in_flight: usize,
}

impl WorkerShard {
    fn arm(&mut self, q: &mut dyn SubmitQueue) -> bool {
        if self.armed {
            return true;
        }
        let e = opcode::PollAdd::new(types::Fd(self.wake.fd.as_raw_fd()), libc::POLLIN as u32).multi(true).build();
        // SAFETY: a poll references no memory; the eventfd lives in `wake`,
        // which this handle holds (and the kernel holds its own reference
        // to the file while the poll is armed).
        self.armed = unsafe { q.push(e, WAKE_COOKIE) }.is_ok();
        self.armed
    }

    /// Requests handed to workers and not yet reported.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }
}

impl ShardBackend for WorkerShard {
    fn submit(&mut self, id: IoId, req: &IoRequest, buf: IoBuf, q: &mut dyn SubmitQueue) -> Submit {
        if !self.arm(q) {
            return Submit::Busy;
        }
        let n = self.links.len();
        let mut job = Job { id, req: *req, buf: SendBuf(buf) };
        let mut gone = 0;
        for k in 0..n {
            let i = (self.next + k) % n;
            let link = &mut self.links[i];
            if link.in_flight >= QUEUE_DEPTH {
                continue;
            }
            match link.jobs.try_send(job) {
                Ok(()) => {
                    link.in_flight += 1;
                    self.in_flight += 1;
                    self.next = (i + 1) % n;
                    return Submit::Pending;
                }
                Err(TrySendError::Full(j)) => job = j,
                Err(TrySendError::Disconnected(j)) => {
                    gone += 1;
                    job = j;
                }
            }
        }
        if gone == n {
            // Every worker died (a bug): fail rather than wait forever.
            return Submit::Done(BackendStatus::Other(libc::EPIPE));
        }
        Submit::Busy
    }

    fn complete(&mut self, c: Completion, q: &mut dyn SubmitQueue, done: &mut dyn FnMut(IoId, BackendStatus)) {
        if c.cookie != WAKE_COOKIE {
            return;
        }
        if !c.more() {
            // The multishot poll ended (e.g. CQ overflow): arm it again.
            self.armed = false;
            let _ = self.arm(q);
        }
        self.wake.clear();
        for link in &mut self.links {
            // Bounded: at most QUEUE_DEPTH completions per link.
            while let Ok(d) = link.done.try_recv() {
                link.in_flight -= 1;
                self.in_flight -= 1;
                done(d.id, d.status);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Condvar, Mutex};

    use super::*;
    use crate::testutil::{Req, TestRing};
    use crate::BackendOp;

    /// Blocks every request until opened; fills reads with the worker's
    /// thread name's last byte.
    #[derive(Debug, Default)]
    struct Gate {
        open: Mutex<bool>,
        cv: Condvar,
    }

    impl BlockingIo for Gate {
        type Scratch = ();
        fn execute(&self, req: &IoRequest, buf: &mut [u8], _: &mut ()) -> BackendStatus {
            let mut o = self.open.lock().unwrap();
            while !*o {
                o = self.cv.wait(o).unwrap();
            }
            let name = std::thread::current().name().unwrap_or("").to_string();
            buf.fill(*name.as_bytes().last().unwrap_or(&0));
            if req.offset == 666 {
                BackendStatus::MediumError
            } else {
                BackendStatus::Ok
            }
        }
    }

    #[test]
    fn bounded_round_robin_and_busy() {
        let gate = Arc::new(Gate::default());
        let pool = WorkerPool::start("gate", 2, gate.clone()).unwrap();
        let mut h = pool.open_shard().unwrap();
        let mut ring = TestRing::new();
        let n = 2 * QUEUE_DEPTH + 10;
        let mut bufs: Vec<Vec<u8>> = (0..n).map(|_| vec![0u8; 512]).collect();
        let reqs: Vec<Req<'_>> = bufs
            .iter_mut()
            .enumerate()
            .map(|(i, b)| Req {
                handle: 0,
                req: IoRequest { op: BackendOp::Read, offset: if i == 3 { 666 } else { 0 }, len: 512, fua: false },
                buf: b.as_mut_slice(),
            })
            .collect();
        let opener = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(200));
                *gate.open.lock().unwrap() = true;
                gate.cv.notify_all();
            })
        };
        let st = ring.run(&mut [&mut h], reqs);
        opener.join().unwrap();
        assert!(ring.busy > 0, "queues are bounded: the extra requests waited");
        assert_eq!(st[3], BackendStatus::MediumError);
        assert_eq!(st.iter().filter(|s| **s == BackendStatus::Ok).count(), n - 1);
        assert_eq!(h.in_flight(), 0);
        // Both workers took work (round-robin), each buffer from one worker.
        let zeros = bufs.iter().filter(|b| b[0] == b'0').count();
        let ones = bufs.iter().filter(|b| b[0] == b'1').count();
        assert_eq!(zeros + ones, n);
        assert!(zeros >= QUEUE_DEPTH && ones >= QUEUE_DEPTH, "{zeros} / {ones}");
    }

    #[test]
    fn workers_exit_when_everything_is_dropped() {
        let gate = Arc::new(Gate::default());
        *gate.open.lock().unwrap() = true;
        let pool = WorkerPool::start("exit", 3, gate.clone()).unwrap();
        let h = pool.open_shard().unwrap();
        assert_eq!(Arc::strong_count(&gate), 5);
        drop(h);
        drop(pool);
        let t = std::time::Instant::now();
        while Arc::strong_count(&gate) > 1 {
            assert!(t.elapsed() < std::time::Duration::from_secs(5), "workers did not exit");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
