//! Logout Request (0x06) and Logout Response (0x26) PDUs (RFC 7143 §11.14, §11.15).

use super::bhs::{
    Bhs, Opcode, FLAG_FINAL, LOW7_MASK, OFF_CID, OFF_CMDSN, OFF_EXPCMDSN, OFF_EXPSTATSN, OFF_FLAGS, OFF_ITT,
    OFF_MAXCMDSN, OFF_RESPONSE, OFF_STATSN, OFF_TIME2RETAIN, OFF_TIME2WAIT,
};
use super::{check_opcode, Codec, DecodeError};
use crate::ids::{Cid, Itt};
use crate::serial::{CmdSn, StatSn};

/// Logout reason code (RFC 7143 §11.14.1).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct LogoutReason(pub u8);

impl LogoutReason {
    /// 0: close the session.
    pub const CLOSE_SESSION: LogoutReason = LogoutReason(0);
    /// 1: close the connection.
    pub const CLOSE_CONNECTION: LogoutReason = LogoutReason(1);
    /// 2: remove the connection for recovery.
    pub const REMOVE_FOR_RECOVERY: LogoutReason = LogoutReason(2);
}

/// Logout Request header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct LogoutRequest {
    /// I bit.
    pub immediate: bool,
    /// Reason code (7 bits).
    pub reason: LogoutReason,
    /// Initiator task tag.
    pub itt: Itt,
    /// CID (for reasons 1 and 2).
    pub cid: Cid,
    /// CmdSN.
    pub cmdsn: CmdSn,
    /// ExpStatSN.
    pub expstatsn: StatSn,
}

/// Logout Response header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct LogoutResponse {
    /// Response: 0 closed successfully, 1 CID not found, 2 recovery not supported, 3 cleanup failed.
    pub response: u8,
    /// Initiator task tag.
    pub itt: Itt,
    /// StatSN.
    pub statsn: StatSn,
    /// ExpCmdSN.
    pub expcmdsn: CmdSn,
    /// MaxCmdSN.
    pub maxcmdsn: CmdSn,
    /// Time2Wait.
    pub time2wait: u16,
    /// Time2Retain.
    pub time2retain: u16,
}

impl Codec for LogoutRequest {
    const OPCODE: Opcode = Opcode::LOGOUT_REQUEST;

    fn decode(bhs: &Bhs, _ahs: &[u8]) -> Result<Self, DecodeError> {
        check_opcode(bhs, Self::OPCODE)?;
        Ok(LogoutRequest {
            immediate: bhs.immediate(),
            reason: LogoutReason(bhs.flags() & LOW7_MASK),
            itt: Itt(bhs.itt()),
            cid: Cid(bhs.u16_at(OFF_CID)),
            cmdsn: CmdSn(bhs.u32_at(OFF_CMDSN)),
            expstatsn: StatSn(bhs.u32_at(OFF_EXPSTATSN)),
        })
    }

    /// Byte 1 is `0x80 | reason` (RFC 7143 §11.14).
    fn encode(&self, bhs: &mut Bhs) {
        bhs.set_opcode(Self::OPCODE);
        bhs.set_immediate(self.immediate);
        bhs.put_u8(OFF_FLAGS, FLAG_FINAL | (self.reason.0 & LOW7_MASK));
        bhs.put_u32(OFF_ITT, self.itt.0);
        bhs.put_u16(OFF_CID, self.cid.0);
        bhs.put_u32(OFF_CMDSN, self.cmdsn.0);
        bhs.put_u32(OFF_EXPSTATSN, self.expstatsn.0);
    }
}

impl Codec for LogoutResponse {
    const OPCODE: Opcode = Opcode::LOGOUT_RESPONSE;

    fn decode(bhs: &Bhs, _ahs: &[u8]) -> Result<Self, DecodeError> {
        check_opcode(bhs, Self::OPCODE)?;
        Ok(LogoutResponse {
            response: bhs.u8_at(OFF_RESPONSE),
            itt: Itt(bhs.itt()),
            statsn: StatSn(bhs.u32_at(OFF_STATSN)),
            expcmdsn: CmdSn(bhs.u32_at(OFF_EXPCMDSN)),
            maxcmdsn: CmdSn(bhs.u32_at(OFF_MAXCMDSN)),
            time2wait: bhs.u16_at(OFF_TIME2WAIT),
            time2retain: bhs.u16_at(OFF_TIME2RETAIN),
        })
    }

    fn encode(&self, bhs: &mut Bhs) {
        bhs.set_opcode(Self::OPCODE);
        bhs.set_flag(FLAG_FINAL, true);
        bhs.put_u8(OFF_RESPONSE, self.response);
        bhs.put_u32(OFF_ITT, self.itt.0);
        bhs.put_u32(OFF_STATSN, self.statsn.0);
        bhs.put_u32(OFF_EXPCMDSN, self.expcmdsn.0);
        bhs.put_u32(OFF_MAXCMDSN, self.maxcmdsn.0);
        bhs.put_u16(OFF_TIME2WAIT, self.time2wait);
        bhs.put_u16(OFF_TIME2RETAIN, self.time2retain);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::test_util::{bhs, check_layout};

    #[test]
    fn close_connection_request() {
        // I, byte 1 = 0x80 | 1 (close the connection), ITT 0x70, CID 2.
        check_layout(
            "46810000 00000000 00000000 00000000
             00000070 00020000 00000021 00000022
             00000000 00000000 00000000 00000000",
            &LogoutRequest {
                immediate: true,
                reason: LogoutReason::CLOSE_CONNECTION,
                itt: Itt(0x70),
                cid: Cid(2),
                cmdsn: CmdSn(0x21),
                expstatsn: StatSn(0x22),
            },
        );
    }

    #[test]
    fn reason_without_top_bit_is_tolerated() {
        let b = bhs("06020000 00000000 00000000 00000000
                     00000001 00000000 00000000 00000000
                     00000000 00000000 00000000 00000000");
        let r = LogoutRequest::decode(&b, &[]).unwrap();
        assert_eq!(r.reason, LogoutReason::REMOVE_FOR_RECOVERY);
        assert!(!r.immediate);
    }

    #[test]
    fn logout_response_times() {
        // Response 0, Time2Wait 2, Time2Retain 20.
        check_layout(
            "26800000 00000000 00000000 00000000
             00000070 00000000 00000030 00000022
             00000042 00000000 00020014 00000000",
            &LogoutResponse {
                response: 0,
                itt: Itt(0x70),
                statsn: StatSn(0x30),
                expcmdsn: CmdSn(0x22),
                maxcmdsn: CmdSn(0x42),
                time2wait: 2,
                time2retain: 20,
            },
        );
    }
}
