//! Login Request (0x03) and Login Response (0x23) PDUs (RFC 7143 §11.12, §11.13).

use super::bhs::{
    Bhs, Opcode, FLAG_CONTINUE, FLAG_LOGIN_TRANSIT, ISID_LEN, LOGIN_CSG_MASK, LOGIN_CSG_SHIFT, LOGIN_NSG_MASK, OFF_CID,
    OFF_CMDSN, OFF_EXPCMDSN, OFF_EXPSTATSN, OFF_FLAGS, OFF_ISID, OFF_ITT, OFF_LOGIN_STATUS, OFF_MAXCMDSN, OFF_STATSN,
    OFF_TSIH, OFF_VERSION_ACTIVE, OFF_VERSION_MAX, OFF_VERSION_MIN,
};
use super::{check_opcode, Codec, DecodeError};
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

/// Byte 1 of a Login PDU: T, C, CSG, and NSG only with T (RFC 7143 §11.12).
fn login_flags(transit: bool, continue_: bool, csg: Stage, nsg: Stage) -> u8 {
    let mut f = (csg.0 << LOGIN_CSG_SHIFT) & LOGIN_CSG_MASK;
    if transit {
        f |= FLAG_LOGIN_TRANSIT | (nsg.0 & LOGIN_NSG_MASK);
    }
    if continue_ {
        f |= FLAG_CONTINUE;
    }
    f
}

/// (T, C, CSG, NSG) from byte 1; NSG reads as 0 without T ("valid only
/// when the T bit is 1; otherwise reserved", RFC 7143 §11.12).
fn parse_login_flags(f: u8) -> (bool, bool, Stage, Stage) {
    let transit = f & FLAG_LOGIN_TRANSIT != 0;
    let csg = Stage((f & LOGIN_CSG_MASK) >> LOGIN_CSG_SHIFT);
    let nsg = Stage(if transit { f & LOGIN_NSG_MASK } else { 0 });
    (transit, f & FLAG_CONTINUE != 0, csg, nsg)
}

/// The 6 ISID bytes at offset 8.
fn isid_at(bhs: &Bhs) -> Isid {
    let mut b = [0u8; ISID_LEN];
    b.copy_from_slice(&bhs.0[OFF_ISID..OFF_ISID + ISID_LEN]);
    Isid::from_bytes(b)
}

impl Codec for LoginRequest {
    const OPCODE: Opcode = Opcode::LOGIN_REQUEST;

    fn decode(bhs: &Bhs, _ahs: &[u8]) -> Result<Self, DecodeError> {
        check_opcode(bhs, Self::OPCODE)?;
        let (transit, continue_, csg, nsg) = parse_login_flags(bhs.flags());
        Ok(LoginRequest {
            transit,
            continue_,
            csg,
            nsg,
            version_max: bhs.u8_at(OFF_VERSION_MAX),
            version_min: bhs.u8_at(OFF_VERSION_MIN),
            isid: isid_at(bhs),
            tsih: Tsih(bhs.u16_at(OFF_TSIH)),
            itt: Itt(bhs.itt()),
            cid: Cid(bhs.u16_at(OFF_CID)),
            cmdsn: CmdSn(bhs.u32_at(OFF_CMDSN)),
            expstatsn: StatSn(bhs.u32_at(OFF_EXPSTATSN)),
        })
    }

    /// Always sets the I bit: a Login Request is immediate (RFC 7143 §11.12).
    fn encode(&self, bhs: &mut Bhs) {
        bhs.set_opcode(Self::OPCODE);
        bhs.set_immediate(true);
        bhs.put_u8(OFF_FLAGS, login_flags(self.transit, self.continue_, self.csg, self.nsg));
        bhs.put_u8(OFF_VERSION_MAX, self.version_max);
        bhs.put_u8(OFF_VERSION_MIN, self.version_min);
        bhs.0[OFF_ISID..OFF_ISID + ISID_LEN].copy_from_slice(&self.isid.to_bytes());
        bhs.put_u16(OFF_TSIH, self.tsih.0);
        bhs.put_u32(OFF_ITT, self.itt.0);
        bhs.put_u16(OFF_CID, self.cid.0);
        bhs.put_u32(OFF_CMDSN, self.cmdsn.0);
        bhs.put_u32(OFF_EXPSTATSN, self.expstatsn.0);
    }
}

impl Codec for LoginResponse {
    const OPCODE: Opcode = Opcode::LOGIN_RESPONSE;

    fn decode(bhs: &Bhs, _ahs: &[u8]) -> Result<Self, DecodeError> {
        check_opcode(bhs, Self::OPCODE)?;
        let (transit, continue_, csg, nsg) = parse_login_flags(bhs.flags());
        Ok(LoginResponse {
            transit,
            continue_,
            csg,
            nsg,
            version_max: bhs.u8_at(OFF_VERSION_MAX),
            version_active: bhs.u8_at(OFF_VERSION_ACTIVE),
            isid: isid_at(bhs),
            tsih: Tsih(bhs.u16_at(OFF_TSIH)),
            itt: Itt(bhs.itt()),
            statsn: StatSn(bhs.u32_at(OFF_STATSN)),
            expcmdsn: CmdSn(bhs.u32_at(OFF_EXPCMDSN)),
            maxcmdsn: CmdSn(bhs.u32_at(OFF_MAXCMDSN)),
            status: LoginStatus(bhs.u16_at(OFF_LOGIN_STATUS)),
        })
    }

    fn encode(&self, bhs: &mut Bhs) {
        bhs.set_opcode(Self::OPCODE);
        bhs.put_u8(OFF_FLAGS, login_flags(self.transit, self.continue_, self.csg, self.nsg));
        bhs.put_u8(OFF_VERSION_MAX, self.version_max);
        bhs.put_u8(OFF_VERSION_ACTIVE, self.version_active);
        bhs.0[OFF_ISID..OFF_ISID + ISID_LEN].copy_from_slice(&self.isid.to_bytes());
        bhs.put_u16(OFF_TSIH, self.tsih.0);
        bhs.put_u32(OFF_ITT, self.itt.0);
        bhs.put_u32(OFF_STATSN, self.statsn.0);
        bhs.put_u32(OFF_EXPCMDSN, self.expcmdsn.0);
        bhs.put_u32(OFF_MAXCMDSN, self.maxcmdsn.0);
        bhs.put_u16(OFF_LOGIN_STATUS, self.status.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::test_util::{bhs, check_layout, encode_bhs};

    #[test]
    fn leading_login_request() {
        // I, T, CSG=0 (security), NSG=1 (operational): byte 1 = 0x81.
        // Version 0/0, ISID 00 02 3d 00 00 01 (open-iscsi's default: OUI
        // format, Cisco OUI 00023d), TSIH 0, ITT 0, CID 0, CmdSN 1.
        check_layout(
            "43810000 00000000 00023d00 00010000
             00000000 00000000 00000001 00000000
             00000000 00000000 00000000 00000000",
            &LoginRequest {
                transit: true,
                continue_: false,
                csg: Stage::SECURITY,
                nsg: Stage::OPERATIONAL,
                version_max: 0,
                version_min: 0,
                isid: Isid(0x0002_3d00_0001),
                tsih: Tsih(0),
                itt: Itt(0),
                cid: Cid(0),
                cmdsn: CmdSn(1),
                expstatsn: StatSn(0),
            },
        );
    }

    #[test]
    fn login_response_to_full_feature() {
        // T, CSG=1, NSG=3: byte 1 = 0x87. Version-max 0, active 0, TSIH 0x0102,
        // StatSN 0x10, ExpCmdSN 1, MaxCmdSN 0x20, status 0x0000.
        check_layout(
            "23870000 00000000 80123456 789a0102
             00000007 00000000 00000010 00000001
             00000020 00000000 00000000 00000000",
            &LoginResponse {
                transit: true,
                continue_: false,
                csg: Stage::OPERATIONAL,
                nsg: Stage::FULL_FEATURE,
                version_max: 0,
                version_active: 0,
                isid: Isid(0x8012_3456_789a),
                tsih: Tsih(0x0102),
                itt: Itt(7),
                statsn: StatSn(0x10),
                expcmdsn: CmdSn(1),
                maxcmdsn: CmdSn(0x20),
                status: LoginStatus::SUCCESS,
            },
        );
    }

    #[test]
    fn login_failure_status_bytes() {
        let r = LoginResponse { status: LoginStatus::NOT_FOUND, ..Default::default() };
        let wire = encode_bhs(&r);
        assert_eq!((wire[36], wire[37]), (0x02, 0x03));
        assert_eq!(r.status.class(), 2);
        assert_eq!(r.status.detail(), 3);
    }

    #[test]
    fn continue_bit_and_nsg_without_transit() {
        // C set, T clear, CSG=1, NSG bits = 3 (reserved without T: ignored).
        let b = bhs("43470000 00000000 00000000 00000000
                     00000000 00000000 00000000 00000000
                     00000000 00000000 00000000 00000000");
        let r = LoginRequest::decode(&b, &[]).unwrap();
        assert!(r.continue_ && !r.transit);
        assert_eq!((r.csg, r.nsg), (Stage::OPERATIONAL, Stage::SECURITY));
        assert_eq!(encode_bhs(&r)[1], 0x44);
        // The I bit is set even if the struct came from a peer that forgot it.
        assert_eq!(encode_bhs(&r)[0], 0x43);
    }
}
