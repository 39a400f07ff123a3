//! Task Management Function Request (0x02) and Response (0x22) PDUs
//! (RFC 7143 §11.5, §11.6).

use crate::ids::{Itt, Lun};
use crate::serial::{CmdSn, StatSn};

/// TMF function code (RFC 7143 §11.5.1).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TmfFunction(pub u8);

impl TmfFunction {
    /// 1 ABORT TASK.
    pub const ABORT_TASK: TmfFunction = TmfFunction(1);
    /// 2 ABORT TASK SET.
    pub const ABORT_TASK_SET: TmfFunction = TmfFunction(2);
    /// 3 CLEAR ACA.
    pub const CLEAR_ACA: TmfFunction = TmfFunction(3);
    /// 4 CLEAR TASK SET.
    pub const CLEAR_TASK_SET: TmfFunction = TmfFunction(4);
    /// 5 LOGICAL UNIT RESET.
    pub const LOGICAL_UNIT_RESET: TmfFunction = TmfFunction(5);
    /// 6 TARGET WARM RESET.
    pub const TARGET_WARM_RESET: TmfFunction = TmfFunction(6);
    /// 7 TARGET COLD RESET.
    pub const TARGET_COLD_RESET: TmfFunction = TmfFunction(7);
    /// 8 TASK REASSIGN.
    pub const TASK_REASSIGN: TmfFunction = TmfFunction(8);
}

/// TMF response code (RFC 7143 §11.6.1).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TmfResponseCode(pub u8);

impl TmfResponseCode {
    /// 0 function complete.
    pub const COMPLETE: TmfResponseCode = TmfResponseCode(0);
    /// 1 task does not exist.
    pub const TASK_DOES_NOT_EXIST: TmfResponseCode = TmfResponseCode(1);
    /// 2 LUN does not exist.
    pub const LUN_DOES_NOT_EXIST: TmfResponseCode = TmfResponseCode(2);
    /// 3 task still allegiant.
    pub const TASK_STILL_ALLEGIANT: TmfResponseCode = TmfResponseCode(3);
    /// 4 task allegiance reassignment not supported.
    pub const REASSIGN_NOT_SUPPORTED: TmfResponseCode = TmfResponseCode(4);
    /// 5 task management function not supported.
    pub const NOT_SUPPORTED: TmfResponseCode = TmfResponseCode(5);
    /// 6 function authorization failed.
    pub const AUTHORIZATION_FAILED: TmfResponseCode = TmfResponseCode(6);
    /// 255 function rejected.
    pub const REJECTED: TmfResponseCode = TmfResponseCode(255);
}

/// TMF Request header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct TmfRequest {
    /// I bit.
    pub immediate: bool,
    /// Function (7 bits).
    pub function: TmfFunction,
    /// LUN.
    pub lun: Lun,
    /// Initiator task tag of this TMF.
    pub itt: Itt,
    /// Referenced task tag (ABORT TASK).
    pub rtt: Itt,
    /// CmdSN.
    pub cmdsn: CmdSn,
    /// ExpStatSN.
    pub expstatsn: StatSn,
    /// RefCmdSN.
    pub refcmdsn: CmdSn,
    /// ExpDataSN.
    pub expdatasn: u32,
}

/// TMF Response header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct TmfResponse {
    /// Response code.
    pub response: TmfResponseCode,
    /// Initiator task tag of the TMF.
    pub itt: Itt,
    /// StatSN.
    pub statsn: StatSn,
    /// ExpCmdSN.
    pub expcmdsn: CmdSn,
    /// MaxCmdSN.
    pub maxcmdsn: CmdSn,
}
