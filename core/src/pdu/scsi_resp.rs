//! SCSI Response PDU, opcode 0x21 (RFC 7143 §11.4).

use crate::ids::Itt;
use crate::serial::{CmdSn, StatSn};

/// SCSI Response header. Sense data travels in the data segment, prefixed
/// by a 2-byte SenseLength (RFC 7143 §11.4.7).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ScsiResponse {
    /// o bit: bidirectional read residual overflow.
    pub bidi_overflow: bool,
    /// u bit: bidirectional read residual underflow.
    pub bidi_underflow: bool,
    /// O bit: residual overflow.
    pub overflow: bool,
    /// U bit: residual underflow.
    pub underflow: bool,
    /// Response: 0x00 command completed at target, 0x01 target failure.
    pub response: u8,
    /// SCSI status (SAM-5 §5.3).
    pub status: u8,
    /// Initiator task tag.
    pub itt: Itt,
    /// SNACK tag.
    pub snack_tag: u32,
    /// StatSN.
    pub statsn: StatSn,
    /// ExpCmdSN.
    pub expcmdsn: CmdSn,
    /// MaxCmdSN.
    pub maxcmdsn: CmdSn,
    /// ExpDataSN (R2T + Data-In count for this task).
    pub expdatasn: u32,
    /// Bidirectional read residual count.
    pub bidi_residual: u32,
    /// Residual count.
    pub residual: u32,
}
