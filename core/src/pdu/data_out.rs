//! SCSI Data-Out PDU, opcode 0x05 (RFC 7143 §11.7).

use crate::ids::{Itt, Lun, Ttt};
use crate::serial::StatSn;

/// Data-Out header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct DataOut {
    /// F bit: last PDU of the sequence.
    pub final_: bool,
    /// LUN.
    pub lun: Lun,
    /// Initiator task tag.
    pub itt: Itt,
    /// Target transfer tag (0xffffffff for unsolicited data).
    pub ttt: Ttt,
    /// ExpStatSN.
    pub expstatsn: StatSn,
    /// DataSN.
    pub datasn: u32,
    /// Buffer offset.
    pub buffer_offset: u32,
}
