//! A minimal raw-TCP iSCSI initiator for tests (RFC 7143), deliberately
//! independent of shardtgt's own PDU codec: headers are laid out here byte
//! by byte on a [`Bhs`], so a bug in the codec cannot hide itself by being
//! on both sides of the wire. Only the core's BHS buffer type and wire
//! constants are shared.
//!
//! It does one thing at a time: one connection, one outstanding command,
//! ErrorRecoveryLevel 0; CRC32C digests when [`RawConn::login_with`] asks
//! for them (computed here bit by bit, not with the core's CRC). It answers target NOP-In pings while waiting.
//! Every read has a timeout. It is for tests, not for production: it panics on
//! anything it does not expect unless a method says it returns the problem.

use shardtgt_core::ids::Lun;
use shardtgt_core::pdu::bhs::{pad_len, Bhs, Opcode, BHS_LEN};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Default read timeout.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest data segment this initiator accepts (and declares as MaxRecvDataSegmentLength).
pub const MY_MRDSL: u32 = 262_144;
/// Largest data segment it will read at all (a sanity bound on a hostile peer).
const READ_DATA_MAX: usize = 16 << 20;

/// Byte 1 bit 7: F (final).
const F: u8 = 0x80;
/// Immediate bit in byte 0.
const I: u8 = 0x40;

/// A received PDU: header, AHS and data segment (padding removed).
#[derive(Clone, Debug)]
pub struct RecvPdu {
    /// The BHS.
    pub bhs: Bhs,
    /// AHS bytes.
    pub ahs: Vec<u8>,
    /// Data segment, without padding.
    pub data: Vec<u8>,
}

impl RecvPdu {
    /// Opcode.
    pub fn opcode(&self) -> Opcode {
        self.bhs.opcode()
    }
    /// Login Response status class and detail as one u16 (bytes 36..38).
    pub fn login_status(&self) -> u16 {
        self.bhs.u16_at(36)
    }
    /// Reject reason (byte 2).
    pub fn reject_reason(&self) -> u8 {
        self.bhs.0[2]
    }
    /// StatSN (bytes 24..28) of responses that carry one.
    pub fn statsn(&self) -> u32 {
        self.bhs.u32_at(24)
    }
    /// The data segment as text keys (`key=value` NUL-separated).
    pub fn text_keys(&self) -> Vec<(String, String)> {
        parse_keys(&self.data)
    }
    /// Value of one text key.
    pub fn key(&self, name: &str) -> Option<String> {
        self.text_keys().into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

/// Result of one read attempt.
#[derive(Debug)]
pub enum ReadOutcome {
    /// A whole PDU.
    Pdu(RecvPdu),
    /// The peer closed or reset the connection.
    Closed,
    /// Nothing (or only part of a PDU) arrived in time.
    Timeout,
}

/// A finished SCSI command.
#[derive(Clone, Debug, Default)]
pub struct ScsiResult {
    /// iSCSI response byte (0 = command completed at target).
    pub response: u8,
    /// SCSI status (0 GOOD, 2 CHECK CONDITION).
    pub status: u8,
    /// Sense data (without the 2-byte SenseLength).
    pub sense: Vec<u8>,
    /// Data-In bytes, placed by buffer offset.
    pub data: Vec<u8>,
    /// Residual count from the response.
    pub residual: u32,
}

impl ScsiResult {
    /// Sense key (fixed or descriptor format), 0 when there is no sense.
    pub fn sense_key(&self) -> u8 {
        match self.sense.first().map(|b| b & 0x7f) {
            Some(0x70 | 0x71) => self.sense.get(2).map_or(0, |b| b & 0x0f),
            Some(0x72 | 0x73) => self.sense.get(1).map_or(0, |b| b & 0x0f),
            _ => 0,
        }
    }
    /// ASC and ASCQ as one u16.
    pub fn asc_ascq(&self) -> u16 {
        let (a, q) = match self.sense.first().map(|b| b & 0x7f) {
            Some(0x70 | 0x71) => (12, 13),
            Some(0x72 | 0x73) => (2, 3),
            _ => return 0,
        };
        u16::from_be_bytes([*self.sense.get(a).unwrap_or(&0), *self.sense.get(q).unwrap_or(&0)])
    }
}

/// Why a login did not reach full feature phase.
#[derive(Clone, Debug)]
pub enum LoginError {
    /// A Login Response with a non-zero status (class << 8 | detail).
    Status(u16, RecvPdu),
    /// Something other than a Login Response arrived.
    Unexpected(RecvPdu),
    /// The connection closed or timed out.
    Io(String),
}

/// Encode `key=value\0…`.
pub fn encode_keys(keys: &[(&str, &str)]) -> Vec<u8> {
    let mut v = Vec::new();
    for (k, val) in keys {
        v.extend_from_slice(k.as_bytes());
        v.push(b'=');
        v.extend_from_slice(val.as_bytes());
        v.push(0);
    }
    v
}

/// Decode `key=value\0…` (lenient: a missing final NUL is accepted).
pub fn parse_keys(data: &[u8]) -> Vec<(String, String)> {
    data.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let s = String::from_utf8_lossy(s);
            match s.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (s.to_string(), String::new()),
            }
        })
        .collect()
}

/// Operational keys a well-behaved initiator offers (no digests, ERL 0).
pub const OPERATIONAL_KEYS: &[(&str, &str)] = &[
    ("HeaderDigest", "None"),
    ("DataDigest", "None"),
    ("MaxConnections", "1"),
    ("InitialR2T", "Yes"),
    ("ImmediateData", "Yes"),
    ("MaxRecvDataSegmentLength", "262144"),
    ("MaxBurstLength", "262144"),
    ("FirstBurstLength", "65536"),
    ("DefaultTime2Wait", "2"),
    ("DefaultTime2Retain", "0"),
    ("MaxOutstandingR2T", "1"),
    ("DataPDUInOrder", "Yes"),
    ("DataSequenceInOrder", "Yes"),
    ("ErrorRecoveryLevel", "0"),
];

/// One raw connection to a target.
#[derive(Debug)]
pub struct RawConn {
    stream: TcpStream,
    /// ISID (type 0x80 "random" format, unique per connection in this process).
    pub isid: [u8; 6],
    /// TSIH from the final login response.
    pub tsih: u16,
    /// Next CmdSN to use.
    pub cmdsn: u32,
    /// ExpStatSN to send.
    pub exp_statsn: u32,
    next_itt: u32,
    login_itt: Option<u32>,
    /// Keys the target sent during login (last value wins).
    pub target_keys: Vec<(String, String)>,
    /// Login Response PDUs seen.
    pub login_responses: Vec<RecvPdu>,
    /// HeaderDigest=CRC32C is in force (full feature phase).
    pub header_digest: bool,
    /// DataDigest=CRC32C is in force (full feature phase).
    pub data_digest: bool,
    /// Operational keys to offer instead of [`OPERATIONAL_KEYS`]' values.
    op_overrides: Vec<(String, String)>,
}

impl RawConn {
    /// Connect to `127.0.0.1:port`.
    pub fn connect(port: u16) -> io::Result<RawConn> {
        static N: AtomicU32 = AtomicU32::new(1);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_write_timeout(Some(READ_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let n = N.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let isid = [0x80, 0x5a, (pid >> 8) as u8, pid as u8, (n >> 8) as u8, n as u8];
        Ok(RawConn {
            stream,
            isid,
            tsih: 0,
            cmdsn: 1,
            exp_statsn: 0,
            next_itt: 0x100,
            login_itt: None,
            target_keys: Vec::new(),
            login_responses: Vec::new(),
            header_digest: false,
            data_digest: false,
            op_overrides: Vec::new(),
        })
    }

    /// A fresh initiator task tag.
    pub fn itt(&mut self) -> u32 {
        self.next_itt = self.next_itt.wrapping_add(1);
        self.next_itt
    }

    /// Write raw bytes (hostile tests). Errors are returned: a target that has
    /// already dropped the connection makes writes fail.
    pub fn send_bytes(&mut self, b: &[u8]) -> io::Result<()> {
        self.stream.write_all(b)
    }

    /// Send a BHS (whose DataSegmentLength the caller set) and a data segment,
    /// padded to 4 bytes. The DataSegmentLength field is not checked against
    /// `data`, so hostile tests can lie in it.
    pub fn send_pdu(&mut self, bhs: &Bhs, data: &[u8]) -> io::Result<()> {
        let v = self.frame_pdu(bhs, data);
        self.stream.write_all(&v)
    }

    /// The bytes [`RawConn::send_pdu`] would send: BHS, header digest (if in
    /// force), data, padding, data digest (if in force and there is data).
    /// Digests go least significant byte first (RFC 7143 §13.1 CRC32C, as
    /// libiscsi and Linux send them).
    pub fn frame_pdu(&self, bhs: &Bhs, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(BHS_LEN + 4 + data.len() + 3 + 4);
        v.extend_from_slice(&bhs.0);
        if self.header_digest {
            let hd = crc32c(&bhs.0);
            v.extend_from_slice(&hd.to_le_bytes());
        }
        let data_at = v.len();
        v.extend_from_slice(data);
        v.resize(v.len() + pad_len(data.len()), 0);
        if self.data_digest && !data.is_empty() {
            let dd = crc32c(&v[data_at..]);
            v.extend_from_slice(&dd.to_le_bytes());
        }
        v
    }

    /// Close our sending side (the target sees EOF).
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Read one PDU within `timeout`.
    pub fn read_pdu(&mut self, timeout: Duration) -> ReadOutcome {
        let end = Instant::now() + timeout;
        let mut hdr = [0u8; BHS_LEN];
        match self.read_full(&mut hdr, end) {
            Ok(true) => {}
            Ok(false) => return ReadOutcome::Closed,
            Err(e) => return io_outcome(&e),
        }
        let bhs = Bhs(hdr);
        let mut ahs = vec![0u8; bhs.total_ahs_len()];
        let dlen = bhs.data_len() as usize;
        if dlen > READ_DATA_MAX {
            panic!("target sent a {dlen}-byte data segment: {bhs:?}");
        }
        let mut hd = vec![0u8; if self.header_digest { 4 } else { 0 }];
        let dd_len = if self.data_digest && dlen > 0 { 4 } else { 0 };
        let mut data = vec![0u8; dlen + pad_len(dlen) + dd_len];
        for buf in [&mut ahs, &mut hd, &mut data] {
            match self.read_full(buf, end) {
                Ok(true) => {}
                Ok(false) => return ReadOutcome::Closed,
                Err(e) => return io_outcome(&e),
            }
        }
        if self.header_digest {
            let mut covered = bhs.0.to_vec();
            covered.extend_from_slice(&ahs);
            assert_eq!(hd, crc32c(&covered).to_le_bytes(), "header digest from the target: {bhs:?}");
        }
        if dd_len > 0 {
            let (body, dd) = data.split_at(dlen + pad_len(dlen));
            assert_eq!(dd, crc32c(body).to_le_bytes(), "data digest from the target: {bhs:?}");
        }
        data.truncate(dlen);
        ReadOutcome::Pdu(RecvPdu { bhs, ahs, data })
    }

    /// `Ok(false)` on EOF before the first byte or in the middle.
    fn read_full(&mut self, buf: &mut [u8], end: Instant) -> io::Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut buf[got..]) {
                Ok(0) => return Ok(false),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Read the next PDU, answering target-initiated NOP-In pings on the way;
    /// panics on close or timeout.
    pub fn recv(&mut self) -> RecvPdu {
        match self.recv_outcome(READ_TIMEOUT) {
            ReadOutcome::Pdu(p) => p,
            other => panic!("expected a PDU from the target, got {other:?}"),
        }
    }

    /// Like [`RawConn::recv`] but returns closes and timeouts.
    pub fn recv_outcome(&mut self, timeout: Duration) -> ReadOutcome {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.read_pdu(left) {
                ReadOutcome::Pdu(p) => {
                    if p.opcode() == Opcode::NOP_IN && p.bhs.itt() == 0xffff_ffff {
                        // a target ping: its StatSN is not advanced (RFC 7143 §11.19)
                        let ttt = p.bhs.u32_at(20);
                        if ttt != 0xffff_ffff {
                            let _ = self.send_nop_reply(ttt, p.bhs.u64_at(8));
                        }
                        continue;
                    }
                    return ReadOutcome::Pdu(p);
                }
                other => return other,
            }
        }
    }

    /// Wait up to `timeout` for the target to close the connection, skipping
    /// (and returning) any PDUs it sends first. `Err` lists what came instead
    /// when it stays open.
    pub fn expect_close(&mut self, timeout: Duration) -> Result<Vec<RecvPdu>, Vec<RecvPdu>> {
        let end = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.recv_outcome(left) {
                ReadOutcome::Closed => return Ok(seen),
                ReadOutcome::Pdu(p) => seen.push(p),
                ReadOutcome::Timeout => return Err(seen),
            }
        }
    }

    fn note_statsn(&mut self, p: &RecvPdu) {
        // PDUs that carry StatSN in bytes 24..28 and advance it (RFC 7143 §11).
        let op = p.opcode();
        let carries = matches!(
            op,
            Opcode::SCSI_RESPONSE
                | Opcode::TMF_RESPONSE
                | Opcode::LOGIN_RESPONSE
                | Opcode::TEXT_RESPONSE
                | Opcode::LOGOUT_RESPONSE
                | Opcode::REJECT
                | Opcode::NOP_IN
        ) || (op == Opcode::DATA_IN && p.bhs.flags() & 0x01 != 0);
        let target_ping = op == Opcode::NOP_IN && p.bhs.itt() == 0xffff_ffff;
        if carries && !target_ping {
            self.exp_statsn = p.statsn().wrapping_add(1);
        }
    }

    /// Build a Login Request header (RFC 7143 §11.12).
    pub fn login_bhs(&mut self, csg: u8, nsg: u8, transit: bool, data_len: usize) -> Bhs {
        let mut b = Bhs::default();
        b.0[0] = I | Opcode::LOGIN_REQUEST.0;
        b.0[1] = (if transit { 0x80 } else { 0 }) | (csg & 3) << 2 | if transit { nsg & 3 } else { 0 };
        b.0[2] = 0; // version-max
        b.0[3] = 0; // version-min
        b.set_data_len(u32::try_from(data_len).expect("login data fits"));
        b.0[8..14].copy_from_slice(&self.isid);
        b.put_u16(14, self.tsih);
        // one ITT for every PDU of this login
        let itt = match self.login_itt {
            Some(itt) => itt,
            None => {
                let itt = self.itt();
                self.login_itt = Some(itt);
                itt
            }
        };
        b.put_u32(16, itt);
        b.put_u16(20, 0); // CID
        b.put_u32(24, self.cmdsn);
        b.put_u32(28, self.exp_statsn);
        b
    }

    /// Send one Login Request with `keys` and read what comes back.
    pub fn login_exchange(&mut self, csg: u8, nsg: u8, transit: bool, keys: &[(&str, &str)]) -> ReadOutcome {
        let data = encode_keys(keys);
        let b = self.login_bhs(csg, nsg, transit, data.len());
        if let Err(e) = self.send_pdu(&b, &data) {
            return io_outcome(&e);
        }
        let r = self.recv_outcome(READ_TIMEOUT);
        if let ReadOutcome::Pdu(p) = &r {
            if p.opcode() == Opcode::LOGIN_RESPONSE {
                self.note_statsn(p);
                self.tsih = p.bhs.u16_at(14);
                self.target_keys.extend(p.text_keys());
                self.login_responses.push(p.clone());
            }
        }
        r
    }

    /// Full login: security stage (AuthMethod=None) then operational stage to
    /// full feature phase. `target = None` makes a discovery session.
    pub fn login(&mut self, initiator: &str, target: Option<&str>) -> Result<(), LoginError> {
        self.login_with(initiator, target, &[])
    }

    /// [`RawConn::login`] offering `overrides` in place of the values (or in
    /// addition to the keys) of [`OPERATIONAL_KEYS`], e.g.
    /// `[("InitialR2T", "Yes"), ("ImmediateData", "No")]` or
    /// `[("HeaderDigest", "CRC32C")]`. Digests the target agrees to are used
    /// from the full feature phase on.
    pub fn login_with(
        &mut self,
        initiator: &str,
        target: Option<&str>,
        overrides: &[(&str, &str)],
    ) -> Result<(), LoginError> {
        self.op_overrides = overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut sec: Vec<(&str, &str)> = vec![("InitiatorName", initiator)];
        match target {
            Some(t) => sec.extend([("SessionType", "Normal"), ("TargetName", t)]),
            None => sec.push(("SessionType", "Discovery")),
        }
        sec.push(("AuthMethod", "None"));
        self.login_stages(&sec)
    }

    /// Login with an explicit first-PDU key list (security stage, then the
    /// operational stage with [`OPERATIONAL_KEYS`]).
    pub fn login_stages(&mut self, first: &[(&str, &str)]) -> Result<(), LoginError> {
        // Security stage: CSG 0 -> NSG 1. Bounded: at most 4 exchanges per stage.
        let overrides = self.op_overrides.clone();
        let mut keys: Vec<(&str, &str)> = first.to_vec();
        let mut stage = 0u8;
        for _ in 0..8 {
            let (csg, nsg) = if stage == 0 { (0, 1) } else { (1, 3) };
            let p = match self.login_exchange(csg, nsg, true, &keys) {
                ReadOutcome::Pdu(p) => p,
                ReadOutcome::Closed => return Err(LoginError::Io("connection closed during login".into())),
                ReadOutcome::Timeout => return Err(LoginError::Io("no login response in time".into())),
            };
            if p.opcode() != Opcode::LOGIN_RESPONSE {
                return Err(LoginError::Unexpected(p));
            }
            if p.login_status() != 0 {
                return Err(LoginError::Status(p.login_status(), p));
            }
            let transit = p.bhs.flags() & 0x80 != 0;
            let rsp_nsg = p.bhs.flags() & 3;
            if transit && rsp_nsg == 3 {
                self.header_digest = self.target_key("HeaderDigest") == Some("CRC32C");
                self.data_digest = self.target_key("DataDigest") == Some("CRC32C");
                return Ok(());
            }
            if transit && rsp_nsg == 1 {
                stage = 1;
                keys = OPERATIONAL_KEYS
                    .iter()
                    .map(|&(k, v)| {
                        let o = overrides.iter().find(|(ok, _)| ok == k);
                        (k, o.map_or(v, |(_, ov)| ov.as_str()))
                    })
                    .chain(
                        overrides
                            .iter()
                            .filter(|(k, _)| !OPERATIONAL_KEYS.iter().any(|(ok, _)| ok == k))
                            .map(|(k, v)| (k.as_str(), v.as_str())),
                    )
                    .collect();
            } else {
                // the target wants another exchange in this stage; send nothing new
                keys = Vec::new();
            }
        }
        Err(LoginError::Io("login did not finish in 8 exchanges".into()))
    }

    /// A target key as the target declared/answered it during login.
    pub fn target_key(&self, name: &str) -> Option<&str> {
        self.target_keys.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The target's MaxRecvDataSegmentLength (8192 if it declared none, RFC 7143 §13.12).
    pub fn target_mrdsl(&self) -> u32 {
        self.target_key("MaxRecvDataSegmentLength").and_then(|v| v.parse().ok()).unwrap_or(8192)
    }

    fn negotiated(&self, name: &str, mine: &str) -> String {
        self.target_key(name).unwrap_or(mine).to_string()
    }

    /// A NOP-Out header (not sent).
    pub fn nop_out_bhs(&mut self, itt: u32, ttt: u32, data_len: usize) -> Bhs {
        let mut b = Bhs::default();
        b.0[0] = I | Opcode::NOP_OUT.0;
        b.0[1] = F;
        b.set_data_len(u32::try_from(data_len).expect("fits 24 bits"));
        b.put_u32(16, itt);
        b.put_u32(20, ttt);
        b.put_u32(24, self.cmdsn);
        b.put_u32(28, self.exp_statsn);
        b
    }

    fn send_nop_reply(&mut self, ttt: u32, lun: u64) -> io::Result<()> {
        let mut b = self.nop_out_bhs(0xffff_ffff, ttt, 0);
        b.put_u64(8, lun);
        self.send_pdu(&b, &[])
    }

    /// Ping: NOP-Out with `data`, expect a NOP-In echoing it. Panics otherwise.
    pub fn ping(&mut self, data: &[u8]) {
        let itt = self.itt();
        let b = self.nop_out_bhs(itt, 0xffff_ffff, data.len());
        self.send_pdu(&b, data).expect("send NOP-Out");
        let p = self.recv();
        self.note_statsn(&p);
        assert_eq!(p.opcode(), Opcode::NOP_IN, "answer to NOP-Out: {p:?}");
        assert_eq!(p.bhs.itt(), itt, "NOP-In ITT");
        assert_eq!(p.data, data, "NOP-In echoes the ping data");
    }

    /// A SCSI Command header (not sent). Advances CmdSN.
    pub fn scsi_cmd_bhs(&mut self, lun: u16, cdb: &[u8], read: bool, write: bool, edtl: u32, data_len: usize) -> Bhs {
        assert!(cdb.len() <= 16, "CDBs longer than 16 bytes need an AHS");
        let mut b = Bhs::default();
        b.0[0] = Opcode::SCSI_COMMAND.0;
        b.0[1] = F | if read { 0x40 } else { 0 } | if write { 0x20 } else { 0 } | 1; // ATTR SIMPLE
        b.set_data_len(u32::try_from(data_len).expect("fits 24 bits"));
        b.put_u64(8, Lun::from_index(lun).0);
        let itt = self.itt();
        b.put_u32(16, itt);
        b.put_u32(20, edtl);
        b.put_u32(24, self.cmdsn);
        self.cmdsn = self.cmdsn.wrapping_add(1);
        b.put_u32(28, self.exp_statsn);
        b.0[32..32 + cdb.len()].copy_from_slice(cdb);
        b
    }

    /// Run a SCSI command that reads up to `alloc` bytes (or none).
    pub fn scsi_read(&mut self, lun: u16, cdb: &[u8], alloc: u32) -> ScsiResult {
        let b = self.scsi_cmd_bhs(lun, cdb, alloc > 0, false, alloc, 0);
        let itt = b.itt();
        self.send_pdu(&b, &[]).expect("send SCSI Command");
        self.collect_response(itt, alloc as usize, &[])
    }

    /// Run a SCSI command that writes `data`: immediate data up to
    /// FirstBurstLength/the target's MaxRecvDataSegmentLength when ImmediateData
    /// was negotiated, the rest on R2T.
    pub fn scsi_write(&mut self, lun: u16, cdb: &[u8], data: &[u8]) -> ScsiResult {
        let immediate_ok = self.negotiated("ImmediateData", "Yes") == "Yes";
        let first_burst: usize = self.negotiated("FirstBurstLength", "65536").parse().unwrap_or(65536);
        let mrdsl = self.target_mrdsl() as usize;
        let imm = if immediate_ok { data.len().min(first_burst).min(mrdsl) } else { 0 };
        let edtl = u32::try_from(data.len()).expect("fits u32");
        let b = self.scsi_cmd_bhs(lun, cdb, false, true, edtl, imm);
        let itt = b.itt();
        self.send_pdu(&b, &data[..imm]).expect("send SCSI Command");
        self.collect_response(itt, 0, data)
    }

    /// Like [`RawConn::scsi_read`], but a connection that closes or times out
    /// before the command completes is an `Err` (with what happened) instead
    /// of a panic; for tests that kill the target under load. Protocol
    /// violations still panic.
    pub fn try_scsi_read(&mut self, lun: u16, cdb: &[u8], alloc: u32) -> Result<ScsiResult, String> {
        let b = self.scsi_cmd_bhs(lun, cdb, alloc > 0, false, alloc, 0);
        let itt = b.itt();
        self.send_pdu(&b, &[]).map_err(|e| format!("send SCSI Command: {e}"))?;
        self.try_collect_response(itt, alloc as usize, &[])
    }

    /// Like [`RawConn::scsi_write`], but a connection that closes or times
    /// out before the command completes is an `Err` instead of a panic (the
    /// write may or may not have reached the medium). Protocol violations
    /// still panic.
    pub fn try_scsi_write(&mut self, lun: u16, cdb: &[u8], data: &[u8]) -> Result<ScsiResult, String> {
        let immediate_ok = self.negotiated("ImmediateData", "Yes") == "Yes";
        let first_burst: usize = self.negotiated("FirstBurstLength", "65536").parse().unwrap_or(65536);
        let mrdsl = self.target_mrdsl() as usize;
        let imm = if immediate_ok { data.len().min(first_burst).min(mrdsl) } else { 0 };
        let edtl = u32::try_from(data.len()).expect("fits u32");
        let b = self.scsi_cmd_bhs(lun, cdb, false, true, edtl, imm);
        let itt = b.itt();
        self.send_pdu(&b, &data[..imm]).map_err(|e| format!("send SCSI Command: {e}"))?;
        self.try_collect_response(itt, 0, data)
    }

    /// Gather Data-In / answer R2Ts until the SCSI Response (or Data-In with S).
    fn collect_response(&mut self, itt: u32, alloc: usize, out: &[u8]) -> ScsiResult {
        match self.try_collect_response(itt, alloc, out) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`RawConn::collect_response`] with closes, timeouts and send failures
    /// returned.
    fn try_collect_response(&mut self, itt: u32, alloc: usize, out: &[u8]) -> Result<ScsiResult, String> {
        let mut res = ScsiResult { data: vec![0; alloc], ..Default::default() };
        let mut got = 0usize;
        let mut data_sn_out = 0u32;
        for _ in 0..100_000 {
            let p = match self.recv_outcome(READ_TIMEOUT) {
                ReadOutcome::Pdu(p) => p,
                other => return Err(format!("expected a PDU from the target, got {other:?}")),
            };
            self.note_statsn(&p);
            let op = p.opcode();
            if op == Opcode::REJECT {
                panic!("target rejected our SCSI command: reason {:#04x} {p:?}", p.reject_reason());
            }
            assert_eq!(p.bhs.itt(), itt, "PDU for another task: {p:?}");
            match op {
                Opcode::DATA_IN => {
                    let off = p.bhs.u32_at(40) as usize;
                    let end = off + p.data.len();
                    assert!(end <= alloc, "Data-In past the allocation length: {off}+{}", p.data.len());
                    res.data[off..end].copy_from_slice(&p.data);
                    got = got.max(end);
                    if p.bhs.flags() & 0x01 != 0 {
                        res.status = p.bhs.0[3];
                        res.residual = p.bhs.u32_at(44);
                        res.data.truncate(got);
                        return Ok(res);
                    }
                }
                Opcode::R2T => {
                    let ttt = p.bhs.u32_at(20);
                    let off = p.bhs.u32_at(40) as usize;
                    let len = p.bhs.u32_at(44) as usize;
                    assert!(off + len <= out.len(), "R2T beyond our data: {off}+{len}");
                    let mrdsl = self.target_mrdsl() as usize;
                    let mut pos = off;
                    while pos < off + len {
                        let n = (off + len - pos).min(mrdsl);
                        let mut d = Bhs::default();
                        d.0[0] = Opcode::DATA_OUT.0;
                        d.0[1] = if pos + n == off + len { F } else { 0 };
                        d.set_data_len(u32::try_from(n).expect("fits"));
                        d.put_u64(8, p.bhs.u64_at(8));
                        d.put_u32(16, itt);
                        d.put_u32(20, ttt);
                        d.put_u32(28, self.exp_statsn);
                        d.put_u32(36, data_sn_out);
                        d.put_u32(40, u32::try_from(pos).expect("fits"));
                        data_sn_out += 1;
                        self.send_pdu(&d, &out[pos..pos + n]).map_err(|e| format!("send Data-Out: {e}"))?;
                        pos += n;
                    }
                    data_sn_out = 0; // DataSN restarts for each R2T's sequence
                }
                Opcode::SCSI_RESPONSE => {
                    res.response = p.bhs.0[2];
                    res.status = p.bhs.0[3];
                    res.residual = p.bhs.u32_at(44);
                    if p.data.len() >= 2 {
                        let sl = usize::from(u16::from_be_bytes([p.data[0], p.data[1]]));
                        res.sense = p.data[2..(2 + sl).min(p.data.len())].to_vec();
                    }
                    res.data.truncate(got);
                    return Ok(res);
                }
                other => panic!("unexpected {other:?} while waiting for a SCSI response: {p:?}"),
            }
        }
        panic!("no SCSI response after 100000 PDUs");
    }

    /// Send TEST UNIT READY until it no longer reports UNIT ATTENTION (a new
    /// I_T nexus usually starts with one, SAM-5 §5.14). Returns the last result.
    pub fn clear_unit_attention(&mut self, lun: u16) -> ScsiResult {
        let mut r = ScsiResult::default();
        for _ in 0..4 {
            r = self.scsi_read(lun, &cdb::test_unit_ready(), 0);
            if !(r.status == 2 && r.sense_key() == 6) {
                break;
            }
        }
        r
    }

    /// Text Request `SendTargets=All` (discovery); returns the response keys.
    pub fn send_targets(&mut self) -> Vec<(String, String)> {
        let data = encode_keys(&[("SendTargets", "All")]);
        let mut b = Bhs::default();
        b.0[0] = I | Opcode::TEXT_REQUEST.0;
        b.0[1] = F;
        b.set_data_len(u32::try_from(data.len()).expect("fits"));
        let itt = self.itt();
        b.put_u32(16, itt);
        b.put_u32(20, 0xffff_ffff);
        b.put_u32(24, self.cmdsn);
        b.put_u32(28, self.exp_statsn);
        self.send_pdu(&b, &data).expect("send Text Request");
        let p = self.recv();
        self.note_statsn(&p);
        assert_eq!(p.opcode(), Opcode::TEXT_RESPONSE, "answer to SendTargets: {p:?}");
        assert!(p.bhs.flags() & 0x40 == 0, "SendTargets answer continues (C bit); not handled here");
        p.text_keys()
    }

    /// Logout (close the session) and expect a Logout Response with response 0.
    pub fn logout(&mut self) {
        let mut b = Bhs::default();
        b.0[0] = I | Opcode::LOGOUT_REQUEST.0;
        b.0[1] = F; // reason 0: close the session
        let itt = self.itt();
        b.put_u32(16, itt);
        b.put_u32(24, self.cmdsn);
        b.put_u32(28, self.exp_statsn);
        self.send_pdu(&b, &[]).expect("send Logout");
        let p = self.recv();
        self.note_statsn(&p);
        assert_eq!(p.opcode(), Opcode::LOGOUT_RESPONSE, "answer to Logout: {p:?}");
        assert_eq!(p.bhs.0[2], 0, "logout response code");
    }
}

fn io_outcome(e: &io::Error) -> ReadOutcome {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ReadOutcome::Timeout,
        _ => ReadOutcome::Closed, // reset, broken pipe, aborted
    }
}

/// CDB builders for the few commands the tests send.
pub mod cdb {
    /// TEST UNIT READY.
    pub fn test_unit_ready() -> [u8; 6] {
        [0; 6]
    }
    /// Standard INQUIRY, or a VPD page when `evpd`.
    pub fn inquiry(evpd: bool, page: u8, alloc: u16) -> [u8; 6] {
        let a = alloc.to_be_bytes();
        [0x12, u8::from(evpd), page, a[0], a[1], 0]
    }
    /// READ CAPACITY(10).
    pub fn read_capacity10() -> [u8; 10] {
        [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    }
    /// READ(10).
    pub fn read10(lba: u32, blocks: u16) -> [u8; 10] {
        let l = lba.to_be_bytes();
        let n = blocks.to_be_bytes();
        [0x28, 0, l[0], l[1], l[2], l[3], 0, n[0], n[1], 0]
    }
    /// WRITE(10).
    pub fn write10(lba: u32, blocks: u16) -> [u8; 10] {
        let l = lba.to_be_bytes();
        let n = blocks.to_be_bytes();
        [0x2a, 0, l[0], l[1], l[2], l[3], 0, n[0], n[1], 0]
    }
    /// WRITE(10) with FUA (force unit access: durable before GOOD status).
    pub fn write10_fua(lba: u32, blocks: u16) -> [u8; 10] {
        let mut c = write10(lba, blocks);
        c[1] |= 0x08;
        c
    }
    /// SYNCHRONIZE CACHE(10); `blocks` 0 means to the end of the medium.
    pub fn synchronize_cache10(lba: u32, blocks: u16) -> [u8; 10] {
        let l = lba.to_be_bytes();
        let n = blocks.to_be_bytes();
        [0x35, 0, l[0], l[1], l[2], l[3], 0, n[0], n[1], 0]
    }
    /// SYNCHRONIZE CACHE(16); `blocks` 0 means to the end of the medium.
    pub fn synchronize_cache16(lba: u64, blocks: u32) -> [u8; 16] {
        let mut c = [0u8; 16];
        c[0] = 0x91;
        c[2..10].copy_from_slice(&lba.to_be_bytes());
        c[10..14].copy_from_slice(&blocks.to_be_bytes());
        c
    }
    /// MODE SENSE(6) of the current values of `page` (DBD set: no block descriptors).
    pub fn mode_sense6(page: u8, alloc: u8) -> [u8; 6] {
        [0x1a, 0x08, page & 0x3f, 0, alloc, 0]
    }
}

/// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit: slow,
/// but independent of the target's table-driven implementation.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32c_matches_rfc_3720_b4() {
        // RFC 3720 Appendix B.4: 32 bytes of zeros -> aa 36 91 8a (LSB first).
        assert_eq!(super::crc32c(&[0u8; 32]).to_le_bytes(), [0xaa, 0x36, 0x91, 0x8a]);
        // 32 bytes of 0xff -> 43 ab a8 62.
        assert_eq!(super::crc32c(&[0xffu8; 32]).to_le_bytes(), [0x43, 0xab, 0xa8, 0x62]);
    }
}
