//! The reactor end to end over real loopback sockets and a real io_uring,
//! with a scripted connection instead of the iSCSI core: echo, backend
//! requests on a shared RAM backend, close after flush, close now, peer
//! disconnect, timer ticks, load balancing and graceful shutdown.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardtgt_backends::{Backend, RamBackend};
use shardtgt_core::conn::{BackendRequest, ConnInfo, ConnState};
use shardtgt_core::scsi::{BackendOp, BackendStatus};
use shardtgt_core::target::TargetSet;
use shardtgt_shard::{
    Acceptor, Clock, ConnCore, ConnFactory, Listener, PoolConfig, ShardConfig, ShardContext, ShardPool,
};

/// Byte commands: `w` write 512 x 0x5A at 0 (answers `W0`), `r` read it back
/// (answers `R1` when it matches), `q` say `bye\n` and close after flush,
/// `x` close now, `t` answer `T1` when timers ran; anything else echoes.
struct Script {
    rbuf: Box<[u8]>,
    pending: Vec<u8>,
    inflight: Vec<u8>,
    sent: usize,
    state: ConnState,
    backend_q: VecDeque<BackendRequest>,
    bufs: HashMap<u32, (BackendOp, Box<[u8]>)>,
    in_flight: usize,
    next_tag: u32,
    ticks: u64,
}

impl Script {
    fn new() -> Self {
        Script {
            rbuf: vec![0; 4096].into_boxed_slice(),
            pending: Vec::new(),
            inflight: Vec::new(),
            sent: 0,
            state: ConnState::Login,
            backend_q: VecDeque::new(),
            bufs: HashMap::new(),
            in_flight: 0,
            next_tag: 1,
            ticks: 0,
        }
    }

    fn backend(&mut self, op: BackendOp) {
        let tag = self.next_tag;
        self.next_tag += 1;
        let fill = if op == BackendOp::Write { 0x5A } else { 0 };
        self.bufs.insert(tag, (op, vec![fill; 512].into_boxed_slice()));
        self.backend_q.push_back(BackendRequest { tag, backend: 0, op, offset: 4096, len: 512, fua: false });
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
            match self.rbuf[i] {
                b'w' => self.backend(BackendOp::Write),
                b'r' => self.backend(BackendOp::Read),
                b'q' => {
                    self.pending.extend_from_slice(b"bye\n");
                    self.state = ConnState::CloseAfterFlush;
                }
                b'x' => self.state = ConnState::Closed,
                b't' => self.pending.extend_from_slice(if self.ticks >= 2 { b"T1" } else { b"T0" }),
                b => self.pending.push(b),
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
        if self.inflight.is_empty() {
            None
        } else {
            Some(&self.inflight[self.sent..])
        }
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
        &mut self.bufs.get_mut(&tag).expect("known tag").1
    }
    fn handle_backend(&mut self, tag: u32, status: BackendStatus, _now: u64) {
        self.in_flight -= 1;
        let (op, buf) = self.bufs.remove(&tag).expect("known tag");
        let ok = status == BackendStatus::Ok;
        if op == BackendOp::Read {
            // The write from another connection (maybe another shard) landed?
            self.pending.extend_from_slice(if ok && buf.iter().all(|&b| b == 0x5A) { b"R1" } else { b"R0" });
        } else {
            self.pending.extend_from_slice(if ok { b"W0" } else { b"W1" });
        }
    }
    fn next_deadline(&self) -> Option<u64> {
        None
    }
    fn handle_timeout(&mut self, _now: u64) {
        self.ticks += 1;
    }
    fn shutdown(&mut self, _now: u64) {
        self.pending.extend_from_slice(b"shutdown\n");
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
struct Scripts;

impl ConnFactory for Scripts {
    type Conn = Script;
    fn open(&mut self, _t: &Arc<TargetSet>, _info: ConnInfo, _now: u64) -> Script {
        Script::new()
    }
}

fn read_exact_timeout(s: &mut TcpStream, n: usize) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut v = vec![0; n];
    s.read_exact(&mut v).unwrap();
    v
}

fn expect_eof(s: &mut TcpStream) {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 16];
    assert_eq!(s.read(&mut b).unwrap(), 0, "expected the server to close");
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn reactor_end_to_end_with_scripted_connections() {
    // One RAM backend shared by both shards.
    let ram: Arc<dyn Backend> = Arc::new(RamBackend::new(1 << 20, 512).unwrap());
    let ctx =
        ShardContext { targets: Arc::new(TargetSet::default()), backends: vec![ram.clone()], clock: Clock::new() };
    let cfg = PoolConfig { shards: 2, pin: false, shard: ShardConfig::default() };
    let pool = ShardPool::start(&cfg, &ctx, Scripts).unwrap();
    let l = shardtgt_transport_tcp::listen::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = l.local_addr().unwrap();
    let acceptor = Acceptor::start(vec![Listener { listener: l, tpgt: 1 }], pool.dispatcher()).unwrap();

    // Four connections split 2/2.
    let mut c: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
    wait_for("4 live connections", || pool.stats().iter().map(|s| s.conns_live).sum::<u64>() == 4);
    let loads: Vec<usize> = pool.stats().iter().map(|s| s.load).collect();
    assert_eq!(loads, vec![2, 2]);

    // Echo.
    c[0].write_all(b"hello").unwrap();
    assert_eq!(read_exact_timeout(&mut c[0], 5), b"hello");

    // Backend: write on one connection, read back on the others (at least
    // one of them is on the other shard).
    c[0].write_all(b"w").unwrap();
    assert_eq!(read_exact_timeout(&mut c[0], 2), b"W0");
    c[1].write_all(b"r").unwrap();
    assert_eq!(read_exact_timeout(&mut c[1], 2), b"R1");
    c[2].write_all(b"r").unwrap();
    assert_eq!(read_exact_timeout(&mut c[2], 2), b"R1");
    let mut check = [0u8; 512];
    ram.read(4096, &mut check).unwrap();
    assert!(check.iter().all(|&b| b == 0x5A));

    // A large echo: partial sends and receives into a 4 KiB receive buffer.
    let big: Vec<u8> = (0..(1usize << 20)).map(|i| b"abcdefghijklmnop"[i % 16]).collect();
    let mut writer = c[3].try_clone().unwrap();
    let to_send = big.clone();
    let t = std::thread::spawn(move || writer.write_all(&to_send).unwrap());
    assert_eq!(read_exact_timeout(&mut c[3], big.len()), big);
    t.join().unwrap();

    // Timer ticks reach every connection (at least every 100 ms).
    std::thread::sleep(Duration::from_millis(350));
    c[1].write_all(b"t").unwrap();
    assert_eq!(read_exact_timeout(&mut c[1], 2), b"T1");

    // Close after flush: the goodbye arrives, then end of stream.
    c[2].write_all(b"q").unwrap();
    assert_eq!(read_exact_timeout(&mut c[2], 4), b"bye\n");
    expect_eof(&mut c[2]);
    // Close now.
    c[3].write_all(b"x").unwrap();
    expect_eof(&mut c[3]);
    wait_for("2 live connections", || pool.stats().iter().map(|s| s.conns_live).sum::<u64>() == 2);

    // The peer going away closes its connection too.
    let extra = TcpStream::connect(addr).unwrap();
    wait_for("3 live connections", || pool.stats().iter().map(|s| s.conns_live).sum::<u64>() == 3);
    drop(extra);
    wait_for("2 live connections again", || pool.stats().iter().map(|s| s.conns_live).sum::<u64>() == 2);
    assert_eq!(pool.stats().iter().map(|s| s.load).sum::<usize>(), 2);

    // Graceful shutdown: every open connection gets its goodbye, then EOF.
    acceptor.stop();
    pool.shutdown();
    for s in &mut c[..2] {
        assert_eq!(read_exact_timeout(s, 9), b"shutdown\n");
        expect_eof(s);
    }
    let stats = pool.stats();
    pool.join(Duration::from_secs(5)).unwrap();
    let total_in: u64 = stats.iter().map(|s| s.bytes_in).sum();
    let total_out: u64 = stats.iter().map(|s| s.bytes_out).sum();
    let ops: u64 = stats.iter().map(|s| s.backend_ops).sum();
    assert!(total_in >= (1 << 20) + 5, "{stats:?}");
    assert!(total_out >= (1 << 20) + 5, "{stats:?}");
    assert_eq!(ops, 3);
    assert_eq!(stats.iter().map(|s| s.conns_total).sum::<u64>(), 5);
}

#[test]
fn shutdown_with_stubborn_peer_is_bounded() {
    // A connection whose client never reads still lets the shard exit: the
    // shutdown deadline (logout timeout + 1 s) forces it closed.
    let mut targets = TargetSet::default();
    targets.limits.logout_timeout_ms = 200;
    let ctx = ShardContext { targets: Arc::new(targets), backends: vec![], clock: Clock::new() };
    let cfg = PoolConfig { shards: 1, pin: false, shard: ShardConfig::default() };
    let pool = ShardPool::start(&cfg, &ctx, Scripts).unwrap();
    let l = shardtgt_transport_tcp::listen::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = l.local_addr().unwrap();
    let acceptor = Acceptor::start(vec![Listener { listener: l, tpgt: 1 }], pool.dispatcher()).unwrap();
    let mut c = TcpStream::connect(addr).unwrap();
    // Make the server's send side back up: echo a lot and never read.
    c.set_write_timeout(Some(Duration::from_millis(500))).unwrap();
    let chunk = vec![b'z'; 1 << 16];
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(1) {
        if c.write_all(&chunk).is_err() {
            break;
        }
    }
    acceptor.stop();
    let t = Instant::now();
    pool.shutdown();
    pool.join(Duration::from_secs(10)).unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
}

#[test]
fn pool_starts_and_stops_without_connections() {
    let ctx = ShardContext { targets: Arc::new(TargetSet::default()), backends: vec![], clock: Clock::new() };
    let cfg = PoolConfig { shards: 2, pin: true, shard: ShardConfig::default() };
    let pool = ShardPool::start(&cfg, &ctx, Scripts).unwrap();
    assert_eq!(pool.len(), 2);
    wait_for("loops", || pool.stats().iter().all(|s| s.loops > 0));
    assert_eq!(pool.dead_shard(), None);
    assert_eq!(pool.set_targets(Arc::new(TargetSet::default()), Duration::from_secs(1)), 2);
    let t = Instant::now();
    pool.shutdown();
    pool.join(Duration::from_secs(5)).unwrap();
    assert!(t.elapsed() < Duration::from_secs(1));
}
