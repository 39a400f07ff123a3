//! Ready To Transfer PDU, opcode 0x31 (RFC 7143 §11.8).

use super::bhs::{
    Bhs, Opcode, FLAG_FINAL, OFF_BUFFER_OFFSET, OFF_DESIRED_LEN, OFF_EXPCMDSN, OFF_ITT, OFF_LUN, OFF_MAXCMDSN,
    OFF_R2TSN, OFF_STATSN, OFF_TTT,
};
use super::{check_opcode, Codec, DecodeError};
use crate::ids::{Itt, Lun, Ttt};
use crate::serial::{CmdSn, StatSn};

/// R2T header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct R2t {
    /// LUN.
    pub lun: Lun,
    /// Initiator task tag.
    pub itt: Itt,
    /// Target transfer tag.
    pub ttt: Ttt,
    /// StatSN (the next, not advanced).
    pub statsn: StatSn,
    /// ExpCmdSN.
    pub expcmdsn: CmdSn,
    /// MaxCmdSN.
    pub maxcmdsn: CmdSn,
    /// R2TSN.
    pub r2tsn: u32,
    /// Buffer offset.
    pub buffer_offset: u32,
    /// Desired data transfer length.
    pub desired_len: u32,
}

impl Codec for R2t {
    const OPCODE: Opcode = Opcode::R2T;

    fn decode(bhs: &Bhs, _ahs: &[u8]) -> Result<Self, DecodeError> {
        check_opcode(bhs, Self::OPCODE)?;
        Ok(R2t {
            lun: Lun(bhs.u64_at(OFF_LUN)),
            itt: Itt(bhs.itt()),
            ttt: Ttt(bhs.u32_at(OFF_TTT)),
            statsn: StatSn(bhs.u32_at(OFF_STATSN)),
            expcmdsn: CmdSn(bhs.u32_at(OFF_EXPCMDSN)),
            maxcmdsn: CmdSn(bhs.u32_at(OFF_MAXCMDSN)),
            r2tsn: bhs.u32_at(OFF_R2TSN),
            buffer_offset: bhs.u32_at(OFF_BUFFER_OFFSET),
            desired_len: bhs.u32_at(OFF_DESIRED_LEN),
        })
    }

    fn encode(&self, bhs: &mut Bhs) {
        bhs.set_opcode(Self::OPCODE);
        bhs.set_flag(FLAG_FINAL, true);
        bhs.put_u64(OFF_LUN, self.lun.0);
        bhs.put_u32(OFF_ITT, self.itt.0);
        bhs.put_u32(OFF_TTT, self.ttt.0);
        bhs.put_u32(OFF_STATSN, self.statsn.0);
        bhs.put_u32(OFF_EXPCMDSN, self.expcmdsn.0);
        bhs.put_u32(OFF_MAXCMDSN, self.maxcmdsn.0);
        bhs.put_u32(OFF_R2TSN, self.r2tsn);
        bhs.put_u32(OFF_BUFFER_OFFSET, self.buffer_offset);
        bhs.put_u32(OFF_DESIRED_LEN, self.desired_len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::test_util::check_layout;

    #[test]
    fn r2t_layout() {
        check_layout(
            "31800000 00000000 00020000 00000000
             00000040 00000077 0000000a 0000000b
             0000002a 00000001 00020000 00010000",
            &R2t {
                lun: Lun::from_index(2),
                itt: Itt(0x40),
                ttt: Ttt(0x77),
                statsn: StatSn(10),
                expcmdsn: CmdSn(11),
                maxcmdsn: CmdSn(42),
                r2tsn: 1,
                buffer_offset: 0x20000,
                desired_len: 0x10000,
            },
        );
    }
}
