//! Initiator-role negotiation (RFC 7143 §6, §13), for the bench's load
//! generator and for tests that play the initiator.
//!
//! [`InitiatorNegotiator`] builds the text of each login stage from an
//! [`InitiatorConfig`] and checks the target's answers against the key
//! table's result functions, ending in the same [`SessionParams`] the
//! target computes. It never builds PDUs; the caller sets CSG/NSG/T/C.

use super::keys::{
    is_extension_key, is_reserved_answer, parse_keys, parse_list, parse_number, push_key, IRRELEVANT,
    MAX_SIMPLE_VALUE_LEN, NOT_UNDERSTOOD, REJECT,
};
use super::negotiate::{
    accept, check_answer, key_def, key_def_by_id, store, DeclKind, KeyDef, KeyId, KeyKind, LocalPrefs,
    NegotiationError, Sender, PROTOCOL_LEVEL,
};
use super::params::{SessionParams, SessionType, MAX_DATA_LEN, MIN_DATA_LEN};

/// What the initiator wants from a login (RFC 7143 §13 keys it proposes).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InitiatorConfig {
    /// InitiatorName (RFC 7143 §13.5).
    pub initiator_name: String,
    /// InitiatorAlias (RFC 7143 §13.7).
    pub initiator_alias: Option<String>,
    /// TargetName (RFC 7143 §13.4); required for a normal session.
    pub target_name: Option<String>,
    /// SessionType (RFC 7143 §13.21).
    pub session_type: SessionType,
    /// Ask for HeaderDigest=CRC32C (offered as `CRC32C,None`, RFC 7143 §13.1).
    pub header_digest: bool,
    /// Ask for DataDigest=CRC32C (RFC 7143 §13.1).
    pub data_digest: bool,
    /// Our MaxRecvDataSegmentLength declaration (RFC 7143 §13.12).
    pub max_recv_dsl: u32,
    /// ImmediateData offer (RFC 7143 §13.11).
    pub immediate_data: bool,
    /// InitialR2T offer (RFC 7143 §13.10).
    pub initial_r2t: bool,
    /// MaxBurstLength offer (RFC 7143 §13.13).
    pub max_burst: u32,
    /// FirstBurstLength offer (RFC 7143 §13.14).
    pub first_burst: u32,
    /// MaxOutstandingR2T offer (RFC 7143 §13.17).
    pub max_outstanding_r2t: u32,
    /// MaxConnections offer (RFC 7143 §13.2).
    pub max_connections: u32,
    /// ErrorRecoveryLevel offer (RFC 7143 §13.20).
    pub error_recovery_level: u8,
    /// DefaultTime2Wait offer (RFC 7143 §13.15).
    pub default_time2wait: u32,
    /// DefaultTime2Retain offer (RFC 7143 §13.16).
    pub default_time2retain: u32,
    /// DataPDUInOrder offer (RFC 7143 §13.18).
    pub data_pdu_in_order: bool,
    /// DataSequenceInOrder offer (RFC 7143 §13.19).
    pub data_sequence_in_order: bool,
}

impl InitiatorConfig {
    /// A configuration with RFC 7143 §13 defaults (except
    /// MaxRecvDataSegmentLength 262144): a normal session to `target_name`,
    /// or a discovery session when it is `None`.
    pub fn new(initiator_name: &str, target_name: Option<&str>) -> Self {
        InitiatorConfig {
            initiator_name: initiator_name.to_string(),
            initiator_alias: None,
            target_name: target_name.map(str::to_string),
            session_type: if target_name.is_some() { SessionType::Normal } else { SessionType::Discovery },
            header_digest: false,
            data_digest: false,
            max_recv_dsl: 262_144,
            immediate_data: true,
            initial_r2t: true,
            max_burst: 262_144,
            first_burst: 65_536,
            max_outstanding_r2t: 1,
            max_connections: 1,
            error_recovery_level: 0,
            default_time2wait: 2,
            default_time2retain: 20,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
        }
    }
}

impl LocalPrefs for InitiatorConfig {
    fn boolean(&self, id: KeyId) -> bool {
        match id {
            KeyId::InitialR2T => self.initial_r2t,
            KeyId::ImmediateData => self.immediate_data,
            KeyId::DataPduInOrder => self.data_pdu_in_order,
            KeyId::DataSequenceInOrder => self.data_sequence_in_order,
            _ => false,
        }
    }

    fn number(&self, id: KeyId) -> u64 {
        match id {
            KeyId::MaxConnections => self.max_connections.into(),
            KeyId::MaxBurstLength => self.max_burst.into(),
            KeyId::FirstBurstLength => self.first_burst.into(),
            KeyId::DefaultTime2Wait => self.default_time2wait.into(),
            KeyId::DefaultTime2Retain => self.default_time2retain.into(),
            KeyId::MaxOutstandingR2T => self.max_outstanding_r2t.into(),
            KeyId::ErrorRecoveryLevel => self.error_recovery_level.into(),
            KeyId::IscsiProtocolLevel => PROTOCOL_LEVEL,
            _ => 0,
        }
    }

    fn choices(&self, id: KeyId) -> &'static [&'static str] {
        match id {
            KeyId::HeaderDigest if self.header_digest => &["CRC32C", "None"],
            KeyId::DataDigest if self.data_digest => &["CRC32C", "None"],
            KeyId::HeaderDigest | KeyId::DataDigest => &["None"],
            KeyId::TaskReporting => &["RFC3720"],
            _ => &[],
        }
    }
}

fn terr(m: impl Into<String>) -> NegotiationError {
    NegotiationError::TargetError(m.into())
}

/// Initiator-role negotiator for one connection's login (RFC 7143 §6).
///
/// ```text
///  security_request ─► handle_response* ─► operational_request ─► handle_response* ─► finish
///  (or operational_request first, to skip the security stage)
/// ```
#[derive(Clone, Debug)]
pub struct InitiatorNegotiator {
    cfg: InitiatorConfig,
    params: SessionParams,
    /// Our proposals not yet answered, with the value proposed.
    offered: Vec<(KeyId, String)>,
    /// Keys the target sent in this login.
    seen: Vec<String>,
    names_sent: bool,
    operational_sent: bool,
    /// TargetAddress values the target sent (redirection, RFC 7143 §13.8).
    target_addresses: Vec<String>,
}

impl InitiatorNegotiator {
    /// A negotiator that will propose `cfg` (RFC 7143 §6.2: the initiator
    /// starts every negotiation).
    pub fn new(cfg: InitiatorConfig) -> Self {
        let params = SessionParams {
            session_type: cfg.session_type,
            initiator_name: cfg.initiator_name.clone(),
            initiator_alias: cfg.initiator_alias.clone(),
            target_name: match cfg.session_type {
                SessionType::Normal => cfg.target_name.clone(),
                SessionType::Discovery => None,
            },
            ..SessionParams::default()
        };
        InitiatorNegotiator {
            cfg,
            params,
            offered: Vec::new(),
            seen: Vec::new(),
            names_sent: false,
            operational_sent: false,
            target_addresses: Vec::new(),
        }
    }

    /// The values negotiated so far (RFC 7143 §13).
    pub fn params(&self) -> &SessionParams {
        &self.params
    }

    /// TargetAddress values the target sent during login (RFC 7143 §13.8).
    pub fn target_addresses(&self) -> &[String] {
        &self.target_addresses
    }

    /// Whether proposals of ours are still unanswered (RFC 7143 §6.2).
    pub fn outstanding(&self) -> bool {
        !self.offered.is_empty()
    }

    fn offer(&mut self, id: KeyId, value: String, out: &mut Vec<u8>) {
        push_key(out, key_def_by_id(id).name, &value);
        self.offered.push((id, value));
    }

    /// The declarations of the first request: InitiatorName (RFC 7143 §13.5),
    /// InitiatorAlias, SessionType (§13.21), TargetName (§13.4, normal
    /// sessions).
    fn push_names(&mut self, out: &mut Vec<u8>) {
        if self.names_sent {
            return;
        }
        self.names_sent = true;
        push_key(out, "InitiatorName", &self.cfg.initiator_name);
        if let Some(a) = &self.cfg.initiator_alias {
            push_key(out, "InitiatorAlias", a);
        }
        push_key(out, "SessionType", self.cfg.session_type.as_str());
        if self.cfg.session_type == SessionType::Normal {
            if let Some(t) = &self.cfg.target_name {
                push_key(out, "TargetName", t);
            }
        }
    }

    /// Text of the first security-stage Login Request: the declarations and
    /// `AuthMethod=None` (RFC 7143 §12).
    pub fn security_request(&mut self, out: &mut Vec<u8>) {
        self.push_names(out);
        if !self.offered.iter().any(|(id, _)| *id == KeyId::AuthMethod) && self.params.auth_method.is_none() {
            self.offer(KeyId::AuthMethod, "None".into(), out);
        }
    }

    /// Text of the first operational-stage Login Request (RFC 7143 §13):
    /// digests, our MaxRecvDataSegmentLength, and for a normal session
    /// every session key. Includes the declarations when the login starts
    /// in this stage. Empty on later calls.
    pub fn operational_request(&mut self, out: &mut Vec<u8>) {
        self.push_names(out);
        if self.operational_sent {
            return;
        }
        self.operational_sent = true;
        let c = self.cfg.clone();
        let digest = |on: bool| if on { "CRC32C,None" } else { "None" }.to_string();
        self.offer(KeyId::HeaderDigest, digest(c.header_digest), out);
        self.offer(KeyId::DataDigest, digest(c.data_digest), out);
        let mrdsl = c.max_recv_dsl.clamp(MIN_DATA_LEN, MAX_DATA_LEN);
        self.params.max_recv_data_segment_len_initiator = mrdsl;
        push_key(out, "MaxRecvDataSegmentLength", &mrdsl.to_string());
        if c.session_type != SessionType::Normal {
            return;
        }
        let yn = |b: bool| if b { "Yes" } else { "No" }.to_string();
        self.offer(KeyId::InitialR2T, yn(c.initial_r2t), out);
        self.offer(KeyId::ImmediateData, yn(c.immediate_data), out);
        self.offer(KeyId::MaxBurstLength, c.max_burst.to_string(), out);
        self.offer(KeyId::FirstBurstLength, c.first_burst.to_string(), out);
        self.offer(KeyId::MaxConnections, c.max_connections.to_string(), out);
        self.offer(KeyId::MaxOutstandingR2T, c.max_outstanding_r2t.to_string(), out);
        self.offer(KeyId::DataPduInOrder, yn(c.data_pdu_in_order), out);
        self.offer(KeyId::DataSequenceInOrder, yn(c.data_sequence_in_order), out);
        self.offer(KeyId::ErrorRecoveryLevel, c.error_recovery_level.to_string(), out);
        self.offer(KeyId::DefaultTime2Wait, c.default_time2wait.to_string(), out);
        self.offer(KeyId::DefaultTime2Retain, c.default_time2retain.to_string(), out);
    }

    /// Parse a reassembled Login Response data segment (RFC 7143 §6.1) and
    /// [`Self::handle_response`] it. Malformed text is a TargetError.
    pub fn handle_response_bytes(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), NegotiationError> {
        let keys = parse_keys(data).map_err(|e| terr(e.to_string()))?;
        self.handle_response(&keys, out)
    }

    /// Process the keys of one (reassembled) Login Response: answers to our
    /// proposals are checked against the result functions and recorded;
    /// declarations are recorded; target proposals are answered into `out`
    /// (to go in the next request). Errors: `AuthMethod=Reject` or a method
    /// we cannot do → AuthFailed; anything the RFC forbids the target (a
    /// key twice, an impossible answer, NotUnderstood for a standard key,
    /// an initiator-only key) → TargetError.
    pub fn handle_response(&mut self, keys: &[(String, String)], out: &mut Vec<u8>) -> Result<(), NegotiationError> {
        for (k, v) in keys {
            if k != "TargetAddress" && self.seen.iter().any(|s| s == k) {
                return Err(terr(format!("{k} sent twice")));
            }
            if self.seen.len() >= super::negotiate::MAX_KEYS_PER_LOGIN {
                return Err(terr("too many keys"));
            }
            self.seen.push(k.clone());
            if let Some(pos) = self.offered.iter().position(|(id, _)| key_def_by_id(*id).name == k) {
                let (id, proposed) = self.offered.remove(pos);
                self.answer(key_def_by_id(id), &proposed, v)?;
                continue;
            }
            let Some(def) = key_def(k) else {
                push_key(out, k, NOT_UNDERSTOOD);
                continue;
            };
            if def.sender == Sender::Initiator {
                return Err(terr(format!("{k} is sent by initiators")));
            }
            match def.kind {
                KeyKind::Declarative(d) => self.declaration(def, d, v)?,
                KeyKind::And | KeyKind::Or | KeyKind::Min { .. } | KeyKind::Max { .. } => {
                    if is_reserved_answer(v) {
                        return Err(terr(format!("{k}={v} was never proposed")));
                    }
                    let a = accept(def, v, &self.cfg);
                    if a != REJECT {
                        store(&mut self.params, def, &a);
                    }
                    push_key(out, k, &a);
                }
                KeyKind::List if def.id != KeyId::AuthMethod => {
                    if is_reserved_answer(v) {
                        return Err(terr(format!("{k}={v} was never proposed")));
                    }
                    let a = accept(def, v, &self.cfg);
                    if a != REJECT {
                        store(&mut self.params, def, &a);
                    }
                    push_key(out, k, &a);
                }
                _ => push_key(out, k, REJECT),
            }
        }
        self.params.enforce_integrity();
        Ok(())
    }

    /// The target's answer `v` to our proposal `proposed` (RFC 7143 §6.2).
    fn answer(&mut self, def: &KeyDef, proposed: &str, v: &str) -> Result<(), NegotiationError> {
        if def.id == KeyId::AuthMethod {
            return match v {
                "None" => {
                    self.params.auth_method = Some("None".into());
                    Ok(())
                }
                _ => Err(NegotiationError::AuthFailed),
            };
        }
        match v {
            // The key keeps its current (default) value (RFC 7143 §6.2).
            REJECT | IRRELEVANT => Ok(()),
            NOT_UNDERSTOOD if is_extension_key(def.name) => Ok(()),
            NOT_UNDERSTOOD => Err(terr(format!("{} answered NotUnderstood", def.name))),
            _ => match check_answer(def, proposed, v) {
                Some(value) => {
                    store(&mut self.params, def, &value);
                    Ok(())
                }
                None => Err(terr(format!("{}={v} is not a possible answer to {}={proposed}", def.name, def.name))),
            },
        }
    }

    fn declaration(&mut self, def: &KeyDef, kind: DeclKind, v: &str) -> Result<(), NegotiationError> {
        match (def.id, kind) {
            (KeyId::MaxRecvDataSegmentLength, DeclKind::Number { lo, hi })
            | (KeyId::TargetPortalGroupTag, DeclKind::Number { lo, hi }) => {
                let n = parse_number(v)
                    .filter(|n| (lo..=hi).contains(n))
                    .ok_or_else(|| terr(format!("{}={v}: out of range", def.name)))?;
                if def.id == KeyId::MaxRecvDataSegmentLength {
                    self.params.max_recv_data_segment_len_target = u32::try_from(n).unwrap_or(MAX_DATA_LEN);
                } else {
                    self.params.target_portal_group_tag = u16::try_from(n).ok();
                }
            }
            (KeyId::TargetAlias, _) if v.len() <= MAX_SIMPLE_VALUE_LEN => {
                self.params.target_alias = Some(v.to_string())
            }
            (KeyId::NodeArchitecture, _) if parse_list(v).is_some() => {
                self.params.peer_node_architecture = Some(v.to_string())
            }
            (KeyId::TargetAddress, _) => {
                if self.target_addresses.len() < 256 {
                    self.target_addresses.push(v.to_string());
                }
            }
            // TargetName from a target only answers SendTargets (§13.4).
            _ => return Err(terr(format!("unexpected declaration {}={v}", def.name))),
        }
        Ok(())
    }

    /// End of login (the response with T=1, NSG=FullFeaturePhase): settle
    /// proposals the target did not answer. RFC 7143 §6.2.2 lets it omit the
    /// answer only when the outcome is already fixed (AND with No, OR with
    /// Yes); any other unanswered proposal is a TargetError.
    pub fn finish(&mut self) -> Result<&SessionParams, NegotiationError> {
        for (id, proposed) in std::mem::take(&mut self.offered) {
            let def = key_def_by_id(id);
            match (def.kind, proposed.as_str()) {
                (KeyKind::And, "No") => {
                    self.params.set_boolean(id, false);
                }
                (KeyKind::Or, "Yes") => {
                    self.params.set_boolean(id, true);
                }
                _ => return Err(terr(format!("no answer to {}={proposed}", def.name))),
            }
        }
        self.params.enforce_integrity();
        Ok(&self.params)
    }
}
