//! SCSI Response PDU, opcode 0x21 (RFC 7143 §11.4).

use super::bhs::{
    Bhs, Opcode, FLAG_FINAL, FLAG_OVERFLOW, FLAG_RESP_BIDI_OVERFLOW, FLAG_RESP_BIDI_UNDERFLOW, FLAG_UNDERFLOW,
    OFF_BIDI_RESIDUAL, OFF_EXPCMDSN, OFF_EXPDATASN, OFF_ITT, OFF_MAXCMDSN, OFF_RESIDUAL, OFF_RESPONSE, OFF_SNACK_TAG,
    OFF_STATSN, OFF_STATUS,
};
use super::{check_opcode, Codec, DecodeError};
use crate::ids::Itt;
use crate::serial::{CmdSn, StatSn};

/// SCSI Response header. Sense data travels in the data segment, prefixed
/// by a 2-byte SenseLength (RFC 7143 §11.4.7).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ScsiResponse {
    /// o bit: bidirectional read residual overflow.
    pub bidi_overflow: bool,
    /// u bit: bidirectional read residual underflow.
    pub bidi_underflow: bool,
    /// O bit: residual overflow.
    pub overflow: bool,
    /// U bit: residual underflow.
    pub underflow: bool,
    /// Response: 0x00 command completed at target, 0x01 target failure.
    pub response: u8,
    /// SCSI status (SAM-5 §5.3).
    pub status: u8,
    /// Initiator task tag.
    pub itt: Itt,
    /// SNACK tag.
    pub snack_tag: u32,
    /// StatSN.
    pub statsn: StatSn,
    /// ExpCmdSN.
    pub expcmdsn: CmdSn,
    /// MaxCmdSN.
    pub maxcmdsn: CmdSn,
    /// ExpDataSN (R2T + Data-In count for this task).
    pub expdatasn: u32,
    /// Bidirectional read residual count (on the wire only with o or u; zero otherwise).
    pub bidi_residual: u32,
    /// Residual count (on the wire only with O or U; zero otherwise).
    pub residual: u32,
}

impl Codec for ScsiResponse {
    const OPCODE: Opcode = Opcode::SCSI_RESPONSE;

    fn decode(bhs: &Bhs, _ahs: &[u8]) -> Result<Self, DecodeError> {
        check_opcode(bhs, Self::OPCODE)?;
        let bidi_overflow = bhs.flag(FLAG_RESP_BIDI_OVERFLOW);
        let bidi_underflow = bhs.flag(FLAG_RESP_BIDI_UNDERFLOW);
        let overflow = bhs.flag(FLAG_OVERFLOW);
        let underflow = bhs.flag(FLAG_UNDERFLOW);
        Ok(ScsiResponse {
            bidi_overflow,
            bidi_underflow,
            overflow,
            underflow,
            response: bhs.u8_at(OFF_RESPONSE),
            status: bhs.u8_at(OFF_STATUS),
            itt: Itt(bhs.itt()),
            snack_tag: bhs.u32_at(OFF_SNACK_TAG),
            statsn: StatSn(bhs.u32_at(OFF_STATSN)),
            expcmdsn: CmdSn(bhs.u32_at(OFF_EXPCMDSN)),
            maxcmdsn: CmdSn(bhs.u32_at(OFF_MAXCMDSN)),
            expdatasn: bhs.u32_at(OFF_EXPDATASN),
            // "Bidirectional Read Residual Count or Reserved" / "Residual
            // Count or Reserved" (RFC 7143 §11.4): meaningful only with the
            // matching overflow/underflow bit.
            bidi_residual: if bidi_overflow || bidi_underflow { bhs.u32_at(OFF_BIDI_RESIDUAL) } else { 0 },
            residual: if overflow || underflow { bhs.u32_at(OFF_RESIDUAL) } else { 0 },
        })
    }

    fn encode(&self, bhs: &mut Bhs) {
        bhs.set_opcode(Self::OPCODE);
        bhs.set_flag(FLAG_FINAL, true);
        bhs.set_flag(FLAG_RESP_BIDI_OVERFLOW, self.bidi_overflow);
        bhs.set_flag(FLAG_RESP_BIDI_UNDERFLOW, self.bidi_underflow);
        bhs.set_flag(FLAG_OVERFLOW, self.overflow);
        bhs.set_flag(FLAG_UNDERFLOW, self.underflow);
        bhs.put_u8(OFF_RESPONSE, self.response);
        bhs.put_u8(OFF_STATUS, self.status);
        bhs.put_u32(OFF_ITT, self.itt.0);
        bhs.put_u32(OFF_SNACK_TAG, self.snack_tag);
        bhs.put_u32(OFF_STATSN, self.statsn.0);
        bhs.put_u32(OFF_EXPCMDSN, self.expcmdsn.0);
        bhs.put_u32(OFF_MAXCMDSN, self.maxcmdsn.0);
        bhs.put_u32(OFF_EXPDATASN, self.expdatasn);
        if self.bidi_overflow || self.bidi_underflow {
            bhs.put_u32(OFF_BIDI_RESIDUAL, self.bidi_residual);
        }
        if self.overflow || self.underflow {
            bhs.put_u32(OFF_RESIDUAL, self.residual);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::test_util::{bhs, check_layout, encode_bhs};

    #[test]
    fn check_condition_with_underflow() {
        // F|U, response 0 (completed at target), status 0x02 CHECK CONDITION,
        // DataSegmentLength left to the caller (0 here), ITT 0x10, StatSN 5,
        // ExpCmdSN 6, MaxCmdSN 0x26, ExpDataSN 1, residual 0x200.
        check_layout(
            "21820002 00000000 00000000 00000000
             00000010 00000000 00000005 00000006
             00000026 00000001 00000000 00000200",
            &ScsiResponse {
                underflow: true,
                status: 0x02,
                itt: Itt(0x10),
                statsn: StatSn(5),
                expcmdsn: CmdSn(6),
                maxcmdsn: CmdSn(0x26),
                expdatasn: 1,
                residual: 0x200,
                ..Default::default()
            },
        );
    }

    #[test]
    fn bidi_bits_and_target_failure() {
        check_layout(
            "219c0100 00000000 00000000 00000000
             ffffffff 0000abcd 00000001 00000002
             00000003 00000004 00000800 00000100",
            &ScsiResponse {
                bidi_overflow: true,
                bidi_underflow: true,
                overflow: true,
                response: 0x01,
                itt: Itt(0xffff_ffff),
                snack_tag: 0xabcd,
                statsn: StatSn(1),
                expcmdsn: CmdSn(2),
                maxcmdsn: CmdSn(3),
                expdatasn: 4,
                bidi_residual: 0x800,
                residual: 0x100,
                ..Default::default()
            },
        );
    }

    #[test]
    fn residuals_without_flags_are_reserved() {
        // No O/U/o/u: both residual fields are reserved and ignored.
        let b = bhs("21800000 00000000 00000000 00000000
                     00000001 00000000 00000000 00000000
                     00000000 00000000 11111111 22222222");
        let r = ScsiResponse::decode(&b, &[]).unwrap();
        assert_eq!((r.residual, r.bidi_residual), (0, 0));
        let sent = ScsiResponse { residual: 7, bidi_residual: 9, ..r };
        assert_eq!(&encode_bhs(&sent)[40..], &[0u8; 8]);
    }
}
