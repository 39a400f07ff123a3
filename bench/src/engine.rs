//! The load loop: a few sessions per thread on one `mio` poll (edge
//! triggered), each keeping `qd` commands in flight.
//!
//! Per session it handles what RFC 7143 asks of an initiator on the I/O
//! path: the CmdSN window (§4.2.2.1), immediate and unsolicited data within
//! FirstBurstLength (§13.10, §13.11, §13.14), R2T with Data-Out sequences of
//! at most the target's MaxRecvDataSegmentLength (§11.7, §11.8), Data-In
//! segmentation and status in the last Data-In (§11.7.4), NOP-In pings
//! (answered, §11.19), Reject and Asynchronous Message (logout requests),
//! CHECK CONDITION (counted as errors, never fatal), and a logout at the end.
//!
//! The hot path allocates nothing: command, Data-Out and NOP-Out headers are
//! encoded into a reused transmit buffer; received Data-In payloads are
//! skipped in place unless verification needs them; latencies go into
//! pre-sized histograms.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use shardtgt_core::digest::crc32c;
use shardtgt_core::ids::{Cid, Itt, Lun, Ttt};
use shardtgt_core::pdu::bhs::{pad_len, Bhs, BHS_LEN};
use shardtgt_core::pdu::frame::{decode_pdu, encode_pdu, DigestMode};
use shardtgt_core::pdu::{DataOut, LogoutReason, LogoutRequest, Opcode, Pdu, ScsiCommand, TaskAttr};
use shardtgt_core::serial::{CmdSn, StatSn};

use crate::session::{nop_reply, sense_text, Conn};
use crate::verify;
use crate::workload::{Rng, Workload};

/// Highest latency the histograms hold (longer values are clamped).
pub const LATENCY_MAX_NS: u64 = 60_000_000_000;
/// ITT of our Logout Request (slot index 0xffff is never a task slot).
const LOGOUT_ITT: Itt = Itt(0x0000_ffff);
/// Most task slots per session (the slot index lives in the ITT's low 16 bits).
pub const QD_MAX: u32 = 4096;
/// How long to wait for a Logout Response.
const LOGOUT_WAIT: Duration = Duration::from_secs(2);
/// How long draining sessions wait for outstanding commands at the end.
const DRAIN_WAIT: Duration = Duration::from_secs(10);
/// Most error messages kept per thread.
const MESSAGES_MAX: usize = 8;
/// A model generation meaning "state unknown" (a write failed).
const GEN_UNKNOWN: u64 = u64::MAX;

/// Counters the progress line reads (all threads add to them).
#[derive(Debug, Default)]
pub struct Shared {
    /// Set to stop issuing commands (then drain and log out).
    pub stop: AtomicBool,
    /// Completed I/Os (ramp included).
    pub ios: AtomicU64,
    /// Bytes moved by completed I/Os.
    pub bytes: AtomicU64,
    /// Failed commands.
    pub errors: AtomicU64,
}

/// One session handed to a thread.
#[derive(Debug)]
pub struct SessionSetup {
    /// The logged-in connection (blocking; the engine makes it non-blocking).
    pub conn: Conn,
    /// LUN to address.
    pub lun: Lun,
    /// LUN block size in bytes.
    pub block_size: u32,
    /// First LUN block of this session's region.
    pub first_block: u64,
    /// Length of the region in LUN blocks.
    pub span_blocks: u64,
    /// Where sequential I/O starts within the region (in I/Os).
    pub seq_start: u64,
    /// Stop after issuing this many commands.
    pub quota: Option<u64>,
    /// Seed for offsets and read/write choices.
    pub seed: u64,
    /// Tag for verify stamps.
    pub tag: u64,
}

/// When to record and when to stop.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Completions before this instant are not recorded (ramp-up).
    pub record_from: Instant,
    /// Stop issuing at this instant (`None`: run to the quota).
    pub end: Option<Instant>,
}

/// What one thread measured.
#[derive(Debug)]
pub struct ThreadResult {
    /// Latency of every recorded I/O, ns.
    pub all: Histogram<u64>,
    /// Latency of recorded reads, ns.
    pub read: Histogram<u64>,
    /// Latency of recorded writes, ns.
    pub write: Histogram<u64>,
    /// Recorded I/Os.
    pub ios: u64,
    /// Recorded reads.
    pub reads: u64,
    /// Recorded writes.
    pub writes: u64,
    /// Recorded bytes.
    pub bytes: u64,
    /// Commands that ended with a non-GOOD status, a failed response, a
    /// Reject, or a lost connection.
    pub errors: u64,
    /// Reads whose data did not match the stamps.
    pub verify_errors: u64,
    /// NOP-In pings answered.
    pub nops: u64,
    /// Sessions that ended on an error.
    pub failed_sessions: u32,
    /// Last completion seen (for `--ios` runs).
    pub last_completion: Option<Instant>,
    /// First few error descriptions.
    pub messages: Vec<String>,
}

impl ThreadResult {
    fn new() -> Self {
        let h = || Histogram::new_with_bounds(1, LATENCY_MAX_NS, 3).expect("valid histogram bounds");
        ThreadResult {
            all: h(),
            read: h(),
            write: h(),
            ios: 0,
            reads: 0,
            writes: 0,
            bytes: 0,
            errors: 0,
            verify_errors: 0,
            nops: 0,
            failed_sessions: 0,
            last_completion: None,
            messages: Vec::new(),
        }
    }

    fn note(&mut self, msg: impl FnOnce() -> String) {
        if self.messages.len() < MESSAGES_MAX {
            self.messages.push(msg());
        }
    }

    /// Fold another thread's result into this one.
    pub fn merge(&mut self, o: &ThreadResult) {
        // Same bounds, so adding cannot fail.
        let _ = self.all.add(&o.all);
        let _ = self.read.add(&o.read);
        let _ = self.write.add(&o.write);
        self.ios += o.ios;
        self.reads += o.reads;
        self.writes += o.writes;
        self.bytes += o.bytes;
        self.errors += o.errors;
        self.verify_errors += o.verify_errors;
        self.nops += o.nops;
        self.failed_sessions += o.failed_sessions;
        self.last_completion = self.last_completion.max(o.last_completion);
        for m in &o.messages {
            if self.messages.len() < MESSAGES_MAX {
                self.messages.push(m.clone());
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Running,
    Draining,
    LoggingOut,
    Done,
    Failed,
}

#[derive(Debug)]
struct Slot {
    busy: bool,
    gen: u16,
    write: bool,
    lba: u64,
    len: u32,
    region: u64,
    start: Instant,
    /// Generation stamped into (write) or expected from (read) the region.
    verify_gen: u64,
    /// Verify mode: the stamped write data, or the read data gathered.
    buf: Vec<u8>,
}

/// What the session believes is on its region (verify mode).
#[derive(Debug)]
struct Model {
    gens: Vec<u64>,
    busy: Vec<bool>,
    tag: u64,
}

#[derive(Debug)]
struct Sess {
    stream: TcpStream,
    state: State,
    digests: DigestMode,
    lun: Lun,
    block_size: u32,
    bs: u32,
    qd: usize,
    /// Largest data segment we may send (the target's MaxRecvDataSegmentLength).
    send_dsl: u32,
    /// Largest data segment we accept (ours).
    recv_dsl: u32,
    first_burst: u32,
    immediate_data: bool,
    initial_r2t: bool,
    cmdsn: CmdSn,
    maxcmdsn: CmdSn,
    expstatsn: StatSn,
    slots: Vec<Slot>,
    free: Vec<u16>,
    outstanding: usize,
    tx: Vec<u8>,
    tx_off: usize,
    rx: Vec<u8>,
    rx_start: usize,
    rx_end: usize,
    skip: usize,
    rng: Rng,
    random: bool,
    read_pct: u8,
    first_block: u64,
    regions: u64,
    seq_next: u64,
    quota: Option<u64>,
    issued: u64,
    write_data: Vec<u8>,
    model: Option<Model>,
    deadline: Option<Instant>,
}

fn other<E: std::fmt::Display>(e: E) -> io::Error {
    io::Error::other(e.to_string())
}

impl Sess {
    fn new(s: SessionSetup, wl: &Workload) -> io::Result<Sess> {
        let SessionSetup { mut conn, lun, block_size, first_block, span_blocks, seq_start, quota, seed, tag } = s;
        conn.stream.set_nonblocking(true)?;
        let pending = conn.take_rx();
        let p = conn.params.clone();
        let blocks_per_io = u64::from(wl.bs / block_size.max(1)).max(1);
        let regions = (span_blocks / blocks_per_io).max(1);
        let qd = wl.qd.clamp(1, QD_MAX) as usize;
        let send_dsl = p.max_recv_data_segment_len_target.max(512);
        let recv_dsl = p.max_recv_data_segment_len_initiator.max(512);
        let maxpdu = recv_dsl as usize + BHS_LEN + 1024 + 16;
        let cap = (2 * maxpdu + 128 * 1024).max(1 << 20);
        let mut rx = vec![0u8; cap];
        rx[..pending.len()].copy_from_slice(&pending);
        let mut rng = Rng::new(seed);
        let mut write_data = vec![0u8; wl.bs as usize];
        for w in write_data.chunks_mut(8) {
            let v = rng.next_u64().to_le_bytes();
            w.copy_from_slice(&v[..w.len()]);
        }
        let now = Instant::now();
        let slots = (0..qd)
            .map(|_| Slot {
                busy: false,
                gen: 0,
                write: false,
                lba: 0,
                len: 0,
                region: 0,
                start: now,
                verify_gen: 0,
                buf: if wl.verify { vec![0u8; wl.bs as usize] } else { Vec::new() },
            })
            .collect();
        let model =
            wl.verify.then(|| Model { gens: vec![0; regions as usize], busy: vec![false; regions as usize], tag });
        Ok(Sess {
            stream: TcpStream::from_std(conn.stream),
            state: State::Running,
            digests: conn.digests,
            lun,
            block_size,
            bs: wl.bs,
            qd,
            send_dsl,
            recv_dsl,
            first_burst: if p.initial_r2t && !p.immediate_data { 0 } else { p.first_burst_len },
            immediate_data: p.immediate_data,
            initial_r2t: p.initial_r2t,
            cmdsn: conn.cmdsn,
            maxcmdsn: conn.maxcmdsn,
            expstatsn: conn.expstatsn,
            slots,
            free: (0..qd as u16).rev().collect(),
            outstanding: 0,
            tx: Vec::with_capacity(64 * 1024),
            tx_off: 0,
            rx,
            rx_start: 0,
            rx_end: pending.len(),
            skip: 0,
            rng,
            random: wl.pattern.random(),
            read_pct: wl.pattern.read_pct(wl.mix),
            first_block,
            regions,
            seq_next: seq_start % regions,
            quota,
            issued: 0,
            write_data,
            model,
            deadline: None,
        })
    }

    /// Track MaxCmdSN (RFC 7143 §4.2.2.1: only a serially greater value moves the window).
    fn window(&mut self, maxcmdsn: CmdSn) {
        if maxcmdsn.gt(self.maxcmdsn) {
            self.maxcmdsn = maxcmdsn;
        }
    }

    /// ExpStatSN after a PDU that carried status with `statsn`.
    fn status_seen(&mut self, statsn: StatSn) {
        let next = statsn.next();
        if next.gt(self.expstatsn) {
            self.expstatsn = next;
        }
    }

    /// ExpStatSN after a PDU whose StatSN is "the next StatSN" (R2T, NOP-In).
    fn statsn_hint(&mut self, statsn: StatSn) {
        if statsn.gt(self.expstatsn) {
            self.expstatsn = statsn;
        }
    }

    fn pick_region(&mut self) -> Option<u64> {
        let pick = |s: &mut Sess| {
            if s.random {
                s.rng.below(s.regions)
            } else {
                let r = s.seq_next;
                s.seq_next = (s.seq_next + 1) % s.regions;
                r
            }
        };
        if self.model.is_none() {
            return Some(pick(self));
        }
        // Verify: never two commands on one region at once.
        for _ in 0..16 {
            let r = pick(self);
            if !self.model.as_ref().is_some_and(|m| m.busy[r as usize]) {
                return Some(r);
            }
        }
        None
    }

    /// Issue commands until the queue depth, the CmdSN window, the quota or
    /// the state stops us.
    fn refill(&mut self, now: Instant) {
        while self.state == State::Running
            && self.outstanding < self.qd
            && self.cmdsn.le(self.maxcmdsn)
            && self.quota.is_none_or(|q| self.issued < q)
        {
            if !self.issue(now) {
                break;
            }
        }
        if self.state == State::Running && self.quota.is_some_and(|q| self.issued >= q) {
            self.state = State::Draining;
        }
    }

    fn issue(&mut self, now: Instant) -> bool {
        let Some(region) = self.pick_region() else {
            return false;
        };
        let Some(i) = self.free.pop() else {
            return false;
        };
        let write = match self.read_pct {
            100 => false,
            0 => true,
            p => self.rng.below(100) >= u64::from(p),
        };
        let blocks = self.bs / self.block_size;
        let lba = self.first_block + region * u64::from(blocks);
        let len = self.bs;
        let slot = &mut self.slots[usize::from(i)];
        let itt = Itt((u32::from(slot.gen) << 16) | u32::from(i));
        let mut cdb = [0u8; 16];
        if lba + u64::from(blocks) <= u64::from(u32::MAX) && blocks <= 0xffff {
            cdb[0] = if write { 0x2a } else { 0x28 };
            cdb[2..6].copy_from_slice(&(lba as u32).to_be_bytes());
            cdb[7..9].copy_from_slice(&(blocks as u16).to_be_bytes());
        } else {
            cdb[0] = if write { 0x8a } else { 0x88 };
            cdb[2..10].copy_from_slice(&lba.to_be_bytes());
            cdb[10..14].copy_from_slice(&blocks.to_be_bytes());
        }
        slot.busy = true;
        slot.write = write;
        slot.lba = lba;
        slot.len = len;
        slot.region = region;
        slot.start = now;
        if let Some(m) = &mut self.model {
            m.busy[region as usize] = true;
            let sector = lba * u64::from(self.block_size) / verify::STAMP as u64;
            if write {
                let g = m.gens[region as usize];
                slot.verify_gen = if g == GEN_UNKNOWN { 1 } else { g + 1 };
                verify::stamp(&mut slot.buf, sector, slot.verify_gen, m.tag);
            } else {
                slot.verify_gen = m.gens[region as usize];
            }
        }
        let (imm, unsol_end) = if write {
            let imm = if self.immediate_data { len.min(self.first_burst).min(self.send_dsl) } else { 0 };
            let unsol = if self.initial_r2t { imm } else { len.min(self.first_burst).max(imm) };
            (imm, unsol)
        } else {
            (0, 0)
        };
        let cmd = ScsiCommand {
            immediate: false,
            final_: unsol_end == imm,
            read: !write,
            write,
            attr: TaskAttr::SIMPLE,
            lun: self.lun,
            itt,
            edtl: len,
            cmdsn: self.cmdsn,
            expstatsn: self.expstatsn,
            cdb,
            ext_cdb: None,
            bidi_read_len: None,
        };
        let data: &[u8] = if self.model.is_some() { &slot.buf } else { &self.write_data };
        encode_pdu(&Pdu::ScsiCommand(cmd), &data[..imm as usize], self.digests, &mut self.tx);
        if unsol_end > imm {
            push_data_out(
                &mut self.tx,
                self.digests,
                self.send_dsl,
                self.lun,
                itt,
                Ttt::RESERVED,
                self.expstatsn,
                data,
                imm,
                unsol_end - imm,
            );
        }
        self.cmdsn = self.cmdsn.next();
        self.outstanding += 1;
        self.issued += 1;
        true
    }

    fn slot_of(&self, itt: Itt) -> Option<usize> {
        let i = (itt.0 & 0xffff) as usize;
        let s = self.slots.get(i)?;
        (s.busy && u32::from(s.gen) == itt.0 >> 16).then_some(i)
    }

    #[allow(clippy::too_many_arguments)] // one completion's facts, used once
    fn complete(
        &mut self,
        i: usize,
        ok: bool,
        why: &dyn Fn() -> String,
        now: Instant,
        t: &Timing,
        res: &mut ThreadResult,
        batch: &mut (u64, u64, u64),
    ) {
        let slot = &mut self.slots[i];
        let lat = now.saturating_duration_since(slot.start).as_nanos() as u64;
        let mut good = ok;
        if let Some(m) = &mut self.model {
            let r = slot.region as usize;
            m.busy[r] = false;
            if slot.write {
                m.gens[r] = if ok { slot.verify_gen } else { GEN_UNKNOWN };
            } else if ok && slot.verify_gen != 0 && slot.verify_gen != GEN_UNKNOWN {
                let sector = slot.lba * u64::from(self.block_size) / verify::STAMP as u64;
                if let Some(msg) = verify::check(&slot.buf, sector, slot.verify_gen, m.tag) {
                    res.verify_errors += 1;
                    res.note(|| format!("verify: LBA {}: {msg}", slot.lba));
                    good = false;
                }
            }
        }
        if good {
            // Only completions inside the measured window count (the window
            // the IOPS are divided by and the CPU samples are taken over).
            if now >= t.record_from && t.end.is_none_or(|e| now <= e) {
                res.all.saturating_record(lat);
                if slot.write {
                    res.write.saturating_record(lat);
                    res.writes += 1;
                } else {
                    res.read.saturating_record(lat);
                    res.reads += 1;
                }
                res.ios += 1;
                res.bytes += u64::from(slot.len);
                res.last_completion = Some(now);
            }
            batch.0 += 1;
            batch.1 += u64::from(slot.len);
        } else if ok {
            // Verify failure: counted above.
            batch.2 += 1;
        } else {
            res.errors += 1;
            batch.2 += 1;
            let (w, lba) = (slot.write, slot.lba);
            res.note(|| format!("{} LBA {lba}: {}", if w { "WRITE" } else { "READ" }, why()));
        }
        slot.busy = false;
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(i as u16);
        self.outstanding -= 1;
    }

    /// Send as much of the transmit buffer as the socket takes.
    fn flush(&mut self) -> io::Result<()> {
        while self.tx_off < self.tx.len() {
            match self.stream.write(&self.tx[self.tx_off..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.tx_off += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.tx.clear();
        self.tx_off = 0;
        Ok(())
    }

    /// Read until the socket is empty, handling PDUs and issuing new commands.
    fn on_readable(&mut self, t: &Timing, res: &mut ThreadResult, shared: &Shared) -> io::Result<()> {
        loop {
            if self.rx_start == self.rx_end {
                self.rx_start = 0;
                self.rx_end = 0;
            } else if self.rx_start > 0
                && (self.rx_start > self.rx.len() / 2 || self.rx.len() - self.rx_end < 64 * 1024)
            {
                self.rx.copy_within(self.rx_start..self.rx_end, 0);
                self.rx_end -= self.rx_start;
                self.rx_start = 0;
            }
            let end = self.rx_end;
            match self.stream.read(&mut self.rx[end..]) {
                Ok(0) => {
                    return if self.state == State::LoggingOut {
                        self.state = State::Done;
                        Ok(())
                    } else {
                        Err(io::Error::new(io::ErrorKind::ConnectionAborted, "target closed the connection"))
                    }
                }
                Ok(n) => {
                    self.rx_end += n;
                    let now = Instant::now();
                    let mut batch = (0, 0, 0);
                    let r = self.process(now, t, res, &mut batch);
                    if batch != (0, 0, 0) {
                        shared.ios.fetch_add(batch.0, Ordering::Relaxed);
                        shared.bytes.fetch_add(batch.1, Ordering::Relaxed);
                        shared.errors.fetch_add(batch.2, Ordering::Relaxed);
                    }
                    r?;
                    if self.state == State::Done {
                        return Ok(());
                    }
                    self.refill(now);
                    self.flush()?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Handle every complete PDU in the receive buffer.
    fn process(
        &mut self,
        now: Instant,
        t: &Timing,
        res: &mut ThreadResult,
        batch: &mut (u64, u64, u64),
    ) -> io::Result<()> {
        let rx = std::mem::take(&mut self.rx);
        let r = self.process_in(&rx, now, t, res, batch);
        self.rx = rx;
        r
    }

    fn process_in(
        &mut self,
        rx: &[u8],
        now: Instant,
        t: &Timing,
        res: &mut ThreadResult,
        batch: &mut (u64, u64, u64),
    ) -> io::Result<()> {
        let fast_data_in = self.model.is_none() && !self.digests.data;
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.rx_end - self.rx_start);
                self.rx_start += n;
                self.skip -= n;
                if self.skip > 0 {
                    return Ok(());
                }
            }
            let avail = &rx[self.rx_start..self.rx_end];
            let Some(bhs) = Bhs::from_slice(avail) else {
                return Ok(());
            };
            let ahs_end = BHS_LEN + bhs.total_ahs_len();
            let hdr_len = ahs_end + self.digests.header_len();
            if avail.len() < hdr_len {
                return Ok(());
            }
            let data_len = bhs.data_len();
            if data_len > self.recv_dsl {
                return Err(other(format!("target sent a {data_len}-byte data segment, above our {}", self.recv_dsl)));
            }
            if fast_data_in && bhs.opcode() == Opcode::DATA_IN {
                // Header only: the payload is skipped where it lies.
                if self.digests.header {
                    let got = u32::from_le_bytes(avail[ahs_end..hdr_len].try_into().unwrap_or_default());
                    if got != crc32c(&avail[..ahs_end]) {
                        return Err(other("header digest mismatch"));
                    }
                }
                let pdu = Pdu::decode(&bhs, &avail[BHS_LEN..ahs_end]).map_err(other)?;
                self.rx_start += hdr_len;
                let data_len = data_len as usize;
                self.skip = data_len + pad_len(data_len);
                self.handle(pdu, &[], data_len, now, t, res, batch)?;
                continue;
            }
            let f = match decode_pdu(avail, self.digests, self.recv_dsl) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(e) => return Err(other(format!("bad PDU from target: {e}"))),
            };
            let start = self.rx_start;
            self.rx_start += f.len;
            let data = &rx[start + f.data.start..start + f.data.end];
            self.handle(f.pdu, data, data.len(), now, t, res, batch)?;
            if self.state == State::Done {
                return Ok(());
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // one PDU's facts, used once
    fn handle(
        &mut self,
        pdu: Pdu,
        data: &[u8],
        data_len: usize,
        now: Instant,
        t: &Timing,
        res: &mut ThreadResult,
        batch: &mut (u64, u64, u64),
    ) -> io::Result<()> {
        match pdu {
            Pdu::DataIn(d) => {
                self.window(d.maxcmdsn);
                let Some(i) = self.slot_of(d.itt) else {
                    return Err(other(format!("Data-In for unknown ITT {:#x}", d.itt.0)));
                };
                let off = d.buffer_offset as usize;
                let slot = &mut self.slots[i];
                if slot.write || off + data_len > slot.len as usize {
                    return Err(other(format!("Data-In past the buffer: offset {off} + {data_len}")));
                }
                if !slot.buf.is_empty() {
                    slot.buf[off..off + data.len()].copy_from_slice(data);
                }
                if d.has_status {
                    self.status_seen(d.statsn);
                    let st = d.status;
                    self.complete(i, st == 0, &|| format!("status {st:#x} in Data-In"), now, t, res, batch);
                }
            }
            Pdu::ScsiResponse(r) => {
                self.window(r.maxcmdsn);
                self.status_seen(r.statsn);
                let Some(i) = self.slot_of(r.itt) else {
                    return Err(other(format!("SCSI Response for unknown ITT {:#x}", r.itt.0)));
                };
                let ok = r.response == 0 && r.status == 0;
                let sense = if data.len() > 2 { &data[2..] } else { &[][..] };
                let (st, resp) = (r.status, r.response);
                self.complete(
                    i,
                    ok,
                    &|| format!("status {st:#x} response {resp:#x} {}", sense_text(sense)),
                    now,
                    t,
                    res,
                    batch,
                );
            }
            Pdu::R2t(r) => {
                self.window(r.maxcmdsn);
                self.statsn_hint(r.statsn);
                let Some(i) = self.slot_of(r.itt) else {
                    return Err(other(format!("R2T for unknown ITT {:#x}", r.itt.0)));
                };
                let slot = &self.slots[i];
                let end = u64::from(r.buffer_offset) + u64::from(r.desired_len);
                if !slot.write || end > u64::from(slot.len) || r.desired_len == 0 {
                    return Err(other(format!("R2T outside the write: {}+{}", r.buffer_offset, r.desired_len)));
                }
                let data: &[u8] = if self.model.is_some() { &slot.buf } else { &self.write_data };
                push_data_out(
                    &mut self.tx,
                    self.digests,
                    self.send_dsl,
                    self.lun,
                    r.itt,
                    r.ttt,
                    self.expstatsn,
                    data,
                    r.buffer_offset,
                    r.desired_len,
                );
            }
            Pdu::NopIn(n) => {
                self.window(n.maxcmdsn);
                self.statsn_hint(n.statsn);
                if n.ttt != Ttt::RESERVED {
                    nop_reply(&n, data, self.cmdsn, self.expstatsn, self.digests, &mut self.tx);
                    res.nops += 1;
                }
            }
            Pdu::AsyncMessage(a) => {
                self.window(a.maxcmdsn);
                match a.event {
                    // The target asks for a logout (RFC 7143 §11.9.1 event 1).
                    1 => {
                        res.note(|| "target requested logout".into());
                        if self.state == State::Running {
                            self.state = State::Draining;
                        }
                    }
                    2 | 3 => return Err(other(format!("target is dropping the connection (async event {})", a.event))),
                    _ => {}
                }
            }
            Pdu::Reject(r) => {
                self.window(r.maxcmdsn);
                // The rejected header is the data segment; its ITT is at byte 16.
                let itt = data.get(16..20).map(|b| Itt(u32::from_be_bytes([b[0], b[1], b[2], b[3]])));
                match itt.and_then(|itt| self.slot_of(itt)) {
                    Some(i) => {
                        let reason = r.reason;
                        self.complete(i, false, &|| format!("rejected, reason {reason:?}"), now, t, res, batch);
                    }
                    None => {
                        res.errors += 1;
                        res.note(|| format!("Reject reason {:?}", r.reason));
                    }
                }
            }
            Pdu::LogoutResponse(l) => {
                if l.itt == LOGOUT_ITT {
                    self.state = State::Done;
                }
            }
            other_pdu => {
                res.note(|| format!("ignored {:?}", other_pdu.opcode()));
            }
        }
        Ok(())
    }

    fn logout(&mut self) {
        let req = LogoutRequest {
            immediate: true,
            reason: LogoutReason(0),
            itt: LOGOUT_ITT,
            cid: Cid(0),
            cmdsn: self.cmdsn,
            expstatsn: self.expstatsn,
        };
        encode_pdu(&Pdu::LogoutRequest(req), &[], self.digests, &mut self.tx);
        self.state = State::LoggingOut;
    }
}

/// Append Data-Out PDUs for `data[off..off + len]` (one sequence: DataSN
/// from 0, F on the last, segments of at most `dsl` bytes; RFC 7143 §11.7).
#[allow(clippy::too_many_arguments)] // the PDU fields, spelled out
fn push_data_out(
    tx: &mut Vec<u8>,
    digests: DigestMode,
    dsl: u32,
    lun: Lun,
    itt: Itt,
    ttt: Ttt,
    expstatsn: StatSn,
    data: &[u8],
    off: u32,
    len: u32,
) {
    let end = off + len;
    let mut o = off;
    let mut datasn = 0;
    while o < end {
        let n = (end - o).min(dsl);
        let d = DataOut { final_: o + n == end, lun, itt, ttt, expstatsn, datasn, buffer_offset: o };
        encode_pdu(&Pdu::DataOut(d), &data[o as usize..(o + n) as usize], digests, tx);
        datasn += 1;
        o += n;
    }
}

/// Run `setups` on this thread until they are all done; see the module docs.
pub fn run_thread(setups: Vec<SessionSetup>, wl: &Workload, shared: &Shared, t: Timing) -> ThreadResult {
    let mut res = ThreadResult::new();
    let mut poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            res.failed_sessions = setups.len() as u32;
            res.note(|| format!("poll: {e}"));
            return res;
        }
    };
    let mut sessions = Vec::with_capacity(setups.len());
    for s in setups {
        match Sess::new(s, wl) {
            Ok(mut s) => {
                let tok = Token(sessions.len());
                if let Err(e) = poll.registry().register(&mut s.stream, tok, Interest::READABLE | Interest::WRITABLE) {
                    res.failed_sessions += 1;
                    res.note(|| format!("register: {e}"));
                    continue;
                }
                sessions.push(s);
            }
            Err(e) => {
                res.failed_sessions += 1;
                res.note(|| format!("session setup: {e}"));
            }
        }
    }
    let fail = |s: &mut Sess, res: &mut ThreadResult, e: io::Error| {
        res.failed_sessions += 1;
        res.errors += s.outstanding as u64;
        shared.errors.fetch_add(s.outstanding as u64, Ordering::Relaxed);
        res.note(|| format!("session failed with {} commands outstanding: {e}", s.outstanding));
        s.state = State::Failed;
    };
    let now = Instant::now();
    for s in &mut sessions {
        s.refill(now);
        if let Err(e) = s.flush() {
            fail(s, &mut res, e);
        }
    }
    let mut events = Events::with_capacity(256);
    let mut drain_deadline: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let stopping = shared.stop.load(Ordering::Relaxed) || t.end.is_some_and(|e| now >= e);
        if stopping && drain_deadline.is_none() {
            drain_deadline = Some(now + DRAIN_WAIT);
        }
        let mut live = 0;
        for s in &mut sessions {
            if stopping && s.state == State::Running {
                s.state = State::Draining;
            }
            if s.state == State::Draining && (s.outstanding == 0 || drain_deadline.is_some_and(|d| now >= d)) {
                if s.outstanding > 0 {
                    res.note(|| format!("{} commands still outstanding at the end", s.outstanding));
                    res.errors += s.outstanding as u64;
                }
                s.logout();
                s.deadline = Some(now + LOGOUT_WAIT);
                if let Err(e) = s.flush() {
                    fail(s, &mut res, e);
                }
            }
            if s.state == State::LoggingOut && s.deadline.is_some_and(|d| now >= d) {
                s.state = State::Done;
            }
            if matches!(s.state, State::Running | State::Draining | State::LoggingOut) {
                live += 1;
            }
        }
        if live == 0 {
            break;
        }
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(20))) {
            if e.kind() != io::ErrorKind::Interrupted {
                res.note(|| format!("poll: {e}"));
                break;
            }
        }
        for ev in events.iter() {
            let Some(s) = sessions.get_mut(ev.token().0) else { continue };
            if matches!(s.state, State::Done | State::Failed) {
                continue;
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                if let Err(e) = s.on_readable(&t, &mut res, shared) {
                    fail(s, &mut res, e);
                    continue;
                }
            }
            if ev.is_writable() {
                if let Err(e) = s.flush() {
                    fail(s, &mut res, e);
                }
            }
        }
    }
    for s in &mut sessions {
        let _ = poll.registry().deregister(&mut s.stream);
    }
    res
}
