//! Authentication during the security negotiation stage (RFC 7143 §12).
//!
//! The negotiator ([`super::negotiate::Negotiator`]) handles the `AuthMethod`
//! key through [`Authenticator::select_method`] and hands every key of the
//! chosen method's exchange (`CHAP_A`, `CHAP_N`, ...) to
//! [`Authenticator::step`]. An authenticator never sees operational keys and
//! never decides login status codes: it says "continue", "done" or "failed",
//! and the caller maps a failure to status 0x0201 (RFC 7143 §11.13.5).
//!
//! Only [`NoAuth`] exists so far; a CHAP authenticator (RFC 7143 §12.1.3)
//! plugs in through the same trait.

use std::fmt;

use super::keys::IRRELEVANT;

/// Key-name prefixes of the authentication exchanges RFC 7143 §12 defines
/// (KRB5 §12.1.1, SRP §12.1.2, CHAP §12.1.3). These keys are only valid in
/// the security negotiation stage.
pub const AUTH_KEY_PREFIXES: &[&str] = &["CHAP_", "SRP_", "KRB_", "TargetAuth"];

/// Whether `key` belongs to an authentication exchange (RFC 7143 §12.1).
pub fn is_auth_key(key: &str) -> bool {
    AUTH_KEY_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// The result of one authentication step (RFC 7143 §12).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum AuthStep {
    /// More exchanges are needed; the initiator must stay in the security stage.
    Continue,
    /// The initiator is authenticated (and, where mutual, so is the target).
    Done,
    /// Authentication failed; the reason is for logs only (RFC 7143 §11.13.5,
    /// status 0x0201, says nothing more on the wire).
    Failed(String),
}

/// One authentication method implementation, target role (RFC 7143 §12).
///
/// Lifecycle:
/// ```text
///  select_method(offered) ──► step(keys)* ──► complete() == true
///          │ None                  │ Failed
///          ▼                       ▼
///   AuthMethod=Reject, 0x0201    0x0201
/// ```
pub trait Authenticator: fmt::Debug + Send {
    /// Choose one of the methods the initiator offered (in its order of
    /// preference, RFC 7143 §6.2.1: the acceptor picks the first it
    /// supports), or `None` if none is acceptable.
    fn select_method(&mut self, offered: &[&str]) -> Option<&'static str>;

    /// Process the authentication keys of one login request (already
    /// checked to be [`is_auth_key`] keys, sent after a method was
    /// selected) and append the answer pairs to `answers`.
    fn step(&mut self, keys: &[(&str, &str)], answers: &mut Vec<(String, String)>) -> AuthStep;

    /// Whether the initiator may leave the security stage (or skip it):
    /// true once authentication succeeded, or when this authenticator
    /// requires no authentication at all.
    fn complete(&self) -> bool;
}

/// No authentication: accepts `AuthMethod=None` only, and lets an initiator
/// that skips the security stage through (RFC 7143 §12: "None").
#[derive(Clone, Copy, Default, Debug)]
pub struct NoAuth;

impl Authenticator for NoAuth {
    fn select_method(&mut self, offered: &[&str]) -> Option<&'static str> {
        offered.contains(&"None").then_some("None")
    }

    /// Keys of another method's exchange, sent alongside an AuthMethod list
    /// that we answered with None, are made irrelevant by that choice
    /// (RFC 7143 §6.2: "Irrelevant").
    fn step(&mut self, keys: &[(&str, &str)], answers: &mut Vec<(String, String)>) -> AuthStep {
        for (k, _) in keys {
            answers.push((k.to_string(), IRRELEVANT.to_string()));
        }
        AuthStep::Done
    }

    fn complete(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_auth_selects_none_only() {
        let mut a = NoAuth;
        assert_eq!(a.select_method(&["CHAP", "None"]), Some("None"));
        assert_eq!(a.select_method(&["None"]), Some("None"));
        assert_eq!(a.select_method(&["CHAP"]), None);
        assert_eq!(a.select_method(&["KRB5", "SRP", "CHAP"]), None);
        assert_eq!(a.select_method(&[]), None);
        assert!(a.complete());
    }

    #[test]
    fn no_auth_answers_stray_keys_irrelevant() {
        let mut a = NoAuth;
        let mut ans = Vec::new();
        assert_eq!(a.step(&[("CHAP_A", "5")], &mut ans), AuthStep::Done);
        assert_eq!(ans, vec![("CHAP_A".to_string(), "Irrelevant".to_string())]);
    }

    #[test]
    fn auth_key_prefixes() {
        assert!(is_auth_key("CHAP_A"));
        assert!(is_auth_key("SRP_U"));
        assert!(is_auth_key("KRB_AP_REQ"));
        assert!(!is_auth_key("AuthMethod"));
        assert!(!is_auth_key("CHAPX"));
    }
}
