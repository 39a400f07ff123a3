//! The 48-byte Basic Header Segment (RFC 7143 §11.2): offsets, the opcode
//! newtype, and a bounds-checked view used by every PDU family.

use core::fmt;

/// Length of the BHS in bytes.
pub const BHS_LEN: usize = 48;

/// Byte 0 bit 6: immediate delivery (initiator opcodes only).
pub const FLAG_IMMEDIATE: u8 = 0x40;
/// Byte 1 bit 7: the F (final) bit for most PDUs.
pub const FLAG_FINAL: u8 = 0x80;

/// Byte 0 bit 7: reserved in RFC 7143 (a "retry" bit in early drafts); ignored on receive.
pub const FLAG_BYTE0_RESERVED: u8 = 0x80;
/// Byte 0 bits 0-5: the opcode (RFC 7143 §11.2.1.2).
pub const OPCODE_MASK: u8 = 0x3f;

// --- Common BHS layout (RFC 7143 §11.2.1) -------------------------------

/// Offset of byte 0: I bit and opcode (RFC 7143 §11.2.1).
pub const OFF_OPCODE: usize = 0;
/// Offset of byte 1: the F bit and opcode-specific flags (RFC 7143 §11.2.1).
pub const OFF_FLAGS: usize = 1;
/// Offset of TotalAHSLength (in 4-byte words) (RFC 7143 §11.2.1).
pub const OFF_TOTAL_AHS: usize = 4;
/// Offset of the 3-byte DataSegmentLength (RFC 7143 §11.2.1).
pub const OFF_DATA_LEN: usize = 5;
/// Offset of the LUN (or opcode-specific field) (RFC 7143 §11.2.1).
pub const OFF_LUN: usize = 8;
/// Offset of the Initiator Task Tag (RFC 7143 §11.2.1).
pub const OFF_ITT: usize = 16;

// --- Bytes 2 and 3 --------------------------------------------------------

/// Response (SCSI Response §11.4, TMF Response §11.6, Logout Response §11.15; RFC 7143).
pub const OFF_RESPONSE: usize = 2;
/// Reject reason (RFC 7143 §11.17).
pub const OFF_REJECT_REASON: usize = 2;
/// Version-max (Login Request §11.12, Login Response §11.13; RFC 7143).
pub const OFF_VERSION_MAX: usize = 2;
/// Version-min (Login Request, RFC 7143 §11.12).
pub const OFF_VERSION_MIN: usize = 3;
/// Version-active (Login Response, RFC 7143 §11.13).
pub const OFF_VERSION_ACTIVE: usize = 3;
/// SCSI status (SCSI Response §11.4, Data-In §11.7; RFC 7143).
pub const OFF_STATUS: usize = 3;

// --- Bytes 8..16 (LUN or opcode-specific) ---------------------------------

/// ISID, 6 bytes (Login Request/Response, RFC 7143 §11.12).
pub const OFF_ISID: usize = 8;
/// Length of the ISID.
pub const ISID_LEN: usize = 6;
/// TSIH (Login Request/Response, RFC 7143 §11.12).
pub const OFF_TSIH: usize = 14;

// --- Bytes 20..24 ---------------------------------------------------------

/// Target Transfer Tag (Data-In/Out §11.7, R2T §11.8, Text §11.10/§11.11, SNACK §11.16, NOP §11.18/§11.19; RFC 7143).
pub const OFF_TTT: usize = 20;
/// Expected Data Transfer Length (SCSI Command, RFC 7143 §11.3).
pub const OFF_EDTL: usize = 20;
/// Referenced Task Tag (TMF Request, RFC 7143 §11.5).
pub const OFF_RTT: usize = 20;
/// SNACK Tag (SCSI Response, RFC 7143 §11.4).
pub const OFF_SNACK_TAG: usize = 20;
/// CID (Login Request §11.12, Logout Request §11.14; RFC 7143).
pub const OFF_CID: usize = 20;

// --- Bytes 24..36: sequence numbers ---------------------------------------

/// CmdSN (initiator PDUs, e.g. RFC 7143 §11.3).
pub const OFF_CMDSN: usize = 24;
/// StatSN (target PDUs, e.g. RFC 7143 §11.4).
pub const OFF_STATSN: usize = 24;
/// ExpStatSN (initiator PDUs, e.g. RFC 7143 §11.3).
pub const OFF_EXPSTATSN: usize = 28;
/// ExpCmdSN (target PDUs, e.g. RFC 7143 §11.4).
pub const OFF_EXPCMDSN: usize = 28;
/// MaxCmdSN (target PDUs, e.g. RFC 7143 §11.4).
pub const OFF_MAXCMDSN: usize = 32;
/// RefCmdSN (TMF Request, RFC 7143 §11.5).
pub const OFF_REFCMDSN: usize = 32;
/// The first 16 CDB bytes (SCSI Command, RFC 7143 §11.3).
pub const OFF_CDB: usize = 32;
/// Length of the CDB field in the BHS.
pub const CDB_LEN: usize = 16;

// --- Bytes 36..48 ---------------------------------------------------------

/// ExpDataSN (TMF Request §11.5, SCSI Response §11.4; RFC 7143).
pub const OFF_EXPDATASN: usize = 36;
/// DataSN (Data-In/Out §11.7, Reject §11.17; RFC 7143).
pub const OFF_DATASN: usize = 36;
/// R2TSN (R2T, RFC 7143 §11.8).
pub const OFF_R2TSN: usize = 36;
/// Status-Class (Login Response, RFC 7143 §11.13); Status-Detail follows.
pub const OFF_LOGIN_STATUS: usize = 36;
/// AsyncEvent (RFC 7143 §11.9).
pub const OFF_ASYNC_EVENT: usize = 36;
/// AsyncVCode (RFC 7143 §11.9).
pub const OFF_ASYNC_VCODE: usize = 37;
/// Parameter1 (Asynchronous Message, RFC 7143 §11.9).
pub const OFF_ASYNC_PARAM1: usize = 38;
/// Parameter2 (Asynchronous Message, RFC 7143 §11.9).
pub const OFF_ASYNC_PARAM2: usize = 40;
/// Parameter3 (Asynchronous Message, RFC 7143 §11.9).
pub const OFF_ASYNC_PARAM3: usize = 42;
/// Buffer Offset (Data-In/Out §11.7, R2T §11.8; RFC 7143).
pub const OFF_BUFFER_OFFSET: usize = 40;
/// Bidirectional Read Residual Count (SCSI Response, RFC 7143 §11.4).
pub const OFF_BIDI_RESIDUAL: usize = 40;
/// BegRun (SNACK, RFC 7143 §11.16).
pub const OFF_BEGRUN: usize = 40;
/// Time2Wait (Logout Response, RFC 7143 §11.15).
pub const OFF_TIME2WAIT: usize = 40;
/// Time2Retain (Logout Response, RFC 7143 §11.15).
pub const OFF_TIME2RETAIN: usize = 42;
/// Residual Count (SCSI Response §11.4, Data-In §11.7; RFC 7143).
pub const OFF_RESIDUAL: usize = 44;
/// Desired Data Transfer Length (R2T, RFC 7143 §11.8).
pub const OFF_DESIRED_LEN: usize = 44;
/// RunLength (SNACK, RFC 7143 §11.16).
pub const OFF_RUNLENGTH: usize = 44;

// --- Byte 1 flags, per PDU family ------------------------------------------

/// SCSI Command R bit (RFC 7143 §11.3).
pub const FLAG_CMD_READ: u8 = 0x40;
/// SCSI Command W bit (RFC 7143 §11.3).
pub const FLAG_CMD_WRITE: u8 = 0x20;
/// SCSI Command ATTR field, bits 5-7 of byte 1 (RFC 7143 §11.3).
pub const CMD_ATTR_MASK: u8 = 0x07;
/// SCSI Response o bit: bidirectional read residual overflow (RFC 7143 §11.4).
pub const FLAG_RESP_BIDI_OVERFLOW: u8 = 0x10;
/// SCSI Response u bit: bidirectional read residual underflow (RFC 7143 §11.4).
pub const FLAG_RESP_BIDI_UNDERFLOW: u8 = 0x08;
/// O bit: residual overflow (SCSI Response §11.4, Data-In §11.7; RFC 7143).
pub const FLAG_OVERFLOW: u8 = 0x04;
/// U bit: residual underflow (SCSI Response §11.4, Data-In §11.7; RFC 7143).
pub const FLAG_UNDERFLOW: u8 = 0x02;
/// Data-In A bit: acknowledge (RFC 7143 §11.7).
pub const FLAG_DATA_ACK: u8 = 0x40;
/// Data-In S bit: status present (RFC 7143 §11.7).
pub const FLAG_DATA_STATUS: u8 = 0x01;
/// Login T bit: transit (RFC 7143 §11.12).
pub const FLAG_LOGIN_TRANSIT: u8 = 0x80;
/// C bit: text continues (Login §11.12, Text §11.10/§11.11; RFC 7143).
pub const FLAG_CONTINUE: u8 = 0x40;
/// Login CSG mask, bits 4-5 of byte 1 (RFC 7143 §11.12).
pub const LOGIN_CSG_MASK: u8 = 0x0c;
/// Login CSG shift.
pub const LOGIN_CSG_SHIFT: u32 = 2;
/// Login NSG mask, bits 6-7 of byte 1 (RFC 7143 §11.12).
pub const LOGIN_NSG_MASK: u8 = 0x03;
/// The 7-bit field in byte 1 of TMF Request (function, RFC 7143 §11.5) and Logout
/// Request (reason, RFC 7143 §11.14); bit 7 is sent as 1.
pub const LOW7_MASK: u8 = 0x7f;
/// SNACK Type, bits 4-7 of byte 1 (RFC 7143 §11.16).
pub const SNACK_TYPE_MASK: u8 = 0x0f;

// --- Additional Header Segments (RFC 7143 §11.2.2) ------------------------

/// Bytes before the AHS-specific field: AHSLength (2) and AHSType (1).
pub const AHS_HEADER_LEN: usize = 3;
/// AHSType bits 2-7: the AHS code (RFC 7143 §11.2.2.1).
pub const AHS_CODE_MASK: u8 = 0x3f;
/// AHS code 1: Extended CDB (RFC 7143 §11.2.2.3).
pub const AHS_TYPE_EXT_CDB: u8 = 1;
/// AHS code 2: Expected Bidirectional Read Data Length (RFC 7143 §11.2.2.4).
pub const AHS_TYPE_BIDI_READ_LEN: u8 = 2;
/// AHSLength of the bidirectional read length AHS: 1 reserved byte + 4 (RFC 7143 §11.2.2.4).
pub const AHS_BIDI_LEN: u16 = 5;
/// Largest CDB (SPC-4 §4.2.2: 260 bytes), so at most 244 bytes travel in an Extended CDB AHS.
pub const CDB_MAX_LEN: usize = 260;
/// Largest number of CDB bytes beyond the first 16 ([`CDB_MAX_LEN`] - [`CDB_LEN`]).
pub const EXT_CDB_MAX_LEN: usize = CDB_MAX_LEN - CDB_LEN;
/// Largest AHS area: TotalAHSLength is one byte of 4-byte words (RFC 7143 §11.2.1).
pub const AHS_MAX_LEN: usize = 255 * 4;

/// Length of a header or data digest (CRC32C, RFC 7143 §13.1).
pub const DIGEST_LEN: usize = 4;
/// Largest DataSegmentLength the 24-bit field can carry (RFC 7143 §11.2.1).
pub const DATA_LEN_MAX: u32 = (1 << 24) - 1;

/// An iSCSI opcode (RFC 7143 §11.2.1.2), 6 bits. Unknown values round-trip.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Opcode(pub u8);

impl Opcode {
    /// NOP-Out.
    pub const NOP_OUT: Opcode = Opcode(0x00);
    /// SCSI Command.
    pub const SCSI_COMMAND: Opcode = Opcode(0x01);
    /// SCSI Task Management Function Request.
    pub const TMF_REQUEST: Opcode = Opcode(0x02);
    /// Login Request.
    pub const LOGIN_REQUEST: Opcode = Opcode(0x03);
    /// Text Request.
    pub const TEXT_REQUEST: Opcode = Opcode(0x04);
    /// SCSI Data-Out.
    pub const DATA_OUT: Opcode = Opcode(0x05);
    /// Logout Request.
    pub const LOGOUT_REQUEST: Opcode = Opcode(0x06);
    /// SNACK Request.
    pub const SNACK: Opcode = Opcode(0x10);
    /// NOP-In.
    pub const NOP_IN: Opcode = Opcode(0x20);
    /// SCSI Response.
    pub const SCSI_RESPONSE: Opcode = Opcode(0x21);
    /// SCSI Task Management Function Response.
    pub const TMF_RESPONSE: Opcode = Opcode(0x22);
    /// Login Response.
    pub const LOGIN_RESPONSE: Opcode = Opcode(0x23);
    /// Text Response.
    pub const TEXT_RESPONSE: Opcode = Opcode(0x24);
    /// SCSI Data-In.
    pub const DATA_IN: Opcode = Opcode(0x25);
    /// Logout Response.
    pub const LOGOUT_RESPONSE: Opcode = Opcode(0x26);
    /// Ready To Transfer.
    pub const R2T: Opcode = Opcode(0x31);
    /// Asynchronous Message.
    pub const ASYNC_MESSAGE: Opcode = Opcode(0x32);
    /// Reject.
    pub const REJECT: Opcode = Opcode(0x3f);

    /// The name of a known opcode.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::NOP_OUT => "NOP-Out",
            Self::SCSI_COMMAND => "SCSI-Command",
            Self::TMF_REQUEST => "TMF-Request",
            Self::LOGIN_REQUEST => "Login-Request",
            Self::TEXT_REQUEST => "Text-Request",
            Self::DATA_OUT => "Data-Out",
            Self::LOGOUT_REQUEST => "Logout-Request",
            Self::SNACK => "SNACK",
            Self::NOP_IN => "NOP-In",
            Self::SCSI_RESPONSE => "SCSI-Response",
            Self::TMF_RESPONSE => "TMF-Response",
            Self::LOGIN_RESPONSE => "Login-Response",
            Self::TEXT_RESPONSE => "Text-Response",
            Self::DATA_IN => "Data-In",
            Self::LOGOUT_RESPONSE => "Logout-Response",
            Self::R2T => "R2T",
            Self::ASYNC_MESSAGE => "Async-Message",
            Self::REJECT => "Reject",
            _ => return None,
        })
    }

    /// Sent by initiators (RFC 7143 §11.2.1.2: 0x00-0x1f).
    pub fn is_initiator(self) -> bool {
        self.0 < 0x20
    }
}

impl fmt::Debug for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n}"),
            None => write!(f, "Opcode({:#04x})", self.0),
        }
    }
}

/// A Basic Header Segment with bounds-checked big-endian accessors.
#[derive(Clone, PartialEq, Eq)]
pub struct Bhs(pub [u8; BHS_LEN]);

impl Default for Bhs {
    fn default() -> Self {
        Bhs([0; BHS_LEN])
    }
}

impl fmt::Debug for Bhs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bhs({:?}, ", self.opcode())?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl Bhs {
    /// From a slice of at least 48 bytes (`None` if shorter).
    pub fn from_slice(b: &[u8]) -> Option<Bhs> {
        let arr: [u8; BHS_LEN] = b.get(..BHS_LEN)?.try_into().ok()?;
        Some(Bhs(arr))
    }
    /// Opcode (low 6 bits of byte 0).
    pub fn opcode(&self) -> Opcode {
        Opcode(self.0[0] & 0x3f)
    }
    /// Set the opcode, keeping the I bit.
    pub fn set_opcode(&mut self, op: Opcode) {
        self.0[0] = (self.0[0] & FLAG_IMMEDIATE) | (op.0 & 0x3f);
    }
    /// I bit.
    pub fn immediate(&self) -> bool {
        self.0[0] & FLAG_IMMEDIATE != 0
    }
    /// Set the I bit.
    pub fn set_immediate(&mut self, v: bool) {
        if v {
            self.0[0] |= FLAG_IMMEDIATE;
        } else {
            self.0[0] &= !FLAG_IMMEDIATE;
        }
    }
    /// Byte 1 (flags).
    pub fn flags(&self) -> u8 {
        self.0[1]
    }
    /// TotalAHSLength in bytes (the field counts 4-byte words).
    pub fn total_ahs_len(&self) -> usize {
        usize::from(self.0[OFF_TOTAL_AHS]) * 4
    }
    /// Set TotalAHSLength from a byte count (must be a multiple of 4, at most 1020).
    pub fn set_total_ahs_len(&mut self, bytes: usize) {
        // `& 3` rather than `% 4`: `is_multiple_of` is newer than the workspace MSRV (1.80).
        assert!(bytes & 3 == 0 && bytes <= AHS_MAX_LEN, "AHS length {bytes}");
        self.0[OFF_TOTAL_AHS] = (bytes / 4) as u8;
    }
    /// DataSegmentLength (24 bits, without padding).
    pub fn data_len(&self) -> u32 {
        u32::from_be_bytes([0, self.0[5], self.0[6], self.0[7]])
    }
    /// Set DataSegmentLength (must fit 24 bits).
    pub fn set_data_len(&mut self, len: u32) {
        assert!(len < 1 << 24, "data segment length {len}");
        let b = len.to_be_bytes();
        self.0[5..8].copy_from_slice(&b[1..]);
    }
    /// The `N` bytes at `off`. Offsets are the constants of this module; one
    /// past the 48 bytes is a bug of ours (debug assertion) and reads as zeros.
    #[inline]
    fn field<const N: usize>(&self, off: usize) -> [u8; N] {
        debug_assert!(off + N <= BHS_LEN, "BHS field {off}+{N}");
        self.0.get(off..).and_then(|b| b.first_chunk::<N>()).copied().unwrap_or([0; N])
    }
    /// Store `v` at `off` (see [`Self::field`]; out of range stores nothing).
    #[inline]
    fn put_field<const N: usize>(&mut self, off: usize, v: [u8; N]) {
        debug_assert!(off + N <= BHS_LEN, "BHS field {off}+{N}");
        if let Some(b) = self.0.get_mut(off..).and_then(|b| b.first_chunk_mut::<N>()) {
            *b = v;
        }
    }
    /// Big-endian u16 at `off`.
    pub fn u16_at(&self, off: usize) -> u16 {
        u16::from_be_bytes(self.field(off))
    }
    /// Big-endian u32 at `off`.
    pub fn u32_at(&self, off: usize) -> u32 {
        u32::from_be_bytes(self.field(off))
    }
    /// Big-endian u64 at `off`.
    pub fn u64_at(&self, off: usize) -> u64 {
        u64::from_be_bytes(self.field(off))
    }
    /// Store a big-endian u16 at `off`.
    pub fn put_u16(&mut self, off: usize, v: u16) {
        self.put_field(off, v.to_be_bytes());
    }
    /// Store a big-endian u32 at `off`.
    pub fn put_u32(&mut self, off: usize, v: u32) {
        self.put_field(off, v.to_be_bytes());
    }
    /// Store a big-endian u64 at `off`.
    pub fn put_u64(&mut self, off: usize, v: u64) {
        self.put_field(off, v.to_be_bytes());
    }
    /// The Initiator Task Tag (bytes 16..20), common to every PDU.
    pub fn itt(&self) -> u32 {
        self.u32_at(OFF_ITT)
    }
    /// Byte at `off`.
    pub fn u8_at(&self, off: usize) -> u8 {
        let [b] = self.field(off);
        b
    }
    /// Store a byte at `off`.
    pub fn put_u8(&mut self, off: usize, v: u8) {
        self.put_field(off, [v]);
    }
    /// Whether any bit of `mask` is set in byte 1 (the flags byte).
    pub fn flag(&self, mask: u8) -> bool {
        self.0[OFF_FLAGS] & mask != 0
    }
    /// Set or clear the bits of `mask` in byte 1 (the flags byte).
    pub fn set_flag(&mut self, mask: u8, v: bool) {
        if v {
            self.0[OFF_FLAGS] |= mask;
        } else {
            self.0[OFF_FLAGS] &= !mask;
        }
    }
    /// The 8 bytes at `off` (a LUN).
    pub fn bytes8_at(&self, off: usize) -> [u8; 8] {
        self.field(off)
    }
}

/// Bytes of padding after a data segment of `len` bytes (RFC 7143 §11.2.4).
pub fn pad_len(len: usize) -> usize {
    (4 - len % 4) % 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_fit_in_the_bhs() {
        // Every multi-byte field ends inside the 48 bytes.
        for (off, len) in [
            (OFF_ITT, 4),
            (OFF_TTT, 4),
            (OFF_ISID, ISID_LEN),
            (OFF_TSIH, 2),
            (OFF_CDB, CDB_LEN),
            (OFF_RESIDUAL, 4),
            (OFF_ASYNC_PARAM3, 2),
            (OFF_TIME2RETAIN, 2),
        ] {
            assert!(off + len <= BHS_LEN);
        }
        assert_eq!(OFF_ISID + ISID_LEN, OFF_TSIH);
        assert_eq!(OFF_CDB + CDB_LEN, BHS_LEN);
    }

    #[test]
    fn lengths_and_flags() {
        let mut b = Bhs::default();
        b.set_data_len(0x01_0203);
        assert_eq!(&b.0[5..8], &[1, 2, 3]);
        assert_eq!(b.data_len(), 0x01_0203);
        b.set_total_ahs_len(8);
        assert_eq!(b.0[4], 2);
        assert_eq!(b.total_ahs_len(), 8);
        b.set_opcode(Opcode::SCSI_COMMAND);
        b.set_immediate(true);
        assert_eq!(b.0[0], 0x41);
        b.set_opcode(Opcode::REJECT);
        assert_eq!(b.0[0], 0x7f);
        b.set_flag(FLAG_FINAL | FLAG_CMD_READ, true);
        assert_eq!(b.0[1], 0xc0);
        b.set_flag(FLAG_CMD_READ, false);
        assert!(b.flag(FLAG_FINAL) && !b.flag(FLAG_CMD_READ));
        assert_eq!(pad_len(0), 0);
        assert_eq!(pad_len(1), 3);
        assert_eq!(pad_len(4), 0);
        assert_eq!(pad_len(7), 1);
    }
}
