//! SCSI Command PDU, opcode 0x01 (RFC 7143 §11.3).

use crate::ids::{Itt, Lun};
use crate::serial::{CmdSn, StatSn};

/// Task attribute (RFC 7143 §11.3.1.2, SAM-5 §8.5).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TaskAttr(pub u8);

impl TaskAttr {
    /// 0: untagged (treated as SIMPLE).
    pub const UNTAGGED: TaskAttr = TaskAttr(0);
    /// 1: SIMPLE.
    pub const SIMPLE: TaskAttr = TaskAttr(1);
    /// 2: ORDERED.
    pub const ORDERED: TaskAttr = TaskAttr(2);
    /// 3: HEAD OF QUEUE.
    pub const HEAD_OF_QUEUE: TaskAttr = TaskAttr(3);
    /// 4: ACA.
    pub const ACA: TaskAttr = TaskAttr(4);
}

/// SCSI Command header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ScsiCommand {
    /// I bit: immediate delivery.
    pub immediate: bool,
    /// F bit: no unsolicited Data-Out follows.
    pub final_: bool,
    /// R bit: data flows to the initiator.
    pub read: bool,
    /// W bit: data flows to the target.
    pub write: bool,
    /// ATTR (3 bits).
    pub attr: TaskAttr,
    /// Logical unit.
    pub lun: Lun,
    /// Initiator task tag.
    pub itt: Itt,
    /// Expected Data Transfer Length (for bidirectional: the write length).
    pub edtl: u32,
    /// CmdSN.
    pub cmdsn: CmdSn,
    /// ExpStatSN.
    pub expstatsn: StatSn,
    /// The first 16 CDB bytes.
    pub cdb: [u8; 16],
    /// CDB bytes beyond 16, from an Extended CDB AHS (type 1, RFC 7143 §11.3.5).
    pub ext_cdb: Option<Box<[u8]>>,
    /// Expected Bidirectional Read Data Length from a type-2 AHS (RFC 7143 §11.3.6).
    pub bidi_read_len: Option<u32>,
}
