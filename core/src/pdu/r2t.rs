//! Ready To Transfer PDU, opcode 0x31 (RFC 7143 §11.8).

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
