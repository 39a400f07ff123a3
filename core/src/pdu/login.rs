//! Login Request (0x03) and Login Response (0x23) PDUs (RFC 7143 §11.12, §11.13).

use crate::ids::{Cid, Isid, Itt, Tsih};
use crate::serial::{CmdSn, StatSn};

/// Login stage (CSG/NSG, RFC 7143 §11.12.3).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Stage(pub u8);

impl Stage {
    /// 0: SecurityNegotiation.
    pub const SECURITY: Stage = Stage(0);
    /// 1: LoginOperationalNegotiation.
    pub const OPERATIONAL: Stage = Stage(1);
    /// 3: FullFeaturePhase.
    pub const FULL_FEATURE: Stage = Stage(3);
}

/// Login status class and detail, as one 16-bit value (RFC 7143 §11.13.5).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct LoginStatus(pub u16);

impl LoginStatus {
    /// 0x0000 success.
    pub const SUCCESS: LoginStatus = LoginStatus(0x0000);
    /// 0x0101 target moved temporarily.
    pub const TARGET_MOVED_TEMPORARILY: LoginStatus = LoginStatus(0x0101);
    /// 0x0102 target moved permanently.
    pub const TARGET_MOVED_PERMANENTLY: LoginStatus = LoginStatus(0x0102);
    /// 0x0200 initiator error (miscellaneous).
    pub const INITIATOR_ERROR: LoginStatus = LoginStatus(0x0200);
    /// 0x0201 authentication failure.
    pub const AUTH_FAILURE: LoginStatus = LoginStatus(0x0201);
    /// 0x0202 authorization failure.
    pub const AUTHORIZATION_FAILURE: LoginStatus = LoginStatus(0x0202);
    /// 0x0203 target not found.
    pub const NOT_FOUND: LoginStatus = LoginStatus(0x0203);
    /// 0x0204 target removed.
    pub const TARGET_REMOVED: LoginStatus = LoginStatus(0x0204);
    /// 0x0205 unsupported version.
    pub const UNSUPPORTED_VERSION: LoginStatus = LoginStatus(0x0205);
    /// 0x0206 too many connections.
    pub const TOO_MANY_CONNECTIONS: LoginStatus = LoginStatus(0x0206);
    /// 0x0207 missing parameter.
    pub const MISSING_PARAMETER: LoginStatus = LoginStatus(0x0207);
    /// 0x0208 can't include in session.
    pub const CANT_INCLUDE_IN_SESSION: LoginStatus = LoginStatus(0x0208);
    /// 0x0209 session type not supported.
    pub const SESSION_TYPE_NOT_SUPPORTED: LoginStatus = LoginStatus(0x0209);
    /// 0x020a session does not exist.
    pub const SESSION_DOES_NOT_EXIST: LoginStatus = LoginStatus(0x020a);
    /// 0x020b invalid request during login.
    pub const INVALID_DURING_LOGIN: LoginStatus = LoginStatus(0x020b);
    /// 0x0300 target error (miscellaneous).
    pub const TARGET_ERROR: LoginStatus = LoginStatus(0x0300);
    /// 0x0301 service unavailable.
    pub const SERVICE_UNAVAILABLE: LoginStatus = LoginStatus(0x0301);
    /// 0x0302 out of resources.
    pub const OUT_OF_RESOURCES: LoginStatus = LoginStatus(0x0302);

    /// Status class (high byte).
    pub fn class(self) -> u8 {
        (self.0 >> 8) as u8
    }
    /// Status detail (low byte).
    pub fn detail(self) -> u8 {
        self.0 as u8
    }
}

/// Login Request header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct LoginRequest {
    /// T bit: transit to `nsg`.
    pub transit: bool,
    /// C bit: text continues in the next PDU.
    pub continue_: bool,
    /// Current stage.
    pub csg: Stage,
    /// Next stage (valid with T).
    pub nsg: Stage,
    /// Version-max.
    pub version_max: u8,
    /// Version-min.
    pub version_min: u8,
    /// ISID.
    pub isid: Isid,
    /// TSIH.
    pub tsih: Tsih,
    /// Initiator task tag.
    pub itt: Itt,
    /// CID.
    pub cid: Cid,
    /// CmdSN.
    pub cmdsn: CmdSn,
    /// ExpStatSN.
    pub expstatsn: StatSn,
}

/// Login Response header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct LoginResponse {
    /// T bit.
    pub transit: bool,
    /// C bit.
    pub continue_: bool,
    /// Current stage.
    pub csg: Stage,
    /// Next stage.
    pub nsg: Stage,
    /// Version-max.
    pub version_max: u8,
    /// Version-active.
    pub version_active: u8,
    /// ISID.
    pub isid: Isid,
    /// TSIH.
    pub tsih: Tsih,
    /// Initiator task tag.
    pub itt: Itt,
    /// StatSN.
    pub statsn: StatSn,
    /// ExpCmdSN.
    pub expcmdsn: CmdSn,
    /// MaxCmdSN.
    pub maxcmdsn: CmdSn,
    /// Status class and detail.
    pub status: LoginStatus,
}
