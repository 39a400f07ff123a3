//! SCSI Command PDU, opcode 0x01 (RFC 7143 §11.3).

use super::bhs::{
    pad_len, Bhs, Opcode, AHS_BIDI_LEN, AHS_CODE_MASK, AHS_HEADER_LEN, AHS_TYPE_BIDI_READ_LEN, AHS_TYPE_EXT_CDB,
    CDB_LEN, CMD_ATTR_MASK, EXT_CDB_MAX_LEN, FLAG_CMD_READ, FLAG_CMD_WRITE, FLAG_FINAL, OFF_CDB, OFF_CMDSN, OFF_EDTL,
    OFF_EXPSTATSN, OFF_FLAGS, OFF_ITT, OFF_LUN,
};
use super::{check_opcode, Codec, DecodeError};
use crate::ids::{Itt, Lun};
use crate::serial::{CmdSn, StatSn};

/// Task attribute (RFC 7143 §11.3.1.2, SAM-5 §8.5).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TaskAttr(pub u8);

impl TaskAttr {
    /// 0: untagged (treated as SIMPLE).
    pub const UNTAGGED: TaskAttr = TaskAttr(0);
    /// 1: SIMPLE.
    pub const SIMPLE: TaskAttr = TaskAttr(1);
    /// 2: ORDERED.
    pub const ORDERED: TaskAttr = TaskAttr(2);
    /// 3: HEAD OF QUEUE.
    pub const HEAD_OF_QUEUE: TaskAttr = TaskAttr(3);
    /// 4: ACA.
    pub const ACA: TaskAttr = TaskAttr(4);
}

/// SCSI Command header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ScsiCommand {
    /// I bit: immediate delivery.
    pub immediate: bool,
    /// F bit: no unsolicited Data-Out follows.
    pub final_: bool,
    /// R bit: data flows to the initiator.
    pub read: bool,
    /// W bit: data flows to the target.
    pub write: bool,
    /// ATTR (3 bits).
    pub attr: TaskAttr,
    /// Logical unit.
    pub lun: Lun,
    /// Initiator task tag.
    pub itt: Itt,
    /// Expected Data Transfer Length (for bidirectional: the write length).
    pub edtl: u32,
    /// CmdSN.
    pub cmdsn: CmdSn,
    /// ExpStatSN.
    pub expstatsn: StatSn,
    /// The first 16 CDB bytes.
    pub cdb: [u8; 16],
    /// CDB bytes beyond 16, from an Extended CDB AHS (type 1, RFC 7143 §11.2.2.3); at most 244.
    pub ext_cdb: Option<Box<[u8]>>,
    /// Expected Bidirectional Read Data Length from a type-2 AHS (RFC 7143 §11.2.2.4).
    pub bidi_read_len: Option<u32>,
}

impl ScsiCommand {
    /// The whole CDB: the 16 BHS bytes followed by the Extended CDB AHS bytes, if any.
    pub fn cdb_parts(&self) -> (&[u8; CDB_LEN], &[u8]) {
        (&self.cdb, self.ext_cdb.as_deref().unwrap_or(&[]))
    }

    /// Total CDB length in bytes (16 plus the extended part).
    pub fn cdb_len(&self) -> usize {
        CDB_LEN + self.ext_cdb.as_deref().map_or(0, <[u8]>::len)
    }

    /// Bytes the AHS of this command occupies on the wire (each AHS padded to 4).
    pub fn ahs_len(&self) -> usize {
        let ext = self.ext_cdb.as_deref().map_or(0, |e| padded4(AHS_HEADER_LEN + 1 + e.len()));
        let bidi = if self.bidi_read_len.is_some() { padded4(AHS_HEADER_LEN + usize::from(AHS_BIDI_LEN)) } else { 0 };
        ext + bidi
    }
}

/// `n` rounded up to a multiple of 4.
fn padded4(n: usize) -> usize {
    n + pad_len(n)
}

/// Parse the AHS area of a SCSI Command (RFC 7143 §11.2.2): each AHS is
/// AHSLength (2 bytes, excluding itself, the type byte and padding),
/// AHSType (1 byte), then AHSLength bytes, padded to 4. Bounded by the
/// slice; a length that runs past it is [`DecodeError::BadAhs`]. Unknown
/// AHS codes are skipped (RFC 7143 §11.2.2.1 reserves them; we are lenient).
fn parse_ahs(mut ahs: &[u8], cmd: &mut ScsiCommand) -> Result<(), DecodeError> {
    let mut seen_ext = false;
    while !ahs.is_empty() {
        let (Some(&l0), Some(&l1), Some(&ty)) = (ahs.first(), ahs.get(1), ahs.get(2)) else {
            return Err(DecodeError::BadAhs);
        };
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        let body_end = AHS_HEADER_LEN + len;
        let Some(body) = ahs.get(AHS_HEADER_LEN..body_end) else {
            return Err(DecodeError::BadAhs);
        };
        match ty & AHS_CODE_MASK {
            AHS_TYPE_EXT_CDB => {
                // Byte 3 is reserved; the CDB spill-over follows (RFC 7143 §11.2.2.3).
                let Some(ext) = body.get(1..) else {
                    return Err(DecodeError::BadAhs);
                };
                if seen_ext {
                    return Err(DecodeError::InvalidField("duplicate Extended CDB AHS"));
                }
                if ext.len() > EXT_CDB_MAX_LEN {
                    return Err(DecodeError::BadAhs);
                }
                seen_ext = true;
                cmd.ext_cdb = Some(ext.into());
            }
            AHS_TYPE_BIDI_READ_LEN => {
                // AHSLength 5: reserved byte, then the 4-byte length (RFC 7143 §11.2.2.4).
                if len != usize::from(AHS_BIDI_LEN) {
                    return Err(DecodeError::BadAhs);
                }
                if cmd.bidi_read_len.is_some() {
                    return Err(DecodeError::InvalidField("duplicate bidirectional read length AHS"));
                }
                let b = body.get(1..).and_then(|b| b.first_chunk::<4>()).ok_or(DecodeError::BadAhs)?;
                cmd.bidi_read_len = Some(u32::from_be_bytes(*b));
            }
            _ => {}
        }
        // Each AHS is padded to 4 bytes; the padding must also fit.
        ahs = ahs.get(padded4(body_end)..).ok_or(DecodeError::BadAhs)?;
    }
    Ok(())
}

impl Codec for ScsiCommand {
    const OPCODE: Opcode = Opcode::SCSI_COMMAND;

    fn decode(bhs: &Bhs, ahs: &[u8]) -> Result<Self, DecodeError> {
        check_opcode(bhs, Self::OPCODE)?;
        let ahs = ahs.get(..bhs.total_ahs_len()).ok_or(DecodeError::Truncated)?;
        let mut cdb = [0u8; CDB_LEN];
        cdb.copy_from_slice(&bhs.0[OFF_CDB..OFF_CDB + CDB_LEN]);
        let mut cmd = ScsiCommand {
            immediate: bhs.immediate(),
            final_: bhs.flag(FLAG_FINAL),
            read: bhs.flag(FLAG_CMD_READ),
            write: bhs.flag(FLAG_CMD_WRITE),
            attr: TaskAttr(bhs.flags() & CMD_ATTR_MASK),
            lun: Lun(bhs.u64_at(OFF_LUN)),
            itt: Itt(bhs.itt()),
            edtl: bhs.u32_at(OFF_EDTL),
            cmdsn: CmdSn(bhs.u32_at(OFF_CMDSN)),
            expstatsn: StatSn(bhs.u32_at(OFF_EXPSTATSN)),
            cdb,
            ext_cdb: None,
            bidi_read_len: None,
        };
        parse_ahs(ahs, &mut cmd)?;
        Ok(cmd)
    }

    fn encode(&self, bhs: &mut Bhs) {
        bhs.set_opcode(Self::OPCODE);
        bhs.set_immediate(self.immediate);
        bhs.set_flag(FLAG_FINAL, self.final_);
        bhs.set_flag(FLAG_CMD_READ, self.read);
        bhs.set_flag(FLAG_CMD_WRITE, self.write);
        bhs.0[OFF_FLAGS] |= self.attr.0 & CMD_ATTR_MASK;
        bhs.put_u64(OFF_LUN, self.lun.0);
        bhs.put_u32(OFF_ITT, self.itt.0);
        bhs.put_u32(OFF_EDTL, self.edtl);
        bhs.put_u32(OFF_CMDSN, self.cmdsn.0);
        bhs.put_u32(OFF_EXPSTATSN, self.expstatsn.0);
        bhs.0[OFF_CDB..OFF_CDB + CDB_LEN].copy_from_slice(&self.cdb);
    }

    /// Extended CDB AHS first, then the bidirectional read length AHS
    /// (the order the Linux initiator uses).
    fn encode_ahs(&self, out: &mut Vec<u8>) {
        if let Some(ext) = self.ext_cdb.as_deref() {
            assert!(ext.len() <= EXT_CDB_MAX_LEN, "extended CDB of {} bytes", ext.len());
            // AHSLength counts the reserved byte plus the CDB spill-over (RFC 7143 §11.2.2.3).
            let len = (ext.len() + 1) as u16;
            out.extend_from_slice(&len.to_be_bytes());
            out.push(AHS_TYPE_EXT_CDB);
            out.push(0);
            out.extend_from_slice(ext);
            out.resize(out.len() + pad_len(AHS_HEADER_LEN + 1 + ext.len()), 0);
        }
        if let Some(bidi) = self.bidi_read_len {
            out.extend_from_slice(&AHS_BIDI_LEN.to_be_bytes());
            out.push(AHS_TYPE_BIDI_READ_LEN);
            out.push(0);
            out.extend_from_slice(&bidi.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::test_util::{encode_bhs, hex};
    use crate::pdu::Pdu;

    /// The "iSCSI - Read (10) Command PDU" of the RFC 3720 Appendix B.4 CRC
    /// examples: a READ(10) of 2 blocks, F and R set.
    const READ10: &str = "01c00000 00000000 00000000 00000000
                          14000000 00000400 00000014 00000018
                          28000000 00000000 02000000 00000000";

    #[test]
    fn read10_from_rfc_example() {
        let bytes = hex(READ10);
        let bhs = Bhs::from_slice(&bytes).unwrap();
        let cmd = ScsiCommand::decode(&bhs, &[]).unwrap();
        let mut cdb = [0u8; 16];
        cdb[0] = 0x28;
        cdb[8] = 0x02;
        assert_eq!(
            cmd,
            ScsiCommand {
                immediate: false,
                final_: true,
                read: true,
                write: false,
                attr: TaskAttr::UNTAGGED,
                lun: Lun(0),
                itt: Itt(0x1400_0000),
                edtl: 0x400,
                cmdsn: CmdSn(0x14),
                expstatsn: StatSn(0x18),
                cdb,
                ext_cdb: None,
                bidi_read_len: None,
            }
        );
        assert_eq!(encode_bhs(&cmd), bytes);
        // The same RFC example gives the header digest bytes "56 3a 96 d9".
        assert_eq!(crate::digest::crc32c(&bytes).to_le_bytes(), [0x56, 0x3a, 0x96, 0xd9]);
    }

    #[test]
    fn flags_and_attr_bits() {
        // I=1, F=1, W=1, ATTR=ORDERED(2); LUN 1; reserved bits 3-4 of byte 1 set (ignored).
        let bytes = hex("41ba0000 00000000 00010000 00000000
                         00000007 00001000 00000009 0000000a
                         2a000000 00100000 08000000 00000000");
        // byte 1 = 0xba = F|W|0x18(reserved)|ATTR=2
        let bhs = Bhs::from_slice(&bytes).unwrap();
        let cmd = ScsiCommand::decode(&bhs, &[]).unwrap();
        assert!(cmd.immediate && cmd.final_ && cmd.write && !cmd.read);
        assert_eq!(cmd.attr, TaskAttr::ORDERED);
        assert_eq!(cmd.lun, Lun::from_index(1));
        assert_eq!(cmd.itt, Itt(7));
        assert_eq!(cmd.edtl, 0x1000);
        // Re-encoding clears the reserved bits.
        let mut expect = bytes.clone();
        expect[1] = 0xa2;
        assert_eq!(encode_bhs(&cmd), expect);
    }

    #[test]
    fn extended_cdb_and_bidi_ahs_layout() {
        // A 32-byte CDB: 16 in the BHS, 16 in an Extended CDB AHS with
        // AHSLength 17 (16 + the reserved byte; 3 + 17 = 20 bytes, already a
        // multiple of 4), then the 8-byte bidirectional read length AHS.
        let mut cmd =
            ScsiCommand { read: true, write: true, final_: true, itt: Itt(1), edtl: 512, ..Default::default() };
        cmd.cdb[0] = 0x7f;
        cmd.ext_cdb = Some((16u8..32).collect::<Vec<_>>().into_boxed_slice());
        cmd.bidi_read_len = Some(0x0001_0000);
        let mut ahs = Vec::new();
        cmd.encode_ahs(&mut ahs);
        let mut expect = vec![0x00, 0x11, 0x01, 0x00];
        expect.extend(16u8..32);
        expect.extend([0x00, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00, 0x00]);
        assert_eq!(ahs, expect);
        assert_eq!(cmd.ahs_len(), ahs.len());

        let mut wire = Vec::new();
        Pdu::ScsiCommand(cmd.clone()).encode_header(0, &mut wire);
        assert_eq!(wire[4], (ahs.len() / 4) as u8);
        assert_eq!(&wire[48..], &ahs[..]);
        let bhs = Bhs::from_slice(&wire).unwrap();
        assert_eq!(ScsiCommand::decode(&bhs, &wire[48..]).unwrap(), cmd);
        assert_eq!(cmd.cdb_len(), 32);
    }

    #[test]
    fn odd_extended_cdb_is_padded() {
        // 17-byte CDB: 1 byte spills over; AHSLength 2, 3+2 = 5 bytes padded to 8.
        let cmd = ScsiCommand { ext_cdb: Some(vec![0xaa].into_boxed_slice()), ..Default::default() };
        let mut ahs = Vec::new();
        cmd.encode_ahs(&mut ahs);
        assert_eq!(ahs, [0x00, 0x02, 0x01, 0x00, 0xaa, 0, 0, 0]);
        let mut bhs = Bhs::default();
        cmd.encode(&mut bhs);
        bhs.set_total_ahs_len(8);
        assert_eq!(ScsiCommand::decode(&bhs, &ahs).unwrap(), cmd);
    }

    #[test]
    fn lying_ahs_lengths_are_rejected() {
        let mut bhs = Bhs::default();
        ScsiCommand::default().encode(&mut bhs);
        bhs.set_total_ahs_len(8);
        // AHSLength 9 runs past the 8-byte area.
        assert_eq!(ScsiCommand::decode(&bhs, &[0, 9, 1, 0, 0, 0, 0, 0]), Err(DecodeError::BadAhs));
        // Extended CDB AHS without its reserved byte.
        assert_eq!(ScsiCommand::decode(&bhs, &[0, 0, 1, 0, 0, 0, 0, 0]), Err(DecodeError::BadAhs));
        // Bidirectional AHS with AHSLength 4.
        assert_eq!(ScsiCommand::decode(&bhs, &[0, 4, 2, 0, 0, 0, 0, 0]), Err(DecodeError::BadAhs));
        // AHS area shorter than TotalAHSLength says.
        assert_eq!(ScsiCommand::decode(&bhs, &[0, 5, 2, 0]), Err(DecodeError::Truncated));
        // In a 4-byte area: AHSLength 1 fits exactly; AHSLength 2 (5 bytes) does not.
        bhs.set_total_ahs_len(4);
        assert_eq!(ScsiCommand::decode(&bhs, &[0, 1, 1, 0]).map(|c| c.cdb_len()), Ok(16));
        assert_eq!(ScsiCommand::decode(&bhs, &[0, 2, 1, 0]), Err(DecodeError::BadAhs));
        // Duplicates.
        bhs.set_total_ahs_len(16);
        let dup = [0, 5, 2, 0, 0, 0, 0, 1, 0, 5, 2, 0, 0, 0, 0, 2];
        assert!(matches!(ScsiCommand::decode(&bhs, &dup), Err(DecodeError::InvalidField(_))));
        // Unknown AHS codes are skipped.
        let unknown = [0, 1, 0x3f, 0, 0, 5, 2, 0, 0, 0, 0, 3, 0, 0, 0, 0];
        // (the trailing zero word is an empty AHS of code 0, also skipped)
        assert_eq!(ScsiCommand::decode(&bhs, &unknown).unwrap().bidi_read_len, Some(3));
    }

    #[test]
    fn extended_cdb_too_long_is_rejected() {
        // 245 spill-over bytes: AHSLength 246, 249 bytes padded to 252.
        let mut ahs = vec![0, 246, 1, 0];
        ahs.resize(252, 0);
        let mut bhs = Bhs::default();
        ScsiCommand::default().encode(&mut bhs);
        bhs.set_total_ahs_len(252);
        assert_eq!(ScsiCommand::decode(&bhs, &ahs), Err(DecodeError::BadAhs));
        // 244 is the maximum (a 260-byte CDB).
        ahs[1] = 245;
        assert_eq!(ScsiCommand::decode(&bhs, &ahs).unwrap().cdb_len(), 260);
    }
}
