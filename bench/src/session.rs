//! One iSCSI connection before the load starts: TCP connect, login in the
//! initiator role (RFC 7143 §6, on the core's [`InitiatorNegotiator`]), and
//! blocking setup commands (TEST UNIT READY to clear unit attentions, READ
//! CAPACITY). Blocking sockets with a timeout; the load loop takes the
//! socket over afterwards ([`crate::engine`]).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use shardtgt_core::ids::{Cid, Isid, Itt, Lun, Tsih, Ttt};
use shardtgt_core::login::initiator::{InitiatorConfig, InitiatorNegotiator};
use shardtgt_core::login::params::SessionParams;
use shardtgt_core::pdu::frame::{decode_pdu, encode_pdu, DigestMode};
use shardtgt_core::pdu::{LoginRequest, NopOut, Pdu, ScsiCommand, Stage, TaskAttr};
use shardtgt_core::serial::{CmdSn, StatSn};

use crate::{berr, Result};

/// How to log in.
#[derive(Clone, Debug)]
pub struct LoginOptions {
    /// Our InitiatorName.
    pub initiator_name: String,
    /// Target IQN.
    pub target_name: String,
    /// Session identifier (unique per session of this initiator name).
    pub isid: Isid,
    /// Ask for header and data digests.
    pub digests: DigestMode,
    /// Our MaxRecvDataSegmentLength.
    pub max_recv_dsl: u32,
    /// Offer ImmediateData=Yes.
    pub immediate_data: bool,
    /// Offer InitialR2T=No when false.
    pub initial_r2t: bool,
    /// MaxBurstLength offer.
    pub max_burst: u32,
    /// FirstBurstLength offer.
    pub first_burst: u32,
}

impl LoginOptions {
    /// Offers that let writes flow without R2Ts where the target agrees.
    pub fn new(target_name: &str, session_index: u32) -> Self {
        LoginOptions {
            initiator_name: "iqn.2026-11.io.shardtgt:bench".into(),
            target_name: target_name.into(),
            // ISID type 0x80 (random), qualifier = session index (RFC 7143 §11.12.5).
            isid: Isid(
                0x8000_0000_0000 | (u64::from(std::process::id() & 0xffff) << 16) | u64::from(session_index & 0xffff),
            ),
            digests: DigestMode::NONE,
            max_recv_dsl: 262_144,
            immediate_data: true,
            initial_r2t: false,
            max_burst: 1 << 20,
            first_burst: 262_144,
        }
    }
}

/// A logged-in connection in the full feature phase.
#[derive(Debug)]
pub struct Conn {
    /// The socket (blocking, with timeouts, until the engine takes it).
    pub stream: TcpStream,
    /// Negotiated values.
    pub params: SessionParams,
    /// Digests in effect.
    pub digests: DigestMode,
    /// Next CmdSN to use.
    pub cmdsn: CmdSn,
    /// Highest CmdSN the target accepts.
    pub maxcmdsn: CmdSn,
    /// Next StatSN expected.
    pub expstatsn: StatSn,
    /// Session handle from the target.
    pub tsih: Tsih,
    rx: Vec<u8>,
    next_itt: u32,
}

/// Outcome of one blocking SCSI command.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// SCSI status (0 = GOOD, 2 = CHECK CONDITION).
    pub status: u8,
    /// iSCSI response code (0 = completed at target).
    pub response: u8,
    /// Data-In bytes.
    pub data: Vec<u8>,
    /// Sense data (without the 2-byte length).
    pub sense: Vec<u8>,
}

/// `sense key/ASC/ASCQ` of fixed or descriptor sense data, for messages.
pub fn sense_text(sense: &[u8]) -> String {
    match sense.first().map(|b| b & 0x7f) {
        Some(0x70) | Some(0x71) if sense.len() >= 14 => {
            format!("sense key {:#x} asc/ascq {:02x}/{:02x}", sense[2] & 0xf, sense[12], sense[13])
        }
        Some(0x72) | Some(0x73) if sense.len() >= 4 => {
            format!("sense key {:#x} asc/ascq {:02x}/{:02x}", sense[1] & 0xf, sense[2], sense[3])
        }
        _ => format!("sense {sense:02x?}"),
    }
}

/// Answer a NOP-In ping (RFC 7143 §11.18: a NOP-Out with the target's TTT,
/// ITT 0xffffffff, immediate, echoing its data) into `out`.
pub fn nop_reply(
    nop: &shardtgt_core::pdu::NopIn,
    data: &[u8],
    cmdsn: CmdSn,
    expstatsn: StatSn,
    digests: DigestMode,
    out: &mut Vec<u8>,
) {
    let reply = NopOut { immediate: true, lun: nop.lun, itt: Itt::RESERVED, ttt: nop.ttt, cmdsn, expstatsn };
    encode_pdu(&Pdu::NopOut(reply), data, digests, out);
}

impl Conn {
    /// Connect and log in (security stage with AuthMethod=None, then
    /// operational negotiation), ending in the full feature phase.
    pub fn login(addr: &str, opts: &LoginOptions) -> Result<Conn> {
        let stream = TcpStream::connect(addr).map_err(|e| berr!("connect {addr}: {e}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        let mut cfg = InitiatorConfig::new(&opts.initiator_name, Some(&opts.target_name));
        cfg.header_digest = opts.digests.header;
        cfg.data_digest = opts.digests.data;
        cfg.max_recv_dsl = opts.max_recv_dsl;
        cfg.immediate_data = opts.immediate_data;
        cfg.initial_r2t = opts.initial_r2t;
        cfg.max_burst = opts.max_burst;
        cfg.first_burst = opts.first_burst.min(opts.max_burst);
        let mut neg = InitiatorNegotiator::new(cfg);
        let mut conn = Conn {
            stream,
            params: SessionParams::default(),
            digests: DigestMode::NONE,
            cmdsn: CmdSn(1),
            maxcmdsn: CmdSn(1),
            expstatsn: StatSn(0),
            tsih: Tsih(0),
            rx: Vec::with_capacity(64 * 1024),
            next_itt: 0x10,
        };
        let mut text = Vec::new();
        neg.security_request(&mut text);
        let mut csg = Stage::SECURITY;
        for _round in 0..16 {
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
                isid: opts.isid,
                tsih: Tsih(0),
                itt: Itt(0),
                cid: Cid(0),
                cmdsn: conn.cmdsn,
                expstatsn: conn.expstatsn,
            };
            conn.send(&Pdu::LoginRequest(req.clone()), &std::mem::take(&mut text), DigestMode::NONE)?;
            // Reassemble a response split with C=1 (RFC 7143 §6.1).
            let mut resp_text = Vec::new();
            let resp = loop {
                let (pdu, data) = conn.recv(DigestMode::NONE)?;
                let Pdu::LoginResponse(r) = pdu else {
                    return Err(berr!("expected a Login Response, got {:?}", pdu.opcode()));
                };
                if r.status.0 != 0 {
                    return Err(berr!("login failed: status {:#06x}", r.status.0));
                }
                conn.expstatsn = r.statsn.next();
                conn.cmdsn = r.expcmdsn;
                conn.maxcmdsn = r.maxcmdsn;
                resp_text.extend_from_slice(&data);
                if !r.continue_ {
                    break r;
                }
                let more = LoginRequest { transit: false, continue_: false, ..req.clone() };
                conn.send(&Pdu::LoginRequest(more), &[], DigestMode::NONE)?;
            };
            neg.handle_response_bytes(&resp_text, &mut text).map_err(|e| berr!("login: {e:?}"))?;
            if resp.transit {
                if resp.nsg == Stage::FULL_FEATURE {
                    conn.tsih = resp.tsih;
                    conn.params = neg.finish().map_err(|e| berr!("login: {e:?}"))?.clone();
                    conn.digests = DigestMode { header: conn.params.header_digest, data: conn.params.data_digest };
                    return Ok(conn);
                }
                csg = resp.nsg;
            }
        }
        Err(berr!("login did not reach the full feature phase"))
    }

    /// Encode and send one PDU (blocking).
    pub fn send(&mut self, pdu: &Pdu, data: &[u8], digests: DigestMode) -> Result<()> {
        let mut out = Vec::with_capacity(64 + data.len());
        encode_pdu(pdu, data, digests, &mut out);
        self.stream.write_all(&out)?;
        Ok(())
    }

    /// Receive one PDU (blocking), with its data segment.
    pub fn recv(&mut self, digests: DigestMode) -> Result<(Pdu, Vec<u8>)> {
        loop {
            match decode_pdu(&self.rx, digests, 1 << 24) {
                Ok(Some(f)) => {
                    let data = self.rx[f.data.clone()].to_vec();
                    self.rx.drain(..f.len);
                    return Ok((f.pdu, data));
                }
                Ok(None) => {}
                Err(e) => return Err(berr!("target sent a bad PDU: {e}")),
            }
            let mut buf = [0u8; 65536];
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                return Err(berr!("target closed the connection"));
            }
            self.rx.extend_from_slice(&buf[..n]);
        }
    }

    /// Bytes received but not yet decoded (handed to the engine).
    pub fn take_rx(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.rx)
    }

    /// Run one command without data-out (blocking), answering NOP-Ins.
    pub fn exec(&mut self, lun: Lun, cdb: &[u8], read_len: u32) -> Result<Outcome> {
        let mut c = [0u8; 16];
        c[..cdb.len()].copy_from_slice(cdb);
        self.next_itt += 1;
        let itt = Itt(self.next_itt);
        let cmd = ScsiCommand {
            immediate: false,
            final_: true,
            read: read_len > 0,
            write: false,
            attr: TaskAttr::SIMPLE,
            lun,
            itt,
            edtl: read_len,
            cmdsn: self.cmdsn,
            expstatsn: self.expstatsn,
            cdb: c,
            ext_cdb: None,
            bidi_read_len: None,
        };
        self.cmdsn = self.cmdsn.next();
        self.send(&Pdu::ScsiCommand(cmd), &[], self.digests)?;
        let mut out = Outcome { status: 0, response: 0, data: Vec::new(), sense: Vec::new() };
        loop {
            let (pdu, data) = self.recv(self.digests)?;
            match pdu {
                Pdu::DataIn(d) if d.itt == itt => {
                    let off = d.buffer_offset as usize;
                    if out.data.len() < off + data.len() {
                        out.data.resize(off + data.len(), 0);
                    }
                    out.data[off..off + data.len()].copy_from_slice(&data);
                    self.window(d.maxcmdsn);
                    if d.has_status {
                        self.expstatsn = d.statsn.next();
                        out.status = d.status;
                        return Ok(out);
                    }
                }
                Pdu::ScsiResponse(r) if r.itt == itt => {
                    self.expstatsn = r.statsn.next();
                    self.window(r.maxcmdsn);
                    out.status = r.status;
                    out.response = r.response;
                    if data.len() >= 2 {
                        let n = usize::from(u16::from_be_bytes([data[0], data[1]])).min(data.len() - 2);
                        out.sense = data[2..2 + n].to_vec();
                    }
                    return Ok(out);
                }
                Pdu::NopIn(n) => {
                    self.window(n.maxcmdsn);
                    if n.ttt != Ttt::RESERVED {
                        let mut buf = Vec::new();
                        nop_reply(&n, &data, self.cmdsn, self.expstatsn, self.digests, &mut buf);
                        self.stream.write_all(&buf)?;
                    }
                }
                Pdu::AsyncMessage(a) => self.window(a.maxcmdsn),
                Pdu::Reject(r) => return Err(berr!("target rejected a setup command: reason {:?}", r.reason)),
                other => return Err(berr!("unexpected PDU during setup: {:?}", other.opcode())),
            }
        }
    }

    fn window(&mut self, maxcmdsn: CmdSn) {
        if maxcmdsn.gt(self.maxcmdsn) {
            self.maxcmdsn = maxcmdsn;
        }
    }

    /// TEST UNIT READY until GOOD (at most 8 tries), clearing the unit
    /// attentions a target reports after login (tgt reports POWER ON).
    pub fn ready(&mut self, lun: Lun) -> Result<()> {
        let mut last = String::new();
        for _ in 0..8 {
            let o = self.exec(lun, &[0u8; 6], 0)?;
            if o.status == 0 && o.response == 0 {
                return Ok(());
            }
            last = sense_text(&o.sense);
        }
        Err(berr!("LUN not ready: {last}"))
    }

    /// READ CAPACITY(16), or (10) when (16) fails: (block size, block count).
    pub fn capacity(&mut self, lun: Lun) -> Result<(u32, u64)> {
        let mut cdb = [0u8; 16];
        cdb[0] = 0x9e;
        cdb[1] = 0x10;
        cdb[13] = 32;
        let o = self.exec(lun, &cdb, 32)?;
        if o.status == 0 && o.data.len() >= 12 {
            let last = u64::from_be_bytes(o.data[0..8].try_into().unwrap_or_default());
            let bs = u32::from_be_bytes(o.data[8..12].try_into().unwrap_or_default());
            return Ok((bs, last + 1));
        }
        let mut cdb = [0u8; 10];
        cdb[0] = 0x25;
        let o = self.exec(lun, &cdb, 8)?;
        if o.status != 0 || o.data.len() < 8 {
            return Err(berr!("READ CAPACITY failed: status {:#x} {}", o.status, sense_text(&o.sense)));
        }
        let last = u32::from_be_bytes(o.data[0..4].try_into().unwrap_or_default());
        let bs = u32::from_be_bytes(o.data[4..8].try_into().unwrap_or_default());
        Ok((bs, u64::from(last) + 1))
    }
}
