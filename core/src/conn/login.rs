//! The login phase (RFC 7143 §6.3, §11.12, §11.13): stages, the T and C
//! bits, version check, target lookup, TSIH and session reinstatement.
//! What the keys mean is decided by [`crate::login::negotiate`].
//!
//! ```text
//!  Start ──► Security ──T──► Operational ──T──► FullFeature
//!    │          └──────────T(NSG=3)──────────────►┘
//!    └── any error: Login Response with status class 2/3, then close
//! ```

use super::tx::Out;
use super::{ConnState, Connection, Flow, Op, Session};
use crate::ids::{Cid, Isid, Tsih};
use crate::login::chap::Chap;
use crate::login::negotiate::{NegotiationError, Negotiator};
use crate::login::params::SessionType;
use crate::pdu::{LoginRequest, LoginResponse, LoginStatus, Stage};
use crate::session::OpenError;

/// Largest login text we gather across C-bit PDUs.
const LOGIN_TEXT_MAX: usize = 64 * 1024;

/// Login progress of a connection.
#[derive(Debug, Default)]
pub(super) struct LoginState {
    started: bool,
    isid: Isid,
    tsih: Tsih,
    cid: Cid,
    stage: Stage,
    negotiator: Option<Negotiator>,
    /// Text gathered from request PDUs with C=1.
    pending: Vec<u8>,
    /// The initiator and target were checked after the first request.
    checked: bool,
    /// The authenticator was chosen (on the first request).
    auth_chosen: bool,
    target: Option<usize>,
}

impl Connection {
    /// Handle one Login Request.
    pub(super) fn handle_login(&mut self, req: LoginRequest, data: &[u8]) -> Flow {
        let Some(mut ls) = self.login.take() else { return Flow::Drop };
        let flow = self.login_step(&mut ls, &req, data);
        if self.state == ConnState::Login {
            self.login = Some(ls);
        }
        flow
    }

    fn login_fail(&mut self, req: &LoginRequest, status: LoginStatus) -> Flow {
        let resp = LoginResponse {
            transit: false,
            continue_: false,
            csg: req.csg,
            nsg: Stage(0),
            version_max: 0,
            version_active: 0,
            isid: req.isid,
            tsih: req.tsih,
            itt: req.itt,
            status,
            ..Default::default()
        };
        self.out.push_back(Out::Login { resp, data: Vec::new() });
        // No more PDUs are read; the connection closes once this is sent.
        self.state = ConnState::CloseAfterFlush;
        Flow::Continue
    }

    fn login_step(&mut self, ls: &mut LoginState, req: &LoginRequest, data: &[u8]) -> Flow {
        if !ls.started {
            ls.started = true;
            ls.isid = req.isid;
            ls.tsih = req.tsih;
            ls.cid = req.cid;
            ls.stage = req.csg;
            // RFC 7143 §11.12: StatSN starts where the initiator expects it;
            // ExpCmdSN starts at the login's CmdSN.
            self.statsn = req.expstatsn;
            self.exp_cmdsn = req.cmdsn;
            let lim = &self.targets.limits;
            ls.negotiator = Some(Negotiator::new(lim, self.info.tpgt, None));
            if req.version_min > 0 {
                // RFC 7143 §11.12.4: only version 0 exists.
                return self.login_fail(req, LoginStatus::UNSUPPORTED_VERSION);
            }
            if req.tsih.0 != 0 {
                // Adding a connection to an existing session: MaxConnections
                // is 1, so there is never room (RFC 7143 §6.3.1).
                let status = if self.registry.exists(req.tsih) {
                    LoginStatus::TOO_MANY_CONNECTIONS
                } else {
                    LoginStatus::SESSION_DOES_NOT_EXIST
                };
                return self.login_fail(req, status);
            }
        } else if req.isid != ls.isid || req.tsih != ls.tsih || req.cid != ls.cid {
            // RFC 7143 §6.3: these stay fixed for the whole login.
            return self.login_fail(req, LoginStatus::INITIATOR_ERROR);
        }
        if req.csg != ls.stage || !matches!(req.csg, Stage::SECURITY | Stage::OPERATIONAL) {
            return self.login_fail(req, LoginStatus::INITIATOR_ERROR);
        }
        if req.transit {
            let ok = match req.csg {
                Stage::SECURITY => matches!(req.nsg, Stage::OPERATIONAL | Stage::FULL_FEATURE),
                _ => req.nsg == Stage::FULL_FEATURE,
            };
            if !ok || req.continue_ {
                // RFC 7143 §11.12.2: T and C together, or a backwards stage.
                return self.login_fail(req, LoginStatus::INITIATOR_ERROR);
            }
        }
        if ls.pending.len() + data.len() > LOGIN_TEXT_MAX {
            return self.login_fail(req, LoginStatus::OUT_OF_RESOURCES);
        }
        ls.pending.extend_from_slice(data);
        if req.continue_ {
            // RFC 7143 §11.12.2: acknowledge a partial text with an empty response.
            let resp = self.login_response(ls, req, false, Stage(0));
            self.out.push_back(Out::Login { resp, data: Vec::new() });
            return Flow::Continue;
        }
        let text = std::mem::take(&mut ls.pending);
        let keys = match crate::login::keys::parse_keys(&text) {
            Ok(k) => k,
            Err(_) => return self.login_fail(req, LoginStatus::INITIATOR_ERROR),
        };
        let peer_ip = self.peer_ip();
        if !ls.auth_chosen {
            // The first request names the session type and target, which
            // decide whether CHAP is required (RFC 7143 §12.1.3); pick the
            // authenticator before any key is negotiated.
            ls.auth_chosen = true;
            if let Some(ip) = peer_ip {
                if self.registry.auth_backoff(ip, self.now_ms) {
                    return self.login_fail(req, LoginStatus::AUTH_FAILURE);
                }
            }
            let get = |k: &str| keys.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.as_str());
            let accounts = if get("SessionType") == Some("Discovery") {
                self.targets.discovery_chap.clone()
            } else {
                get("TargetName").and_then(|n| self.targets.target(n)).and_then(|(_, t)| t.chap.clone())
            };
            if let Some(acc) = accounts.filter(|a| !a.incoming.is_empty()) {
                let lim = &self.targets.limits;
                ls.negotiator =
                    Some(Negotiator::new(lim, self.info.tpgt, None).with_authenticator(Box::new(Chap::new(acc))));
            }
        }
        let mut answer = Vec::new();
        let leading = req.tsih.0 == 0;
        let Some(neg) = ls.negotiator.as_mut() else { return Flow::Drop };
        if let Err(e) = neg.handle(req.csg, leading, &keys, &mut answer) {
            let status = negotiation_status(&e);
            if status == LoginStatus::AUTH_FAILURE {
                if let Some(ip) = peer_ip {
                    self.registry.note_auth_failure(ip, self.now_ms);
                }
            }
            return self.login_fail(req, status);
        }
        if req.csg == Stage::OPERATIONAL && !neg.authenticated() {
            // CHAP is required and the initiator skipped (or left) the
            // security stage without completing it.
            if let Some(ip) = peer_ip {
                self.registry.note_auth_failure(ip, self.now_ms);
            }
            return self.login_fail(req, LoginStatus::AUTH_FAILURE);
        }
        if !ls.checked {
            ls.checked = true;
            let p = neg.params();
            if p.initiator_name.is_empty() {
                return self.login_fail(req, LoginStatus::MISSING_PARAMETER);
            }
            match p.session_type {
                SessionType::Discovery => ls.target = None,
                SessionType::Normal => {
                    let Some(name) = p.target_name.as_deref().filter(|n| !n.is_empty()) else {
                        return self.login_fail(req, LoginStatus::MISSING_PARAMETER);
                    };
                    match self.targets.target(name) {
                        Some((i, t)) => {
                            // RFC 7143 §11.13.5: 0x0202, the initiator is not
                            // allowed to access this target.
                            if !t.acl.admits(&p.initiator_name, peer_ip) {
                                return self.login_fail(req, LoginStatus::AUTHORIZATION_FAILURE);
                            }
                            ls.target = Some(i)
                        }
                        None => return self.login_fail(req, LoginStatus::NOT_FOUND),
                    }
                }
            }
        }
        // Our own proposals still await answers: stay in this stage (T=0),
        // RFC 7143 §6.2.
        // Leaving the security stage needs authentication done (an
        // exchange still in progress answers T=0, RFC 7143 §12).
        let transit = req.transit && !neg.awaiting_answers() && (req.csg != Stage::SECURITY || neg.authenticated());
        let to_ffp = transit && req.nsg == Stage::FULL_FEATURE;
        if to_ffp {
            neg.finish_operational(&mut answer);
        }
        if !transit {
            let resp = self.login_response(ls, req, false, Stage(0));
            self.out.push_back(Out::Login { resp, data: answer });
            return Flow::Continue;
        }
        if !to_ffp {
            ls.stage = req.nsg;
            let resp = self.login_response(ls, req, true, req.nsg);
            self.out.push_back(Out::Login { resp, data: answer });
            return Flow::Continue;
        }
        // Full feature phase: open (or reinstate) the session.
        let Some(neg) = ls.negotiator.as_ref() else { return Flow::Drop };
        let p = neg.params().clone();
        let target = ls.target.and_then(|i| self.targets.targets.get(i));
        let target_name = target.map_or("", |t| t.name.as_str()).to_string();
        let target_limit = target.and_then(|t| t.max_sessions);
        let lease = match self.registry.open(&p.initiator_name, ls.isid, &target_name, target_limit) {
            Ok(l) => l,
            Err(OpenError::TooManySessions) => return self.login_fail(req, LoginStatus::OUT_OF_RESOURCES),
        };
        ls.tsih = lease.tsih;
        if let Some(ip) = peer_ip {
            self.registry.note_auth_success(ip);
        }
        let lim = &self.targets.limits;
        self.op = Op {
            header_digest: p.header_digest,
            data_digest: p.data_digest,
            max_recv_dsl: lim.max_recv_data_segment_len,
            max_xmit_dsl: p.max_recv_data_segment_len_initiator,
            max_burst: p.max_burst_len,
            first_burst: p.first_burst_len,
            initial_r2t: p.initial_r2t,
            immediate_data: p.immediate_data,
            max_outstanding_r2t: p.max_outstanding_r2t,
        };
        let resp = self.login_response(ls, req, true, Stage::FULL_FEATURE);
        self.out.push_back(Out::Login { resp, data: answer });
        self.session = Some(Session {
            lease: Some(lease),
            target: ls.target,
            discovery: p.session_type == SessionType::Discovery,
            initiator_name: p.initiator_name.clone(),
            isid: ls.isid,
            tsih: ls.tsih,
            cid: ls.cid,
        });
        self.state = ConnState::FullFeature;
        self.last_rx_ms = self.now_ms;
        Flow::Continue
    }

    fn login_response(&self, ls: &LoginState, req: &LoginRequest, transit: bool, nsg: Stage) -> LoginResponse {
        LoginResponse {
            transit,
            continue_: false,
            csg: req.csg,
            nsg: if transit { nsg } else { Stage(0) },
            version_max: 0,
            version_active: 0,
            isid: ls.isid,
            tsih: ls.tsih,
            itt: req.itt,
            status: LoginStatus::SUCCESS,
            ..Default::default()
        }
    }
}

/// Map a negotiation failure to a login status (RFC 7143 §11.13.5).
fn negotiation_status(e: &NegotiationError) -> LoginStatus {
    e.login_status()
}
