//! NOP-Out (0x00) and NOP-In (0x20) PDUs (RFC 7143 §11.18, §11.19).

use super::bhs::{
    Bhs, Opcode, FLAG_FINAL, OFF_CMDSN, OFF_EXPCMDSN, OFF_EXPSTATSN, OFF_ITT, OFF_LUN, OFF_MAXCMDSN, OFF_STATSN,
    OFF_TTT,
};
use super::{check_opcode, Codec, DecodeError};
use crate::ids::{Itt, Lun, Ttt};
use crate::serial::{CmdSn, StatSn};

/// NOP-Out header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct NopOut {
    /// I bit.
    pub immediate: bool,
    /// LUN.
    pub lun: Lun,
    /// Initiator task tag (0xffffffff: an answer to a NOP-In, no reply wanted).
    pub itt: Itt,
    /// Target transfer tag (echoes a NOP-In's TTT, or 0xffffffff).
    pub ttt: Ttt,
    /// CmdSN.
    pub cmdsn: CmdSn,
    /// ExpStatSN.
    pub expstatsn: StatSn,
}

/// NOP-In header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct NopIn {
    /// LUN.
    pub lun: Lun,
    /// Initiator task tag (0xffffffff for a target-initiated ping).
    pub itt: Itt,
    /// Target transfer tag (0xffffffff when no answer is wanted).
    pub ttt: Ttt,
    /// StatSN.
    pub statsn: StatSn,
    /// ExpCmdSN.
    pub expcmdsn: CmdSn,
    /// MaxCmdSN.
    pub maxcmdsn: CmdSn,
}

impl Codec for NopOut {
    const OPCODE: Opcode = Opcode::NOP_OUT;

    fn decode(bhs: &Bhs, _ahs: &[u8]) -> Result<Self, DecodeError> {
        check_opcode(bhs, Self::OPCODE)?;
        Ok(NopOut {
            immediate: bhs.immediate(),
            lun: Lun(bhs.u64_at(OFF_LUN)),
            itt: Itt(bhs.itt()),
            ttt: Ttt(bhs.u32_at(OFF_TTT)),
            cmdsn: CmdSn(bhs.u32_at(OFF_CMDSN)),
            expstatsn: StatSn(bhs.u32_at(OFF_EXPSTATSN)),
        })
    }

    fn encode(&self, bhs: &mut Bhs) {
        bhs.set_opcode(Self::OPCODE);
        bhs.set_immediate(self.immediate);
        bhs.set_flag(FLAG_FINAL, true);
        bhs.put_u64(OFF_LUN, self.lun.0);
        bhs.put_u32(OFF_ITT, self.itt.0);
        bhs.put_u32(OFF_TTT, self.ttt.0);
        bhs.put_u32(OFF_CMDSN, self.cmdsn.0);
        bhs.put_u32(OFF_EXPSTATSN, self.expstatsn.0);
    }
}

impl Codec for NopIn {
    const OPCODE: Opcode = Opcode::NOP_IN;

    fn decode(bhs: &Bhs, _ahs: &[u8]) -> Result<Self, DecodeError> {
        check_opcode(bhs, Self::OPCODE)?;
        Ok(NopIn {
            lun: Lun(bhs.u64_at(OFF_LUN)),
            itt: Itt(bhs.itt()),
            ttt: Ttt(bhs.u32_at(OFF_TTT)),
            statsn: StatSn(bhs.u32_at(OFF_STATSN)),
            expcmdsn: CmdSn(bhs.u32_at(OFF_EXPCMDSN)),
            maxcmdsn: CmdSn(bhs.u32_at(OFF_MAXCMDSN)),
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::test_util::{bhs, check_layout};

    #[test]
    fn nop_out_ping() {
        // Immediate ping from the initiator: I, F, ITT 0x50, TTT 0xffffffff.
        check_layout(
            "40800000 00000000 00000000 00000000
             00000050 ffffffff 00000011 00000012
             00000000 00000000 00000000 00000000",
            &NopOut {
                immediate: true,
                lun: Lun(0),
                itt: Itt(0x50),
                ttt: Ttt::RESERVED,
                cmdsn: CmdSn(0x11),
                expstatsn: StatSn(0x12),
            },
        );
    }

    #[test]
    fn nop_in_target_ping() {
        // Target-initiated: ITT 0xffffffff, TTT set so the initiator answers.
        check_layout(
            "20800000 00000000 00000000 00000000
             ffffffff 00000003 00000013 00000014
             00000034 00000000 00000000 00000000",
            &NopIn {
                lun: Lun(0),
                itt: Itt::RESERVED,
                ttt: Ttt(3),
                statsn: StatSn(0x13),
                expcmdsn: CmdSn(0x14),
                maxcmdsn: CmdSn(0x34),
            },
        );
    }

    #[test]
    fn missing_f_bit_is_tolerated() {
        // Byte 1 should be 0x80; a peer that sends 0x00 is still understood.
        let b = bhs("00000000 00000000 00000000 00000000
                     00000001 ffffffff 00000000 00000000
                     00000000 00000000 00000000 00000000");
        assert_eq!(NopOut::decode(&b, &[]).unwrap().itt, Itt(1));
    }
}
