//! The negotiation table (RFC 7143 §13, §12) and the target-role negotiator
//! (RFC 7143 §6).
//!
//! [`KEY_TABLE`] has one row per key: its phase ("Use"), who may send it,
//! its result function (And, Or, Min, Max, list selection, declarative),
//! range and default. [`Negotiator`] answers the keys of each (reassembled)
//! Login Request and full-feature Text Request from that table and the
//! target's [`Limits`]; the initiator role is [`InitiatorNegotiator`].
//!
//! The negotiator never builds PDUs and never decides stage transitions:
//! the login state machine (in `conn`) calls [`Negotiator::handle`] with
//! the request's CSG, asks [`Negotiator::authenticated`] and
//! [`Negotiator::awaiting_answers`] before it sets T=1, and calls
//! [`Negotiator::finish_operational`] on the response that enters the full
//! feature phase. Errors map to login status codes in one place,
//! [`NegotiationError::login_status`].

use std::collections::HashMap;
use std::fmt;

pub use super::initiator::{InitiatorConfig, InitiatorNegotiator};

use super::auth::{is_auth_key, AuthStep, Authenticator, NoAuth};
use super::keys::{
    bool_str, is_reserved_answer, is_valid_iscsi_name, parse_bool, parse_keys, parse_list, parse_number, push_key,
    TextError, IRRELEVANT, MAX_SIMPLE_VALUE_LEN, NOT_UNDERSTOOD, REJECT,
};
use super::params::{SessionParams, SessionType, MAX_DATA_LEN, MIN_DATA_LEN};
use super::sendtargets::send_targets;
use crate::pdu::login::{LoginStatus, Stage};
use crate::target::{Limits, TargetConfig, TargetSet};

/// Most distinct keys one login may carry in all its requests (a bound of
/// ours; every request is further bounded by [`super::keys::MAX_PAIRS`]).
/// (RFC 7143 §6.2 sets no limit; this bounds the duplicate-key bookkeeping.)
pub const MAX_KEYS_PER_LOGIN: usize = 4096;

/// The iSCSIProtocolLevel this implementation offers: 1 is RFC 7143
/// (RFC 7143 §13.24).
pub const PROTOCOL_LEVEL: u64 = 1;

/// Every key of RFC 7143 §12–§13, in [`KEY_TABLE`] order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum KeyId {
    /// AuthMethod (RFC 7143 §12).
    AuthMethod,
    /// HeaderDigest (RFC 7143 §13.1).
    HeaderDigest,
    /// DataDigest (RFC 7143 §13.1).
    DataDigest,
    /// MaxConnections (RFC 7143 §13.2).
    MaxConnections,
    /// SendTargets (RFC 7143 §13.3).
    SendTargets,
    /// TargetName (RFC 7143 §13.4).
    TargetName,
    /// InitiatorName (RFC 7143 §13.5).
    InitiatorName,
    /// TargetAlias (RFC 7143 §13.6).
    TargetAlias,
    /// InitiatorAlias (RFC 7143 §13.7).
    InitiatorAlias,
    /// TargetAddress (RFC 7143 §13.8).
    TargetAddress,
    /// TargetPortalGroupTag (RFC 7143 §13.9).
    TargetPortalGroupTag,
    /// InitialR2T (RFC 7143 §13.10).
    InitialR2T,
    /// ImmediateData (RFC 7143 §13.11).
    ImmediateData,
    /// MaxRecvDataSegmentLength (RFC 7143 §13.12).
    MaxRecvDataSegmentLength,
    /// MaxBurstLength (RFC 7143 §13.13).
    MaxBurstLength,
    /// FirstBurstLength (RFC 7143 §13.14).
    FirstBurstLength,
    /// DefaultTime2Wait (RFC 7143 §13.15).
    DefaultTime2Wait,
    /// DefaultTime2Retain (RFC 7143 §13.16).
    DefaultTime2Retain,
    /// MaxOutstandingR2T (RFC 7143 §13.17).
    MaxOutstandingR2T,
    /// DataPDUInOrder (RFC 7143 §13.18).
    DataPduInOrder,
    /// DataSequenceInOrder (RFC 7143 §13.19).
    DataSequenceInOrder,
    /// ErrorRecoveryLevel (RFC 7143 §13.20).
    ErrorRecoveryLevel,
    /// SessionType (RFC 7143 §13.21).
    SessionType,
    /// TaskReporting (RFC 7143 §13.23).
    TaskReporting,
    /// iSCSIProtocolLevel (RFC 7143 §13.24, RFC 7144).
    IscsiProtocolLevel,
    /// X#NodeArchitecture (RFC 7143 §13.26).
    NodeArchitecture,
    /// IFMarker, obsolete (RFC 7143 §13.25).
    IfMarker,
    /// OFMarker, obsolete (RFC 7143 §13.25).
    OfMarker,
    /// IFMarkInt, obsolete (RFC 7143 §13.25).
    IfMarkInt,
    /// OFMarkInt, obsolete (RFC 7143 §13.25).
    OfMarkInt,
}

/// Where a key may be used: the "Use" line of RFC 7143 §13 (and §12 for
/// AuthMethod). Which login *stage* is a separate flag, [`KeyDef::any_stage`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Usage {
    /// "During Login - Security Negotiation" (RFC 7143 §12).
    Security,
    /// IO: login phase only, any connection (RFC 7143 §13).
    InitializeOnly,
    /// LO: login of the leading connection only (RFC 7143 §13).
    LeadingOnly,
    /// ALL: login and full feature phase (RFC 7143 §13).
    All,
    /// FFPO: full feature phase only (RFC 7143 §13).
    FullFeatureOnly,
}

/// Who may send a key ("Senders", RFC 7143 §13).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sender {
    /// Initiator only.
    Initiator,
    /// Target only.
    Target,
    /// Initiator and target.
    Both,
}

/// What a declarative key's value is (RFC 7143 §6.1 value types).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DeclKind {
    /// iSCSI-name-value (RFC 7143 §4.2.7).
    IscsiName,
    /// iSCSI-local-name-value: UTF-8 text of at most 255 bytes.
    LocalName,
    /// numerical-value in `lo..=hi`.
    Number {
        /// Smallest value.
        lo: u64,
        /// Largest value.
        hi: u64,
    },
    /// `Discovery` or `Normal` (RFC 7143 §13.21).
    SessionType,
    /// `domainname[:port][,portal-group-tag]` (RFC 7143 §13.8).
    Address,
    /// list-of-values (RFC 7143 §13.26).
    ValueList,
}

/// How a key is negotiated (RFC 7143 §6.2 and each key's "Result function").
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum KeyKind {
    /// Boolean, result function AND (RFC 7143 §6.2.2).
    And,
    /// Boolean, result function OR (RFC 7143 §6.2.2).
    Or,
    /// Numerical in `lo..=hi`, result function Minimum (RFC 7143 §6.2.2).
    Min {
        /// Smallest value.
        lo: u64,
        /// Largest value.
        hi: u64,
    },
    /// Numerical in `lo..=hi`, result function Maximum (RFC 7143 §6.2.2).
    Max {
        /// Smallest value.
        lo: u64,
        /// Largest value.
        hi: u64,
    },
    /// list-of-values; the acceptor picks the first value it supports
    /// (RFC 7143 §6.2.1).
    List,
    /// Declarative: no answer (RFC 7143 §6.2).
    Declarative(DeclKind),
    /// Obsolete marker key answered `No` (RFC 7143 §13.25 allows No or Reject).
    ObsoleteNo,
    /// Obsolete marker interval key, always answered `Reject` (RFC 7143 §13.25).
    ObsoleteReject,
    /// A request for information, answered with other keys (SendTargets,
    /// RFC 7143 §13.3).
    Query,
}

/// One row of the negotiation table (RFC 7143 §13).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct KeyDef {
    /// Which key.
    pub id: KeyId,
    /// Its name on the wire (case-sensitive, RFC 7143 §6.1).
    pub name: &'static str,
    /// Where the RFC defines it.
    pub section: &'static str,
    /// Phase ("Use").
    pub usage: Usage,
    /// "Any-Stage": may also appear in the security negotiation stage;
    /// other non-security keys are operational keys (RFC 7143 §13).
    pub any_stage: bool,
    /// Who may send it.
    pub sender: Sender,
    /// Result function / value type.
    pub kind: KeyKind,
    /// Default value, if the key has one.
    pub default: Option<&'static str>,
    /// "Irrelevant when: SessionType=Discovery".
    pub irrelevant_in_discovery: bool,
}

const DATA_LEN: KeyKind = KeyKind::Min { lo: MIN_DATA_LEN as u64, hi: MAX_DATA_LEN as u64 };

#[allow(clippy::too_many_arguments)] // reason: one argument per table column keeps the table readable
const fn row(
    id: KeyId,
    name: &'static str,
    section: &'static str,
    usage: Usage,
    any_stage: bool,
    sender: Sender,
    kind: KeyKind,
    default: Option<&'static str>,
    irrelevant_in_discovery: bool,
) -> KeyDef {
    KeyDef { id, name, section, usage, any_stage, sender, kind, default, irrelevant_in_discovery }
}

/// The negotiation table: one row per key of RFC 7143 §12 (AuthMethod) and
/// §13, indexed by `KeyId as usize`. Columns: key, name, section, use,
/// Any-Stage, senders, result function / type, default, "Irrelevant when:
/// SessionType=Discovery". Authentication-exchange keys (`CHAP_*`, ...)
/// belong to the chosen method ([`super::auth`]).
#[rustfmt::skip]
pub const KEY_TABLE: [KeyDef; 30] = {
    use DeclKind as D;
    use KeyId as K;
    use KeyKind::*;
    use Sender::*;
    use Usage::*;
    const ANY: bool = true;
    const OP: bool = false;
    const IRR: bool = true;
    const REL: bool = false;
    const NAME: KeyKind = Declarative(D::IscsiName);
    const TEXT: KeyKind = Declarative(D::LocalName);
    const LEN: KeyKind = Declarative(D::Number { lo: MIN_DATA_LEN as u64, hi: MAX_DATA_LEN as u64 });
    [
        row(K::AuthMethod,           "AuthMethod",               "RFC 7143 §12",    Security,        OP,  Both,      List,                      Some("None"),    REL),
        row(K::HeaderDigest,         "HeaderDigest",             "RFC 7143 §13.1",  InitializeOnly,  OP,  Both,      List,                      Some("None"),    REL),
        row(K::DataDigest,           "DataDigest",               "RFC 7143 §13.1",  InitializeOnly,  OP,  Both,      List,                      Some("None"),    REL),
        row(K::MaxConnections,       "MaxConnections",           "RFC 7143 §13.2",  LeadingOnly,     OP,  Both,      Min { lo: 1, hi: 65535 },  Some("1"),       IRR),
        row(K::SendTargets,          "SendTargets",              "RFC 7143 §13.3",  FullFeatureOnly, OP,  Initiator, Query,                     None,            REL),
        row(K::TargetName,           "TargetName",               "RFC 7143 §13.4",  InitializeOnly,  ANY, Both,      NAME,                      None,            REL),
        row(K::InitiatorName,        "InitiatorName",            "RFC 7143 §13.5",  InitializeOnly,  ANY, Initiator, NAME,                      None,            REL),
        row(K::TargetAlias,          "TargetAlias",              "RFC 7143 §13.6",  All,             ANY, Target,    TEXT,                      None,            REL),
        row(K::InitiatorAlias,       "InitiatorAlias",           "RFC 7143 §13.7",  All,             ANY, Initiator, TEXT,                      None,            REL),
        row(K::TargetAddress,        "TargetAddress",            "RFC 7143 §13.8",  All,             ANY, Target,    Declarative(D::Address),   None,            REL),
        row(K::TargetPortalGroupTag, "TargetPortalGroupTag",     "RFC 7143 §13.9",  InitializeOnly,  ANY, Target,    Declarative(D::Number { lo: 0, hi: 65535 }), None, REL),
        row(K::InitialR2T,           "InitialR2T",               "RFC 7143 §13.10", LeadingOnly,     OP,  Both,      Or,                        Some("Yes"),     IRR),
        row(K::ImmediateData,        "ImmediateData",            "RFC 7143 §13.11", LeadingOnly,     OP,  Both,      And,                       Some("Yes"),     IRR),
        row(K::MaxRecvDataSegmentLength, "MaxRecvDataSegmentLength", "RFC 7143 §13.12", All,         OP,  Both,      LEN,                       Some("8192"),    REL),
        row(K::MaxBurstLength,       "MaxBurstLength",           "RFC 7143 §13.13", LeadingOnly,     OP,  Both,      DATA_LEN,                  Some("262144"),  IRR),
        row(K::FirstBurstLength,     "FirstBurstLength",         "RFC 7143 §13.14", LeadingOnly,     OP,  Both,      DATA_LEN,                  Some("65536"),   IRR),
        row(K::DefaultTime2Wait,     "DefaultTime2Wait",         "RFC 7143 §13.15", LeadingOnly,     OP,  Both,      Max { lo: 0, hi: 3600 },   Some("2"),       REL),
        row(K::DefaultTime2Retain,   "DefaultTime2Retain",       "RFC 7143 §13.16", LeadingOnly,     OP,  Both,      Min { lo: 0, hi: 3600 },   Some("20"),      REL),
        row(K::MaxOutstandingR2T,    "MaxOutstandingR2T",        "RFC 7143 §13.17", LeadingOnly,     OP,  Both,      Min { lo: 1, hi: 65535 },  Some("1"),       IRR),
        row(K::DataPduInOrder,       "DataPDUInOrder",           "RFC 7143 §13.18", LeadingOnly,     OP,  Both,      Or,                        Some("Yes"),     IRR),
        row(K::DataSequenceInOrder,  "DataSequenceInOrder",      "RFC 7143 §13.19", LeadingOnly,     OP,  Both,      Or,                        Some("Yes"),     IRR),
        row(K::ErrorRecoveryLevel,   "ErrorRecoveryLevel",       "RFC 7143 §13.20", LeadingOnly,     OP,  Both,      Min { lo: 0, hi: 2 },      Some("0"),       REL),
        row(K::SessionType,          "SessionType",              "RFC 7143 §13.21", LeadingOnly,     ANY, Initiator, Declarative(D::SessionType), Some("Normal"), REL),
        row(K::TaskReporting,        "TaskReporting",            "RFC 7143 §13.23", LeadingOnly,     OP,  Both,      List,                      Some("RFC3720"), IRR),
        row(K::IscsiProtocolLevel,   "iSCSIProtocolLevel",       "RFC 7143 §13.24, RFC 7144", LeadingOnly, OP, Both, Min { lo: 0, hi: 31 },     Some("0"),       IRR),
        row(K::NodeArchitecture,     "X#NodeArchitecture",       "RFC 7143 §13.26", LeadingOnly,     OP,  Both,      Declarative(D::ValueList), None,            REL),
        row(K::IfMarker,             "IFMarker",                 "RFC 7143 §13.25", InitializeOnly,  OP,  Both,      ObsoleteNo,                Some("No"),      REL),
        row(K::OfMarker,             "OFMarker",                 "RFC 7143 §13.25", InitializeOnly,  OP,  Both,      ObsoleteNo,                Some("No"),      REL),
        row(K::IfMarkInt,            "IFMarkInt",                "RFC 7143 §13.25", InitializeOnly,  OP,  Both,      ObsoleteReject,            None,            REL),
        row(K::OfMarkInt,            "OFMarkInt",                "RFC 7143 §13.25", InitializeOnly,  OP,  Both,      ObsoleteReject,            None,            REL),
    ]
};

/// The table row of a key name (exact, case-sensitive match, RFC 7143 §6.1).
pub fn key_def(name: &str) -> Option<&'static KeyDef> {
    KEY_TABLE.iter().find(|d| d.name == name)
}

/// The table row of a key (RFC 7143 §13).
pub fn key_def_by_id(id: KeyId) -> &'static KeyDef {
    // Every `KeyId` indexes its own row (unit test `table_is_indexed_by_key_id`).
    KEY_TABLE.get(id as usize).unwrap_or(&KEY_TABLE[0])
}

/// Why a negotiation failed; [`NegotiationError::login_status`] maps it to
/// the Login Response status (RFC 7143 §11.13.5).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum NegotiationError {
    /// A required key is missing, e.g. InitiatorName in the first request
    /// (RFC 7143 §13.5) or TargetName in a normal session (§13.4) → 0x0207.
    MissingParameter(&'static str),
    /// The initiator broke a rule of §6 or §13: bad text, a key sent twice
    /// (§6.2), a key in the wrong phase or from the wrong sender, a malformed
    /// declaration → 0x0200.
    InitiatorError(String),
    /// Authentication failed or no acceptable AuthMethod (RFC 7143 §12) → 0x0201.
    AuthFailed,
    /// SessionType other than Discovery or Normal (RFC 7143 §13.21) → 0x0209.
    SessionTypeNotSupported,
    /// Initiator role only: the target broke a rule of §6 or §13 (the
    /// initiator drops the connection, RFC 7143 §6.2); 0x0300 if mapped.
    TargetError(String),
}

impl NegotiationError {
    /// The Login Response status for this error (RFC 7143 §11.13.5).
    pub fn login_status(&self) -> LoginStatus {
        match self {
            NegotiationError::MissingParameter(_) => LoginStatus::MISSING_PARAMETER,
            NegotiationError::InitiatorError(_) => LoginStatus::INITIATOR_ERROR,
            NegotiationError::AuthFailed => LoginStatus::AUTH_FAILURE,
            NegotiationError::SessionTypeNotSupported => LoginStatus::SESSION_TYPE_NOT_SUPPORTED,
            NegotiationError::TargetError(_) => LoginStatus::TARGET_ERROR,
        }
    }
}

impl fmt::Display for NegotiationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NegotiationError::MissingParameter(k) => write!(f, "missing parameter {k}"),
            NegotiationError::InitiatorError(m) => write!(f, "initiator error: {m}"),
            NegotiationError::AuthFailed => write!(f, "authentication failed"),
            NegotiationError::SessionTypeNotSupported => write!(f, "session type not supported"),
            NegotiationError::TargetError(m) => write!(f, "target error: {m}"),
        }
    }
}

impl std::error::Error for NegotiationError {}

impl From<TextError> for NegotiationError {
    /// Malformed text from the initiator is an initiator error (RFC 7143 §6.1).
    fn from(e: TextError) -> Self {
        NegotiationError::InitiatorError(e.to_string())
    }
}

fn ierr(m: impl Into<String>) -> NegotiationError {
    NegotiationError::InitiatorError(m.into())
}

/// One side's own preferences, the input of the result functions.
pub(crate) trait LocalPrefs {
    /// Our value of a boolean key.
    fn boolean(&self, id: KeyId) -> bool;
    /// Our value of a numerical key.
    fn number(&self, id: KeyId) -> u64;
    /// The values of a list key we support, in our order of preference.
    fn choices(&self, id: KeyId) -> &'static [&'static str];
}

/// Answer a proposal `offered` of a negotiated key as the acceptor
/// (RFC 7143 §6.2.1 list selection, §6.2.2 simple values): the result of
/// the key's function over `offered` and our value, or `Reject` when the
/// value is malformed, out of range or has nothing we support.
pub(crate) fn accept(def: &KeyDef, offered: &str, ours: &dyn LocalPrefs) -> String {
    let id = def.id;
    match def.kind {
        KeyKind::And | KeyKind::Or => match parse_bool(offered) {
            Some(b) => {
                let r = if def.kind == KeyKind::And { b && ours.boolean(id) } else { b || ours.boolean(id) };
                bool_str(r).to_string()
            }
            None => REJECT.to_string(),
        },
        KeyKind::Min { lo, hi } | KeyKind::Max { lo, hi } => match parse_number(offered) {
            Some(n) if (lo..=hi).contains(&n) => {
                let mine = ours.number(id).clamp(lo, hi);
                let r = if matches!(def.kind, KeyKind::Min { .. }) { n.min(mine) } else { n.max(mine) };
                r.to_string()
            }
            _ => REJECT.to_string(),
        },
        KeyKind::List => match parse_list(offered) {
            Some(items) if offered.len() <= MAX_SIMPLE_VALUE_LEN => {
                let supported = ours.choices(id);
                items.iter().find(|i| supported.contains(i)).map_or_else(|| REJECT.to_string(), |i| i.to_string())
            }
            _ => REJECT.to_string(),
        },
        KeyKind::ObsoleteNo => match parse_bool(offered) {
            Some(_) => "No".to_string(),
            None => REJECT.to_string(),
        },
        KeyKind::ObsoleteReject | KeyKind::Declarative(_) | KeyKind::Query => REJECT.to_string(),
    }
}

/// Check the peer's `answer` to our proposal `proposed` of a negotiated key
/// (RFC 7143 §6.2): the answer must be a result the key's function could
/// give. Returns the value to store, or `None` if the answer is impossible.
/// `Reject`/`Irrelevant`/`NotUnderstood` are handled by the caller.
pub(crate) fn check_answer(def: &KeyDef, proposed: &str, answer: &str) -> Option<String> {
    match def.kind {
        KeyKind::And | KeyKind::Or => {
            let p = parse_bool(proposed)?;
            let a = parse_bool(answer)?;
            let ok = if def.kind == KeyKind::And { p || !a } else { !p || a };
            ok.then(|| bool_str(a).to_string())
        }
        KeyKind::Min { lo, hi } | KeyKind::Max { lo, hi } => {
            let p = parse_number(proposed)?;
            let a = parse_number(answer)?;
            let ok = (lo..=hi).contains(&a) && if matches!(def.kind, KeyKind::Min { .. }) { a <= p } else { a >= p };
            ok.then(|| a.to_string())
        }
        KeyKind::List => {
            let items = parse_list(proposed)?;
            items.contains(&answer).then(|| answer.to_string())
        }
        KeyKind::ObsoleteNo => parse_bool(answer).map(|_| "No".to_string()),
        _ => None,
    }
}

/// Record a negotiated outcome in `params`.
pub(crate) fn store(params: &mut SessionParams, def: &KeyDef, value: &str) {
    match def.kind {
        KeyKind::And | KeyKind::Or => {
            if let Some(b) = parse_bool(value) {
                params.set_boolean(def.id, b);
            }
        }
        KeyKind::Min { .. } | KeyKind::Max { .. } => {
            if let Some(n) = parse_number(value) {
                params.set_numeric(def.id, n);
            }
        }
        KeyKind::List | KeyKind::ObsoleteNo => {
            params.set_choice(def.id, value);
        }
        _ => {}
    }
}

/// The target's own values, taken from [`Limits`] and clamped into each
/// key's range.
#[derive(Clone, Debug)]
struct TargetPrefs {
    digests: bool,
    initial_r2t: bool,
    immediate_data: bool,
    max_recv_dsl: u32,
    max_burst: u32,
    first_burst: u32,
    max_outstanding_r2t: u32,
}

impl TargetPrefs {
    fn new(l: &Limits) -> Self {
        let max_burst = l.max_burst_len.clamp(MIN_DATA_LEN, MAX_DATA_LEN);
        TargetPrefs {
            digests: l.digests_allowed,
            initial_r2t: l.initial_r2t,
            immediate_data: l.immediate_data,
            max_recv_dsl: l.max_recv_data_segment_len.clamp(MIN_DATA_LEN, MAX_DATA_LEN),
            max_burst,
            first_burst: l.first_burst_len.clamp(MIN_DATA_LEN, max_burst),
            max_outstanding_r2t: l.max_outstanding_r2t.clamp(1, 65535),
        }
    }
}

impl LocalPrefs for TargetPrefs {
    fn boolean(&self, id: KeyId) -> bool {
        match id {
            KeyId::InitialR2T => self.initial_r2t,
            KeyId::ImmediateData => self.immediate_data,
            // We need Data-Out PDUs and sequences in order (OR with Yes → Yes).
            _ => true,
        }
    }

    fn number(&self, id: KeyId) -> u64 {
        match id {
            // One connection per session.
            KeyId::MaxConnections => 1,
            KeyId::MaxBurstLength => self.max_burst.into(),
            KeyId::FirstBurstLength => self.first_burst.into(),
            KeyId::DefaultTime2Wait => 2,
            KeyId::DefaultTime2Retain => 20,
            KeyId::MaxOutstandingR2T => self.max_outstanding_r2t.into(),
            // Session recovery only (RFC 7143 §7.1.5).
            KeyId::ErrorRecoveryLevel => 0,
            KeyId::IscsiProtocolLevel => PROTOCOL_LEVEL,
            _ => 0,
        }
    }

    fn choices(&self, id: KeyId) -> &'static [&'static str] {
        match id {
            KeyId::HeaderDigest | KeyId::DataDigest if self.digests => &["CRC32C", "None"],
            KeyId::HeaderDigest | KeyId::DataDigest => &["None"],
            KeyId::TaskReporting => &["RFC3720"],
            _ => &[],
        }
    }
}

/// Target-role negotiator for one connection's login and its full feature
/// Text requests (RFC 7143 §6).
///
/// ```text
///  handle(SECURITY)* ─► handle(OPERATIONAL)* ─► finish_operational ─► handle_text_full_feature*
///        │ AuthMethod / CHAP_* via Authenticator       (declares MaxRecvDataSegmentLength)
///        └───────────── any error: login fails with error.login_status()
/// ```
///
/// The target answers the initiator's proposals and declares its own
/// values. It proposes a key itself only where the RFC default would break
/// its [`Limits`] (ImmediateData=No, a MaxBurstLength or FirstBurstLength
/// below the default); while such a proposal is unanswered,
/// [`Negotiator::awaiting_answers`] is true and the caller must not set T=1.
#[derive(Debug)]
pub struct Negotiator {
    ours: TargetPrefs,
    tpgt: u16,
    target_alias: Option<String>,
    params: SessionParams,
    auth: Box<dyn Authenticator>,
    /// Keys received in this login, with their values.
    seen: HashMap<String, String>,
    requests: u32,
    tpgt_sent: bool,
    mrdsl_declared: bool,
    proposals_made: bool,
    /// Our proposals still waiting for the initiator's answer, with the value proposed.
    proposed: Vec<(KeyId, String)>,
    auth_selected: bool,
    finished: bool,
    /// Index in this request's answers of a FirstBurstLength answer.
    fbl_answer: Option<usize>,
}

impl Negotiator {
    /// A negotiator for a new login on a portal with group tag `tpgt`
    /// (RFC 7143 §13.9), offering no authentication ([`NoAuth`], RFC 7143 §12)
    /// and declaring `target_alias` in normal sessions (§13.6).
    pub fn new(limits: &Limits, tpgt: u16, target_alias: Option<&str>) -> Self {
        Negotiator {
            ours: TargetPrefs::new(limits),
            tpgt,
            target_alias: target_alias.map(str::to_string),
            params: SessionParams::default(),
            auth: Box::new(NoAuth),
            seen: HashMap::new(),
            requests: 0,
            tpgt_sent: false,
            mrdsl_declared: false,
            proposals_made: false,
            proposed: Vec::new(),
            auth_selected: false,
            finished: false,
            fbl_answer: None,
        }
    }

    /// Use `auth` for the security stage instead of [`NoAuth`] (RFC 7143 §12).
    pub fn with_authenticator(mut self, auth: Box<dyn Authenticator>) -> Self {
        self.auth = auth;
        self
    }

    /// For the login of a further connection of an existing session: take
    /// the session-wide values negotiated on the leading connection
    /// (RFC 7143 §13 "LO" keys cannot change).
    pub fn inherit_session(&mut self, session: &SessionParams) {
        self.params.inherit_session(session);
    }

    /// The values negotiated so far (RFC 7143 §13).
    pub fn params(&self) -> &SessionParams {
        &self.params
    }

    /// Consume the negotiator, keeping the negotiated values (RFC 7143 §13).
    pub fn into_params(self) -> SessionParams {
        self.params
    }

    /// Whether the initiator may leave (or skip) the security stage: the
    /// authenticator is satisfied (RFC 7143 §12). If false when the
    /// initiator asks to transit, the login fails with 0x0201.
    pub fn authenticated(&self) -> bool {
        self.auth.complete()
    }

    /// Whether the target made proposals the initiator has not answered
    /// yet; the target must then answer with T=0 (RFC 7143 §6.2, §11.13.3).
    pub fn awaiting_answers(&self) -> bool {
        !self.proposed.is_empty()
    }

    /// Parse one reassembled login text data segment (RFC 7143 §6.1) and
    /// [`Self::handle`] it.
    pub fn handle_bytes(
        &mut self,
        stage: Stage,
        leading: bool,
        data: &[u8],
        resp: &mut Vec<u8>,
    ) -> Result<(), NegotiationError> {
        let keys = parse_keys(data)?;
        self.handle(stage, leading, &keys, resp)
    }

    /// Answer the keys of one (reassembled) Login Request whose CSG is
    /// `stage`, appending the response text to `resp` (RFC 7143 §6.2).
    /// `leading` is true for the login of the first connection of a session
    /// (TSIH 0).
    ///
    /// Each negotiated key gets its answer, in order: the result of its
    /// function, `Reject` for a malformed or out-of-range value,
    /// `Irrelevant` for keys that do not apply (e.g. session keys in a
    /// discovery session), `NotUnderstood` for unknown keys (including
    /// unknown `X-`/`X#` extension keys). Declarations get no answer. The
    /// response to the first request also carries TargetPortalGroupTag
    /// (RFC 7143 §13.9) and TargetAlias (§13.6) of a normal session; the
    /// first operational-stage response declares MaxRecvDataSegmentLength
    /// (§13.12).
    ///
    /// Errors: a key sent twice in the login (§6.2), a key in the wrong
    /// stage or from the wrong sender (§13 "Use", "Senders"), a reserved
    /// constant as a proposal (§6.2), a malformed declaration →
    /// InitiatorError; InitiatorName missing from the first request (§13.5)
    /// or TargetName missing in a normal session (§13.4) → MissingParameter;
    /// an unknown SessionType → SessionTypeNotSupported; no acceptable
    /// AuthMethod (`AuthMethod=Reject` is still appended to `resp`) or a
    /// failed authentication → AuthFailed.
    pub fn handle(
        &mut self,
        stage: Stage,
        leading: bool,
        keys: &[(String, String)],
        resp: &mut Vec<u8>,
    ) -> Result<(), NegotiationError> {
        if stage != Stage::SECURITY && stage != Stage::OPERATIONAL {
            return Err(ierr(format!("login stage {} does not negotiate", stage.0)));
        }
        if self.finished {
            return Err(ierr("login request after the login phase ended"));
        }
        if self.seen.len() + keys.len() > MAX_KEYS_PER_LOGIN {
            return Err(ierr("too many keys in one login"));
        }
        self.requests = self.requests.saturating_add(1);
        let first = self.requests == 1;
        self.fbl_answer = None;
        let mut answers: Vec<(String, String)> = Vec::new();
        let mut auth_keys: Vec<(&str, &str)> = Vec::new();

        // SessionType first: it decides which keys are irrelevant (§13.21).
        let st = keys.iter().position(|(k, _)| k == "SessionType");
        let order = st.into_iter().chain((0..keys.len()).filter(|i| Some(*i) != st));
        for (k, v) in order.filter_map(|i| keys.get(i)) {
            match self.one_login_key(stage, leading, k, v, &mut answers) {
                Ok(true) => auth_keys.push((k, v)),
                Ok(false) => {}
                Err(NegotiationError::AuthFailed) => {
                    write_answers(&answers, resp);
                    return Err(NegotiationError::AuthFailed);
                }
                Err(e) => return Err(e),
            }
        }

        if !auth_keys.is_empty() {
            if !self.auth_selected {
                return Err(ierr("authentication keys before AuthMethod was negotiated"));
            }
            if let AuthStep::Failed(_) = self.auth.step(&auth_keys, &mut answers) {
                write_answers(&answers, resp);
                return Err(NegotiationError::AuthFailed);
            }
        }

        if first {
            if self.params.initiator_name.is_empty() {
                return Err(NegotiationError::MissingParameter("InitiatorName"));
            }
            if self.params.session_type == SessionType::Normal && self.params.target_name.is_none() {
                return Err(NegotiationError::MissingParameter("TargetName"));
            }
            self.first_response_keys(&mut answers);
        }

        self.fix_first_burst(&mut answers);

        if stage == Stage::OPERATIONAL {
            self.declare_mrdsl(&mut answers);
            if leading && !self.proposals_made {
                self.proposals_made = true;
                self.make_proposals(&mut answers);
            }
        }
        write_answers(&answers, resp);
        Ok(())
    }

    /// Declarations that belong in the response to the first Login Request
    /// of a normal session: TargetPortalGroupTag ("returned ... in the Login
    /// Response PDU to the first Login Request PDU ... when TargetName is
    /// given", RFC 7143 §13.9) and TargetAlias (RFC 7143 §13.6: SHOULD be
    /// sent in a Login Response of a normal session).
    fn first_response_keys(&mut self, answers: &mut Vec<(String, String)>) {
        if self.tpgt_sent || self.params.session_type != SessionType::Normal || self.params.target_name.is_none() {
            return;
        }
        self.tpgt_sent = true;
        self.params.target_portal_group_tag = Some(self.tpgt);
        answers.push(("TargetPortalGroupTag".into(), self.tpgt.to_string()));
        if let Some(a) = &self.target_alias {
            self.params.target_alias = Some(a.clone());
            answers.push(("TargetAlias".into(), a.clone()));
        }
    }

    fn declare_mrdsl(&mut self, answers: &mut Vec<(String, String)>) {
        if !self.mrdsl_declared {
            self.mrdsl_declared = true;
            self.params.max_recv_data_segment_len_target = self.ours.max_recv_dsl;
            answers.push(("MaxRecvDataSegmentLength".into(), self.ours.max_recv_dsl.to_string()));
        }
    }

    /// Propose what the RFC defaults would get wrong for our limits
    /// (normal session, leading connection, keys the initiator did not send).
    fn make_proposals(&mut self, answers: &mut Vec<(String, String)>) {
        if self.params.session_type != SessionType::Normal {
            return;
        }
        let mut wanted: Vec<(KeyId, String)> = Vec::new();
        if !self.ours.immediate_data {
            wanted.push((KeyId::ImmediateData, "No".into()));
        }
        if self.ours.max_burst < 262_144 {
            wanted.push((KeyId::MaxBurstLength, self.ours.max_burst.to_string()));
        }
        let unsolicited_possible =
            !(self.params.initial_r2t && (!self.params.immediate_data || !self.ours.immediate_data));
        if self.ours.first_burst < 65_536 && unsolicited_possible {
            wanted.push((KeyId::FirstBurstLength, self.ours.first_burst.to_string()));
        }
        for (id, v) in wanted {
            let name = key_def_by_id(id).name;
            if !self.seen.contains_key(name) {
                answers.push((name.to_string(), v.clone()));
                self.proposed.push((id, v));
            }
        }
    }

    /// RFC 7143 §13.14: FirstBurstLength is irrelevant when InitialR2T=Yes
    /// and ImmediateData=No, and MUST NOT exceed MaxBurstLength.
    fn fix_first_burst(&mut self, answers: &mut [(String, String)]) {
        let Some(i) = self.fbl_answer.take() else {
            return;
        };
        let Some(slot) = answers.get_mut(i) else {
            return;
        };
        if slot.1 == REJECT {
            return;
        }
        if self.params.initial_r2t && !self.params.immediate_data {
            slot.1 = IRRELEVANT.to_string();
            self.params.first_burst_len = SessionParams::default().first_burst_len;
        } else if self.params.first_burst_len > self.params.max_burst_len {
            self.params.first_burst_len = self.params.max_burst_len;
            slot.1 = self.params.first_burst_len.to_string();
        }
    }

    /// One key of a login request. Ok(true) means "an authentication
    /// exchange key, for the authenticator".
    fn one_login_key(
        &mut self,
        stage: Stage,
        leading: bool,
        k: &str,
        v: &str,
        answers: &mut Vec<(String, String)>,
    ) -> Result<bool, NegotiationError> {
        let Some(def) = key_def(k) else {
            self.check_twice(k, v, None)?;
            self.seen.insert(k.to_string(), v.to_string());
            if is_auth_key(k) {
                if stage != Stage::SECURITY {
                    return Err(ierr(format!("{k} outside the security negotiation stage")));
                }
                return Ok(true);
            }
            // RFC 7143 §6.2: unknown keys, extension (X-, X#) or not, are
            // answered NotUnderstood.
            answers.push((k.to_string(), NOT_UNDERSTOOD.to_string()));
            return Ok(false);
        };
        if self.check_twice(k, v, Some(def))? {
            return Ok(false);
        }
        check_sender_and_phase(def, stage, leading)?;

        if let Some(pos) = self.proposed.iter().position(|(id, _)| *id == def.id) {
            let (_, proposed) = self.proposed.remove(pos);
            self.seen.insert(k.to_string(), v.to_string());
            return self.take_answer(def, &proposed, v).map(|()| false);
        }
        if is_reserved_answer(v) {
            return Err(ierr(format!("{k}={v}: a reserved constant is not a proposal")));
        }
        self.seen.insert(k.to_string(), v.to_string());

        if def.irrelevant_in_discovery && self.params.session_type == SessionType::Discovery {
            answers.push((k.to_string(), IRRELEVANT.to_string()));
            return Ok(false);
        }
        match def.kind {
            KeyKind::Declarative(d) => {
                self.declaration(def, d, leading, v)?;
            }
            KeyKind::List if def.id == KeyId::AuthMethod => {
                let items = parse_list(v).ok_or_else(|| ierr("malformed AuthMethod list"))?;
                match self.auth.select_method(&items) {
                    Some(m) => {
                        self.auth_selected = true;
                        self.params.auth_method = Some(m.to_string());
                        answers.push((k.to_string(), m.to_string()));
                    }
                    None => {
                        answers.push((k.to_string(), REJECT.to_string()));
                        return Err(NegotiationError::AuthFailed);
                    }
                }
            }
            KeyKind::Query => return Err(ierr(format!("{k} during login"))),
            _ => {
                let a = accept(def, v, &self.ours);
                if a != REJECT {
                    store(&mut self.params, def, &a);
                }
                if def.id == KeyId::FirstBurstLength {
                    self.fbl_answer = Some(answers.len());
                }
                answers.push((k.to_string(), a));
            }
        }
        Ok(false)
    }

    /// RFC 7143 §6.2: a key may not be negotiated or declared twice in a
    /// login. An initiator that repeats a declaration with the same value
    /// (libiscsi repeats InitiatorName, TargetName and SessionType in the
    /// operational stage after a security stage) is tolerated: Ok(true)
    /// means "repeat, ignore it".
    fn check_twice(&self, k: &str, v: &str, def: Option<&KeyDef>) -> Result<bool, NegotiationError> {
        let Some(prev) = self.seen.get(k) else {
            return Ok(false);
        };
        let declarative = matches!(def.map(|d| d.kind), Some(KeyKind::Declarative(_)));
        if declarative && prev == v {
            return Ok(true);
        }
        Err(ierr(format!("{k} sent twice in one login")))
    }

    /// The initiator's answer to one of our proposals (RFC 7143 §6.2).
    fn take_answer(&mut self, def: &KeyDef, proposed: &str, v: &str) -> Result<(), NegotiationError> {
        if v == IRRELEVANT && def.id == KeyId::FirstBurstLength {
            return Ok(());
        }
        match check_answer(def, proposed, v) {
            Some(value) => {
                store(&mut self.params, def, &value);
                self.params.enforce_integrity();
                Ok(())
            }
            None => Err(ierr(format!("{}={v} is not an acceptable answer to {}={proposed}", def.name, def.name))),
        }
    }

    fn declaration(&mut self, def: &KeyDef, kind: DeclKind, leading: bool, v: &str) -> Result<(), NegotiationError> {
        match kind {
            DeclKind::IscsiName => {
                if !is_valid_iscsi_name(v) {
                    return Err(ierr(format!("{}: malformed iSCSI name", def.name)));
                }
                match def.id {
                    KeyId::InitiatorName => self.params.initiator_name = v.to_string(),
                    // A discovery session has no target; TargetName is ignored.
                    KeyId::TargetName if self.params.session_type == SessionType::Discovery => {}
                    KeyId::TargetName => self.params.target_name = Some(v.to_string()),
                    _ => {}
                }
            }
            DeclKind::LocalName | DeclKind::ValueList => {
                if v.len() > MAX_SIMPLE_VALUE_LEN {
                    return Err(ierr(format!("{}: value longer than 255 bytes", def.name)));
                }
                match def.id {
                    KeyId::InitiatorAlias => self.params.initiator_alias = Some(v.to_string()),
                    KeyId::NodeArchitecture => self.params.peer_node_architecture = Some(v.to_string()),
                    _ => {}
                }
            }
            DeclKind::Number { lo, hi } => {
                let n = parse_number(v)
                    .filter(|n| (lo..=hi).contains(n))
                    .ok_or_else(|| ierr(format!("{}={v}: out of range {lo}..{hi}", def.name)))?;
                if def.id == KeyId::MaxRecvDataSegmentLength {
                    self.params.max_recv_data_segment_len_initiator = u32::try_from(n).unwrap_or(MAX_DATA_LEN);
                }
            }
            DeclKind::SessionType => {
                let t = SessionType::parse(v).ok_or(NegotiationError::SessionTypeNotSupported)?;
                if leading {
                    self.params.session_type = t;
                    if t == SessionType::Discovery {
                        self.params.target_name = None;
                    }
                } else if t != self.params.session_type {
                    return Err(ierr("SessionType differs from the session's"));
                }
            }
            DeclKind::Address => return Err(ierr(format!("{} is sent by targets", def.name))),
        }
        Ok(())
    }

    /// Declarations still owed when the login enters the full feature
    /// phase: MaxRecvDataSegmentLength (RFC 7143 §13.12) if no operational
    /// stage response declared it, TargetPortalGroupTag (§13.9) if somehow
    /// not yet sent. Applies the FirstBurstLength ≤ MaxBurstLength
    /// integrity rule (§13.14). Call it while building the response that
    /// carries T=1 and NSG=FullFeaturePhase.
    pub fn finish_operational(&mut self, resp: &mut Vec<u8>) {
        let mut answers = Vec::new();
        if self.params.session_type == SessionType::Normal && self.params.target_name.is_some() {
            self.first_response_keys(&mut answers);
        }
        self.declare_mrdsl(&mut answers);
        self.params.enforce_integrity();
        self.finished = true;
        write_answers(&answers, resp);
    }

    /// Answer a Text Request in the full feature phase (RFC 7143 §6.2,
    /// §11.10). Allowed there: SendTargets (FFPO, §13.3; answered with
    /// [`send_targets`], `visible` filtering what this initiator may see),
    /// MaxRecvDataSegmentLength and InitiatorAlias declarations ("ALL"),
    /// and extension or unknown keys (→ NotUnderstood). A login-only key, a
    /// target-only key, a security key or a key repeated in one request is
    /// an InitiatorError (the caller answers with a Reject PDU, RFC 7143
    /// §11.17.1).
    pub fn handle_text_full_feature(
        &mut self,
        keys: &[(String, String)],
        targets: &TargetSet,
        visible: impl Fn(&TargetConfig) -> bool,
        resp: &mut Vec<u8>,
    ) -> Result<(), NegotiationError> {
        let mut out = Vec::new();
        for (i, (k, v)) in keys.iter().enumerate() {
            if keys.iter().take(i).any(|(p, _)| p == k) {
                return Err(ierr(format!("{k} sent twice in one text request")));
            }
            let Some(def) = key_def(k) else {
                if is_auth_key(k) {
                    return Err(ierr(format!("{k} in the full feature phase")));
                }
                push_key(&mut out, k, NOT_UNDERSTOOD);
                continue;
            };
            if def.sender == Sender::Target {
                return Err(ierr(format!("{k} is sent by targets")));
            }
            match (def.usage, def.id) {
                (Usage::FullFeatureOnly, KeyId::SendTargets) => {
                    let own = match self.params.session_type {
                        SessionType::Normal => self.params.target_name.as_deref(),
                        SessionType::Discovery => None,
                    };
                    send_targets(v, own, targets, &visible, &mut out);
                }
                (Usage::All, KeyId::MaxRecvDataSegmentLength) => {
                    let n = parse_number(v)
                        .filter(|n| (u64::from(MIN_DATA_LEN)..=u64::from(MAX_DATA_LEN)).contains(n))
                        .ok_or_else(|| ierr(format!("{k}={v}: out of range")))?;
                    self.params.max_recv_data_segment_len_initiator = u32::try_from(n).unwrap_or(MAX_DATA_LEN);
                }
                (Usage::All, KeyId::InitiatorAlias) => {
                    if v.len() > MAX_SIMPLE_VALUE_LEN {
                        return Err(ierr(format!("{k}: value longer than 255 bytes")));
                    }
                    self.params.initiator_alias = Some(v.clone());
                }
                _ => return Err(ierr(format!("{k} may only be used during login"))),
            }
        }
        resp.extend_from_slice(&out);
        Ok(())
    }

    /// Parse a reassembled full feature Text Request data segment (RFC 7143
    /// §6.1, §11.10) and [`Self::handle_text_full_feature`] it.
    pub fn handle_text_bytes(
        &mut self,
        data: &[u8],
        targets: &TargetSet,
        visible: impl Fn(&TargetConfig) -> bool,
        resp: &mut Vec<u8>,
    ) -> Result<(), NegotiationError> {
        let keys = parse_keys(data)?;
        self.handle_text_full_feature(&keys, targets, visible, resp)
    }
}

/// RFC 7143 §13 "Senders" and "Use", and "Any-Stage" for the security stage.
fn check_sender_and_phase(def: &KeyDef, stage: Stage, leading: bool) -> Result<(), NegotiationError> {
    let k = def.name;
    if def.sender == Sender::Target {
        return Err(ierr(format!("{k} is sent by targets")));
    }
    match def.usage {
        Usage::FullFeatureOnly => return Err(ierr(format!("{k} during login"))),
        Usage::Security if stage != Stage::SECURITY => {
            return Err(ierr(format!("{k} outside the security negotiation stage")))
        }
        Usage::Security => {}
        _ if stage == Stage::SECURITY && !def.any_stage => {
            return Err(ierr(format!("operational key {k} in the security negotiation stage")))
        }
        // SessionType is repeated by initiators on every login; its value
        // is checked against the session's instead.
        Usage::LeadingOnly if !leading && def.id != KeyId::SessionType => {
            return Err(ierr(format!("{k} on a non-leading connection")))
        }
        _ => {}
    }
    Ok(())
}

fn write_answers(answers: &[(String, String)], resp: &mut Vec<u8>) {
    for (k, v) in answers {
        push_key(resp, k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn answers(resp: &[u8]) -> Vec<(String, String)> {
        parse_keys(resp).unwrap()
    }

    const INIT: &str = "iqn.2026-01.io.test:init";
    const TGT: &str = "iqn.2026-01.io.shardtgt:disk";

    #[test]
    fn table_is_indexed_by_key_id() {
        for (i, d) in KEY_TABLE.iter().enumerate() {
            assert_eq!(d.id as usize, i, "{}", d.name);
            assert_eq!(key_def(d.name), Some(d));
            assert_eq!(key_def_by_id(d.id), d);
        }
        assert_eq!(key_def("maxburstlength"), None);
    }

    #[test]
    fn defaults_match_params() {
        let p = SessionParams::default();
        for d in &KEY_TABLE {
            if let (Some(def), Some(v)) = (d.default, p.value(d.id)) {
                assert_eq!(def, v, "{}", d.name);
            }
        }
    }

    #[test]
    fn simple_login() {
        let mut n = Negotiator::new(&Limits::default(), 1, Some("disk"));
        let mut resp = Vec::new();
        n.handle(
            Stage::SECURITY,
            true,
            &kv(&[("InitiatorName", INIT), ("SessionType", "Normal"), ("TargetName", TGT), ("AuthMethod", "None")]),
            &mut resp,
        )
        .unwrap();
        assert_eq!(
            answers(&resp),
            kv(&[("AuthMethod", "None"), ("TargetPortalGroupTag", "1"), ("TargetAlias", "disk")])
        );
        resp.clear();
        n.handle(
            Stage::OPERATIONAL,
            true,
            &kv(&[("HeaderDigest", "CRC32C,None"), ("MaxRecvDataSegmentLength", "65536")]),
            &mut resp,
        )
        .unwrap();
        assert_eq!(answers(&resp), kv(&[("HeaderDigest", "CRC32C"), ("MaxRecvDataSegmentLength", "262144")]));
        assert!(!n.awaiting_answers());
        resp.clear();
        n.finish_operational(&mut resp);
        assert!(resp.is_empty());
        assert!(n.params().header_digest);
        assert_eq!(n.params().max_recv_data_segment_len_initiator, 65536);
        assert_eq!(n.params().max_recv_data_segment_len_target, 262144);
        assert!(n.handle(Stage::OPERATIONAL, true, &[], &mut resp).is_err());
    }

    #[test]
    fn errors_map_to_status() {
        assert_eq!(NegotiationError::MissingParameter("x").login_status(), LoginStatus::MISSING_PARAMETER);
        assert_eq!(NegotiationError::InitiatorError("x".into()).login_status(), LoginStatus::INITIATOR_ERROR);
        assert_eq!(NegotiationError::AuthFailed.login_status(), LoginStatus::AUTH_FAILURE);
        assert_eq!(NegotiationError::SessionTypeNotSupported.login_status(), LoginStatus::SESSION_TYPE_NOT_SUPPORTED);
        let e: NegotiationError = TextError::TooManyPairs.into();
        assert_eq!(e.login_status(), LoginStatus::INITIATOR_ERROR);
    }

    #[test]
    fn proposals_when_limits_below_defaults() {
        let limits = Limits {
            immediate_data: false,
            max_burst_len: 65536,
            first_burst_len: 16384,
            initial_r2t: false,
            ..Limits::default()
        };
        let mut n = Negotiator::new(&limits, 1, None);
        let mut resp = Vec::new();
        n.handle(
            Stage::OPERATIONAL,
            true,
            &kv(&[("InitiatorName", INIT), ("TargetName", TGT), ("InitialR2T", "No")]),
            &mut resp,
        )
        .unwrap();
        let a = answers(&resp);
        assert!(a.contains(&("ImmediateData".into(), "No".into())));
        assert!(a.contains(&("MaxBurstLength".into(), "65536".into())));
        assert!(a.contains(&("FirstBurstLength".into(), "16384".into())));
        assert!(n.awaiting_answers());
        resp.clear();
        n.handle(
            Stage::OPERATIONAL,
            true,
            &kv(&[("ImmediateData", "No"), ("MaxBurstLength", "32768"), ("FirstBurstLength", "16384")]),
            &mut resp,
        )
        .unwrap();
        assert!(resp.is_empty(), "{:?}", answers(&resp));
        assert!(!n.awaiting_answers());
        assert!(!n.params().immediate_data);
        assert_eq!(n.params().max_burst_len, 32768);
        assert_eq!(n.params().first_burst_len, 16384);
    }

    #[test]
    fn bad_answer_to_proposal() {
        let limits = Limits { max_burst_len: 65536, ..Limits::default() };
        let mut n = Negotiator::new(&limits, 1, None);
        let mut resp = Vec::new();
        n.handle(Stage::OPERATIONAL, true, &kv(&[("InitiatorName", INIT), ("TargetName", TGT)]), &mut resp).unwrap();
        assert!(n.awaiting_answers());
        let e = n.handle(Stage::OPERATIONAL, true, &kv(&[("MaxBurstLength", "131072")]), &mut resp).unwrap_err();
        assert_eq!(e.login_status(), LoginStatus::INITIATOR_ERROR);
    }
}
