//! Counts heap allocations on the target's per-I/O path (DESIGN.md: "the
//! hot path takes no lock and allocates nothing per I/O").
//!
//! A counting global allocator counts only while a thread-local switch is
//! on, and the switch is on only around calls into the target's sans-IO
//! [`Connection`] (`recv_buf`/`recv_done`, `poll_transmit`/`transmit_done`,
//! `poll_backend`/`backend_buffer`/`handle_backend`); the scripted
//! initiator's own allocations are not counted. After login and a warm-up,
//! N steady-state 4K READ(10) and WRITE(10) commands at queue depth 8 must
//! allocate nothing. The first allocations are recorded with a backtrace so
//! a failure says where.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use shardtgt_core::conn::{ConnInfo, ConnState, Connection};
use shardtgt_core::ids::{Cid, Isid, Itt, Lun, Tsih, Ttt};
use shardtgt_core::login::initiator::{InitiatorConfig, InitiatorNegotiator};
use shardtgt_core::pdu::frame::{decode_pdu, encode_pdu, DigestMode};
use shardtgt_core::pdu::{DataOut, LoginRequest, Pdu, ScsiCommand, Stage, TaskAttr};
use shardtgt_core::scsi::{BackendOp, BackendStatus, LuInfo};
use shardtgt_core::serial::{CmdSn, StatSn};
use shardtgt_core::session::Registry;
use shardtgt_core::target::{Limits, TargetSet};

// ---- the counting allocator -------------------------------------------------

thread_local! {
    /// Count allocations made by this thread (on only around target calls).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// Inside the recording hook (its own allocations are not counted).
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static TRACES: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Backtraces kept per run.
const TRACES_MAX: usize = 4;

struct Counting;

impl Counting {
    fn hit(size: usize) {
        let counting = COUNTING.try_with(Cell::get).unwrap_or(false);
        if !counting || IN_HOOK.try_with(Cell::get).unwrap_or(true) {
            return;
        }
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        IN_HOOK.with(|h| h.set(true));
        if let Ok(mut t) = TRACES.lock() {
            if t.len() < TRACES_MAX {
                let bt = std::backtrace::Backtrace::force_capture();
                t.push(format!("allocation of {size} bytes at:\n{bt}"));
            }
        }
        IN_HOOK.with(|h| h.set(false));
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees carry over; the bookkeeping in `hit`
// touches only atomics, const-initialized thread-locals without destructors
// and (guarded against re-entry) a mutex, and never frees or reuses the
// memory being handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Counting::hit(layout.size());
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Counting::hit(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Counting::hit(new_size);
        // SAFETY: `ptr` was allocated by `System` (every allocation goes
        // through this type) with `layout`; forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with `layout`; forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Run `f` (a call into the target) with counting on.
fn target<R>(f: impl FnOnce() -> R) -> R {
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    r
}

// ---- a scripted initiator -----------------------------------------------------

const TARGET: &str = "iqn.2026-11.io.shardtgt:alloc";
const BLOCK: u32 = 512;
const BLOCKS: u64 = 8192;
const IO: u32 = 4096;

fn target_set(limits: Limits) -> Arc<TargetSet> {
    let info = LuInfo {
        block_size: BLOCK,
        num_blocks: BLOCKS,
        vendor: "SHARDTGT".into(),
        product: "alloc".into(),
        revision: "0001".into(),
        serial: "alloc0".into(),
        naa_id: 0x1234_5678_9abc_def1,
        read_only: false,
        write_cache: true,
        target_name: TARGET.into(),
        rel_port_id: 1,
        port_group: 1,
        port_groups: Vec::new(),
        thin: false,
        deallocate: false,
    };
    Arc::new(TargetSet::single_lu(TARGET, info, limits))
}

struct Rig {
    conn: Connection,
    disk: Vec<u8>,
    inbox: Vec<u8>,
    scratch: Vec<u8>,
    now: u64,
    cmdsn: CmdSn,
    expstatsn: StatSn,
    next_itt: u32,
    immediate_data: bool,
    first_burst: u32,
    initial_r2t: bool,
    send_dsl: u32,
    /// Outstanding commands: ITT → (is write, lba).
    pending: Vec<(Itt, bool, u32)>,
    completed: u64,
    failed: u64,
}

impl Rig {
    fn new(limits: Limits) -> Rig {
        let conn = Connection::new(
            target_set(limits),
            Arc::new(Registry::new(0)),
            ConnInfo { peer: "alloc-test".into(), tpgt: 1 },
            0,
        );
        Rig {
            conn,
            disk: vec![0; (u64::from(BLOCK) * BLOCKS) as usize],
            inbox: Vec::with_capacity(1 << 20),
            scratch: Vec::with_capacity(1 << 20),
            now: 0,
            cmdsn: CmdSn(1),
            expstatsn: StatSn(0),
            next_itt: 1,
            immediate_data: true,
            first_burst: 0,
            initial_r2t: true,
            send_dsl: 8192,
            pending: Vec::with_capacity(64),
            completed: 0,
            failed: 0,
        }
    }

    /// Hand `self.scratch` to the target, as a transport would.
    fn deliver(&mut self) {
        let bytes = std::mem::take(&mut self.scratch);
        let mut off = 0;
        while off < bytes.len() {
            assert_ne!(self.conn.state(), ConnState::Closed, "target closed the connection");
            let now = self.now;
            let n = target(|| {
                let buf = self.conn.recv_buf();
                let n = buf.len().min(bytes.len() - off);
                buf[..n].copy_from_slice(&bytes[off..off + n]);
                n
            });
            target(|| self.conn.recv_done(n, now));
            off += n;
            self.serve_backend();
        }
        self.scratch = bytes;
        self.scratch.clear();
    }

    fn serve_backend(&mut self) {
        let now = self.now;
        while let Some(req) = target(|| self.conn.poll_backend()) {
            let (off, len) = (req.offset as usize, req.len as usize);
            let buf = target(|| self.conn.backend_buffer(req.tag));
            match req.op {
                BackendOp::Read => buf.copy_from_slice(&self.disk[off..off + len]),
                BackendOp::Write => self.disk[off..off + len].copy_from_slice(buf),
                BackendOp::Flush => {}
                BackendOp::Deallocate | BackendOp::MapStatus => unreachable!("no thin LU here"),
            }
            target(|| self.conn.handle_backend(req.tag, BackendStatus::Ok, now));
        }
    }

    /// Take everything the target wants to send and decode it.
    fn pump(&mut self) -> Vec<(Pdu, Vec<u8>)> {
        self.serve_backend();
        let now = self.now;
        while let Some(b) = target(|| self.conn.poll_transmit()) {
            let n = b.len();
            self.inbox.extend_from_slice(b);
            target(|| self.conn.transmit_done(n, now));
        }
        let mut out = Vec::new();
        let mut used = 0;
        while let Some(f) = decode_pdu(&self.inbox[used..], DigestMode::NONE, 1 << 24).expect("target sent a bad PDU") {
            out.push((f.pdu, self.inbox[used + f.data.start..used + f.data.end].to_vec()));
            used += f.len;
        }
        self.inbox.drain(..used);
        out
    }

    fn login(&mut self, immediate_data: bool, initial_r2t: bool) {
        let mut cfg = InitiatorConfig::new("iqn.2026-11.io.shardtgt:alloc-initiator", Some(TARGET));
        cfg.immediate_data = immediate_data;
        cfg.initial_r2t = initial_r2t;
        let mut neg = InitiatorNegotiator::new(cfg);
        let mut text = Vec::new();
        neg.security_request(&mut text);
        let mut csg = Stage::SECURITY;
        for _ in 0..8 {
            let nsg = if csg == Stage::SECURITY { Stage::OPERATIONAL } else { Stage::FULL_FEATURE };
            if csg == Stage::OPERATIONAL {
                neg.operational_request(&mut text);
            }
            let req = LoginRequest {
                transit: true,
                continue_: false,
                csg,
                nsg,
                version_max: 0,
                version_min: 0,
                isid: Isid(0x8000_0000_0042),
                tsih: Tsih(0),
                itt: Itt(0),
                cid: Cid(0),
                cmdsn: self.cmdsn,
                expstatsn: self.expstatsn,
            };
            encode_pdu(&Pdu::LoginRequest(req), &std::mem::take(&mut text), DigestMode::NONE, &mut self.scratch);
            self.deliver();
            let mut got = self.pump();
            assert_eq!(got.len(), 1, "one login response expected: {got:?}");
            let (pdu, data) = got.remove(0);
            let Pdu::LoginResponse(r) = pdu else { panic!("expected a login response, got {pdu:?}") };
            assert_eq!(r.status.0, 0, "login failed");
            self.expstatsn = r.statsn.next();
            self.cmdsn = r.expcmdsn;
            neg.handle_response_bytes(&data, &mut text).expect("negotiation");
            if r.transit {
                if r.nsg == Stage::FULL_FEATURE {
                    let p = neg.finish().expect("negotiation").clone();
                    self.immediate_data = p.immediate_data;
                    self.initial_r2t = p.initial_r2t;
                    self.first_burst = p.first_burst_len;
                    self.send_dsl = p.max_recv_data_segment_len_target;
                    assert_eq!(self.conn.state(), ConnState::FullFeature);
                    return;
                }
                csg = r.nsg;
            }
        }
        panic!("login did not finish");
    }

    fn submit(&mut self, write: bool, lba: u32) {
        let itt = Itt(self.next_itt);
        self.next_itt += 1;
        let mut cdb = [0u8; 16];
        cdb[0] = if write { 0x2a } else { 0x28 };
        cdb[2..6].copy_from_slice(&lba.to_be_bytes());
        cdb[7..9].copy_from_slice(&((IO / BLOCK) as u16).to_be_bytes());
        let data = [0xa5u8; IO as usize];
        let imm = if write && self.immediate_data { IO.min(self.first_burst).min(self.send_dsl) } else { 0 };
        let unsol = if write && !self.initial_r2t { IO.min(self.first_burst).max(imm) } else { imm };
        let cmd = ScsiCommand {
            immediate: false,
            final_: unsol == imm,
            read: !write,
            write,
            attr: TaskAttr::SIMPLE,
            lun: Lun::from_index(0),
            itt,
            edtl: IO,
            cmdsn: self.cmdsn,
            expstatsn: self.expstatsn,
            cdb,
            ext_cdb: None,
            bidi_read_len: None,
        };
        self.cmdsn = self.cmdsn.next();
        encode_pdu(&Pdu::ScsiCommand(cmd), &data[..imm as usize], DigestMode::NONE, &mut self.scratch);
        if unsol > imm {
            self.data_out(itt, Ttt::RESERVED, imm, unsol - imm);
        }
        self.pending.push((itt, write, lba));
        self.deliver();
    }

    fn data_out(&mut self, itt: Itt, ttt: Ttt, off: u32, len: u32) {
        let data = [0x5au8; IO as usize];
        let mut o = off;
        let mut sn = 0;
        while o < off + len {
            let n = (off + len - o).min(self.send_dsl);
            let d = DataOut {
                final_: o + n == off + len,
                lun: Lun::from_index(0),
                itt,
                ttt,
                expstatsn: self.expstatsn,
                datasn: sn,
                buffer_offset: o,
            };
            encode_pdu(&Pdu::DataOut(d), &data[o as usize..(o + n) as usize], DigestMode::NONE, &mut self.scratch);
            o += n;
            sn += 1;
        }
    }

    /// Handle everything the target sent; returns how many commands completed.
    fn reap(&mut self) -> usize {
        let mut done = 0;
        for (pdu, _data) in self.pump() {
            let (itt, status) = match pdu {
                Pdu::DataIn(d) if d.has_status => {
                    self.expstatsn = d.statsn.next();
                    (d.itt, d.status)
                }
                Pdu::ScsiResponse(r) => {
                    self.expstatsn = r.statsn.next();
                    (r.itt, r.status | r.response)
                }
                Pdu::R2t(r) => {
                    self.data_out(r.itt, r.ttt, r.buffer_offset, r.desired_len);
                    self.deliver();
                    continue;
                }
                Pdu::DataIn(_) | Pdu::NopIn(_) => continue,
                other => panic!("unexpected PDU {other:?}"),
            };
            let pos = self.pending.iter().position(|p| p.0 == itt).expect("status for a command we sent");
            self.pending.swap_remove(pos);
            if status != 0 {
                self.failed += 1;
            }
            self.completed += 1;
            done += 1;
        }
        done
    }

    /// Keep `qd` commands in flight until `n` more have completed.
    fn run(&mut self, n: u64, qd: usize) {
        let goal = self.completed + n;
        let mut i: u32 = 0;
        while self.completed < goal {
            while self.pending.len() < qd {
                i = i.wrapping_add(1);
                let lba = (i.wrapping_mul(2_654_435_761) % (BLOCKS as u32 / 8)) * 8;
                self.submit(i % 2 == 0, lba);
            }
            assert!(self.reap() > 0 || self.pending.len() < qd, "no progress with {} pending", self.pending.len());
        }
    }
}

/// The counters are global: tests take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn steady_state(immediate_data: bool, initial_r2t: bool) {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let limits = Limits { nop_interval_ms: 0, initial_r2t, immediate_data, ..Limits::default() };
    let mut rig = Rig::new(limits);
    ALLOCS.store(0, Ordering::Relaxed);
    rig.login(immediate_data, initial_r2t);
    // The counter is live: login (keys, session state) allocates in the target.
    assert!(ALLOCS.load(Ordering::Relaxed) > 0, "the counting allocator saw nothing during login");
    rig.run(500, 8); // warm-up: pools, queues and tables reach their working size
    assert_eq!(rig.failed, 0, "warm-up commands failed");

    ALLOCS.store(0, Ordering::Relaxed);
    TRACES.lock().map(|mut t| t.clear()).unwrap_or_default();
    rig.run(4000, 8);
    let allocs = ALLOCS.load(Ordering::Relaxed);
    assert_eq!(rig.failed, 0, "steady-state commands failed");
    if allocs > 0 {
        let traces = TRACES.lock().map(|t| t.join("\n----\n")).unwrap_or_default();
        panic!(
            "the target allocated {allocs} times during 4000 steady-state 4K READ(10)/WRITE(10) \
             (immediate_data={immediate_data}, initial_r2t={initial_r2t}); first ones:\n{traces}"
        );
    }
}

#[test]
fn steady_state_4k_read_write_with_immediate_data_allocates_nothing() {
    steady_state(true, false);
}

#[test]
fn steady_state_4k_read_write_through_r2t_allocates_nothing() {
    steady_state(false, true);
}
