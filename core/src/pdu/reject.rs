//! Reject PDU, opcode 0x3f (RFC 7143 §11.17). The rejected PDU's BHS
//! travels in the data segment.

use super::bhs::{
    Bhs, Opcode, FLAG_FINAL, OFF_DATASN, OFF_EXPCMDSN, OFF_ITT, OFF_MAXCMDSN, OFF_REJECT_REASON, OFF_STATSN,
};
use super::{check_opcode, Codec, DecodeError};
use crate::ids::Itt;
use crate::serial::{CmdSn, StatSn};

/// Reject reason (RFC 7143 §11.17.1).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct RejectReason(pub u8);

impl RejectReason {
    /// 0x02 data (payload) digest error.
    pub const DATA_DIGEST_ERROR: RejectReason = RejectReason(0x02);
    /// 0x03 SNACK reject.
    pub const SNACK_REJECT: RejectReason = RejectReason(0x03);
    /// 0x04 protocol error.
    pub const PROTOCOL_ERROR: RejectReason = RejectReason(0x04);
    /// 0x05 command not supported.
    pub const COMMAND_NOT_SUPPORTED: RejectReason = RejectReason(0x05);
    /// 0x06 immediate command reject: too many immediate commands.
    pub const IMMEDIATE_COMMAND_REJECT: RejectReason = RejectReason(0x06);
    /// 0x07 task in progress.
    pub const TASK_IN_PROGRESS: RejectReason = RejectReason(0x07);
    /// 0x08 invalid data ACK.
    pub const INVALID_DATA_ACK: RejectReason = RejectReason(0x08);
    /// 0x09 invalid PDU field.
    pub const INVALID_PDU_FIELD: RejectReason = RejectReason(0x09);
    /// 0x0a long operation reject: out of resources.
    pub const OUT_OF_RESOURCES: RejectReason = RejectReason(0x0a);
    /// 0x0b deprecated (negotiation reset).
    pub const NEGOTIATION_RESET: RejectReason = RejectReason(0x0b);
    /// 0x0c waiting for logout.
    pub const WAITING_FOR_LOGOUT: RejectReason = RejectReason(0x0c);
}

/// Reject header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Reject {
    /// Reason.
    pub reason: RejectReason,
    /// StatSN.
    pub statsn: StatSn,
    /// ExpCmdSN.
    pub expcmdsn: CmdSn,
    /// MaxCmdSN.
    pub maxcmdsn: CmdSn,
    /// DataSN/R2TSN (for data and R2T SNACK rejects).
    pub datasn: u32,
}

impl Codec for Reject {
    const OPCODE: Opcode = Opcode::REJECT;

    fn decode(bhs: &Bhs, _ahs: &[u8]) -> Result<Self, DecodeError> {
        check_opcode(bhs, Self::OPCODE)?;
        Ok(Reject {
            reason: RejectReason(bhs.u8_at(OFF_REJECT_REASON)),
            statsn: StatSn(bhs.u32_at(OFF_STATSN)),
            expcmdsn: CmdSn(bhs.u32_at(OFF_EXPCMDSN)),
            maxcmdsn: CmdSn(bhs.u32_at(OFF_MAXCMDSN)),
            datasn: bhs.u32_at(OFF_DATASN),
        })
    }

    /// Writes F and the fixed 0xffffffff Initiator Task Tag (RFC 7143 §11.17).
    fn encode(&self, bhs: &mut Bhs) {
        bhs.set_opcode(Self::OPCODE);
        bhs.set_flag(FLAG_FINAL, true);
        bhs.put_u8(OFF_REJECT_REASON, self.reason.0);
        bhs.put_u32(OFF_ITT, Itt::RESERVED.0);
        bhs.put_u32(OFF_STATSN, self.statsn.0);
        bhs.put_u32(OFF_EXPCMDSN, self.expcmdsn.0);
        bhs.put_u32(OFF_MAXCMDSN, self.maxcmdsn.0);
        bhs.put_u32(OFF_DATASN, self.datasn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::test_util::check_layout;

    #[test]
    fn protocol_error_reject() {
        // Reason 0x04 in byte 2, ITT 0xffffffff, StatSN 3, ExpCmdSN 4, MaxCmdSN 5.
        check_layout(
            "3f800400 00000000 00000000 00000000
             ffffffff 00000000 00000003 00000004
             00000005 00000000 00000000 00000000",
            &Reject {
                reason: RejectReason::PROTOCOL_ERROR,
                statsn: StatSn(3),
                expcmdsn: CmdSn(4),
                maxcmdsn: CmdSn(5),
                datasn: 0,
            },
        );
    }

    #[test]
    fn snack_reject_carries_datasn() {
        check_layout(
            "3f800300 00000000 00000000 00000000
             ffffffff 00000000 00000003 00000004
             00000005 00000011 00000000 00000000",
            &Reject {
                reason: RejectReason::SNACK_REJECT,
                statsn: StatSn(3),
                expcmdsn: CmdSn(4),
                maxcmdsn: CmdSn(5),
                datasn: 0x11,
            },
        );
    }
}
