//! The 48-byte Basic Header Segment (RFC 7143 §11.2): offsets, the opcode
//! newtype, and a bounds-checked view used by every PDU family.

use core::fmt;

/// Length of the BHS in bytes.
pub const BHS_LEN: usize = 48;

/// Byte 0 bit 6: immediate delivery (initiator opcodes only).
pub const FLAG_IMMEDIATE: u8 = 0x40;
/// Byte 1 bit 7: the F (final) bit for most PDUs.
pub const FLAG_FINAL: u8 = 0x80;

/// Offset of TotalAHSLength (in 4-byte words).
pub const OFF_TOTAL_AHS: usize = 4;
/// Offset of the 3-byte DataSegmentLength.
pub const OFF_DATA_LEN: usize = 5;
/// Offset of the LUN (or opcode-specific field).
pub const OFF_LUN: usize = 8;
/// Offset of the Initiator Task Tag.
pub const OFF_ITT: usize = 16;

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
        assert!(bytes % 4 == 0 && bytes <= 1020, "AHS length {bytes}");
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
    /// Big-endian u16 at `off`.
    pub fn u16_at(&self, off: usize) -> u16 {
        u16::from_be_bytes([self.0[off], self.0[off + 1]])
    }
    /// Big-endian u32 at `off`.
    pub fn u32_at(&self, off: usize) -> u32 {
        u32::from_be_bytes([self.0[off], self.0[off + 1], self.0[off + 2], self.0[off + 3]])
    }
    /// Big-endian u64 at `off`.
    pub fn u64_at(&self, off: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[off..off + 8]);
        u64::from_be_bytes(b)
    }
    /// Store a big-endian u16 at `off`.
    pub fn put_u16(&mut self, off: usize, v: u16) {
        self.0[off..off + 2].copy_from_slice(&v.to_be_bytes());
    }
    /// Store a big-endian u32 at `off`.
    pub fn put_u32(&mut self, off: usize, v: u32) {
        self.0[off..off + 4].copy_from_slice(&v.to_be_bytes());
    }
    /// Store a big-endian u64 at `off`.
    pub fn put_u64(&mut self, off: usize, v: u64) {
        self.0[off..off + 8].copy_from_slice(&v.to_be_bytes());
    }
    /// The Initiator Task Tag (bytes 16..20), common to every PDU.
    pub fn itt(&self) -> u32 {
        self.u32_at(OFF_ITT)
    }
}

/// Bytes of padding after a data segment of `len` bytes (RFC 7143 §11.2.3).
pub fn pad_len(len: usize) -> usize {
    (4 - len % 4) % 4
}
