//! Asynchronous Message PDU, opcode 0x32 (RFC 7143 §11.9).

use super::bhs::{
    Bhs, Opcode, FLAG_FINAL, OFF_ASYNC_EVENT, OFF_ASYNC_PARAM1, OFF_ASYNC_PARAM2, OFF_ASYNC_PARAM3, OFF_ASYNC_VCODE,
    OFF_EXPCMDSN, OFF_ITT, OFF_LUN, OFF_MAXCMDSN, OFF_STATSN,
};
use super::{check_opcode, Codec, DecodeError};
use crate::ids::{Itt, Lun};
use crate::serial::{CmdSn, StatSn};

/// Asynchronous Message header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct AsyncMessage {
    /// LUN (for SCSI async events).
    pub lun: Lun,
    /// StatSN.
    pub statsn: StatSn,
    /// ExpCmdSN.
    pub expcmdsn: CmdSn,
    /// MaxCmdSN.
    pub maxcmdsn: CmdSn,
    /// AsyncEvent: 0 SCSI event, 1 logout request, 2 drop connection, 3 drop all, 4 renegotiate, 255 vendor.
    pub event: u8,
    /// AsyncVCode.
    pub vcode: u8,
    /// Parameter1.
    pub param1: u16,
    /// Parameter2.
    pub param2: u16,
    /// Parameter3.
    pub param3: u16,
}

impl AsyncMessage {
    /// AsyncEvent 0: SCSI asynchronous event; sense data in the data segment.
    pub const EVENT_SCSI: u8 = 0;
    /// AsyncEvent 1: the target requests a logout.
    pub const EVENT_LOGOUT_REQUEST: u8 = 1;
    /// AsyncEvent 2: the target will drop the connection.
    pub const EVENT_DROP_CONNECTION: u8 = 2;
    /// AsyncEvent 3: the target will drop all connections of the session.
    pub const EVENT_DROP_ALL_CONNECTIONS: u8 = 3;
    /// AsyncEvent 4: the target requests parameter renegotiation.
    pub const EVENT_RENEGOTIATE: u8 = 4;
    /// AsyncEvent 255: vendor specific.
    pub const EVENT_VENDOR: u8 = 255;
}

impl Codec for AsyncMessage {
    const OPCODE: Opcode = Opcode::ASYNC_MESSAGE;

    fn decode(bhs: &Bhs, _ahs: &[u8]) -> Result<Self, DecodeError> {
        check_opcode(bhs, Self::OPCODE)?;
        Ok(AsyncMessage {
            lun: Lun(bhs.u64_at(OFF_LUN)),
            statsn: StatSn(bhs.u32_at(OFF_STATSN)),
            expcmdsn: CmdSn(bhs.u32_at(OFF_EXPCMDSN)),
            maxcmdsn: CmdSn(bhs.u32_at(OFF_MAXCMDSN)),
            event: bhs.u8_at(OFF_ASYNC_EVENT),
            vcode: bhs.u8_at(OFF_ASYNC_VCODE),
            param1: bhs.u16_at(OFF_ASYNC_PARAM1),
            param2: bhs.u16_at(OFF_ASYNC_PARAM2),
            param3: bhs.u16_at(OFF_ASYNC_PARAM3),
        })
    }

    /// Writes F and the fixed 0xffffffff Initiator Task Tag (RFC 7143 §11.9).
    fn encode(&self, bhs: &mut Bhs) {
        bhs.set_opcode(Self::OPCODE);
        bhs.set_flag(FLAG_FINAL, true);
        bhs.put_u64(OFF_LUN, self.lun.0);
        bhs.put_u32(OFF_ITT, Itt::RESERVED.0);
        bhs.put_u32(OFF_STATSN, self.statsn.0);
        bhs.put_u32(OFF_EXPCMDSN, self.expcmdsn.0);
        bhs.put_u32(OFF_MAXCMDSN, self.maxcmdsn.0);
        bhs.put_u8(OFF_ASYNC_EVENT, self.event);
        bhs.put_u8(OFF_ASYNC_VCODE, self.vcode);
        bhs.put_u16(OFF_ASYNC_PARAM1, self.param1);
        bhs.put_u16(OFF_ASYNC_PARAM2, self.param2);
        bhs.put_u16(OFF_ASYNC_PARAM3, self.param3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::test_util::check_layout;

    #[test]
    fn logout_request_event() {
        // Event 1 (logout requested), Parameter3 = 5 s to log out in,
        // Parameter1/2 unused; ITT 0xffffffff, bytes 20..24 reserved.
        check_layout(
            "32800000 00000000 00000000 00000000
             ffffffff 00000000 00000007 00000008
             00000028 01000000 00000005 00000000",
            &AsyncMessage {
                lun: Lun(0),
                statsn: StatSn(7),
                expcmdsn: CmdSn(8),
                maxcmdsn: CmdSn(0x28),
                event: AsyncMessage::EVENT_LOGOUT_REQUEST,
                vcode: 0,
                param1: 0,
                param2: 0,
                param3: 5,
            },
        );
    }

    #[test]
    fn drop_connection_event_parameters() {
        // Event 2: Parameter1 = CID 3, Parameter2 = Time2Wait 2, Parameter3 = Time2Retain 20.
        check_layout(
            "32800000 00000000 00040000 00000000
             ffffffff 00000000 00000007 00000008
             00000028 02aa0003 00020014 00000000",
            &AsyncMessage {
                lun: Lun::from_index(4),
                statsn: StatSn(7),
                expcmdsn: CmdSn(8),
                maxcmdsn: CmdSn(0x28),
                event: AsyncMessage::EVENT_DROP_CONNECTION,
                vcode: 0xaa,
                param1: 3,
                param2: 2,
                param3: 20,
            },
        );
    }
}
