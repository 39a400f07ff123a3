//! CHAP authentication, target role (RFC 7143 §12.1.3, RFC 1994), one-way
//! and mutual, with MD5 (CHAP_A=5), SHA-1 (6) and SHA-256 (7).
//!
//! ```text
//!  initiator                         target
//!  AuthMethod=CHAP,None   ──►        AuthMethod=CHAP
//!  CHAP_A=7,6,5           ──►        CHAP_A=7 CHAP_I=<id> CHAP_C=<challenge>
//!  CHAP_N CHAP_R [CHAP_I CHAP_C] ──► [CHAP_N CHAP_R]   (mutual: target proves itself)
//! ```
//!
//! Rules kept here: challenges come from the operating system's CSPRNG and
//! are at least 16 bytes (we use 32); responses are compared in constant
//! time; an initiator challenge equal to ours is refused (reflection
//! attack, RFC 7143 §12.1.3); secrets never appear in `Debug` output or
//! errors. This module never logs: failures carry a reason for the caller.

use std::fmt;

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::auth::{AuthStep, Authenticator};

/// Length of the challenges we send, bytes (RFC 7143 §12.1.3: at least 16).
pub const CHALLENGE_LEN: usize = 32;
/// Shortest secret we accept (RFC 7143 §12.1.3: 12 bytes where IPsec is not used).
pub const SECRET_MIN_LEN: usize = 12;
/// Longest secret we accept.
pub const SECRET_MAX_LEN: usize = 256;

/// A CHAP account: user name and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ChapAccount {
    /// CHAP_N value.
    pub user: String,
    /// Shared secret (never printed).
    pub secret: Vec<u8>,
}

impl fmt::Debug for ChapAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChapAccount {{ user: {:?}, secret: <{} bytes> }}", self.user, self.secret.len())
    }
}

/// The accounts that apply to one login: any of `incoming` may log in;
/// `outgoing`, when set, is how the target proves itself in mutual CHAP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChapAccounts {
    /// Initiator credentials the target accepts.
    pub incoming: Vec<ChapAccount>,
    /// Target credentials for mutual CHAP.
    pub outgoing: Option<ChapAccount>,
}

/// CHAP hash algorithm (CHAP_A values, IANA PPP authentication algorithms).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ChapAlgorithm {
    /// 5: MD5 (RFC 1994).
    Md5,
    /// 6: SHA-1.
    Sha1,
    /// 7: SHA-256.
    Sha256,
}

impl ChapAlgorithm {
    /// From a CHAP_A value.
    pub fn from_code(code: &str) -> Option<Self> {
        match code.trim() {
            "5" => Some(Self::Md5),
            "6" => Some(Self::Sha1),
            "7" => Some(Self::Sha256),
            _ => None,
        }
    }

    /// The CHAP_A value.
    pub fn code(self) -> &'static str {
        match self {
            Self::Md5 => "5",
            Self::Sha1 => "6",
            Self::Sha256 => "7",
        }
    }

    /// Response = H(identifier || secret || challenge) (RFC 1994 §4.1).
    pub fn response(self, id: u8, secret: &[u8], challenge: &[u8]) -> Vec<u8> {
        fn h<D: Digest>(id: u8, secret: &[u8], challenge: &[u8]) -> Vec<u8> {
            let mut d = D::new();
            d.update([id]);
            d.update(secret);
            d.update(challenge);
            d.finalize().to_vec()
        }
        match self {
            Self::Md5 => h::<Md5>(id, secret, challenge),
            Self::Sha1 => h::<Sha1>(id, secret, challenge),
            Self::Sha256 => h::<Sha256>(id, secret, challenge),
        }
    }
}

/// Encode binary as an RFC 7143 §6.1 hex constant (`0x...`).
pub fn encode_hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(2 + b.len() * 2);
    s.push_str("0x");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// Decode an RFC 7143 §6.1 binary value: `0x`/`0X` hex or `0b`/`0B` base64.
pub fn decode_binary(v: &str) -> Option<Vec<u8>> {
    let (prefix, rest) = v.split_at_checked(2)?;
    match prefix {
        "0x" | "0X" => {
            let mut digits = rest.as_bytes();
            // An odd number of digits has an implied leading zero.
            let mut out = Vec::with_capacity(digits.len().div_ceil(2));
            if digits.len() % 2 == 1 {
                let (first, tail) = digits.split_first()?;
                out.push(hex_val(*first)?);
                digits = tail;
            }
            for pair in digits.chunks_exact(2) {
                let [hi, lo] = pair else { return None };
                out.push(hex_val(*hi)? << 4 | hex_val(*lo)?);
            }
            (!out.is_empty()).then_some(out)
        }
        "0b" | "0B" => decode_base64(rest),
        _ => None,
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= val(*c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(bytes.get(1..chunk.len()).unwrap_or_default());
    }
    (!out.is_empty()).then_some(out)
}

/// Compare without an early exit, so timing says nothing about where two
/// responses differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// Where the exchange is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for AuthMethod.
    Start,
    /// CHAP chosen; waiting for CHAP_A.
    WantAlgorithm,
    /// Challenge sent; waiting for CHAP_N/CHAP_R.
    WantResponse { alg: ChapAlgorithm, id: u8, challenge: Vec<u8> },
    /// Authenticated.
    Done,
    /// Failed (terminal).
    Failed,
}

/// The CHAP authenticator for one login.
pub struct Chap {
    accounts: ChapAccounts,
    state: State,
    /// Authenticated user (CHAP_N), once done.
    user: Option<String>,
    /// Source of challenge bytes and identifiers (OS CSPRNG in production).
    random: fn(&mut [u8]) -> bool,
}

impl fmt::Debug for Chap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chap").field("accounts", &self.accounts).field("state", &self.state).finish()
    }
}

fn os_random(buf: &mut [u8]) -> bool {
    getrandom::getrandom(buf).is_ok()
}

impl Chap {
    /// CHAP required with these accounts (at least one incoming).
    pub fn new(accounts: ChapAccounts) -> Self {
        Chap { accounts, state: State::Start, user: None, random: os_random }
    }

    /// Same, with a caller-supplied random source (tests).
    pub fn with_random(accounts: ChapAccounts, random: fn(&mut [u8]) -> bool) -> Self {
        Chap { random, ..Chap::new(accounts) }
    }

    /// The CHAP_N the initiator authenticated as.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    fn fail(&mut self, why: &str) -> AuthStep {
        self.state = State::Failed;
        AuthStep::Failed(why.to_string())
    }
}

impl Authenticator for Chap {
    fn select_method(&mut self, offered: &[&str]) -> Option<&'static str> {
        if offered.contains(&"CHAP") && !self.accounts.incoming.is_empty() {
            self.state = State::WantAlgorithm;
            Some("CHAP")
        } else {
            // CHAP is required: None is not acceptable (RFC 7143 §12: the
            // target decides which methods it accepts).
            None
        }
    }

    fn step(&mut self, keys: &[(&str, &str)], answers: &mut Vec<(String, String)>) -> AuthStep {
        let get = |k: &str| keys.iter().find(|(kk, _)| *kk == k).map(|(_, v)| *v);
        match std::mem::replace(&mut self.state, State::Failed) {
            State::WantAlgorithm => {
                let Some(list) = get("CHAP_A") else {
                    self.state = State::WantAlgorithm;
                    return AuthStep::Continue;
                };
                // The first algorithm of the initiator's list that we support.
                let Some(alg) = list.split(',').find_map(ChapAlgorithm::from_code) else {
                    answers.push(("CHAP_A".into(), "Reject".into()));
                    return self.fail("no common CHAP algorithm");
                };
                let mut rnd = [0u8; CHALLENGE_LEN + 1];
                if !(self.random)(&mut rnd) {
                    return self.fail("no randomness for the challenge");
                }
                let id = rnd[0];
                let challenge = rnd[1..].to_vec();
                answers.push(("CHAP_A".into(), alg.code().into()));
                answers.push(("CHAP_I".into(), id.to_string()));
                answers.push(("CHAP_C".into(), encode_hex(&challenge)));
                self.state = State::WantResponse { alg, id, challenge };
                AuthStep::Continue
            }
            State::WantResponse { alg, id, challenge } => {
                let (Some(name), Some(resp)) = (get("CHAP_N"), get("CHAP_R")) else {
                    return self.fail("CHAP_N and CHAP_R missing");
                };
                let Some(resp) = decode_binary(resp) else {
                    return self.fail("CHAP_R is not a binary value");
                };
                let Some(account) = self.accounts.incoming.iter().find(|a| a.user == name) else {
                    return self.fail("unknown CHAP user");
                };
                let expected = alg.response(id, &account.secret, &challenge);
                if !constant_time_eq(&expected, &resp) {
                    return self.fail("wrong CHAP response");
                }
                self.user = Some(name.to_string());
                // Mutual CHAP: the initiator challenges us.
                match (get("CHAP_I"), get("CHAP_C")) {
                    (None, None) => {}
                    (Some(i), Some(c)) => {
                        let Ok(their_id) = i.trim().parse::<u8>() else {
                            return self.fail("CHAP_I out of range");
                        };
                        let Some(their_c) = decode_binary(c) else {
                            return self.fail("CHAP_C is not a binary value");
                        };
                        if their_c.len() < 16 || their_c == challenge {
                            // Reflection: our own challenge sent back to make
                            // us compute the answer for it (RFC 7143 §12.1.3).
                            return self.fail("initiator challenge too short or reflected");
                        }
                        let Some(out) = self.accounts.outgoing.as_ref() else {
                            return self.fail("mutual CHAP asked but no outgoing account");
                        };
                        if constant_time_eq(&out.secret, &account.secret) {
                            // RFC 7143 §12.1.3: the two directions must use different secrets.
                            return self.fail("outgoing secret equals the incoming one");
                        }
                        answers.push(("CHAP_N".into(), out.user.clone()));
                        answers.push(("CHAP_R".into(), encode_hex(&alg.response(their_id, &out.secret, &their_c))));
                    }
                    _ => return self.fail("CHAP_I and CHAP_C must come together"),
                }
                self.state = State::Done;
                AuthStep::Done
            }
            State::Done => {
                self.state = State::Done;
                // Stray keys after success: nothing to answer.
                AuthStep::Done
            }
            State::Start | State::Failed => self.fail("CHAP keys out of order"),
        }
    }

    fn complete(&self) -> bool {
        self.state == State::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> ChapAccounts {
        ChapAccounts {
            incoming: vec![ChapAccount { user: "alice".into(), secret: b"alice-secret-12".to_vec() }],
            outgoing: Some(ChapAccount { user: "target".into(), secret: b"target-secret-1".to_vec() }),
        }
    }

    fn fixed(buf: &mut [u8]) -> bool {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        true
    }

    fn challenge_of(ans: &[(String, String)]) -> (u8, Vec<u8>) {
        let id = ans.iter().find(|(k, _)| k == "CHAP_I").unwrap().1.parse().unwrap();
        let c = decode_binary(&ans.iter().find(|(k, _)| k == "CHAP_C").unwrap().1).unwrap();
        (id, c)
    }

    #[test]
    fn one_way_chap_md5_succeeds() {
        let mut a = Chap::with_random(accounts(), fixed);
        assert_eq!(a.select_method(&["CHAP", "None"]), Some("CHAP"));
        let mut ans = Vec::new();
        assert_eq!(a.step(&[("CHAP_A", "5")], &mut ans), AuthStep::Continue);
        let (id, c) = challenge_of(&ans);
        assert_eq!(c.len(), CHALLENGE_LEN);
        let r = ChapAlgorithm::Md5.response(id, b"alice-secret-12", &c);
        let r = encode_hex(&r);
        let mut ans = Vec::new();
        assert_eq!(a.step(&[("CHAP_N", "alice"), ("CHAP_R", &r)], &mut ans), AuthStep::Done);
        assert!(a.complete());
        assert_eq!(a.user(), Some("alice"));
        assert!(ans.is_empty());
    }

    #[test]
    fn prefers_the_initiators_first_supported_algorithm() {
        let mut a = Chap::with_random(accounts(), fixed);
        a.select_method(&["CHAP"]);
        let mut ans = Vec::new();
        a.step(&[("CHAP_A", "9,7,6,5")], &mut ans);
        assert_eq!(ans[0], ("CHAP_A".to_string(), "7".to_string()));
    }

    #[test]
    fn mutual_chap_sha256_answers_the_initiator() {
        let mut a = Chap::with_random(accounts(), fixed);
        a.select_method(&["CHAP"]);
        let mut ans = Vec::new();
        a.step(&[("CHAP_A", "7")], &mut ans);
        let (id, c) = challenge_of(&ans);
        let r = encode_hex(&ChapAlgorithm::Sha256.response(id, b"alice-secret-12", &c));
        let their_c = vec![0x55u8; 16];
        let their_c_hex = encode_hex(&their_c);
        let mut ans = Vec::new();
        let st = a.step(&[("CHAP_N", "alice"), ("CHAP_R", &r), ("CHAP_I", "9"), ("CHAP_C", &their_c_hex)], &mut ans);
        assert_eq!(st, AuthStep::Done);
        assert_eq!(ans[0], ("CHAP_N".to_string(), "target".to_string()));
        let want = encode_hex(&ChapAlgorithm::Sha256.response(9, b"target-secret-1", &their_c));
        assert_eq!(ans[1].1, want);
    }

    #[test]
    fn failures() {
        // Wrong secret.
        let mut a = Chap::with_random(accounts(), fixed);
        a.select_method(&["CHAP"]);
        let mut ans = Vec::new();
        a.step(&[("CHAP_A", "5")], &mut ans);
        let (id, c) = challenge_of(&ans);
        let bad = encode_hex(&ChapAlgorithm::Md5.response(id, b"not-the-secret", &c));
        assert!(matches!(a.step(&[("CHAP_N", "alice"), ("CHAP_R", &bad)], &mut Vec::new()), AuthStep::Failed(_)));
        assert!(!a.complete());
        // Unknown user.
        let mut a = Chap::with_random(accounts(), fixed);
        a.select_method(&["CHAP"]);
        let mut ans = Vec::new();
        a.step(&[("CHAP_A", "5")], &mut ans);
        let (id, c) = challenge_of(&ans);
        let r = encode_hex(&ChapAlgorithm::Md5.response(id, b"alice-secret-12", &c));
        assert!(matches!(a.step(&[("CHAP_N", "mallory"), ("CHAP_R", &r)], &mut Vec::new()), AuthStep::Failed(_)));
        // Reflection: our own challenge sent back.
        let mut a = Chap::with_random(accounts(), fixed);
        a.select_method(&["CHAP"]);
        let mut ans = Vec::new();
        a.step(&[("CHAP_A", "5")], &mut ans);
        let (id, c) = challenge_of(&ans);
        let r = encode_hex(&ChapAlgorithm::Md5.response(id, b"alice-secret-12", &c));
        let st = a.step(
            &[("CHAP_N", "alice"), ("CHAP_R", &r), ("CHAP_I", "1"), ("CHAP_C", &encode_hex(&c))],
            &mut Vec::new(),
        );
        assert!(matches!(st, AuthStep::Failed(_)));
        // No common algorithm.
        let mut a = Chap::with_random(accounts(), fixed);
        a.select_method(&["CHAP"]);
        let mut ans = Vec::new();
        assert!(matches!(a.step(&[("CHAP_A", "8,99")], &mut ans), AuthStep::Failed(_)));
        assert_eq!(ans[0].1, "Reject");
        // None only, while CHAP is required.
        let mut a = Chap::new(accounts());
        assert_eq!(a.select_method(&["None"]), None);
    }

    #[test]
    fn binary_values() {
        assert_eq!(decode_binary("0x0a0B"), Some(vec![0x0a, 0x0b]));
        assert_eq!(decode_binary("0xabc"), Some(vec![0x0a, 0xbc]));
        assert_eq!(decode_binary("0bAAEC"), Some(vec![0, 1, 2]));
        assert_eq!(decode_binary("0bAAE="), Some(vec![0, 1]));
        assert_eq!(decode_binary("0x"), None);
        assert_eq!(decode_binary("0xzz"), None);
        assert_eq!(decode_binary("12"), None);
        assert_eq!(decode_binary("0b*"), None);
        assert_eq!(encode_hex(&[1, 0xff]), "0x01ff");
    }

    #[test]
    fn secrets_are_not_printed() {
        let s = format!("{:?}", accounts());
        assert!(!s.contains("alice-secret"));
        assert!(s.contains("15 bytes"));
    }

    #[test]
    fn os_randomness_differs() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        assert!(os_random(&mut a) && os_random(&mut b));
        assert_ne!(a, b);
    }
}
