//! A scripted initiator that drives a sans-IO [`Connection`] without
//! sockets: PDUs in through `recv_buf`/`recv_done` (in odd-sized chunks to
//! exercise framing), PDUs out through `poll_transmit`, backend requests
//! served from an in-memory disk, time from a virtual clock.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::sync::Arc;

use shardtgt_core::conn::{ConnInfo, ConnState, Connection};
use shardtgt_core::ids::{Cid, Isid, Itt, Lun, Tsih, Ttt};
use shardtgt_core::pdu::frame::{decode_pdu, encode_pdu, DigestMode};
use shardtgt_core::pdu::*;
use shardtgt_core::scsi::{lba_status, BackendOp, BackendStatus, LuInfo};
use shardtgt_core::serial::{CmdSn, StatSn};
use shardtgt_core::session::Registry;
use shardtgt_core::target::{Limits, TargetSet};

/// PDUs as received: header and data segment.
pub type Pdus = Vec<(Pdu, Vec<u8>)>;

pub const TARGET: &str = "iqn.2026-11.io.shardtgt:test";
pub const INITIATOR: &str = "iqn.2026-11.test:harness";
pub const BLOCK: u32 = 512;
pub const BLOCKS: u64 = 2048;

/// A harness on an existing target set (a second nexus of the same LUs)
/// with ISID `isid`.
pub fn harness_on(set: &Arc<TargetSet>, isid: u64) -> Harness {
    let mut h = Harness::new(set.limits.clone());
    h.conn = Connection::new(set.clone(), h.registry.clone(), ConnInfo { peer: "test".into(), tpgt: 1 }, 0);
    h.isid = Isid(isid);
    h
}

pub fn target_set(limits: Limits) -> Arc<TargetSet> {
    target_set_with(limits, false)
}

/// The harness's target; `thin`: its LU is thin and deallocates (the
/// harness disk keeps a map of deallocated blocks).
pub fn target_set_with(limits: Limits, thin: bool) -> Arc<TargetSet> {
    let info = LuInfo {
        block_size: BLOCK,
        num_blocks: BLOCKS,
        vendor: "SHARDTGT".into(),
        product: "harness".into(),
        revision: "0001".into(),
        serial: "harness0".into(),
        naa_id: 0x1234_5678_9abc_def0,
        read_only: false,
        write_cache: true,
        target_name: TARGET.into(),
        rel_port_id: 1,
        port_group: 1,
        port_groups: Vec::new(),
        thin,
        deallocate: thin,
    };
    Arc::new(TargetSet::single_lu(TARGET, info, limits))
}

/// Limits with small bursts so that tests see several PDUs per transfer.
pub fn small_limits() -> Limits {
    Limits {
        queue_depth: 8,
        max_recv_data_segment_len: 8192,
        max_burst_len: 16384,
        first_burst_len: 8192,
        nop_interval_ms: 0,
        ..Limits::default()
    }
}

pub struct Harness {
    pub conn: Connection,
    pub disk: Vec<u8>,
    pub now: u64,
    pub cmdsn: CmdSn,
    pub statsn: StatSn,
    pub itt: u32,
    pub digests: DigestMode,
    pub isid: Isid,
    pub tsih: Tsih,
    /// Bytes received from the target not yet decoded.
    inbox: Vec<u8>,
    /// Feed chunk size, varied to exercise framing.
    pub chunk: usize,
    pub registry: Arc<Registry>,
    pub backend_fail: Option<BackendStatus>,
    /// Leave backend requests outstanding (not served) while set.
    pub hold_backend: bool,
    /// Requests taken from the connection while `hold_backend` was set.
    held_requests: Vec<shardtgt_core::conn::BackendRequest>,
    /// Per block: deallocated (thin LU model; starts all deallocated).
    pub holes: Vec<bool>,
}

impl Harness {
    pub fn new(limits: Limits) -> Self {
        Self::with_registry(limits, Arc::new(Registry::new(0)))
    }

    pub fn with_registry(limits: Limits, registry: Arc<Registry>) -> Self {
        Self::build(target_set(limits), registry)
    }

    /// A harness whose LU is thin and deallocates.
    pub fn thin(limits: Limits) -> Self {
        Self::build(target_set_with(limits, true), Arc::new(Registry::new(0)))
    }

    fn build(set: Arc<TargetSet>, registry: Arc<Registry>) -> Self {
        let conn = Connection::new(set, registry.clone(), ConnInfo { peer: "test".into(), tpgt: 1 }, 0);
        Harness {
            conn,
            disk: vec![0; (BLOCK as u64 * BLOCKS) as usize],
            now: 0,
            cmdsn: CmdSn(1),
            statsn: StatSn(0),
            itt: 0x100,
            digests: DigestMode { header: false, data: false },
            isid: Isid(0x8000_0000_0001),
            tsih: Tsih(0),
            inbox: Vec::new(),
            chunk: 7,
            registry,
            backend_fail: None,
            hold_backend: false,
            held_requests: Vec::new(),
            holes: vec![true; BLOCKS as usize],
        }
    }

    pub fn next_itt(&mut self) -> Itt {
        self.itt += 1;
        Itt(self.itt)
    }

    /// Encode and deliver one PDU.
    pub fn send(&mut self, pdu: &Pdu, data: &[u8]) {
        let mut bytes = Vec::new();
        encode_pdu(pdu, data, self.digests, &mut bytes);
        self.send_raw(&bytes);
    }

    /// Deliver raw bytes in chunks of `self.chunk`.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let mut off = 0;
        while off < bytes.len() {
            if self.conn.state() == ConnState::Closed {
                return;
            }
            let buf = self.conn.recv_buf();
            assert!(!buf.is_empty(), "recv_buf empty while open");
            let n = buf.len().min(self.chunk).min(bytes.len() - off);
            buf[..n].copy_from_slice(&bytes[off..off + n]);
            self.conn.recv_done(n, self.now);
            off += n;
            self.serve_backend();
        }
    }

    /// Serve every queued backend request from `disk`.
    pub fn serve_backend(&mut self) {
        loop {
            while let Some(req) = self.conn.poll_backend() {
                self.held_requests.push(req);
            }
            if self.hold_backend || self.held_requests.is_empty() {
                return;
            }
            self.serve_held();
        }
    }

    /// Take the requests held back while `hold_backend` is set (the test
    /// then serves them itself through `conn.backend_buffer`/`handle_backend`).
    pub fn take_held(&mut self) -> Vec<shardtgt_core::conn::BackendRequest> {
        std::mem::take(&mut self.held_requests)
    }

    fn serve_held(&mut self) {
        for req in std::mem::take(&mut self.held_requests) {
            let status = self.backend_fail.unwrap_or(BackendStatus::Ok);
            if status == BackendStatus::Ok {
                let off = req.offset as usize;
                let len = req.len as usize;
                let buf = self.conn.backend_buffer(req.tag);
                let blocks = off / BLOCK as usize..(off + len).div_ceil(BLOCK as usize);
                match req.op {
                    BackendOp::Read => buf.copy_from_slice(&self.disk[off..off + len]),
                    BackendOp::Write => {
                        self.disk[off..off + len].copy_from_slice(buf);
                        self.holes[blocks].fill(false);
                    }
                    BackendOp::Flush => {}
                    BackendOp::Deallocate => {
                        assert!(buf.is_empty(), "no buffer for a deallocation");
                        self.disk[off..off + len].fill(0);
                        self.holes[blocks].fill(true);
                    }
                    BackendOp::MapStatus => {
                        // Runs of equal state from `off`, as records.
                        buf.fill(0);
                        let mut i = 0;
                        let mut b = off / BLOCK as usize;
                        while b < self.holes.len() {
                            let h = self.holes[b];
                            let n = self.holes[b..].iter().take_while(|&&x| x == h).count();
                            let state = if h { lba_status::DEALLOCATED } else { lba_status::MAPPED };
                            if !lba_status::put(buf, i, (n * BLOCK as usize) as u64, state) {
                                break;
                            }
                            i += 1;
                            b += n;
                        }
                    }
                }
            }
            self.conn.handle_backend(req.tag, status, self.now);
        }
    }

    /// Drain everything the target has to say, decoded.
    pub fn recv(&mut self) -> Pdus {
        self.serve_backend();
        while let Some(b) = self.conn.poll_transmit() {
            let n = b.len();
            self.inbox.extend_from_slice(b);
            self.conn.transmit_done(n, self.now);
        }
        let mut out = Vec::new();
        loop {
            // Login responses carry no digests even when digests were negotiated.
            match decode_pdu(&self.inbox, self.digests, 1 << 24) {
                Ok(Some(f)) => {
                    let data = self.inbox[f.data.clone()].to_vec();
                    self.inbox.drain(..f.len);
                    out.push((f.pdu, data));
                }
                Ok(None) => break,
                Err(e) => panic!("target sent an undecodable PDU: {e:?}"),
            }
        }
        out
    }

    pub fn login_request(&self, csg: Stage, nsg: Stage, transit: bool) -> LoginRequest {
        LoginRequest {
            transit,
            continue_: false,
            csg,
            nsg,
            version_max: 0,
            version_min: 0,
            isid: self.isid,
            tsih: self.tsih,
            itt: Itt(1),
            cid: Cid(1),
            cmdsn: self.cmdsn,
            expstatsn: self.statsn,
        }
    }

    /// Send a login request with keys and return the single response.
    pub fn login_pdu(&mut self, req: LoginRequest, keys: &[(&str, &str)]) -> (LoginResponse, Vec<(String, String)>) {
        let mut data = Vec::new();
        for (k, v) in keys {
            data.extend_from_slice(format!("{k}={v}\0").as_bytes());
        }
        self.send(&Pdu::LoginRequest(req), &data);
        let mut got = self.recv_login();
        assert_eq!(got.len(), 1, "expected one login response, got {got:?}");
        got.remove(0)
    }

    fn recv_login(&mut self) -> Vec<(LoginResponse, Vec<(String, String)>)> {
        // Login responses never carry digests.
        let saved = self.digests;
        self.digests = DigestMode { header: false, data: false };
        let pdus = self.recv();
        self.digests = saved;
        pdus.into_iter()
            .map(|(p, d)| match p {
                Pdu::LoginResponse(r) => {
                    self.statsn = r.statsn.next();
                    (r, parse_kv(&d))
                }
                other => panic!("expected a login response, got {other:?}"),
            })
            .collect()
    }

    /// A full normal-session login with extra operational keys.
    pub fn login(&mut self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let req = self.login_request(Stage::SECURITY, Stage::OPERATIONAL, true);
        let (r, _) = self.login_pdu(
            req,
            &[("InitiatorName", INITIATOR), ("SessionType", "Normal"), ("TargetName", TARGET), ("AuthMethod", "None")],
        );
        assert_eq!(r.status, LoginStatus::SUCCESS);
        assert!(r.transit);
        assert_eq!(r.nsg, Stage::OPERATIONAL);
        let req = self.login_request(Stage::OPERATIONAL, Stage::FULL_FEATURE, true);
        let (mut r, mut keys) = self.login_pdu(req, extra);
        assert_eq!(r.status, LoginStatus::SUCCESS, "{keys:?}");
        // The target may propose keys of its own (RFC 7143 §6.2) and hold T=0
        // until they are answered: accept its values.
        let mut rounds = 0;
        while !r.transit {
            rounds += 1;
            assert!(rounds < 4, "login does not converge: {keys:?}");
            let answers: Vec<(String, String)> = keys
                .iter()
                .filter(|(k, _)| {
                    ["MaxBurstLength", "FirstBurstLength", "ImmediateData"].contains(&k.as_str())
                        && !extra.iter().any(|(e, _)| e == k)
                })
                .cloned()
                .collect();
            let refs: Vec<(&str, &str)> = answers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let req = self.login_request(Stage::OPERATIONAL, Stage::FULL_FEATURE, true);
            let (r2, mut k2) = self.login_pdu(req, &refs);
            assert_eq!(r2.status, LoginStatus::SUCCESS, "{k2:?}");
            r = r2;
            keys.append(&mut k2);
        }
        assert!(r.transit);
        assert_eq!(r.nsg, Stage::FULL_FEATURE);
        assert_ne!(r.tsih.0, 0);
        self.tsih = r.tsih;
        assert_eq!(self.conn.state(), ConnState::FullFeature);
        keys
    }

    pub fn scsi_cmd(&mut self, cdb: &[u8], edtl: u32, read: bool, write: bool) -> ScsiCommand {
        let mut c = [0u8; 16];
        c[..cdb.len().min(16)].copy_from_slice(&cdb[..cdb.len().min(16)]);
        let itt = self.next_itt();
        let cmd = ScsiCommand {
            immediate: false,
            final_: true,
            read,
            write,
            attr: TaskAttr::SIMPLE,
            lun: Lun::from_index(0),
            itt,
            edtl,
            cmdsn: self.cmdsn,
            expstatsn: self.statsn,
            cdb: c,
            ext_cdb: None,
            bidi_read_len: None,
        };
        self.cmdsn = self.cmdsn.next();
        cmd
    }

    /// READ(10) of `blocks` at `lba`; returns (data, status, residual info, pdus).
    pub fn read10(&mut self, lba: u32, blocks: u16) -> (Vec<u8>, u8, Pdus) {
        let mut cdb = [0u8; 10];
        cdb[0] = 0x28;
        cdb[2..6].copy_from_slice(&lba.to_be_bytes());
        cdb[7..9].copy_from_slice(&blocks.to_be_bytes());
        let cmd = self.scsi_cmd(&cdb, u32::from(blocks) * BLOCK, true, false);
        self.send(&Pdu::ScsiCommand(cmd), &[]);
        let pdus = self.recv();
        let mut data = Vec::new();
        let mut status = None;
        for (p, d) in &pdus {
            match p {
                Pdu::DataIn(di) => {
                    assert_eq!(di.buffer_offset as usize, data.len());
                    data.extend_from_slice(d);
                    if di.has_status {
                        status = Some(di.status);
                    }
                }
                Pdu::ScsiResponse(r) => status = Some(r.status),
                _ => {}
            }
        }
        (data, status.expect("no status for READ"), pdus)
    }

    /// WRITE(10) driving R2Ts as the target asks; returns the status and all PDUs seen.
    pub fn write10(&mut self, lba: u32, data: &[u8], immediate: usize, unsolicited: usize) -> (u8, Pdus) {
        let blocks = (data.len() / BLOCK as usize) as u16;
        let mut cdb = [0u8; 10];
        cdb[0] = 0x2a;
        cdb[2..6].copy_from_slice(&lba.to_be_bytes());
        cdb[7..9].copy_from_slice(&blocks.to_be_bytes());
        let mut cmd = self.scsi_cmd(&cdb, data.len() as u32, false, true);
        let imm = immediate.min(data.len());
        let unsol_end = (imm + unsolicited).min(data.len());
        cmd.final_ = unsol_end == imm;
        let itt = cmd.itt;
        self.send(&Pdu::ScsiCommand(cmd), &data[..imm]);
        // Unsolicited Data-Out, 4 KiB at a time.
        let mut off = imm;
        let mut datasn = 0;
        while off < unsol_end {
            let n = (unsol_end - off).min(4096);
            let d = DataOut {
                final_: off + n == unsol_end,
                lun: Lun::from_index(0),
                itt,
                ttt: Ttt::RESERVED,
                expstatsn: self.statsn,
                datasn,
                buffer_offset: off as u32,
            };
            self.send(&Pdu::DataOut(d), &data[off..off + n]);
            datasn += 1;
            off += n;
        }
        let mut seen = Vec::new();
        for _ in 0..1000 {
            let pdus = self.recv();
            if pdus.is_empty() {
                break;
            }
            let mut status = None;
            for (p, d) in &pdus {
                match p {
                    Pdu::R2t(r) => {
                        let mut sent = 0u32;
                        let mut sn = 0;
                        while sent < r.desired_len {
                            let n = (r.desired_len - sent).min(4096);
                            let o = (r.buffer_offset + sent) as usize;
                            let d = DataOut {
                                final_: sent + n == r.desired_len,
                                lun: Lun::from_index(0),
                                itt,
                                ttt: r.ttt,
                                expstatsn: self.statsn,
                                datasn: sn,
                                buffer_offset: o as u32,
                            };
                            self.send(&Pdu::DataOut(d), &data[o..o + n as usize]);
                            sn += 1;
                            sent += n;
                        }
                    }
                    Pdu::ScsiResponse(r) => status = Some(r.status),
                    _ => {}
                }
                seen.push((p.clone(), d.clone()));
            }
            if let Some(s) = status {
                return (s, seen);
            }
        }
        panic!("write got no status; saw {seen:?}");
    }

    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
        self.conn.handle_timeout(self.now);
    }
}

pub fn parse_kv(d: &[u8]) -> Vec<(String, String)> {
    d.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let s = String::from_utf8_lossy(s);
            let (k, v) = s.split_once('=').unwrap_or((&s, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

pub fn key<'a>(keys: &'a [(String, String)], k: &str) -> Option<&'a str> {
    keys.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.as_str())
}
