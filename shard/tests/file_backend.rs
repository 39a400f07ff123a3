//! The reactor with asynchronous backends: real io_uring reads and writes on
//! a `file` LU (O_DIRECT on ext4, so unaligned task buffers bounce), an
//! `rdwr` LU (worker threads, eventfd completions), the per-shard in-flight
//! budget (backpressure instead of errors), and a connection that goes away
//! while its backend requests are still in flight.
//!
//! A scripted connection stands in for the iSCSI core; it speaks lines:
//! `W b off len seed [f]` write, `R b off len seed` read and compare,
//! `F b` flush, `B b n len seed` n concurrent writes; it answers
//! `W ok`, `R ok`, `R bad`, `F ok`, `B ok n`, or `<op> err <status>`.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{opcode, types};
use shardtgt_backends::{
    Backend, BackendError, BackendKind, BackendSpec, Completion, IoBuf, IoId, IoRequest, ShardBackend, Submit,
    SubmitQueue,
};
use shardtgt_core::conn::{BackendRequest, ConnInfo, ConnState};
use shardtgt_core::scsi::{BackendOp, BackendStatus};
use shardtgt_core::target::TargetSet;
use shardtgt_shard::{
    Acceptor, Clock, ConnCore, ConnFactory, Listener, PoolConfig, ShardConfig, ShardContext, ShardPool,
};

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed)).collect()
}

struct Task {
    kind: u8,
    buf: Box<[u8]>,
    seed: u8,
    batch: Option<u32>,
}

/// Where a request goes.
struct Loc {
    backend: usize,
    offset: u64,
    len: u32,
    fua: bool,
}

struct Script {
    rbuf: Box<[u8]>,
    line: Vec<u8>,
    pending: Vec<u8>,
    inflight: Vec<u8>,
    sent: usize,
    state: ConnState,
    backend_q: VecDeque<BackendRequest>,
    tasks: HashMap<u32, Task>,
    in_flight: usize,
    next_tag: u32,
    batches: HashMap<u32, (usize, usize, usize)>,
    /// Backend completions this connection received (shared with the test).
    completed: Arc<AtomicUsize>,
}

impl Script {
    fn queue(&mut self, kind: u8, at: Loc, seed: u8, batch: Option<u32>) {
        let Loc { backend, offset, len, fua } = at;
        let tag = self.next_tag;
        self.next_tag += 1;
        let op = match kind {
            b'R' => BackendOp::Read,
            b'F' => BackendOp::Flush,
            _ => BackendOp::Write,
        };
        let buf = if op == BackendOp::Write { pattern(seed, len as usize) } else { vec![0; len as usize] };
        self.tasks.insert(tag, Task { kind, buf: buf.into_boxed_slice(), seed, batch });
        self.backend_q.push_back(BackendRequest { tag, backend, op, offset, len, fua });
    }

    fn command(&mut self, line: &str) {
        let w: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| w.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
        let loc = |fua| Loc { backend: num(1) as usize, offset: num(2), len: num(3) as u32, fua };
        match w.first().copied() {
            Some("W") => self.queue(b'W', loc(w.get(5) == Some(&"f")), num(4) as u8, None),
            Some("R") => self.queue(b'R', loc(false), num(4) as u8, None),
            Some("F") => self.queue(b'F', Loc { backend: num(1) as usize, offset: 0, len: 0, fua: false }, 0, None),
            Some("B") => {
                let (b, n, len, seed) = (num(1) as usize, num(2) as usize, num(3), num(4) as u8);
                let id = self.next_tag;
                self.batches.insert(id, (n, 0, n));
                for i in 0..n {
                    let at = Loc { backend: b, offset: i as u64 * len, len: len as u32, fua: false };
                    self.queue(b'W', at, seed.wrapping_add(i as u8), Some(id));
                }
            }
            _ => self.pending.extend_from_slice(b"?\n"),
        }
    }
}

// SAFETY: `rbuf` is only read in `recv_done`; `inflight` is not touched
// between `poll_transmit` and `transmit_done` (new output goes to
// `pending`); task buffers are boxed and kept until `handle_backend`.
unsafe impl ConnCore for Script {
    fn recv_buf(&mut self) -> &mut [u8] {
        &mut self.rbuf
    }
    fn recv_done(&mut self, n: usize, _now: u64) {
        for i in 0..n {
            let b = self.rbuf[i];
            if b == b'\n' {
                let line = String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
                self.command(&line);
            } else {
                self.line.push(b);
            }
        }
    }
    fn peer_closed(&mut self) {
        self.state = ConnState::Closed;
    }
    fn poll_transmit(&mut self) -> Option<&[u8]> {
        if self.inflight.is_empty() {
            std::mem::swap(&mut self.inflight, &mut self.pending);
            self.sent = 0;
        }
        (!self.inflight.is_empty()).then(|| &self.inflight[self.sent..])
    }
    fn transmit_done(&mut self, n: usize, _now: u64) {
        self.sent += n;
        if self.sent >= self.inflight.len() {
            self.inflight.clear();
            self.sent = 0;
        }
    }
    fn poll_backend(&mut self) -> Option<BackendRequest> {
        let r = self.backend_q.pop_front()?;
        self.in_flight += 1;
        Some(r)
    }
    fn backend_buffer(&mut self, tag: u32) -> &mut [u8] {
        &mut self.tasks.get_mut(&tag).expect("known tag").buf
    }
    fn handle_backend(&mut self, tag: u32, status: BackendStatus, _now: u64) {
        assert!(self.in_flight > 0);
        self.in_flight -= 1;
        self.completed.fetch_add(1, Ordering::SeqCst);
        let t = self.tasks.remove(&tag).expect("known tag, completed once");
        if let Some(id) = t.batch {
            let e = self.batches.get_mut(&id).expect("batch");
            e.0 -= 1;
            if status != BackendStatus::Ok {
                e.1 += 1;
            }
            if e.0 == 0 {
                let (_, failed, n) = self.batches.remove(&id).expect("batch");
                let msg = if failed == 0 { format!("B ok {n}\n") } else { format!("B err {failed}\n") };
                self.pending.extend_from_slice(msg.as_bytes());
            }
            return;
        }
        let k = t.kind as char;
        let msg = match status {
            BackendStatus::Ok if t.kind == b'R' => {
                if *t.buf == pattern(t.seed, t.buf.len())[..] {
                    "R ok\n".to_string()
                } else {
                    "R bad\n".to_string()
                }
            }
            BackendStatus::Ok => format!("{k} ok\n"),
            s => format!("{k} err {s:?}\n"),
        };
        self.pending.extend_from_slice(msg.as_bytes());
    }
    fn next_deadline(&self) -> Option<u64> {
        None
    }
    fn handle_timeout(&mut self, _now: u64) {}
    fn shutdown(&mut self, _now: u64) {
        self.state = ConnState::CloseAfterFlush;
    }
    fn state(&self) -> ConnState {
        self.state
    }
    fn backend_in_flight(&self) -> usize {
        self.in_flight
    }
    fn set_targets(&mut self, _t: Arc<TargetSet>) {}
}

#[derive(Clone)]
struct Scripts {
    completed: Arc<AtomicUsize>,
}

impl ConnFactory for Scripts {
    type Conn = Script;
    fn open(&mut self, _t: &Arc<TargetSet>, _info: ConnInfo, _now: u64) -> Script {
        Script {
            rbuf: vec![0; 4096].into_boxed_slice(),
            line: Vec::new(),
            pending: Vec::new(),
            inflight: Vec::new(),
            sent: 0,
            state: ConnState::FullFeature,
            backend_q: VecDeque::new(),
            tasks: HashMap::new(),
            in_flight: 0,
            next_tag: 1,
            batches: HashMap::new(),
            completed: self.completed.clone(),
        }
    }
}

struct Client {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: std::net::SocketAddr) -> Client {
        let w = TcpStream::connect(addr).unwrap();
        w.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client { r: BufReader::new(w.try_clone().unwrap()), w }
    }

    fn ask(&mut self, cmd: &str) -> String {
        self.w.write_all(format!("{cmd}\n").as_bytes()).unwrap();
        let mut l = String::new();
        self.r.read_line(&mut l).unwrap();
        l.trim_end().to_string()
    }
}

struct TempFile(PathBuf);

impl TempFile {
    fn new(dir: &str, name: &str) -> TempFile {
        TempFile(Path::new(dir).join(format!("shardtgt-shard-{}-{name}", std::process::id())))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn live(pool: &ShardPool) -> u64 {
    pool.stats().iter().map(|s| s.conns_live).sum()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn start(
    backends: Vec<Arc<dyn Backend>>,
    shards: usize,
    shard: ShardConfig,
) -> (ShardPool, Acceptor, std::net::SocketAddr, Arc<AtomicUsize>) {
    let ctx = ShardContext { targets: Arc::new(TargetSet::default()), backends, clock: Clock::new() };
    let completed = Arc::new(AtomicUsize::new(0));
    let cfg = PoolConfig { shards, pin: false, shard };
    let pool = ShardPool::start(&cfg, &ctx, Scripts { completed: completed.clone() }).unwrap();
    let l = shardtgt_transport_tcp::listen::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = l.local_addr().unwrap();
    let acceptor = Acceptor::start(vec![Listener { listener: l, tpgt: 1 }], pool.dispatcher()).unwrap();
    (pool, acceptor, addr, completed)
}

#[test]
fn file_and_rdwr_luns_through_the_reactor() {
    let f = TempFile::new("/tmp", "file.img");
    let r = TempFile::new("/dev/shm", "rdwr.img");
    let file = shardtgt_backends::create(&BackendSpec {
        direct: true,
        ..BackendSpec::at_path(BackendKind::File, &f.0, Some(16 << 20), 512)
    })
    .unwrap();
    let rdwr = shardtgt_backends::create(&BackendSpec {
        workers: 2,
        ..BackendSpec::at_path(BackendKind::Rdwr, &r.0, Some(16 << 20), 512)
    })
    .unwrap();
    let (pool, acceptor, addr, _) = start(vec![file.clone(), rdwr.clone()], 2, ShardConfig::default());
    let mut c: Vec<Client> = (0..2).map(|_| Client::connect(addr)).collect();
    wait_for("2 connections", || live(&pool) == 2);
    assert_eq!(pool.stats().iter().map(|s| s.load).collect::<Vec<_>>(), vec![1, 1], "one per shard");

    for b in 0..2 {
        // Write on shard A, read back on shard B (each shard its own fd / queues).
        assert_eq!(c[0].ask(&format!("W {b} 4096 65536 7")), "W ok");
        assert_eq!(c[1].ask(&format!("R {b} 4096 65536 7")), "R ok");
        assert_eq!(c[1].ask(&format!("W {b} 4194304 1048576 9 f")), "W ok", "FUA, 1 MiB");
        assert_eq!(c[0].ask(&format!("R {b} 4194304 1048576 9")), "R ok");
        assert_eq!(c[0].ask(&format!("F {b}")), "F ok");
        // Many at once from both connections.
        assert_eq!(c[0].ask(&format!("B {b} 200 8192 1")), "B ok 200");
        // Out of range: an error status, the connection and shard live on.
        assert_eq!(c[1].ask(&format!("R {b} 16777216 512 0")), "R err Other(22)");
    }
    // The data is in the files.
    let on_disk = std::fs::read(&f.0).unwrap();
    assert!(on_disk[4 << 20..5 << 20] == pattern(9, 1 << 20)[..], "1 MiB FUA write on disk");
    let on_shm = std::fs::read(&r.0).unwrap();
    for i in [0usize, 57, 199] {
        assert!(on_shm[i * 8192..(i + 1) * 8192] == pattern(1u8.wrapping_add(i as u8), 8192)[..], "batch write {i}");
    }
    acceptor.stop();
    pool.shutdown();
    pool.join(Duration::from_secs(10)).unwrap();
}

#[test]
fn inflight_budget_is_backpressure_not_errors() {
    let f = TempFile::new("/dev/shm", "budget.img");
    let file = shardtgt_backends::create(&BackendSpec::at_path(BackendKind::File, &f.0, Some(16 << 20), 512)).unwrap();
    let rdwr = shardtgt_backends::create(&BackendSpec {
        workers: 1,
        ..BackendSpec::at_path(BackendKind::Rdwr, &f.0, None, 512)
    })
    .unwrap();
    let shard = ShardConfig { max_pending_io: 4, ..ShardConfig::default() };
    let (pool, acceptor, addr, completed) = start(vec![file, rdwr], 1, shard);
    let mut a = Client::connect(addr);
    let mut b = Client::connect(addr);
    // 2 x 300 requests (a file and an rdwr LU on one file) against a budget
    // of 4: the connections wait, nothing fails.
    a.w.write_all(b"B 0 300 4096 3\n").unwrap();
    b.w.write_all(b"B 1 300 4096 3\n").unwrap();
    for cl in [&mut a, &mut b] {
        let mut l = String::new();
        cl.r.read_line(&mut l).unwrap();
        assert_eq!(l.trim_end(), "B ok 300");
    }
    assert_eq!(completed.load(Ordering::SeqCst), 600);
    let st = pool.stats();
    assert!(st[0].backend_waits > 0, "{st:?}");
    assert_eq!(st[0].backend_ops, 600);
    assert_eq!(a.ask("R 1 8192 4096 5"), "R ok", "batch seed 3 + index 2");
    acceptor.stop();
    pool.shutdown();
    pool.join(Duration::from_secs(10)).unwrap();
}

/// A backend whose every request takes `delay_ms` (an io_uring timeout),
/// to hold requests in flight while the connection goes away.
#[derive(Debug)]
struct Slow {
    delay_ms: u64,
}

#[derive(Debug)]
struct SlowShard {
    delay: Box<types::Timespec>,
    ids: HashMap<u64, IoId>,
    next: u64,
}

impl Backend for Slow {
    fn kind(&self) -> &'static str {
        "slow"
    }
    fn size_bytes(&self) -> u64 {
        1 << 20
    }
    fn block_size(&self) -> u32 {
        512
    }
    fn read(&self, _: u64, _: &mut [u8]) -> Result<(), BackendStatus> {
        Ok(())
    }
    fn write(&self, _: u64, _: &[u8], _: bool) -> Result<(), BackendStatus> {
        Ok(())
    }
    fn flush(&self) -> Result<(), BackendStatus> {
        Ok(())
    }
    fn open_shard(&self) -> Result<Box<dyn ShardBackend>, BackendError> {
        let ts = types::Timespec::new().nsec((self.delay_ms * 1_000_000) as u32);
        Ok(Box::new(SlowShard { delay: Box::new(ts), ids: HashMap::new(), next: 1 }))
    }
}

impl ShardBackend for SlowShard {
    fn submit(&mut self, id: IoId, _req: &IoRequest, _buf: IoBuf, q: &mut dyn SubmitQueue) -> Submit {
        let ck = self.next;
        self.next += 1;
        let e = opcode::Timeout::new(&*self.delay).build();
        // SAFETY: the timespec is boxed in this handle, which lives as long
        // as the shard (and is leaked if dropped with requests in flight).
        match unsafe { q.push(e, ck) } {
            Ok(()) => {
                self.ids.insert(ck, id);
                Submit::Pending
            }
            Err(_) => Submit::Busy,
        }
    }
    fn complete(&mut self, c: Completion, _q: &mut dyn SubmitQueue, done: &mut dyn FnMut(IoId, BackendStatus)) {
        // -ETIME is a timeout's normal completion.
        if let Some(id) = self.ids.remove(&c.cookie) {
            done(id, BackendStatus::Ok);
        }
    }
}

#[test]
fn connection_closed_with_requests_in_flight_waits_for_them() {
    let slow: Arc<dyn Backend> = Arc::new(Slow { delay_ms: 400 });
    let (pool, acceptor, addr, completed) = start(vec![slow], 1, ShardConfig::default());
    let mut c = Client::connect(addr);
    wait_for("connection", || live(&pool) == 1);
    c.w.write_all(b"B 0 5 512 0\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // The peer vanishes while five requests are in flight.
    drop(c);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(live(&pool), 1, "kept while backend requests are in flight");
    assert_eq!(completed.load(Ordering::SeqCst), 0);
    // Completions reach the (closed) connection, then it is dropped.
    wait_for("connection dropped", || live(&pool) == 0);
    assert_eq!(completed.load(Ordering::SeqCst), 5, "every completion delivered to its tag");
    assert_eq!(pool.stats()[0].backend_ops, 5);
    acceptor.stop();
    pool.shutdown();
    pool.join(Duration::from_secs(10)).unwrap();
}

#[test]
fn tiny_ring_with_many_requests_in_flight() {
    // 4 submission entries, 16 completion entries, 256 backend requests in
    // flight: the submission queue is flushed when full and completions
    // beyond the CQ wait in the kernel's overflow list; nothing is lost.
    let f = TempFile::new("/dev/shm", "tiny-ring.img");
    let file = shardtgt_backends::create(&BackendSpec::at_path(BackendKind::File, &f.0, Some(16 << 20), 512)).unwrap();
    let shard = ShardConfig { ring_entries: 4, max_pending_io: 256, cqe_batch: 8, ..ShardConfig::default() };
    let (pool, acceptor, addr, completed) = start(vec![file], 1, shard);
    let mut cl: Vec<Client> = (0..3).map(|_| Client::connect(addr)).collect();
    for (i, c) in cl.iter_mut().enumerate() {
        c.w.write_all(format!("B 0 500 4096 {}\n", i * 50).as_bytes()).unwrap();
    }
    for c in &mut cl {
        let mut l = String::new();
        c.r.read_line(&mut l).unwrap();
        assert_eq!(l.trim_end(), "B ok 500");
    }
    assert_eq!(completed.load(Ordering::SeqCst), 1500);
    acceptor.stop();
    pool.shutdown();
    pool.join(Duration::from_secs(10)).unwrap();
}
