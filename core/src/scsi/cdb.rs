//! CDB decoding (SPC-4 §4.2): operation codes, CDB length by group code,
//! bounds-checked big-endian field readers, and the LBA / transfer-length
//! layout shared by the SBC-4 medium-access commands.
//!
//! Every reader here returns a value for any input: a field beyond the end
//! of the CDB reads as zero. Callers check [`group_len`] against the CDB
//! length first, so that never matters for a well-formed dispatch; it only
//! guarantees that no CDB byte sequence can panic.

use core::fmt;

/// A SCSI operation code (SPC-4 §4.2.5.1), with named constants for the
/// ones SCSI emulation knows. Unknown values round-trip.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScsiOpcode(pub u8);

macro_rules! opcodes {
    ($($(#[$doc:meta])* $name:ident = $val:expr;)*) => {
        impl ScsiOpcode {
            $($(#[$doc])* pub const $name: ScsiOpcode = ScsiOpcode($val);)*

            /// The constant's name for a known operation code.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

opcodes! {
    /// TEST UNIT READY (SPC-4).
    TEST_UNIT_READY = 0x00;
    /// REQUEST SENSE (SPC-4).
    REQUEST_SENSE = 0x03;
    /// READ(6) (SBC-4).
    READ_6 = 0x08;
    /// WRITE(6) (SBC-4).
    WRITE_6 = 0x0A;
    /// INQUIRY (SPC-4 §6.6).
    INQUIRY = 0x12;
    /// MODE SELECT(6) (SPC-4).
    MODE_SELECT_6 = 0x15;
    /// RESERVE(6) (SPC-2, obsolete).
    RESERVE_6 = 0x16;
    /// RELEASE(6) (SPC-2, obsolete).
    RELEASE_6 = 0x17;
    /// MODE SENSE(6) (SPC-4).
    MODE_SENSE_6 = 0x1A;
    /// START STOP UNIT (SBC-4).
    START_STOP_UNIT = 0x1B;
    /// SEND DIAGNOSTIC (SPC-4).
    SEND_DIAGNOSTIC = 0x1D;
    /// PREVENT ALLOW MEDIUM REMOVAL (SBC-4).
    PREVENT_ALLOW_MEDIUM_REMOVAL = 0x1E;
    /// READ CAPACITY(10) (SBC-4).
    READ_CAPACITY_10 = 0x25;
    /// READ(10) (SBC-4).
    READ_10 = 0x28;
    /// WRITE(10) (SBC-4).
    WRITE_10 = 0x2A;
    /// WRITE AND VERIFY(10) (SBC-4).
    WRITE_AND_VERIFY_10 = 0x2E;
    /// VERIFY(10) (SBC-4).
    VERIFY_10 = 0x2F;
    /// PRE-FETCH(10) (SBC-4).
    PRE_FETCH_10 = 0x34;
    /// SYNCHRONIZE CACHE(10) (SBC-4).
    SYNCHRONIZE_CACHE_10 = 0x35;
    /// WRITE SAME(10) (SBC-4).
    WRITE_SAME_10 = 0x41;
    /// UNMAP (SBC-4).
    UNMAP = 0x42;
    /// READ DEFECT DATA(10) (SBC-4).
    READ_DEFECT_DATA_10 = 0x37;
    /// SANITIZE (SBC-4).
    SANITIZE = 0x48;
    /// RESERVE(10) (SPC-2, obsolete).
    RESERVE_10 = 0x56;
    /// RELEASE(10) (SPC-2, obsolete).
    RELEASE_10 = 0x57;
    /// MODE SELECT(10) (SPC-4).
    MODE_SELECT_10 = 0x55;
    /// MODE SENSE(10) (SPC-4).
    MODE_SENSE_10 = 0x5A;
    /// PERSISTENT RESERVE IN (SPC-4).
    PERSISTENT_RESERVE_IN = 0x5E;
    /// PERSISTENT RESERVE OUT (SPC-4).
    PERSISTENT_RESERVE_OUT = 0x5F;
    /// Variable-length CDB (SPC-4 §4.2.3).
    VARIABLE_LENGTH = 0x7F;
    /// EXTENDED COPY (SPC-4).
    EXTENDED_COPY = 0x83;
    /// RECEIVE COPY RESULTS (SPC-4).
    RECEIVE_COPY_RESULTS = 0x84;
    /// READ(16) (SBC-4).
    READ_16 = 0x88;
    /// COMPARE AND WRITE (SBC-4).
    COMPARE_AND_WRITE = 0x89;
    /// WRITE(16) (SBC-4).
    WRITE_16 = 0x8A;
    /// ORWRITE(16) (SBC-4).
    ORWRITE_16 = 0x8B;
    /// WRITE AND VERIFY(16) (SBC-4).
    WRITE_AND_VERIFY_16 = 0x8E;
    /// VERIFY(16) (SBC-4).
    VERIFY_16 = 0x8F;
    /// PRE-FETCH(16) (SBC-4).
    PRE_FETCH_16 = 0x90;
    /// SYNCHRONIZE CACHE(16) (SBC-4).
    SYNCHRONIZE_CACHE_16 = 0x91;
    /// WRITE SAME(16) (SBC-4).
    WRITE_SAME_16 = 0x93;
    /// WRITE ATOMIC(16) (SBC-4).
    WRITE_ATOMIC_16 = 0x9C;
    /// SERVICE ACTION IN(16): READ CAPACITY(16), GET LBA STATUS, ... (SBC-4).
    SERVICE_ACTION_IN_16 = 0x9E;
    /// REPORT LUNS (SPC-4).
    REPORT_LUNS = 0xA0;
    /// MAINTENANCE IN: REPORT TARGET PORT GROUPS, REPORT SUPPORTED OPERATION CODES, ... (SPC-4).
    MAINTENANCE_IN = 0xA3;
    /// MAINTENANCE OUT: SET TARGET PORT GROUPS, ... (SPC-4).
    MAINTENANCE_OUT = 0xA4;
    /// READ(12) (SBC-4).
    READ_12 = 0xA8;
    /// WRITE(12) (SBC-4).
    WRITE_12 = 0xAA;
    /// WRITE AND VERIFY(12) (SBC-4).
    WRITE_AND_VERIFY_12 = 0xAE;
    /// VERIFY(12) (SBC-4).
    VERIFY_12 = 0xAF;
    /// READ DEFECT DATA(12) (SBC-4).
    READ_DEFECT_DATA_12 = 0xB7;
}

impl fmt::Debug for ScsiOpcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "ScsiOpcode::{n}"),
            None => write!(f, "ScsiOpcode({:#04x})", self.0),
        }
    }
}

/// SERVICE ACTION IN(16) service action: READ CAPACITY(16) (SBC-4).
pub const SAI_READ_CAPACITY_16: u8 = 0x10;
/// SERVICE ACTION IN(16) service action: GET LBA STATUS (SBC-4).
pub const SAI_GET_LBA_STATUS: u8 = 0x12;
/// MAINTENANCE IN service action: REPORT TARGET PORT GROUPS (SPC-4).
pub const MI_REPORT_TARGET_PORT_GROUPS: u8 = 0x0A;
/// MAINTENANCE IN service action: REPORT SUPPORTED OPERATION CODES (SPC-4).
pub const MI_REPORT_SUPPORTED_OPCODES: u8 = 0x0C;

/// CDB length implied by the group code, the top three bits of the
/// operation code (SPC-4 §4.2.5.1): group 0 → 6 bytes, groups 1 and 2 → 10,
/// group 4 → 16, group 5 → 12. Group 3 (reserved / variable length) and
/// groups 6 and 7 (vendor specific) have no fixed length: `None`.
pub fn group_len(opcode: u8) -> Option<usize> {
    match opcode >> 5 {
        0 => Some(6),
        1 | 2 => Some(10),
        4 => Some(16),
        5 => Some(12),
        _ => None,
    }
}

/// Whether an operation code carries a service action in byte 1, bits 4..0
/// (SPC-4 §4.2.5.2): SERVICE ACTION IN(16), MAINTENANCE IN and OUT, and the
/// other ones SCSI emulation may meet.
pub fn has_service_action(opcode: u8) -> bool {
    matches!(opcode, 0x48 | 0x5E | 0x5F | 0x83 | 0x84 | 0x9E | 0x9F | 0xA3 | 0xA4)
}

/// The service action of a CDB (byte 1, bits 4..0), 0 when absent.
pub fn service_action(cdb: &[u8]) -> u8 {
    u8_at(cdb, 1) & 0x1f
}

/// Byte `at`, or 0 beyond the end.
pub fn u8_at(cdb: &[u8], at: usize) -> u8 {
    cdb.get(at).copied().unwrap_or(0)
}

/// Big-endian u16 at `at`; bytes beyond the end read as 0.
pub fn be16(cdb: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([u8_at(cdb, at), u8_at(cdb, at + 1)])
}

/// Big-endian 24-bit value at `at`; bytes beyond the end read as 0.
pub fn be24(cdb: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([0, u8_at(cdb, at), u8_at(cdb, at + 1), u8_at(cdb, at + 2)])
}

/// Big-endian u32 at `at`; bytes beyond the end read as 0.
pub fn be32(cdb: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([u8_at(cdb, at), u8_at(cdb, at + 1), u8_at(cdb, at + 2), u8_at(cdb, at + 3)])
}

/// Big-endian u64 at `at`; bytes beyond the end read as 0.
pub fn be64(cdb: &[u8], at: usize) -> u64 {
    (u64::from(be32(cdb, at)) << 32) | u64::from(be32(cdb, at + 4))
}

/// The CONTROL byte (SAM-5 §5.2): the last byte of the fixed-length CDB.
/// `None` for operation codes without a fixed length.
pub fn control_byte(cdb: &[u8]) -> Option<u8> {
    let len = group_len(*cdb.first()?)?;
    Some(u8_at(cdb, len - 1))
}

/// NACA bit of the CONTROL byte (SAM-5 §5.2).
pub const CONTROL_NACA: u8 = 0x04;

/// The LBA and length fields of a medium-access CDB (READ, WRITE, VERIFY,
/// WRITE AND VERIFY, PRE-FETCH, SYNCHRONIZE CACHE in their 6-, 10-, 12- and
/// 16-byte forms; SBC-4).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LbaRange {
    /// Logical block address.
    pub lba: u64,
    /// Length in logical blocks, after the READ(6)/WRITE(6) rule that 0
    /// means 256.
    pub blocks: u32,
    /// Byte offset of the length field in the CDB (for field pointers).
    pub len_field: u16,
    /// Byte 1 (the RDPROTECT/WRPROTECT, DPO, FUA, BYTCHK, IMMED flags); 0
    /// for 6-byte CDBs, which have none.
    pub flags: u8,
}

/// Decode the LBA / length layout by CDB length (the group code of the
/// operation code): 6 bytes (21-bit LBA in bytes 1..4, length in byte 4,
/// 0 → 256), 10 bytes (LBA 2..6, length 7..9), 12 bytes (LBA 2..6, length
/// 6..10), 16 bytes (LBA 2..10, length 10..14). `None` for other groups.
pub fn lba_range(cdb: &[u8]) -> Option<LbaRange> {
    let len = group_len(*cdb.first()?)?;
    Some(match len {
        6 => {
            let blocks = u32::from(u8_at(cdb, 4));
            LbaRange {
                lba: u64::from(be24(cdb, 1) & 0x1f_ffff),
                blocks: if blocks == 0 { 256 } else { blocks },
                len_field: 4,
                flags: 0,
            }
        }
        10 => LbaRange {
            lba: u64::from(be32(cdb, 2)),
            blocks: u32::from(be16(cdb, 7)),
            len_field: 7,
            flags: u8_at(cdb, 1),
        },
        12 => LbaRange { lba: u64::from(be32(cdb, 2)), blocks: be32(cdb, 6), len_field: 6, flags: u8_at(cdb, 1) },
        _ => LbaRange { lba: be64(cdb, 2), blocks: be32(cdb, 10), len_field: 10, flags: u8_at(cdb, 1) },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_lengths() {
        assert_eq!(group_len(0x00), Some(6));
        assert_eq!(group_len(0x28), Some(10));
        assert_eq!(group_len(0x5A), Some(10));
        assert_eq!(group_len(0x7F), None);
        assert_eq!(group_len(0x88), Some(16));
        assert_eq!(group_len(0xA0), Some(12));
        assert_eq!(group_len(0xC0), None);
        assert_eq!(group_len(0xE0), None);
    }

    #[test]
    fn readers_never_panic_past_the_end() {
        let cdb = [0x28u8, 0, 1, 2];
        assert_eq!(be32(&cdb, 2), 0x0102_0000);
        assert_eq!(be64(&cdb, 100), 0);
        assert_eq!(u8_at(&[], 0), 0);
        assert_eq!(control_byte(&[]), None);
        assert_eq!(control_byte(&[0x12]), Some(0));
    }

    #[test]
    fn rw_layouts() {
        let r6 = lba_range(&[0x08, 0xff, 0x12, 0x34, 0, 0]).unwrap();
        assert_eq!((r6.lba, r6.blocks, r6.len_field), (0x1f_1234, 256, 4));
        let r10 = lba_range(&[0x28, 0x08, 0, 0, 1, 0, 0, 0, 8, 0]).unwrap();
        assert_eq!((r10.lba, r10.blocks, r10.flags), (256, 8, 0x08));
        let r12 = lba_range(&[0xA8, 0, 0, 0, 0, 9, 0, 1, 0, 0, 0, 0]).unwrap();
        assert_eq!((r12.lba, r12.blocks, r12.len_field), (9, 0x0001_0000, 6));
        let mut c16 = [0u8; 16];
        c16[0] = 0x88;
        c16[2..10].copy_from_slice(&u64::MAX.to_be_bytes());
        c16[13] = 3;
        let r16 = lba_range(&c16).unwrap();
        assert_eq!((r16.lba, r16.blocks, r16.len_field), (u64::MAX, 3, 10));
    }

    #[test]
    fn opcode_debug() {
        assert_eq!(format!("{:?}", ScsiOpcode::READ_10), "ScsiOpcode::READ_10");
        assert_eq!(format!("{:?}", ScsiOpcode(0xC1)), "ScsiOpcode(0xc1)");
    }
}
