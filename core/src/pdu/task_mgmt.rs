//! Task Management Function Request (0x02) and Response (0x22) PDUs
//! (RFC 7143 §11.5, §11.6).

use super::bhs::{
    Bhs, Opcode, FLAG_FINAL, LOW7_MASK, OFF_CMDSN, OFF_EXPCMDSN, OFF_EXPDATASN, OFF_EXPSTATSN, OFF_FLAGS, OFF_ITT,
    OFF_LUN, OFF_MAXCMDSN, OFF_REFCMDSN, OFF_RESPONSE, OFF_RTT, OFF_STATSN,
};
use super::{check_opcode, Codec, DecodeError};
use crate::ids::{Itt, Lun};
use crate::serial::{CmdSn, StatSn};

/// TMF function code (RFC 7143 §11.5.1).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TmfFunction(pub u8);

impl TmfFunction {
    /// 1 ABORT TASK.
    pub const ABORT_TASK: TmfFunction = TmfFunction(1);
    /// 2 ABORT TASK SET.
    pub const ABORT_TASK_SET: TmfFunction = TmfFunction(2);
    /// 3 CLEAR ACA.
    pub const CLEAR_ACA: TmfFunction = TmfFunction(3);
    /// 4 CLEAR TASK SET.
    pub const CLEAR_TASK_SET: TmfFunction = TmfFunction(4);
    /// 5 LOGICAL UNIT RESET.
    pub const LOGICAL_UNIT_RESET: TmfFunction = TmfFunction(5);
    /// 6 TARGET WARM RESET.
    pub const TARGET_WARM_RESET: TmfFunction = TmfFunction(6);
    /// 7 TARGET COLD RESET.
    pub const TARGET_COLD_RESET: TmfFunction = TmfFunction(7);
    /// 8 TASK REASSIGN.
    pub const TASK_REASSIGN: TmfFunction = TmfFunction(8);
}

/// TMF response code (RFC 7143 §11.6.1).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TmfResponseCode(pub u8);

impl TmfResponseCode {
    /// 0 function complete.
    pub const COMPLETE: TmfResponseCode = TmfResponseCode(0);
    /// 1 task does not exist.
    pub const TASK_DOES_NOT_EXIST: TmfResponseCode = TmfResponseCode(1);
    /// 2 LUN does not exist.
    pub const LUN_DOES_NOT_EXIST: TmfResponseCode = TmfResponseCode(2);
    /// 3 task still allegiant.
    pub const TASK_STILL_ALLEGIANT: TmfResponseCode = TmfResponseCode(3);
    /// 4 task allegiance reassignment not supported.
    pub const REASSIGN_NOT_SUPPORTED: TmfResponseCode = TmfResponseCode(4);
    /// 5 task management function not supported.
    pub const NOT_SUPPORTED: TmfResponseCode = TmfResponseCode(5);
    /// 6 function authorization failed.
    pub const AUTHORIZATION_FAILED: TmfResponseCode = TmfResponseCode(6);
    /// 255 function rejected.
    pub const REJECTED: TmfResponseCode = TmfResponseCode(255);
}

/// TMF Request header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct TmfRequest {
    /// I bit.
    pub immediate: bool,
    /// Function (7 bits).
    pub function: TmfFunction,
    /// LUN.
    pub lun: Lun,
    /// Initiator task tag of this TMF.
    pub itt: Itt,
    /// Referenced task tag (ABORT TASK).
    pub rtt: Itt,
    /// CmdSN.
    pub cmdsn: CmdSn,
    /// ExpStatSN.
    pub expstatsn: StatSn,
    /// RefCmdSN.
    pub refcmdsn: CmdSn,
    /// ExpDataSN.
    pub expdatasn: u32,
}

/// TMF Response header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct TmfResponse {
    /// Response code.
    pub response: TmfResponseCode,
    /// Initiator task tag of the TMF.
    pub itt: Itt,
    /// StatSN.
    pub statsn: StatSn,
    /// ExpCmdSN.
    pub expcmdsn: CmdSn,
    /// MaxCmdSN.
    pub maxcmdsn: CmdSn,
}

impl Codec for TmfRequest {
    const OPCODE: Opcode = Opcode::TMF_REQUEST;

    fn decode(bhs: &Bhs, _ahs: &[u8]) -> Result<Self, DecodeError> {
        check_opcode(bhs, Self::OPCODE)?;
        Ok(TmfRequest {
            immediate: bhs.immediate(),
            function: TmfFunction(bhs.flags() & LOW7_MASK),
            lun: Lun(bhs.u64_at(OFF_LUN)),
            itt: Itt(bhs.itt()),
            rtt: Itt(bhs.u32_at(OFF_RTT)),
            cmdsn: CmdSn(bhs.u32_at(OFF_CMDSN)),
            expstatsn: StatSn(bhs.u32_at(OFF_EXPSTATSN)),
            refcmdsn: CmdSn(bhs.u32_at(OFF_REFCMDSN)),
            expdatasn: bhs.u32_at(OFF_EXPDATASN),
        })
    }

    /// Byte 1 is `0x80 | function` (RFC 7143 §11.5).
    fn encode(&self, bhs: &mut Bhs) {
        bhs.set_opcode(Self::OPCODE);
        bhs.set_immediate(self.immediate);
        bhs.put_u8(OFF_FLAGS, FLAG_FINAL | (self.function.0 & LOW7_MASK));
        bhs.put_u64(OFF_LUN, self.lun.0);
        bhs.put_u32(OFF_ITT, self.itt.0);
        bhs.put_u32(OFF_RTT, self.rtt.0);
        bhs.put_u32(OFF_CMDSN, self.cmdsn.0);
        bhs.put_u32(OFF_EXPSTATSN, self.expstatsn.0);
        bhs.put_u32(OFF_REFCMDSN, self.refcmdsn.0);
        bhs.put_u32(OFF_EXPDATASN, self.expdatasn);
    }
}

impl Codec for TmfResponse {
    const OPCODE: Opcode = Opcode::TMF_RESPONSE;

    fn decode(bhs: &Bhs, _ahs: &[u8]) -> Result<Self, DecodeError> {
        check_opcode(bhs, Self::OPCODE)?;
        Ok(TmfResponse {
            response: TmfResponseCode(bhs.u8_at(OFF_RESPONSE)),
            itt: Itt(bhs.itt()),
            statsn: StatSn(bhs.u32_at(OFF_STATSN)),
            expcmdsn: CmdSn(bhs.u32_at(OFF_EXPCMDSN)),
            maxcmdsn: CmdSn(bhs.u32_at(OFF_MAXCMDSN)),
        })
    }

    fn encode(&self, bhs: &mut Bhs) {
        bhs.set_opcode(Self::OPCODE);
        bhs.set_flag(FLAG_FINAL, true);
        bhs.put_u8(OFF_RESPONSE, self.response.0);
        bhs.put_u32(OFF_ITT, self.itt.0);
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
    fn abort_task_request() {
        // I, byte 1 = 0x80 | 1 (ABORT TASK), LUN 0, ITT 0x90, RTT 0x30,
        // CmdSN 0x40, ExpStatSN 0x41, RefCmdSN 0x3f, ExpDataSN 2.
        check_layout(
            "42810000 00000000 00000000 00000000
             00000090 00000030 00000040 00000041
             0000003f 00000002 00000000 00000000",
            &TmfRequest {
                immediate: true,
                function: TmfFunction::ABORT_TASK,
                lun: Lun(0),
                itt: Itt(0x90),
                rtt: Itt(0x30),
                cmdsn: CmdSn(0x40),
                expstatsn: StatSn(0x41),
                refcmdsn: CmdSn(0x3f),
                expdatasn: 2,
            },
        );
    }

    #[test]
    fn lun_reset_response() {
        // Byte 1 = 0x80, response 0 (complete), bytes 20..24 reserved.
        check_layout(
            "22800000 00000000 00000000 00000000
             00000091 00000000 00000050 00000042
             00000062 00000000 00000000 00000000",
            &TmfResponse {
                response: TmfResponseCode::COMPLETE,
                itt: Itt(0x91),
                statsn: StatSn(0x50),
                expcmdsn: CmdSn(0x42),
                maxcmdsn: CmdSn(0x62),
            },
        );
    }

    #[test]
    fn rejected_function_response() {
        check_layout(
            "2280ff00 00000000 00000000 00000000
             00000092 00000000 00000050 00000042
             00000062 00000000 00000000 00000000",
            &TmfResponse {
                response: TmfResponseCode::REJECTED,
                itt: Itt(0x92),
                statsn: StatSn(0x50),
                expcmdsn: CmdSn(0x42),
                maxcmdsn: CmdSn(0x62),
            },
        );
    }
}
