//! Table-driven tests of login/text negotiation (RFC 7143 §6, §12, §13):
//! every key of the table, both roles, SendTargets, and an initiator ↔
//! target negotiation end to end.

use shardtgt_core::login::initiator::{InitiatorConfig, InitiatorNegotiator};
use shardtgt_core::login::keys::{encode_keys, parse_keys};
use shardtgt_core::login::negotiate::{
    key_def, DeclKind, KeyId, KeyKind, NegotiationError, Negotiator, Sender, Usage, KEY_TABLE,
};
use shardtgt_core::login::params::{SessionParams, SessionType};
use shardtgt_core::login::sendtargets::TextReplyCursor;
use shardtgt_core::pdu::login::{LoginStatus, Stage};
use shardtgt_core::target::{Limits, Portal, TargetConfig, TargetSet};

const INIT: &str = "iqn.2026-01.io.test:initiator";
const TGT: &str = "iqn.2026-01.io.shardtgt:disk";
const SEC: Stage = Stage::SECURITY;
const OP: Stage = Stage::OPERATIONAL;

type Pairs = Vec<(String, String)>;

fn kv(v: &[(&str, &str)]) -> Pairs {
    v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn get<'a>(p: &'a Pairs, k: &str) -> Option<&'a str> {
    p.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
}

fn names(session: SessionType) -> Pairs {
    match session {
        SessionType::Normal => kv(&[("InitiatorName", INIT), ("TargetName", TGT)]),
        SessionType::Discovery => kv(&[("InitiatorName", INIT), ("SessionType", "Discovery")]),
    }
}

/// One operational-stage first request of a leading login: the names plus `extra`.
fn op_login(
    limits: &Limits,
    session: SessionType,
    extra: &[(&str, &str)],
) -> (Result<(), NegotiationError>, Pairs, Negotiator) {
    let mut n = Negotiator::new(limits, 1, None);
    let mut keys = names(session);
    keys.extend(kv(extra));
    let mut resp = Vec::new();
    let r = n.handle(OP, true, &keys, &mut resp);
    (r, parse_keys(&resp).unwrap(), n)
}

fn status(r: Result<(), NegotiationError>) -> LoginStatus {
    r.expect_err("expected a negotiation error").login_status()
}

// ---------------------------------------------------------------------------
// The table itself

/// One expected row: name, use, any-stage, senders, kind, default, irrelevant in discovery.
type Row = (&'static str, Usage, bool, Sender, KeyKind, Option<&'static str>, bool);

/// The rows as RFC 7143 §12–§13 define them: (name, use, any-stage, senders,
/// kind, default, irrelevant in discovery).
#[test]
fn table_rows_match_rfc_7143() {
    use KeyKind::*;
    use Sender::*;
    use Usage::*;
    let data_len = Min { lo: 512, hi: 16_777_215 };
    #[rustfmt::skip]
    let expected: &[Row] = &[
        ("AuthMethod", Security, false, Both, List, Some("None"), false),
        ("HeaderDigest", InitializeOnly, false, Both, List, Some("None"), false),
        ("DataDigest", InitializeOnly, false, Both, List, Some("None"), false),
        ("MaxConnections", LeadingOnly, false, Both, Min { lo: 1, hi: 65535 }, Some("1"), true),
        ("SendTargets", FullFeatureOnly, false, Initiator, Query, None, false),
        ("TargetName", InitializeOnly, true, Both, Declarative(DeclKind::IscsiName), None, false),
        ("InitiatorName", InitializeOnly, true, Initiator, Declarative(DeclKind::IscsiName), None, false),
        ("TargetAlias", All, true, Target, Declarative(DeclKind::LocalName), None, false),
        ("InitiatorAlias", All, true, Initiator, Declarative(DeclKind::LocalName), None, false),
        ("TargetAddress", All, true, Target, Declarative(DeclKind::Address), None, false),
        ("TargetPortalGroupTag", InitializeOnly, true, Target, Declarative(DeclKind::Number { lo: 0, hi: 65535 }), None, false),
        ("InitialR2T", LeadingOnly, false, Both, Or, Some("Yes"), true),
        ("ImmediateData", LeadingOnly, false, Both, And, Some("Yes"), true),
        ("MaxRecvDataSegmentLength", All, false, Both, Declarative(DeclKind::Number { lo: 512, hi: 16_777_215 }), Some("8192"), false),
        ("MaxBurstLength", LeadingOnly, false, Both, data_len, Some("262144"), true),
        ("FirstBurstLength", LeadingOnly, false, Both, data_len, Some("65536"), true),
        ("DefaultTime2Wait", LeadingOnly, false, Both, Max { lo: 0, hi: 3600 }, Some("2"), false),
        ("DefaultTime2Retain", LeadingOnly, false, Both, Min { lo: 0, hi: 3600 }, Some("20"), false),
        ("MaxOutstandingR2T", LeadingOnly, false, Both, Min { lo: 1, hi: 65535 }, Some("1"), true),
        ("DataPDUInOrder", LeadingOnly, false, Both, Or, Some("Yes"), true),
        ("DataSequenceInOrder", LeadingOnly, false, Both, Or, Some("Yes"), true),
        ("ErrorRecoveryLevel", LeadingOnly, false, Both, Min { lo: 0, hi: 2 }, Some("0"), false),
        ("SessionType", LeadingOnly, true, Initiator, Declarative(DeclKind::SessionType), Some("Normal"), false),
        ("TaskReporting", LeadingOnly, false, Both, List, Some("RFC3720"), true),
        ("iSCSIProtocolLevel", LeadingOnly, false, Both, Min { lo: 0, hi: 31 }, Some("0"), true),
        ("X#NodeArchitecture", LeadingOnly, false, Both, Declarative(DeclKind::ValueList), None, false),
        ("IFMarker", InitializeOnly, false, Both, ObsoleteNo, Some("No"), false),
        ("OFMarker", InitializeOnly, false, Both, ObsoleteNo, Some("No"), false),
        ("IFMarkInt", InitializeOnly, false, Both, ObsoleteReject, None, false),
        ("OFMarkInt", InitializeOnly, false, Both, ObsoleteReject, None, false),
    ];
    assert_eq!(expected.len(), KEY_TABLE.len());
    for (name, usage, any, sender, kind, default, irr) in expected {
        let d = key_def(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(d.usage, *usage, "{name}");
        assert_eq!(d.any_stage, *any, "{name}");
        assert_eq!(d.sender, *sender, "{name}");
        assert_eq!(d.kind, *kind, "{name}");
        assert_eq!(d.default, *default, "{name}");
        assert_eq!(d.irrelevant_in_discovery, *irr, "{name}");
        assert!(d.section.starts_with("RFC 7143 §1"), "{name}");
    }
}

/// A session negotiated with nothing proposed has every RFC default.
#[test]
fn defaults_when_nothing_is_proposed() {
    let (r, ans, mut n) = op_login(&Limits::default(), SessionType::Normal, &[]);
    r.unwrap();
    assert_eq!(get(&ans, "MaxRecvDataSegmentLength"), Some("262144"));
    n.finish_operational(&mut Vec::new());
    let p = n.params();
    let d = SessionParams::default();
    for def in &KEY_TABLE {
        if def.kind == KeyKind::Query || matches!(def.kind, KeyKind::Declarative(_)) {
            continue;
        }
        assert_eq!(p.value(def.id), d.value(def.id), "{}", def.name);
        if let (Some(v), Some(dflt)) = (p.value(def.id), def.default) {
            assert_eq!(v, dflt, "{}", def.name);
        }
    }
    assert_eq!(p.max_recv_data_segment_len_initiator, 8192);
}

// ---------------------------------------------------------------------------
// Negotiated keys: every key, default limits unless noted

struct Case {
    key: &'static str,
    offer: &'static str,
    answer: &'static str,
    /// The session value afterwards (`None`: not checked).
    value: Option<&'static str>,
}

const fn c(key: &'static str, offer: &'static str, answer: &'static str, value: Option<&'static str>) -> Case {
    Case { key, offer, answer, value }
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    // §13.1 digests: first value of the initiator's list that we support.
    c("HeaderDigest", "None", "None", Some("None")),
    c("HeaderDigest", "CRC32C", "CRC32C", Some("CRC32C")),
    c("HeaderDigest", "CRC32C,None", "CRC32C", Some("CRC32C")),
    c("HeaderDigest", "None,CRC32C", "None", Some("None")),
    c("HeaderDigest", "MD5,None", "None", Some("None")),
    c("HeaderDigest", "MD5", "Reject", Some("None")),
    c("HeaderDigest", "", "Reject", Some("None")),
    c("HeaderDigest", "CRC32C,,None", "Reject", Some("None")),
    c("DataDigest", "CRC32C,None", "CRC32C", Some("CRC32C")),
    c("DataDigest", "None", "None", Some("None")),
    c("DataDigest", "Y-com.example.dig", "Reject", Some("None")),
    // §13.2 MaxConnections: Min with our 1.
    c("MaxConnections", "1", "1", Some("1")),
    c("MaxConnections", "65535", "1", Some("1")),
    c("MaxConnections", "0x10", "1", Some("1")),
    c("MaxConnections", "0", "Reject", Some("1")),
    c("MaxConnections", "65536", "Reject", Some("1")),
    c("MaxConnections", "many", "Reject", Some("1")),
    // §13.10 InitialR2T: OR with our No (Limits::default().initial_r2t = false).
    c("InitialR2T", "Yes", "Yes", Some("Yes")),
    c("InitialR2T", "No", "No", Some("No")),
    c("InitialR2T", "yes", "Reject", Some("Yes")),
    c("InitialR2T", "1", "Reject", Some("Yes")),
    // §13.11 ImmediateData: AND with our Yes.
    c("ImmediateData", "Yes", "Yes", Some("Yes")),
    c("ImmediateData", "No", "No", Some("No")),
    c("ImmediateData", "", "Reject", Some("Yes")),
    // §13.13 MaxBurstLength: Min with our 262144, range 512..2^24-1.
    c("MaxBurstLength", "512", "512", Some("512")),
    c("MaxBurstLength", "16777215", "262144", Some("262144")),
    c("MaxBurstLength", "0x200", "512", Some("512")),
    c("MaxBurstLength", "511", "Reject", Some("262144")),
    c("MaxBurstLength", "16777216", "Reject", Some("262144")),
    c("MaxBurstLength", "08192", "Reject", Some("262144")),
    c("MaxBurstLength", "-1", "Reject", Some("262144")),
    // §13.14 FirstBurstLength: Min with our 65536.
    c("FirstBurstLength", "512", "512", Some("512")),
    c("FirstBurstLength", "16777215", "65536", Some("65536")),
    c("FirstBurstLength", "511", "Reject", Some("65536")),
    c("FirstBurstLength", "16777216", "Reject", Some("65536")),
    // §13.15 DefaultTime2Wait: Max with our 2, range 0..3600.
    c("DefaultTime2Wait", "0", "2", Some("2")),
    c("DefaultTime2Wait", "3600", "3600", Some("3600")),
    c("DefaultTime2Wait", "3601", "Reject", Some("2")),
    c("DefaultTime2Wait", "65535", "Reject", Some("2")),
    // §13.16 DefaultTime2Retain: Min with our 20, range 0..3600.
    c("DefaultTime2Retain", "0", "0", Some("0")),
    c("DefaultTime2Retain", "3600", "20", Some("20")),
    c("DefaultTime2Retain", "65535", "Reject", Some("20")),
    // §13.17 MaxOutstandingR2T: Min with our 1, range 1..65535.
    c("MaxOutstandingR2T", "1", "1", Some("1")),
    c("MaxOutstandingR2T", "65535", "1", Some("1")),
    c("MaxOutstandingR2T", "0", "Reject", Some("1")),
    c("MaxOutstandingR2T", "65536", "Reject", Some("1")),
    // §13.18, §13.19: OR with our Yes.
    c("DataPDUInOrder", "No", "Yes", Some("Yes")),
    c("DataPDUInOrder", "Yes", "Yes", Some("Yes")),
    c("DataPDUInOrder", "Maybe", "Reject", Some("Yes")),
    c("DataSequenceInOrder", "No", "Yes", Some("Yes")),
    c("DataSequenceInOrder", "Yes", "Yes", Some("Yes")),
    // §13.20 ErrorRecoveryLevel: Min with our 0, range 0..2.
    c("ErrorRecoveryLevel", "0", "0", Some("0")),
    c("ErrorRecoveryLevel", "2", "0", Some("0")),
    c("ErrorRecoveryLevel", "3", "Reject", Some("0")),
    // §13.23 TaskReporting: list, we support RFC3720.
    c("TaskReporting", "RFC3720", "RFC3720", Some("RFC3720")),
    c("TaskReporting", "FastAbort,ResponseFence,RFC3720", "RFC3720", Some("RFC3720")),
    c("TaskReporting", "FastAbort", "Reject", Some("RFC3720")),
    // §13.24 iSCSIProtocolLevel: Min with our 1, range 0..31.
    c("iSCSIProtocolLevel", "0", "0", Some("0")),
    c("iSCSIProtocolLevel", "1", "1", Some("1")),
    c("iSCSIProtocolLevel", "2", "1", Some("1")),
    c("iSCSIProtocolLevel", "31", "1", Some("1")),
    c("iSCSIProtocolLevel", "32", "Reject", Some("0")),
    // §13.25 obsolete keys: markers answered No (allowed), intervals Reject (MUST).
    c("IFMarker", "No", "No", Some("No")),
    c("IFMarker", "Yes", "No", Some("No")),
    c("IFMarker", "x", "Reject", Some("No")),
    c("OFMarker", "Yes", "No", Some("No")),
    c("IFMarkInt", "2048~8192", "Reject", None),
    c("OFMarkInt", "1", "Reject", None),
];

#[test]
fn every_negotiated_key_default_limits() {
    for case in CASES {
        let (r, ans, mut n) = op_login(&Limits::default(), SessionType::Normal, &[(case.key, case.offer)]);
        r.unwrap_or_else(|e| panic!("{}={}: {e}", case.key, case.offer));
        assert_eq!(get(&ans, case.key), Some(case.answer), "{}={}", case.key, case.offer);
        n.finish_operational(&mut Vec::new());
        if let Some(v) = case.value {
            let id = key_def(case.key).unwrap().id;
            assert_eq!(n.params().value(id).as_deref(), Some(v), "{}={}", case.key, case.offer);
        }
    }
    // Every negotiated key of the table is covered.
    for d in &KEY_TABLE {
        let negotiated = !matches!(d.kind, KeyKind::Declarative(_) | KeyKind::Query);
        if negotiated && d.id != KeyId::AuthMethod {
            assert!(CASES.iter().any(|c| c.key == d.name), "{} has no case", d.name);
        }
    }
}

#[test]
fn result_functions_follow_our_limits() {
    let strict = Limits {
        initial_r2t: true,
        immediate_data: false,
        max_burst_len: 1 << 20,
        first_burst_len: 1 << 18,
        max_outstanding_r2t: 8,
        digests_allowed: false,
        ..Limits::default()
    };
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str)] = &[
        ("InitialR2T", "No", "Yes"),        // OR: our Yes wins
        ("ImmediateData", "Yes", "No"),     // AND: our No wins
        ("MaxBurstLength", "16777215", "1048576"),
        ("MaxBurstLength", "4096", "4096"),
        ("FirstBurstLength", "16777215", "262144"),
        ("MaxOutstandingR2T", "4", "4"),
        ("MaxOutstandingR2T", "16", "8"),
        ("HeaderDigest", "CRC32C", "Reject"),
        ("HeaderDigest", "CRC32C,None", "None"),
        ("DataDigest", "CRC32C,None", "None"),
    ];
    for (k, offer, answer) in cases {
        let (r, ans, _) = op_login(&strict, SessionType::Normal, &[(k, offer)]);
        r.unwrap();
        assert_eq!(get(&ans, k), Some(*answer), "{k}={offer}");
    }
}

#[test]
fn limits_outside_rfc_ranges_are_clamped() {
    let odd = Limits {
        max_recv_data_segment_len: 1 << 30,
        max_burst_len: 100,
        first_burst_len: 1 << 30,
        max_outstanding_r2t: 0,
        ..Limits::default()
    };
    let (r, ans, _) = op_login(
        &odd,
        SessionType::Normal,
        &[("MaxBurstLength", "16777215"), ("MaxOutstandingR2T", "4"), ("ImmediateData", "Yes")],
    );
    r.unwrap();
    assert_eq!(get(&ans, "MaxRecvDataSegmentLength"), Some("16777215"));
    assert_eq!(get(&ans, "MaxBurstLength"), Some("512"));
    assert_eq!(get(&ans, "MaxOutstandingR2T"), Some("1"));
    // FirstBurstLength clamped to MaxBurstLength (512), below the default:
    // the target proposes it.
    assert_eq!(get(&ans, "FirstBurstLength"), Some("512"));
}

// ---------------------------------------------------------------------------
// FirstBurstLength rules (§13.14)

#[test]
fn first_burst_irrelevant_without_unsolicited_data() {
    let (r, ans, n) = op_login(
        &Limits::default(),
        SessionType::Normal,
        &[("InitialR2T", "Yes"), ("ImmediateData", "No"), ("FirstBurstLength", "4096")],
    );
    r.unwrap();
    assert_eq!(get(&ans, "FirstBurstLength"), Some("Irrelevant"));
    assert_eq!(n.params().first_burst_len, 65536);
    // Order does not matter: the rule is applied once the request is read.
    let (r, ans, _) = op_login(
        &Limits::default(),
        SessionType::Normal,
        &[("FirstBurstLength", "4096"), ("ImmediateData", "No"), ("InitialR2T", "Yes")],
    );
    r.unwrap();
    assert_eq!(get(&ans, "FirstBurstLength"), Some("Irrelevant"));
}

#[test]
fn first_burst_never_exceeds_max_burst() {
    let (r, ans, n) =
        op_login(&Limits::default(), SessionType::Normal, &[("FirstBurstLength", "65536"), ("MaxBurstLength", "8192")]);
    r.unwrap();
    assert_eq!(get(&ans, "MaxBurstLength"), Some("8192"));
    assert_eq!(get(&ans, "FirstBurstLength"), Some("8192"));
    assert_eq!(n.params().first_burst_len, 8192);
    // FirstBurstLength left at its default while MaxBurstLength shrinks.
    let (r, _, mut n) = op_login(&Limits::default(), SessionType::Normal, &[("MaxBurstLength", "4096")]);
    r.unwrap();
    n.finish_operational(&mut Vec::new());
    assert_eq!(n.params().first_burst_len, 4096);
}

// ---------------------------------------------------------------------------
// Declarative keys

#[test]
fn max_recv_data_segment_length_declaration() {
    for (v, ok) in [
        ("512", Some(512)),
        ("16777215", Some(16_777_215)),
        ("0x2000", Some(8192)),
        ("511", None),
        ("16777216", None),
        ("0", None),
        ("big", None),
        ("", None),
    ] {
        let (r, ans, n) = op_login(&Limits::default(), SessionType::Normal, &[("MaxRecvDataSegmentLength", v)]);
        match ok {
            Some(len) => {
                r.unwrap();
                assert_eq!(n.params().max_recv_data_segment_len_initiator, len);
                // Our own declaration, never an answer to theirs.
                assert_eq!(get(&ans, "MaxRecvDataSegmentLength"), Some("262144"));
            }
            None => assert_eq!(status(r), LoginStatus::INITIATOR_ERROR, "{v}"),
        }
    }
}

#[test]
fn initiator_declarations_get_no_answer() {
    let (r, ans, n) = op_login(
        &Limits::default(),
        SessionType::Normal,
        &[("InitiatorAlias", "bench host 1"), ("X#NodeArchitecture", "ExampleOS/v1,Initiator/2")],
    );
    r.unwrap();
    assert_eq!(get(&ans, "InitiatorAlias"), None);
    assert_eq!(get(&ans, "X#NodeArchitecture"), None);
    assert_eq!(n.params().initiator_alias.as_deref(), Some("bench host 1"));
    assert_eq!(n.params().peer_node_architecture.as_deref(), Some("ExampleOS/v1,Initiator/2"));
    assert_eq!(n.params().initiator_name, INIT);
    assert_eq!(n.params().target_name.as_deref(), Some(TGT));
    let long = "a".repeat(256);
    let (r, _, _) = op_login(&Limits::default(), SessionType::Normal, &[("InitiatorAlias", &long)]);
    assert_eq!(status(r), LoginStatus::INITIATOR_ERROR);
}

#[test]
fn malformed_names_are_initiator_errors() {
    let mut n = Negotiator::new(&Limits::default(), 1, None);
    let r = n.handle(SEC, true, &kv(&[("InitiatorName", "not a name"), ("TargetName", TGT)]), &mut Vec::new());
    assert_eq!(status(r), LoginStatus::INITIATOR_ERROR);
    let mut n = Negotiator::new(&Limits::default(), 1, None);
    let r = n.handle(SEC, true, &kv(&[("InitiatorName", INIT), ("TargetName", "")]), &mut Vec::new());
    assert_eq!(status(r), LoginStatus::INITIATOR_ERROR);
}

#[test]
fn target_only_keys_from_the_initiator_are_errors() {
    for (k, v) in [("TargetAlias", "x"), ("TargetAddress", "10.0.0.1:3260,1"), ("TargetPortalGroupTag", "1")] {
        let (r, _, _) = op_login(&Limits::default(), SessionType::Normal, &[(k, v)]);
        assert_eq!(status(r), LoginStatus::INITIATOR_ERROR, "{k}");
    }
}

#[test]
fn session_type_values() {
    let mut n = Negotiator::new(&Limits::default(), 1, None);
    let r = n.handle(SEC, true, &kv(&[("InitiatorName", INIT), ("SessionType", "Bogus")]), &mut Vec::new());
    assert_eq!(status(r), LoginStatus::SESSION_TYPE_NOT_SUPPORTED);
    let mut n = Negotiator::new(&Limits::default(), 1, None);
    let r = n.handle(SEC, true, &kv(&[("InitiatorName", INIT), ("SessionType", "discovery")]), &mut Vec::new());
    assert_eq!(status(r), LoginStatus::SESSION_TYPE_NOT_SUPPORTED);
}

// ---------------------------------------------------------------------------
// Target declarations in responses (§13.6, §13.9, §13.12)

#[test]
fn first_response_declares_tpgt_and_alias_once() {
    let mut n = Negotiator::new(&Limits::default(), 7, Some("Bob's disk"));
    let mut resp = Vec::new();
    let mut keys = names(SessionType::Normal);
    keys.push(("AuthMethod".into(), "None".into()));
    n.handle(SEC, true, &keys, &mut resp).unwrap();
    let a = parse_keys(&resp).unwrap();
    assert_eq!(get(&a, "TargetPortalGroupTag"), Some("7"));
    assert_eq!(get(&a, "TargetAlias"), Some("Bob's disk"));
    assert_eq!(get(&a, "MaxRecvDataSegmentLength"), None, "operational key in security stage");
    resp.clear();
    n.handle(OP, true, &kv(&[("MaxBurstLength", "8192")]), &mut resp).unwrap();
    let a = parse_keys(&resp).unwrap();
    assert_eq!(get(&a, "TargetPortalGroupTag"), None);
    assert_eq!(get(&a, "MaxRecvDataSegmentLength"), Some("262144"));
    resp.clear();
    n.handle(OP, true, &[], &mut resp).unwrap();
    assert!(resp.is_empty());
    n.finish_operational(&mut resp);
    assert!(resp.is_empty());
    assert_eq!(n.params().target_portal_group_tag, Some(7));
}

#[test]
fn finish_declares_mrdsl_when_operational_stage_was_skipped() {
    let mut n = Negotiator::new(&Limits::default(), 1, None);
    let mut keys = names(SessionType::Normal);
    keys.push(("AuthMethod".into(), "None".into()));
    n.handle(SEC, true, &keys, &mut Vec::new()).unwrap();
    let mut resp = Vec::new();
    n.finish_operational(&mut resp);
    assert_eq!(parse_keys(&resp).unwrap(), kv(&[("MaxRecvDataSegmentLength", "262144")]));
}

// ---------------------------------------------------------------------------
// Unknown and extension keys (§6.2, §13.22)

#[test]
fn unknown_keys_are_not_understood() {
    for k in ["FooBar", "X-com.example.vendor.key", "X#UnregisteredThing", "maxburstlength", "Lower_case"] {
        for stage in [SEC, OP] {
            let mut n = Negotiator::new(&Limits::default(), 1, None);
            let mut keys = names(SessionType::Normal);
            keys.push((k.into(), "1".into()));
            let mut resp = Vec::new();
            n.handle(stage, true, &keys, &mut resp).unwrap();
            assert_eq!(get(&parse_keys(&resp).unwrap(), k), Some("NotUnderstood"), "{k}");
        }
    }
}

// ---------------------------------------------------------------------------
// Irrelevant (§6.2, "Irrelevant when: SessionType=Discovery")

#[test]
fn discovery_session_keys_are_irrelevant() {
    for d in &KEY_TABLE {
        let Some(dflt) = d.default else { continue };
        if matches!(d.kind, KeyKind::Declarative(_)) || d.usage == Usage::Security {
            continue;
        }
        let (r, ans, _) = op_login(&Limits::default(), SessionType::Discovery, &[(d.name, dflt)]);
        r.unwrap_or_else(|e| panic!("{}: {e}", d.name));
        let a = get(&ans, d.name).unwrap();
        if d.irrelevant_in_discovery {
            assert_eq!(a, "Irrelevant", "{}", d.name);
        } else {
            assert_ne!(a, "Irrelevant", "{}", d.name);
        }
    }
}

#[test]
fn discovery_session_ignores_target_name() {
    let mut n = Negotiator::new(&Limits::default(), 1, Some("alias"));
    let mut resp = Vec::new();
    n.handle(
        SEC,
        true,
        &kv(&[("InitiatorName", INIT), ("TargetName", TGT), ("SessionType", "Discovery"), ("AuthMethod", "None")]),
        &mut resp,
    )
    .unwrap();
    let a = parse_keys(&resp).unwrap();
    assert_eq!(a, kv(&[("AuthMethod", "None")]));
    assert_eq!(n.params().session_type, SessionType::Discovery);
    assert_eq!(n.params().target_name, None);
}

#[test]
fn discovery_session_needs_no_target_name() {
    let (r, ans, n) = op_login(&Limits::default(), SessionType::Discovery, &[("HeaderDigest", "None")]);
    r.unwrap();
    assert_eq!(get(&ans, "HeaderDigest"), Some("None"));
    assert_eq!(get(&ans, "TargetPortalGroupTag"), None);
    assert!(!n.awaiting_answers());
}

#[test]
fn auth_keys_irrelevant_after_none() {
    let mut n = Negotiator::new(&Limits::default(), 1, None);
    let mut keys = names(SessionType::Normal);
    keys.extend(kv(&[("AuthMethod", "CHAP,None"), ("CHAP_A", "5")]));
    let mut resp = Vec::new();
    n.handle(SEC, true, &keys, &mut resp).unwrap();
    let a = parse_keys(&resp).unwrap();
    assert_eq!(get(&a, "AuthMethod"), Some("None"));
    assert_eq!(get(&a, "CHAP_A"), Some("Irrelevant"));
}

// ---------------------------------------------------------------------------
// Errors: twice, missing, wrong phase, reserved constants

#[test]
fn key_twice_is_an_initiator_error() {
    let (r, _, _) =
        op_login(&Limits::default(), SessionType::Normal, &[("MaxBurstLength", "8192"), ("MaxBurstLength", "8192")]);
    assert_eq!(status(r), LoginStatus::INITIATOR_ERROR);
    // Across two requests of one login.
    let (r, _, mut n) = op_login(&Limits::default(), SessionType::Normal, &[("ImmediateData", "Yes")]);
    r.unwrap();
    let r = n.handle(OP, true, &kv(&[("ImmediateData", "Yes")]), &mut Vec::new());
    assert_eq!(status(r), LoginStatus::INITIATOR_ERROR);
    // Unknown keys too.
    let (r, _, _) = op_login(&Limits::default(), SessionType::Normal, &[("X-a", "1"), ("X-a", "1")]);
    assert_eq!(status(r), LoginStatus::INITIATOR_ERROR);
    // A declaration with a different value.
    let (r, _, mut n) = op_login(&Limits::default(), SessionType::Normal, &[]);
    r.unwrap();
    let r = n.handle(OP, true, &kv(&[("InitiatorName", "iqn.2026-01.io.test:other")]), &mut Vec::new());
    assert_eq!(status(r), LoginStatus::INITIATOR_ERROR);
}

#[test]
fn identical_redeclaration_is_tolerated() {
    // libiscsi repeats its declarations in the operational stage after a
    // security stage.
    let mut n = Negotiator::new(&Limits::default(), 1, None);
    let mut keys = names(SessionType::Normal);
    keys.extend(kv(&[("SessionType", "Normal"), ("AuthMethod", "CHAP,None")]));
    n.handle(SEC, true, &keys, &mut Vec::new()).unwrap();
    let mut keys = names(SessionType::Normal);
    keys.extend(kv(&[("SessionType", "Normal"), ("HeaderDigest", "None")]));
    let mut resp = Vec::new();
    n.handle(OP, true, &keys, &mut resp).unwrap();
    let a = parse_keys(&resp).unwrap();
    assert_eq!(a, kv(&[("HeaderDigest", "None"), ("MaxRecvDataSegmentLength", "262144")]));
}

#[test]
fn missing_names() {
    let mut n = Negotiator::new(&Limits::default(), 1, None);
    let r = n.handle(SEC, true, &kv(&[("TargetName", TGT), ("AuthMethod", "None")]), &mut Vec::new());
    let e = r.unwrap_err();
    assert_eq!(e, NegotiationError::MissingParameter("InitiatorName"));
    assert_eq!(e.login_status(), LoginStatus::MISSING_PARAMETER);

    let mut n = Negotiator::new(&Limits::default(), 1, None);
    let r = n.handle(SEC, true, &kv(&[("InitiatorName", INIT), ("AuthMethod", "None")]), &mut Vec::new());
    assert_eq!(r.unwrap_err(), NegotiationError::MissingParameter("TargetName"));

    let mut n = Negotiator::new(&Limits::default(), 1, None);
    let r = n.handle(OP, true, &kv(&[("InitiatorName", INIT), ("SessionType", "Normal")]), &mut Vec::new());
    assert_eq!(status(r), LoginStatus::MISSING_PARAMETER);
}

#[test]
fn wrong_phase_and_sender() {
    // Operational key in the security stage (§13: only Any-Stage keys there).
    let mut n = Negotiator::new(&Limits::default(), 1, None);
    let mut keys = names(SessionType::Normal);
    keys.push(("MaxBurstLength".into(), "8192".into()));
    assert_eq!(status(n.handle(SEC, true, &keys, &mut Vec::new())), LoginStatus::INITIATOR_ERROR);
    // Security keys in the operational stage.
    for k in [("AuthMethod", "None"), ("CHAP_A", "5")] {
        let (r, _, _) = op_login(&Limits::default(), SessionType::Normal, &[k]);
        assert_eq!(status(r), LoginStatus::INITIATOR_ERROR, "{}", k.0);
    }
    // SendTargets is full feature only.
    let (r, _, _) = op_login(&Limits::default(), SessionType::Normal, &[("SendTargets", "All")]);
    assert_eq!(status(r), LoginStatus::INITIATOR_ERROR);
    // Leading-only keys on a further connection.
    let mut n = Negotiator::new(&Limits::default(), 1, None);
    let mut keys = names(SessionType::Normal);
    keys.push(("MaxBurstLength".into(), "8192".into()));
    assert_eq!(status(n.handle(OP, false, &keys, &mut Vec::new())), LoginStatus::INITIATOR_ERROR);
    // ... but connection keys are fine there, and SessionType may repeat.
    let mut n = Negotiator::new(&Limits::default(), 1, None);
    let mut keys = names(SessionType::Normal);
    keys.extend(kv(&[("SessionType", "Normal"), ("HeaderDigest", "None"), ("MaxRecvDataSegmentLength", "8192")]));
    n.handle(OP, false, &keys, &mut Vec::new()).unwrap();
    // CHAP keys before any AuthMethod.
    let mut n = Negotiator::new(&Limits::default(), 1, None);
    let mut keys = names(SessionType::Normal);
    keys.push(("CHAP_A".into(), "5".into()));
    assert_eq!(status(n.handle(SEC, true, &keys, &mut Vec::new())), LoginStatus::INITIATOR_ERROR);
    // A stage that does not negotiate.
    let mut n = Negotiator::new(&Limits::default(), 1, None);
    let r = n.handle(Stage::FULL_FEATURE, true, &names(SessionType::Normal), &mut Vec::new());
    assert_eq!(status(r), LoginStatus::INITIATOR_ERROR);
    let r = n.handle(Stage(2), true, &names(SessionType::Normal), &mut Vec::new());
    assert_eq!(status(r), LoginStatus::INITIATOR_ERROR);
}

#[test]
fn reserved_constants_are_not_proposals() {
    for v in ["Reject", "Irrelevant", "NotUnderstood"] {
        let (r, _, _) = op_login(&Limits::default(), SessionType::Normal, &[("MaxBurstLength", v)]);
        assert_eq!(status(r), LoginStatus::INITIATOR_ERROR, "{v}");
    }
}

// ---------------------------------------------------------------------------
// AuthMethod (§12)

#[test]
fn auth_method_selection() {
    for (offer, answer, ok) in [
        ("None", "None", true),
        ("None,CHAP", "None", true),
        ("CHAP,None", "None", true),
        ("KRB5,SRP,CHAP,None", "None", true),
        ("CHAP", "Reject", false),
        ("SRP,CHAP", "Reject", false),
    ] {
        let mut n = Negotiator::new(&Limits::default(), 1, None);
        let mut keys = names(SessionType::Normal);
        keys.push(("AuthMethod".into(), offer.into()));
        let mut resp = Vec::new();
        let r = n.handle(SEC, true, &keys, &mut resp);
        assert_eq!(get(&parse_keys(&resp).unwrap(), "AuthMethod"), Some(answer), "{offer}");
        if ok {
            r.unwrap();
            assert_eq!(n.params().auth_method.as_deref(), Some("None"));
            assert!(n.authenticated());
        } else {
            let e = r.unwrap_err();
            assert_eq!(e, NegotiationError::AuthFailed);
            assert_eq!(e.login_status(), LoginStatus::AUTH_FAILURE);
        }
    }
    // A malformed list.
    let mut n = Negotiator::new(&Limits::default(), 1, None);
    let mut keys = names(SessionType::Normal);
    keys.push(("AuthMethod".into(), "CHAP,,None".into()));
    assert_eq!(status(n.handle(SEC, true, &keys, &mut Vec::new())), LoginStatus::INITIATOR_ERROR);
}

// ---------------------------------------------------------------------------
// Target proposals (the target side of the result functions)

#[test]
fn target_proposes_only_what_defaults_get_wrong() {
    let (r, ans, n) = op_login(&Limits::default(), SessionType::Normal, &[]);
    r.unwrap();
    assert_eq!(ans, kv(&[("TargetPortalGroupTag", "1"), ("MaxRecvDataSegmentLength", "262144")]));
    assert!(!n.awaiting_answers());

    let small = Limits { immediate_data: false, max_burst_len: 65536, first_burst_len: 8192, ..Limits::default() };
    let (r, ans, n) = op_login(&small, SessionType::Normal, &[]);
    r.unwrap();
    assert_eq!(get(&ans, "ImmediateData"), Some("No"));
    assert_eq!(get(&ans, "MaxBurstLength"), Some("65536"));
    // InitialR2T=Yes (default) and ImmediateData=No: no unsolicited data,
    // FirstBurstLength is irrelevant.
    assert_eq!(get(&ans, "FirstBurstLength"), None);
    assert!(n.awaiting_answers());
    // Not when the initiator already negotiated them, nor in discovery.
    let (r, ans, n) = op_login(&small, SessionType::Normal, &[("ImmediateData", "Yes"), ("MaxBurstLength", "4096")]);
    r.unwrap();
    assert_eq!(get(&ans, "ImmediateData"), Some("No"));
    assert_eq!(get(&ans, "MaxBurstLength"), Some("4096"));
    assert!(!n.awaiting_answers());
    let (r, _, n) = op_login(&small, SessionType::Discovery, &[]);
    r.unwrap();
    assert!(!n.awaiting_answers());
}

// ---------------------------------------------------------------------------
// Initiator role: checking the target's answers

fn initiator_with_answers(cfg: InitiatorConfig, answers: &[(&str, &str)]) -> Result<SessionParams, NegotiationError> {
    let mut ini = InitiatorNegotiator::new(cfg);
    let mut req = Vec::new();
    ini.operational_request(&mut req);
    let mut out = Vec::new();
    ini.handle_response_bytes(&encode_keys(answers), &mut out)?;
    Ok(ini.params().clone())
}

#[test]
fn initiator_checks_result_functions() {
    let cfg = || {
        let mut c = InitiatorConfig::new(INIT, Some(TGT));
        c.immediate_data = false;
        c.initial_r2t = true;
        c.max_burst = 65536;
        c.header_digest = true;
        c
    };
    // Possible answers are recorded.
    let p = initiator_with_answers(
        cfg(),
        &[
            ("MaxBurstLength", "4096"),
            ("ImmediateData", "No"),
            ("InitialR2T", "Yes"),
            ("HeaderDigest", "CRC32C"),
            ("DefaultTime2Wait", "10"),
            ("TargetPortalGroupTag", "3"),
            ("MaxRecvDataSegmentLength", "16384"),
        ],
    )
    .unwrap();
    assert_eq!(p.max_burst_len, 4096);
    assert_eq!(p.first_burst_len, 4096, "integrity rule");
    assert!(p.header_digest);
    assert_eq!(p.default_time2wait, 10);
    assert_eq!(p.target_portal_group_tag, Some(3));
    assert_eq!(p.max_recv_data_segment_len_target, 16384);
    // Impossible answers are target errors.
    for bad in [
        ("MaxBurstLength", "131072"), // Min above our offer
        ("ImmediateData", "Yes"),     // AND: we said No
        ("InitialR2T", "No"),         // OR: we said Yes
        ("DefaultTime2Wait", "1"),    // Max below our offer
        ("HeaderDigest", "MD5"),      // not in our list
        ("ErrorRecoveryLevel", "NotUnderstood"),
        ("MaxRecvDataSegmentLength", "100"),
        ("InitiatorName", INIT),
    ] {
        let r = initiator_with_answers(cfg(), &[bad]);
        assert!(matches!(r, Err(NegotiationError::TargetError(_))), "{bad:?}: {r:?}");
    }
    // Reject and Irrelevant leave the default.
    let p = initiator_with_answers(cfg(), &[("MaxBurstLength", "Reject"), ("DataPDUInOrder", "Irrelevant")]).unwrap();
    assert_eq!(p.max_burst_len, 262_144);
    // Twice.
    let r = initiator_with_answers(cfg(), &[("TargetAlias", "a"), ("TargetAlias", "a")]);
    assert!(matches!(r, Err(NegotiationError::TargetError(_))));
}

#[test]
fn initiator_answers_target_proposals() {
    let mut cfg = InitiatorConfig::new(INIT, Some(TGT));
    cfg.max_burst = 32768;
    let mut ini = InitiatorNegotiator::new(cfg);
    let mut out = Vec::new();
    ini.handle_response_bytes(
        &encode_keys(&[
            ("MaxBurstLength", "65536"),
            ("ImmediateData", "No"),
            ("DataPDUInOrder", "No"),
            ("X-com.example.k", "v"),
            ("DefaultTime2Retain", "99999"),
        ]),
        &mut out,
    )
    .unwrap();
    assert_eq!(
        parse_keys(&out).unwrap(),
        kv(&[
            ("MaxBurstLength", "32768"),
            ("ImmediateData", "No"),
            ("DataPDUInOrder", "Yes"),
            ("X-com.example.k", "NotUnderstood"),
            ("DefaultTime2Retain", "Reject"),
        ])
    );
    assert_eq!(ini.params().max_burst_len, 32768);
    assert!(!ini.params().immediate_data);
}

#[test]
fn initiator_auth_outcomes() {
    for (answer, ok) in [("None", true), ("Reject", false), ("CHAP", false)] {
        let mut ini = InitiatorNegotiator::new(InitiatorConfig::new(INIT, Some(TGT)));
        ini.security_request(&mut Vec::new());
        let r = ini.handle_response_bytes(&encode_keys(&[("AuthMethod", answer)]), &mut Vec::new());
        assert_eq!(r.is_ok(), ok, "{answer}");
        if !ok {
            assert_eq!(r.unwrap_err(), NegotiationError::AuthFailed);
        }
    }
}

#[test]
fn initiator_finish_requires_answers() {
    let mut ini = InitiatorNegotiator::new(InitiatorConfig::new(INIT, Some(TGT)));
    ini.operational_request(&mut Vec::new());
    assert!(ini.outstanding());
    assert!(matches!(ini.finish(), Err(NegotiationError::TargetError(_))));
}

// ---------------------------------------------------------------------------
// End to end: InitiatorNegotiator against Negotiator

/// Drive a whole login; returns (initiator's view, target's view, rounds
/// in the operational stage).
fn drive(cfg: InitiatorConfig, limits: &Limits, with_security: bool) -> (SessionParams, SessionParams, usize) {
    let mut ini = InitiatorNegotiator::new(cfg);
    let mut tgt = Negotiator::new(limits, 5, Some("e2e"));
    let mut carry = Vec::new();
    if with_security {
        let mut req = Vec::new();
        ini.security_request(&mut req);
        let mut resp = Vec::new();
        tgt.handle_bytes(SEC, true, &req, &mut resp).unwrap();
        ini.handle_response_bytes(&resp, &mut carry).unwrap();
        assert!(tgt.authenticated());
    }
    let mut req = carry;
    ini.operational_request(&mut req);
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 5, "negotiation does not converge");
        let mut resp = Vec::new();
        tgt.handle_bytes(OP, true, &req, &mut resp).unwrap();
        let transit = !tgt.awaiting_answers();
        if transit {
            tgt.finish_operational(&mut resp);
        }
        req = Vec::new();
        ini.handle_response_bytes(&resp, &mut req).unwrap();
        if transit {
            assert!(req.is_empty(), "initiator answers after the final response");
            break;
        }
    }
    let ip = ini.finish().unwrap().clone();
    (ip, tgt.into_params(), rounds)
}

fn assert_same_outcome(a: &SessionParams, b: &SessionParams) {
    for d in &KEY_TABLE {
        if matches!(d.kind, KeyKind::Query) || d.id == KeyId::NodeArchitecture {
            continue;
        }
        assert_eq!(a.value(d.id), b.value(d.id), "{}", d.name);
    }
    assert_eq!(a.max_recv_data_segment_len_initiator, b.max_recv_data_segment_len_initiator);
    assert_eq!(a.max_recv_data_segment_len_target, b.max_recv_data_segment_len_target);
}

#[test]
fn end_to_end_defaults() {
    let (i, t, rounds) = drive(InitiatorConfig::new(INIT, Some(TGT)), &Limits::default(), true);
    assert_same_outcome(&i, &t);
    assert_eq!(rounds, 1);
    assert_eq!(t.initiator_name, INIT);
    assert_eq!(i.target_portal_group_tag, Some(5));
    assert_eq!(i.target_alias.as_deref(), Some("e2e"));
    assert_eq!(i.max_recv_data_segment_len_target, 262_144);
    assert_eq!(t.max_recv_data_segment_len_initiator, 262_144);
    assert_eq!(t.max_burst_len, 262_144);
    assert!(t.immediate_data);
    assert!(t.initial_r2t, "OR: the initiator's default Yes wins");
}

#[test]
fn end_to_end_variants() {
    let mut fast = InitiatorConfig::new(INIT, Some(TGT));
    fast.header_digest = true;
    fast.data_digest = true;
    fast.initial_r2t = false;
    fast.max_burst = 1 << 20;
    fast.first_burst = 1 << 18;
    fast.max_outstanding_r2t = 16;
    fast.max_recv_dsl = 16_777_215;
    fast.error_recovery_level = 2;
    fast.default_time2wait = 0;
    fast.default_time2retain = 0;

    let mut small = InitiatorConfig::new(INIT, Some(TGT));
    small.max_burst = 512;
    small.first_burst = 512;
    small.max_recv_dsl = 512;
    small.immediate_data = false;

    let strict = Limits {
        immediate_data: false,
        max_burst_len: 65536,
        first_burst_len: 8192,
        initial_r2t: true,
        max_outstanding_r2t: 4,
        digests_allowed: false,
        ..Limits::default()
    };
    for (cfg, limits) in [
        (fast.clone(), Limits::default()),
        (fast, strict.clone()),
        (small.clone(), Limits::default()),
        (small, strict.clone()),
        (InitiatorConfig::new(INIT, Some(TGT)), strict),
    ] {
        for sec in [true, false] {
            let (i, t, _) = drive(cfg.clone(), &limits, sec);
            assert_same_outcome(&i, &t);
            assert!(t.first_burst_len <= t.max_burst_len);
            assert!(t.max_burst_len <= limits.max_burst_len.max(512));
            assert_eq!(t.immediate_data, cfg.immediate_data && limits.immediate_data);
            assert_eq!(t.header_digest, cfg.header_digest && limits.digests_allowed);
            assert_eq!(t.max_recv_data_segment_len_initiator, cfg.max_recv_dsl);
        }
    }
}

#[test]
fn end_to_end_target_proposals_take_a_second_round() {
    // The initiator proposes only names and digests (a minimal initiator),
    // so the target must propose its limits and wait for the answers.
    let strict = Limits { immediate_data: false, max_burst_len: 65536, ..Limits::default() };
    let mut tgt = Negotiator::new(&strict, 1, None);
    let mut ini = InitiatorNegotiator::new(InitiatorConfig::new(INIT, Some(TGT)));
    let mut resp = Vec::new();
    tgt.handle(OP, true, &kv(&[("InitiatorName", INIT), ("TargetName", TGT)]), &mut resp).unwrap();
    assert!(tgt.awaiting_answers());
    let mut answers = Vec::new();
    ini.handle_response_bytes(&resp, &mut answers).unwrap();
    assert_eq!(parse_keys(&answers).unwrap(), kv(&[("ImmediateData", "No"), ("MaxBurstLength", "65536")]));
    resp.clear();
    tgt.handle_bytes(OP, true, &answers, &mut resp).unwrap();
    assert!(resp.is_empty());
    assert!(!tgt.awaiting_answers());
    assert!(!tgt.params().immediate_data);
    assert_eq!(tgt.params().max_burst_len, 65536);
    assert_eq!(ini.params().max_burst_len, 65536);
}

#[test]
fn end_to_end_discovery_and_send_targets() {
    let (i, t, _) = drive(InitiatorConfig::new(INIT, None), &Limits::default(), true);
    assert_same_outcome(&i, &t);
    assert_eq!(t.session_type, SessionType::Discovery);
    assert_eq!(i.target_portal_group_tag, None);
}

/// What libiscsi 1.19 sends without CHAP: one operational-stage request
/// with T=1 to the full feature phase, for both session types.
#[test]
fn libiscsi_style_single_request() {
    let common = [
        ("InitiatorName", INIT),
        ("HeaderDigest", "None,CRC32C"),
        ("DataDigest", "None"),
        ("InitialR2T", "No"),
        ("ImmediateData", "Yes"),
        ("MaxBurstLength", "262144"),
        ("FirstBurstLength", "262144"),
        ("DefaultTime2Wait", "2"),
        ("DefaultTime2Retain", "0"),
        ("MaxOutstandingR2T", "1"),
        ("ErrorRecoveryLevel", "0"),
        ("IFMarker", "No"),
        ("OFMarker", "No"),
        ("MaxConnections", "1"),
        ("MaxRecvDataSegmentLength", "262144"),
        ("DataPDUInOrder", "Yes"),
        ("DataSequenceInOrder", "Yes"),
    ];
    let mut normal = kv(&[("TargetName", TGT), ("SessionType", "Normal")]);
    normal.extend(kv(&common));
    let mut n = Negotiator::new(&Limits::default(), 1, None);
    let mut resp = Vec::new();
    n.handle(OP, true, &normal, &mut resp).unwrap();
    assert!(!n.awaiting_answers());
    n.finish_operational(&mut resp);
    let a = parse_keys(&resp).unwrap();
    assert_eq!(get(&a, "InitialR2T"), Some("No"));
    assert_eq!(get(&a, "FirstBurstLength"), Some("65536"));
    assert_eq!(get(&a, "DefaultTime2Retain"), Some("0"));
    assert_eq!(get(&a, "IFMarker"), Some("No"));
    assert!(a.iter().all(|(_, v)| v != "NotUnderstood" && v != "Reject"), "{a:?}");
    let p = n.params();
    assert!(!p.initial_r2t && p.immediate_data);
    assert_eq!(p.first_burst_len, 65536);

    let mut disc = kv(&[("SessionType", "Discovery")]);
    disc.extend(kv(&common));
    let mut n = Negotiator::new(&Limits::default(), 1, None);
    let mut resp = Vec::new();
    n.handle(OP, true, &disc, &mut resp).unwrap();
    let a = parse_keys(&resp).unwrap();
    assert_eq!(get(&a, "MaxBurstLength"), Some("Irrelevant"));
    assert_eq!(get(&a, "DefaultTime2Retain"), Some("0"));
    assert_eq!(get(&a, "HeaderDigest"), Some("None"));
}

// ---------------------------------------------------------------------------
// Full feature phase text (§13.3, Appendix C)

fn targets(n: usize) -> TargetSet {
    TargetSet {
        targets: (0..n)
            .map(|i| TargetConfig { name: format!("iqn.2026-01.io.shardtgt:disk{i:04}"), ..Default::default() })
            .collect(),
        portals: vec![
            Portal { address: "192.0.2.10:3260".into(), tpgt: 1 },
            Portal { address: "[2001:db8::10]:3260".into(), tpgt: 2 },
        ],
        ..Default::default()
    }
}

fn logged_in(session: SessionType, target: &str) -> Negotiator {
    let mut n = Negotiator::new(&Limits::default(), 1, None);
    let keys = match session {
        SessionType::Normal => kv(&[("InitiatorName", INIT), ("TargetName", target)]),
        SessionType::Discovery => names(SessionType::Discovery),
    };
    n.handle(OP, true, &keys, &mut Vec::new()).unwrap();
    n.finish_operational(&mut Vec::new());
    n
}

#[test]
fn send_targets_in_discovery() {
    let set = targets(3);
    let mut n = logged_in(SessionType::Discovery, "");
    let mut resp = Vec::new();
    n.handle_text_full_feature(&kv(&[("SendTargets", "All")]), &set, |_| true, &mut resp).unwrap();
    let a = parse_keys(&resp).unwrap();
    assert_eq!(a.len(), 9);
    assert_eq!(a[0], ("TargetName".into(), "iqn.2026-01.io.shardtgt:disk0000".into()));
    assert_eq!(a[1], ("TargetAddress".into(), "192.0.2.10:3260,1".into()));
    assert_eq!(a[2], ("TargetAddress".into(), "[2001:db8::10]:3260,2".into()));

    resp.clear();
    n.handle_text_full_feature(&kv(&[("SendTargets", "iqn.2026-01.io.shardtgt:disk0002")]), &set, |_| true, &mut resp)
        .unwrap();
    let a = parse_keys(&resp).unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(a[0].1, "iqn.2026-01.io.shardtgt:disk0002");

    for q in ["iqn.2026-01.io.shardtgt:nope", ""] {
        resp.clear();
        n.handle_text_full_feature(&kv(&[("SendTargets", q)]), &set, |_| true, &mut resp).unwrap();
        assert!(resp.is_empty(), "{q:?}");
    }
    // Hidden targets stay hidden.
    resp.clear();
    n.handle_text_full_feature(&kv(&[("SendTargets", "All")]), &set, |t| t.name.ends_with("1"), &mut resp).unwrap();
    assert_eq!(parse_keys(&resp).unwrap().len(), 3);
}

#[test]
fn send_targets_in_normal_session() {
    let set = targets(3);
    let own = "iqn.2026-01.io.shardtgt:disk0001";
    let mut n = logged_in(SessionType::Normal, own);
    let mut resp = Vec::new();
    n.handle_text_full_feature(&kv(&[("SendTargets", "")]), &set, |_| true, &mut resp).unwrap();
    let a = parse_keys(&resp).unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(a[0].1, own);
    resp.clear();
    n.handle_text_full_feature(&kv(&[("SendTargets", "All")]), &set, |_| true, &mut resp).unwrap();
    assert_eq!(parse_keys(&resp).unwrap(), kv(&[("SendTargets", "Reject")]));
    resp.clear();
    n.handle_text_full_feature(&kv(&[("SendTargets", "iqn.2026-01.io.shardtgt:disk0002")]), &set, |_| true, &mut resp)
        .unwrap();
    assert!(resp.is_empty());
}

#[test]
fn full_feature_text_rules() {
    let set = targets(1);
    let mut n = logged_in(SessionType::Normal, "iqn.2026-01.io.shardtgt:disk0000");
    let mut resp = Vec::new();
    n.handle_text_full_feature(
        &kv(&[("MaxRecvDataSegmentLength", "4096"), ("InitiatorAlias", "renamed"), ("X-com.example.q", "1")]),
        &set,
        |_| true,
        &mut resp,
    )
    .unwrap();
    assert_eq!(parse_keys(&resp).unwrap(), kv(&[("X-com.example.q", "NotUnderstood")]));
    assert_eq!(n.params().max_recv_data_segment_len_initiator, 4096);
    assert_eq!(n.params().initiator_alias.as_deref(), Some("renamed"));
    for bad in [
        kv(&[("MaxBurstLength", "8192")]),
        kv(&[("HeaderDigest", "None")]),
        kv(&[("InitiatorName", INIT)]),
        kv(&[("AuthMethod", "None")]),
        kv(&[("CHAP_A", "5")]),
        kv(&[("TargetAlias", "x")]),
        kv(&[("MaxRecvDataSegmentLength", "100")]),
        kv(&[("SendTargets", "All"), ("SendTargets", "All")]),
    ] {
        let r = n.handle_text_full_feature(&bad, &set, |_| true, &mut Vec::new());
        assert_eq!(status(r), LoginStatus::INITIATOR_ERROR, "{bad:?}");
    }
    // A renegotiation in a later text request is allowed ("ALL").
    n.handle_text_full_feature(&kv(&[("MaxRecvDataSegmentLength", "8192")]), &set, |_| true, &mut Vec::new()).unwrap();
    assert_eq!(n.params().max_recv_data_segment_len_initiator, 8192);
}

#[test]
fn long_send_targets_answer_chunks_and_reassembles() {
    let set = targets(200);
    let mut n = logged_in(SessionType::Discovery, "");
    let mut full = Vec::new();
    n.handle_text_bytes(b"SendTargets=All\0", &set, |_| true, &mut full).unwrap();
    assert!(full.len() > 8192);
    for max in [512usize, 1000, 8192] {
        let mut cur = TextReplyCursor::new(full.clone());
        let mut joined = Vec::new();
        let mut pdus = 0;
        while let Some((chunk, more)) = cur.next_chunk(max) {
            assert!(chunk.len() <= max);
            joined.extend_from_slice(chunk);
            assert_eq!(more, !cur.is_done());
            pdus += 1;
        }
        assert_eq!(joined, full);
        assert!(pdus > 1);
        let pairs = parse_keys(&joined).unwrap();
        assert_eq!(pairs.len(), 600);
        assert_eq!(pairs.iter().filter(|(k, _)| k == "TargetName").count(), 200);
    }
}

// ---------------------------------------------------------------------------
// Robustness: no input panics the target negotiator

#[test]
fn arbitrary_bytes_never_panic() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pieces: &[&[u8]] = &[
        b"InitiatorName=",
        INIT.as_bytes(),
        b"TargetName=",
        TGT.as_bytes(),
        b"SessionType=",
        b"Discovery",
        b"Normal",
        b"AuthMethod=",
        b"None",
        b"CHAP",
        b"MaxBurstLength=",
        b"0x",
        b"16777215",
        b"Yes",
        b"No",
        b",",
        b"=",
        b"\0",
        b"\0",
        b"X-",
        b"CHAP_A=",
        b"Reject",
        b"FirstBurstLength=",
        b"ImmediateData=",
        b"InitialR2T=",
        b"\xff",
        b"SendTargets=All",
    ];
    for _ in 0..3000 {
        let mut data = Vec::new();
        for _ in 0..(next() % 24) {
            data.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
        }
        let mut n = Negotiator::new(&Limits::default(), 1, None);
        for stage in [SEC, OP, OP] {
            let _ = n.handle_bytes(stage, next() % 2 == 0, &data, &mut Vec::new());
        }
        let _ = n.handle_text_bytes(&data, &targets(2), |_| true, &mut Vec::new());
        let mut ini = InitiatorNegotiator::new(InitiatorConfig::new(INIT, Some(TGT)));
        ini.operational_request(&mut Vec::new());
        let _ = ini.handle_response_bytes(&data, &mut Vec::new());
        let _ = ini.finish();
    }
}
