//! The values a login negotiates (RFC 7143 §13), with their RFC defaults.
//!
//! Both roles fill the same [`SessionParams`]; field names say whose value
//! a declarative key carries (`..._initiator` is what the initiator
//! declared, `..._target` what the target declared), never "ours/theirs".

use super::keys::{bool_str, parse_bool};
use super::negotiate::KeyId;

/// Largest MaxRecvDataSegmentLength / MaxBurstLength / FirstBurstLength
/// (RFC 7143 §13.12–§13.14: 2^24 - 1).
pub const MAX_DATA_LEN: u32 = (1 << 24) - 1;
/// Smallest of the same (RFC 7143 §13.12–§13.14).
pub const MIN_DATA_LEN: u32 = 512;

/// SessionType (RFC 7143 §13.21).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum SessionType {
    /// Discovery session: only SendTargets text requests and logout.
    Discovery,
    /// Normal (operational) session; the default.
    #[default]
    Normal,
}

impl SessionType {
    /// The key value (RFC 7143 §13.21).
    pub fn as_str(self) -> &'static str {
        match self {
            SessionType::Discovery => "Discovery",
            SessionType::Normal => "Normal",
        }
    }

    /// Parse a SessionType value; `None` for anything but the two names
    /// (RFC 7143 §13.21).
    pub fn parse(v: &str) -> Option<SessionType> {
        match v {
            "Discovery" => Some(SessionType::Discovery),
            "Normal" => Some(SessionType::Normal),
            _ => None,
        }
    }
}

/// TaskReporting (RFC 7143 §13.23).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum TaskReporting {
    /// RFC 3720 semantics; the default.
    #[default]
    Rfc3720,
    /// Response fence semantics (RFC 7143 §4.2.3.3).
    ResponseFence,
    /// Fast multi-task abort semantics (RFC 7143 §4.2.3.4); implies ResponseFence.
    FastAbort,
}

impl TaskReporting {
    /// The key value (RFC 7143 §13.23).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskReporting::Rfc3720 => "RFC3720",
            TaskReporting::ResponseFence => "ResponseFence",
            TaskReporting::FastAbort => "FastAbort",
        }
    }

    /// Parse a TaskReporting value (RFC 7143 §13.23).
    pub fn parse(v: &str) -> Option<TaskReporting> {
        match v {
            "RFC3720" => Some(TaskReporting::Rfc3720),
            "ResponseFence" => Some(TaskReporting::ResponseFence),
            "FastAbort" => Some(TaskReporting::FastAbort),
            _ => None,
        }
    }
}

/// Every value a login negotiates or declares (RFC 7143 §13, §12), starting
/// at the RFC defaults ([`SessionParams::default`]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SessionParams {
    /// SessionType (RFC 7143 §13.21). Default Normal.
    pub session_type: SessionType,
    /// InitiatorName (RFC 7143 §13.5); empty until declared.
    pub initiator_name: String,
    /// InitiatorAlias (RFC 7143 §13.7).
    pub initiator_alias: Option<String>,
    /// TargetName (RFC 7143 §13.4); `None` in a discovery session.
    pub target_name: Option<String>,
    /// TargetAlias (RFC 7143 §13.6).
    pub target_alias: Option<String>,
    /// TargetPortalGroupTag (RFC 7143 §13.9), as declared by the target.
    pub target_portal_group_tag: Option<u16>,
    /// AuthMethod chosen (RFC 7143 §12); `None` if not negotiated.
    pub auth_method: Option<String>,
    /// HeaderDigest=CRC32C (RFC 7143 §13.1). Default None (false).
    pub header_digest: bool,
    /// DataDigest=CRC32C (RFC 7143 §13.1). Default None (false).
    pub data_digest: bool,
    /// MaxConnections (RFC 7143 §13.2). Default 1.
    pub max_connections: u32,
    /// InitialR2T (RFC 7143 §13.10). Default Yes.
    pub initial_r2t: bool,
    /// ImmediateData (RFC 7143 §13.11). Default Yes.
    pub immediate_data: bool,
    /// MaxRecvDataSegmentLength the initiator declared (RFC 7143 §13.12):
    /// the largest data segment the target may send. Default 8192.
    pub max_recv_data_segment_len_initiator: u32,
    /// MaxRecvDataSegmentLength the target declared (RFC 7143 §13.12):
    /// the largest data segment the initiator may send. Default 8192.
    pub max_recv_data_segment_len_target: u32,
    /// MaxBurstLength (RFC 7143 §13.13). Default 262144.
    pub max_burst_len: u32,
    /// FirstBurstLength (RFC 7143 §13.14). Default 65536.
    pub first_burst_len: u32,
    /// DefaultTime2Wait, seconds (RFC 7143 §13.15). Default 2.
    pub default_time2wait: u32,
    /// DefaultTime2Retain, seconds (RFC 7143 §13.16). Default 20.
    pub default_time2retain: u32,
    /// MaxOutstandingR2T (RFC 7143 §13.17). Default 1.
    pub max_outstanding_r2t: u32,
    /// DataPDUInOrder (RFC 7143 §13.18). Default Yes.
    pub data_pdu_in_order: bool,
    /// DataSequenceInOrder (RFC 7143 §13.19). Default Yes.
    pub data_sequence_in_order: bool,
    /// ErrorRecoveryLevel (RFC 7143 §13.20). Default 0.
    pub error_recovery_level: u8,
    /// TaskReporting (RFC 7143 §13.23). Default RFC3720.
    pub task_reporting: TaskReporting,
    /// iSCSIProtocolLevel (RFC 7143 §13.24, RFC 7144). Default 0.
    pub protocol_level: u8,
    /// X#NodeArchitecture the peer declared (RFC 7143 §13.26).
    pub peer_node_architecture: Option<String>,
    /// IFMarker (obsolete, RFC 7143 §13.25): always No.
    pub ifmarker: bool,
    /// OFMarker (obsolete, RFC 7143 §13.25): always No.
    pub ofmarker: bool,
}

impl Default for SessionParams {
    /// The RFC 7143 §13 defaults.
    fn default() -> Self {
        SessionParams {
            session_type: SessionType::Normal,
            initiator_name: String::new(),
            initiator_alias: None,
            target_name: None,
            target_alias: None,
            target_portal_group_tag: None,
            auth_method: None,
            header_digest: false,
            data_digest: false,
            max_connections: 1,
            initial_r2t: true,
            immediate_data: true,
            max_recv_data_segment_len_initiator: 8192,
            max_recv_data_segment_len_target: 8192,
            max_burst_len: 262_144,
            first_burst_len: 65_536,
            default_time2wait: 2,
            default_time2retain: 20,
            max_outstanding_r2t: 1,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
            error_recovery_level: 0,
            task_reporting: TaskReporting::Rfc3720,
            protocol_level: 0,
            peer_node_architecture: None,
            ifmarker: false,
            ofmarker: false,
        }
    }
}

impl SessionParams {
    /// The current value of a negotiated or declared key, rendered as it
    /// would appear on the wire (RFC 7143 §13); `None` for keys without a
    /// session value (SendTargets, TargetAddress, the obsolete marker
    /// intervals) or a declaration not yet made.
    pub fn value(&self, id: KeyId) -> Option<String> {
        let digest = |b: bool| if b { "CRC32C" } else { "None" }.to_string();
        Some(match id {
            KeyId::AuthMethod => return self.auth_method.clone(),
            KeyId::HeaderDigest => digest(self.header_digest),
            KeyId::DataDigest => digest(self.data_digest),
            KeyId::SessionType => self.session_type.as_str().to_string(),
            KeyId::InitiatorName if self.initiator_name.is_empty() => return None,
            KeyId::InitiatorName => self.initiator_name.clone(),
            KeyId::InitiatorAlias => return self.initiator_alias.clone(),
            KeyId::TargetName => return self.target_name.clone(),
            KeyId::TargetAlias => return self.target_alias.clone(),
            KeyId::TargetPortalGroupTag => return self.target_portal_group_tag.map(|t| t.to_string()),
            KeyId::TaskReporting => self.task_reporting.as_str().to_string(),
            KeyId::NodeArchitecture => return self.peer_node_architecture.clone(),
            KeyId::IfMarker => bool_str(self.ifmarker).to_string(),
            KeyId::OfMarker => bool_str(self.ofmarker).to_string(),
            KeyId::SendTargets | KeyId::TargetAddress | KeyId::IfMarkInt | KeyId::OfMarkInt => return None,
            _ => {
                if let Some(b) = self.boolean(id) {
                    bool_str(b).to_string()
                } else {
                    self.numeric(id)?.to_string()
                }
            }
        })
    }

    /// The value of a boolean key (RFC 7143 §13.10, §13.11, §13.18, §13.19).
    pub fn boolean(&self, id: KeyId) -> Option<bool> {
        Some(match id {
            KeyId::InitialR2T => self.initial_r2t,
            KeyId::ImmediateData => self.immediate_data,
            KeyId::DataPduInOrder => self.data_pdu_in_order,
            KeyId::DataSequenceInOrder => self.data_sequence_in_order,
            _ => return None,
        })
    }

    /// Set a boolean key (RFC 7143 §13.10, §13.11, §13.18, §13.19); false if
    /// `id` is not one.
    pub fn set_boolean(&mut self, id: KeyId, v: bool) -> bool {
        match id {
            KeyId::InitialR2T => self.initial_r2t = v,
            KeyId::ImmediateData => self.immediate_data = v,
            KeyId::DataPduInOrder => self.data_pdu_in_order = v,
            KeyId::DataSequenceInOrder => self.data_sequence_in_order = v,
            _ => return false,
        }
        true
    }

    /// The value of a numerical key (RFC 7143 §13.2, §13.12–§13.17,
    /// §13.20, §13.24).
    pub fn numeric(&self, id: KeyId) -> Option<u64> {
        Some(match id {
            KeyId::MaxConnections => self.max_connections.into(),
            KeyId::MaxBurstLength => self.max_burst_len.into(),
            KeyId::FirstBurstLength => self.first_burst_len.into(),
            KeyId::DefaultTime2Wait => self.default_time2wait.into(),
            KeyId::DefaultTime2Retain => self.default_time2retain.into(),
            KeyId::MaxOutstandingR2T => self.max_outstanding_r2t.into(),
            KeyId::ErrorRecoveryLevel => self.error_recovery_level.into(),
            KeyId::IscsiProtocolLevel => self.protocol_level.into(),
            _ => return None,
        })
    }

    /// Set a numerical key of RFC 7143 §13 (the caller has range-checked `v` against the
    /// key's row, so it fits); false if `id` is not one.
    pub fn set_numeric(&mut self, id: KeyId, v: u64) -> bool {
        let v32 = u32::try_from(v).unwrap_or(u32::MAX);
        let v8 = u8::try_from(v).unwrap_or(u8::MAX);
        match id {
            KeyId::MaxConnections => self.max_connections = v32,
            KeyId::MaxBurstLength => self.max_burst_len = v32,
            KeyId::FirstBurstLength => self.first_burst_len = v32,
            KeyId::DefaultTime2Wait => self.default_time2wait = v32,
            KeyId::DefaultTime2Retain => self.default_time2retain = v32,
            KeyId::MaxOutstandingR2T => self.max_outstanding_r2t = v32,
            KeyId::ErrorRecoveryLevel => self.error_recovery_level = v8,
            KeyId::IscsiProtocolLevel => self.protocol_level = v8,
            _ => return false,
        }
        true
    }

    /// Set a list-valued key to the chosen value (RFC 7143 §13.1, §13.23,
    /// §12); false if `id` is not one or the value is unknown.
    pub fn set_choice(&mut self, id: KeyId, v: &str) -> bool {
        match (id, v) {
            (KeyId::HeaderDigest, "CRC32C") => self.header_digest = true,
            (KeyId::HeaderDigest, "None") => self.header_digest = false,
            (KeyId::DataDigest, "CRC32C") => self.data_digest = true,
            (KeyId::DataDigest, "None") => self.data_digest = false,
            (KeyId::TaskReporting, _) => match TaskReporting::parse(v) {
                Some(t) => self.task_reporting = t,
                None => return false,
            },
            (KeyId::AuthMethod, _) => self.auth_method = Some(v.to_string()),
            (KeyId::IfMarker, _) => match parse_bool(v) {
                Some(b) => self.ifmarker = b,
                None => return false,
            },
            (KeyId::OfMarker, _) => match parse_bool(v) {
                Some(b) => self.ofmarker = b,
                None => return false,
            },
            _ => return false,
        }
        true
    }

    /// Apply the integrity rule "FirstBurstLength MUST NOT exceed
    /// MaxBurstLength" (RFC 7143 §13.14) by lowering FirstBurstLength.
    pub fn enforce_integrity(&mut self) {
        if self.first_burst_len > self.max_burst_len {
            self.first_burst_len = self.max_burst_len;
        }
    }

    /// Copy the session-wide (leading-only, RFC 7143 §13 "LO") values of
    /// `session` into `self`, for the login of a further connection of an
    /// existing session.
    pub fn inherit_session(&mut self, session: &SessionParams) {
        self.session_type = session.session_type;
        self.max_connections = session.max_connections;
        self.initial_r2t = session.initial_r2t;
        self.immediate_data = session.immediate_data;
        self.max_burst_len = session.max_burst_len;
        self.first_burst_len = session.first_burst_len;
        self.default_time2wait = session.default_time2wait;
        self.default_time2retain = session.default_time2retain;
        self.max_outstanding_r2t = session.max_outstanding_r2t;
        self.data_pdu_in_order = session.data_pdu_in_order;
        self.data_sequence_in_order = session.data_sequence_in_order;
        self.error_recovery_level = session.error_recovery_level;
        self.task_reporting = session.task_reporting;
        self.protocol_level = session.protocol_level;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_rfc_7143() {
        let p = SessionParams::default();
        assert_eq!(p.value(KeyId::HeaderDigest).as_deref(), Some("None"));
        assert_eq!(p.value(KeyId::MaxConnections).as_deref(), Some("1"));
        assert_eq!(p.value(KeyId::InitialR2T).as_deref(), Some("Yes"));
        assert_eq!(p.value(KeyId::ImmediateData).as_deref(), Some("Yes"));
        assert_eq!(p.value(KeyId::MaxBurstLength).as_deref(), Some("262144"));
        assert_eq!(p.value(KeyId::FirstBurstLength).as_deref(), Some("65536"));
        assert_eq!(p.value(KeyId::DefaultTime2Wait).as_deref(), Some("2"));
        assert_eq!(p.value(KeyId::DefaultTime2Retain).as_deref(), Some("20"));
        assert_eq!(p.value(KeyId::MaxOutstandingR2T).as_deref(), Some("1"));
        assert_eq!(p.value(KeyId::ErrorRecoveryLevel).as_deref(), Some("0"));
        assert_eq!(p.value(KeyId::SessionType).as_deref(), Some("Normal"));
        assert_eq!(p.value(KeyId::TaskReporting).as_deref(), Some("RFC3720"));
        assert_eq!(p.value(KeyId::IscsiProtocolLevel).as_deref(), Some("0"));
        assert_eq!(p.max_recv_data_segment_len_initiator, 8192);
        assert_eq!(p.max_recv_data_segment_len_target, 8192);
        assert_eq!(p.value(KeyId::InitiatorName), None);
    }

    #[test]
    fn setters_and_integrity() {
        let mut p = SessionParams::default();
        assert!(p.set_numeric(KeyId::MaxBurstLength, 4096));
        assert!(!p.set_numeric(KeyId::InitialR2T, 1));
        assert!(p.set_boolean(KeyId::InitialR2T, false));
        assert!(!p.set_boolean(KeyId::MaxBurstLength, false));
        assert!(p.set_choice(KeyId::DataDigest, "CRC32C"));
        assert!(!p.set_choice(KeyId::DataDigest, "MD5"));
        p.enforce_integrity();
        assert_eq!(p.first_burst_len, 4096);
        assert!(p.data_digest);
        assert!(!p.initial_r2t);
    }
}
