//! Logout Request (0x06) and Logout Response (0x26) PDUs (RFC 7143 §11.14, §11.15).

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
