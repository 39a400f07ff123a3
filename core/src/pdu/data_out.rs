//! SCSI Data-Out PDU, opcode 0x05 (RFC 7143 §11.7).

use super::bhs::{Bhs, Opcode, FLAG_FINAL, OFF_BUFFER_OFFSET, OFF_DATASN, OFF_EXPSTATSN, OFF_ITT, OFF_LUN, OFF_TTT};
use super::{check_opcode, Codec, DecodeError};
use crate::ids::{Itt, Lun, Ttt};
use crate::serial::StatSn;

/// Data-Out header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct DataOut {
    /// F bit: last PDU of the sequence.
    pub final_: bool,
    /// LUN.
    pub lun: Lun,
    /// Initiator task tag.
    pub itt: Itt,
    /// Target transfer tag (0xffffffff for unsolicited data).
    pub ttt: Ttt,
    /// ExpStatSN.
    pub expstatsn: StatSn,
    /// DataSN.
    pub datasn: u32,
    /// Buffer offset.
    pub buffer_offset: u32,
}

impl Codec for DataOut {
    const OPCODE: Opcode = Opcode::DATA_OUT;

    fn decode(bhs: &Bhs, _ahs: &[u8]) -> Result<Self, DecodeError> {
        check_opcode(bhs, Self::OPCODE)?;
        Ok(DataOut {
            final_: bhs.flag(FLAG_FINAL),
            lun: Lun(bhs.u64_at(OFF_LUN)),
            itt: Itt(bhs.itt()),
            ttt: Ttt(bhs.u32_at(OFF_TTT)),
            expstatsn: StatSn(bhs.u32_at(OFF_EXPSTATSN)),
            datasn: bhs.u32_at(OFF_DATASN),
            buffer_offset: bhs.u32_at(OFF_BUFFER_OFFSET),
        })
    }

    fn encode(&self, bhs: &mut Bhs) {
        bhs.set_opcode(Self::OPCODE);
        bhs.set_flag(FLAG_FINAL, self.final_);
        bhs.put_u64(OFF_LUN, self.lun.0);
        bhs.put_u32(OFF_ITT, self.itt.0);
        bhs.put_u32(OFF_TTT, self.ttt.0);
        bhs.put_u32(OFF_EXPSTATSN, self.expstatsn.0);
        bhs.put_u32(OFF_DATASN, self.datasn);
        bhs.put_u32(OFF_BUFFER_OFFSET, self.buffer_offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::test_util::check_layout;

    #[test]
    fn solicited_data_out() {
        // F, LUN 1, ITT 0x30, TTT 0x1234 (from an R2T), bytes 24..28 reserved,
        // ExpStatSN 9, bytes 32..36 reserved, DataSN 3, offset 0x10000,
        // bytes 44..48 reserved.
        check_layout(
            "05800000 00000000 00010000 00000000
             00000030 00001234 00000000 00000009
             00000000 00000003 00010000 00000000",
            &DataOut {
                final_: true,
                lun: Lun::from_index(1),
                itt: Itt(0x30),
                ttt: Ttt(0x1234),
                expstatsn: StatSn(9),
                datasn: 3,
                buffer_offset: 0x10000,
            },
        );
    }
}
