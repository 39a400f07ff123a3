//! Text Request (0x04) and Text Response (0x24) PDUs (RFC 7143 §11.10, §11.11).

use super::bhs::{
    Bhs, Opcode, FLAG_CONTINUE, FLAG_FINAL, OFF_CMDSN, OFF_EXPCMDSN, OFF_EXPSTATSN, OFF_ITT, OFF_LUN, OFF_MAXCMDSN,
    OFF_STATSN, OFF_TTT,
};
use super::{check_opcode, Codec, DecodeError};
use crate::ids::{Itt, Lun, Ttt};
use crate::serial::{CmdSn, StatSn};

/// Text Request header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct TextRequest {
    /// I bit.
    pub immediate: bool,
    /// F bit.
    pub final_: bool,
    /// C bit.
    pub continue_: bool,
    /// LUN.
    pub lun: Lun,
    /// Initiator task tag.
    pub itt: Itt,
    /// Target transfer tag (0xffffffff on a new request).
    pub ttt: Ttt,
    /// CmdSN.
    pub cmdsn: CmdSn,
    /// ExpStatSN.
    pub expstatsn: StatSn,
}

/// Text Response header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct TextResponse {
    /// F bit.
    pub final_: bool,
    /// C bit.
    pub continue_: bool,
    /// LUN.
    pub lun: Lun,
    /// Initiator task tag.
    pub itt: Itt,
    /// Target transfer tag.
    pub ttt: Ttt,
    /// StatSN.
    pub statsn: StatSn,
    /// ExpCmdSN.
    pub expcmdsn: CmdSn,
    /// MaxCmdSN.
    pub maxcmdsn: CmdSn,
}

impl Codec for TextRequest {
    const OPCODE: Opcode = Opcode::TEXT_REQUEST;

    fn decode(bhs: &Bhs, _ahs: &[u8]) -> Result<Self, DecodeError> {
        check_opcode(bhs, Self::OPCODE)?;
        Ok(TextRequest {
            immediate: bhs.immediate(),
            final_: bhs.flag(FLAG_FINAL),
            continue_: bhs.flag(FLAG_CONTINUE),
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
        bhs.set_flag(FLAG_FINAL, self.final_);
        bhs.set_flag(FLAG_CONTINUE, self.continue_);
        bhs.put_u64(OFF_LUN, self.lun.0);
        bhs.put_u32(OFF_ITT, self.itt.0);
        bhs.put_u32(OFF_TTT, self.ttt.0);
        bhs.put_u32(OFF_CMDSN, self.cmdsn.0);
        bhs.put_u32(OFF_EXPSTATSN, self.expstatsn.0);
    }
}

impl Codec for TextResponse {
    const OPCODE: Opcode = Opcode::TEXT_RESPONSE;

    fn decode(bhs: &Bhs, _ahs: &[u8]) -> Result<Self, DecodeError> {
        check_opcode(bhs, Self::OPCODE)?;
        Ok(TextResponse {
            final_: bhs.flag(FLAG_FINAL),
            continue_: bhs.flag(FLAG_CONTINUE),
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
        bhs.set_flag(FLAG_FINAL, self.final_);
        bhs.set_flag(FLAG_CONTINUE, self.continue_);
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
    use crate::pdu::test_util::check_layout;

    #[test]
    fn send_targets_request() {
        // Immediate, F, new request (TTT 0xffffffff): "SendTargets=All".
        check_layout(
            "44800000 00000000 00000000 00000000
             00000060 ffffffff 00000001 00000002
             00000000 00000000 00000000 00000000",
            &TextRequest {
                immediate: true,
                final_: true,
                continue_: false,
                lun: Lun(0),
                itt: Itt(0x60),
                ttt: Ttt::RESERVED,
                cmdsn: CmdSn(1),
                expstatsn: StatSn(2),
            },
        );
    }

    #[test]
    fn continued_text_response() {
        // C set, F clear: more text follows; TTT names the continuation.
        check_layout(
            "24400000 00000000 00000000 00000000
             00000060 00000005 00000002 00000002
             00000022 00000000 00000000 00000000",
            &TextResponse {
                final_: false,
                continue_: true,
                lun: Lun(0),
                itt: Itt(0x60),
                ttt: Ttt(5),
                statsn: StatSn(2),
                expcmdsn: CmdSn(2),
                maxcmdsn: CmdSn(0x22),
            },
        );
    }
}
