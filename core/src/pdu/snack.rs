//! SNACK Request PDU, opcode 0x10 (RFC 7143 §11.16).

use super::bhs::{
    Bhs, Opcode, FLAG_FINAL, OFF_BEGRUN, OFF_EXPSTATSN, OFF_FLAGS, OFF_ITT, OFF_LUN, OFF_RUNLENGTH, OFF_TTT,
    SNACK_TYPE_MASK,
};
use super::{check_opcode, Codec, DecodeError};
use crate::ids::{Itt, Lun, Ttt};
use crate::serial::StatSn;

/// SNACK Request header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Snack {
    /// Type (4 bits): 0 Data/R2T, 1 Status, 2 DataACK, 3 R-Data.
    pub snack_type: u8,
    /// LUN.
    pub lun: Lun,
    /// Initiator task tag.
    pub itt: Itt,
    /// Target transfer tag or SNACK tag.
    pub ttt: Ttt,
    /// ExpStatSN.
    pub expstatsn: StatSn,
    /// BegRun.
    pub begrun: u32,
    /// RunLength.
    pub runlength: u32,
}

impl Snack {
    /// Type 0: Data/R2T SNACK (RFC 7143 §11.16).
    pub const TYPE_DATA_R2T: u8 = 0;
    /// Type 1: Status SNACK.
    pub const TYPE_STATUS: u8 = 1;
    /// Type 2: DataACK.
    pub const TYPE_DATA_ACK: u8 = 2;
    /// Type 3: R-Data SNACK.
    pub const TYPE_R_DATA: u8 = 3;
}

impl Codec for Snack {
    const OPCODE: Opcode = Opcode::SNACK;

    fn decode(bhs: &Bhs, _ahs: &[u8]) -> Result<Self, DecodeError> {
        check_opcode(bhs, Self::OPCODE)?;
        Ok(Snack {
            snack_type: bhs.flags() & SNACK_TYPE_MASK,
            lun: Lun(bhs.u64_at(OFF_LUN)),
            itt: Itt(bhs.itt()),
            ttt: Ttt(bhs.u32_at(OFF_TTT)),
            expstatsn: StatSn(bhs.u32_at(OFF_EXPSTATSN)),
            begrun: bhs.u32_at(OFF_BEGRUN),
            runlength: bhs.u32_at(OFF_RUNLENGTH),
        })
    }

    /// Byte 1 is `0x80 | type` (RFC 7143 §11.16).
    fn encode(&self, bhs: &mut Bhs) {
        bhs.set_opcode(Self::OPCODE);
        bhs.put_u8(OFF_FLAGS, FLAG_FINAL | (self.snack_type & SNACK_TYPE_MASK));
        bhs.put_u64(OFF_LUN, self.lun.0);
        bhs.put_u32(OFF_ITT, self.itt.0);
        bhs.put_u32(OFF_TTT, self.ttt.0);
        bhs.put_u32(OFF_EXPSTATSN, self.expstatsn.0);
        bhs.put_u32(OFF_BEGRUN, self.begrun);
        bhs.put_u32(OFF_RUNLENGTH, self.runlength);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::test_util::check_layout;

    #[test]
    fn data_ack_snack() {
        // Byte 1 = 0x80 | 2 (DataACK), LUN 1, ITT 0x80, TTT 0x99, bytes 24..28
        // reserved, ExpStatSN 0x12, 32..40 reserved, BegRun 4, RunLength 0.
        check_layout(
            "10820000 00000000 00010000 00000000
             00000080 00000099 00000000 00000012
             00000000 00000000 00000004 00000000",
            &Snack {
                snack_type: Snack::TYPE_DATA_ACK,
                lun: Lun::from_index(1),
                itt: Itt(0x80),
                ttt: Ttt(0x99),
                expstatsn: StatSn(0x12),
                begrun: 4,
                runlength: 0,
            },
        );
    }

    #[test]
    fn status_snack() {
        check_layout(
            "10810000 00000000 00000000 00000000
             ffffffff ffffffff 00000000 00000012
             00000000 00000000 00000007 00000002",
            &Snack {
                snack_type: Snack::TYPE_STATUS,
                lun: Lun(0),
                itt: Itt::RESERVED,
                ttt: Ttt::RESERVED,
                expstatsn: StatSn(0x12),
                begrun: 7,
                runlength: 2,
            },
        );
    }
}
