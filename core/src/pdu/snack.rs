//! SNACK Request PDU, opcode 0x10 (RFC 7143 §11.16).

use crate::ids::{Itt, Lun, Ttt};
use crate::serial::StatSn;

/// SNACK Request header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Snack {
    /// Type (4 bits): 0 Data/R2T, 1 Status, 2 DataACK, 3 R-Data.
    pub snack_type: u8,
    /// LUN.
    pub lun: Lun,
    /// Initiator task tag.
    pub itt: Itt,
    /// Target transfer tag or SNACK tag.
    pub ttt: Ttt,
    /// ExpStatSN.
    pub expstatsn: StatSn,
    /// BegRun.
    pub begrun: u32,
    /// RunLength.
    pub runlength: u32,
}
