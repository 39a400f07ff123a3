//! SCSI Data-In PDU, opcode 0x25 (RFC 7143 §11.7).

use crate::ids::{Itt, Lun, Ttt};
use crate::serial::{CmdSn, StatSn};

/// Data-In header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct DataIn {
    /// F bit: last PDU of the sequence.
    pub final_: bool,
    /// A bit: acknowledge requested (ERL > 0).
    pub ack: bool,
    /// O bit (valid only with S).
    pub overflow: bool,
    /// U bit (valid only with S).
    pub underflow: bool,
    /// S bit: status is in this PDU.
    pub has_status: bool,
    /// SCSI status (valid only with S).
    pub status: u8,
    /// LUN (valid with A; otherwise reserved, we still round-trip it).
    pub lun: Lun,
    /// Initiator task tag.
    pub itt: Itt,
    /// Target transfer tag.
    pub ttt: Ttt,
    /// StatSN (valid only with S).
    pub statsn: StatSn,
    /// ExpCmdSN.
    pub expcmdsn: CmdSn,
    /// MaxCmdSN.
    pub maxcmdsn: CmdSn,
    /// DataSN.
    pub datasn: u32,
    /// Buffer offset.
    pub buffer_offset: u32,
    /// Residual count (valid only with S).
    pub residual: u32,
}
