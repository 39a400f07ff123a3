//! NOP-Out (0x00) and NOP-In (0x20) PDUs (RFC 7143 §11.18, §11.19).

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
