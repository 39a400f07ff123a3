//! Text Request (0x04) and Text Response (0x24) PDUs (RFC 7143 §11.10, §11.11).

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
