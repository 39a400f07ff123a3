//! Per-target access control: which initiators may see and log in to a
//! target (by iSCSI name, by address, or by CIDR block). A denied initiator
//! gets login status 0x0202 (authorization failure, RFC 7143 §11.13.5) and
//! does not see the target in SendTargets.
//!
//! An empty rule list admits everyone (tgt's default: `ALL`). With rules, an
//! initiator is admitted when any rule matches. Pure data and matching: no
//! I/O, no clock, no allocation when matching.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One access rule.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum AclRule {
    /// An initiator name (compared ASCII case-insensitively, RFC 7143 §4.2.7.2).
    Name(String),
    /// An address block: `addr/prefix` (a bare address is /32 or /128).
    Net {
        /// Network address.
        addr: IpAddr,
        /// Prefix length in bits.
        prefix: u8,
    },
}

/// Why a rule could not be parsed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AclParseError(pub String);

impl fmt::Display for AclParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AclParseError {}

impl AclRule {
    /// Parse an address or CIDR block: `10.0.0.0/8`, `192.168.1.7`, `::1`,
    /// `fd00::/8`, `[::1]`.
    pub fn parse_address(s: &str) -> Result<AclRule, AclParseError> {
        let s = s.trim();
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let a = a.trim_start_matches('[').trim_end_matches(']');
        let addr = IpAddr::from_str(a).map_err(|_| AclParseError(format!("{s:?}: not an IP address or CIDR block")))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(AclParseError(format!("{s:?}: prefix length must be 0..={max}"))),
            },
        };
        Ok(AclRule::Net { addr, prefix })
    }

    /// Does this rule admit the initiator?
    pub fn matches(&self, initiator: &str, peer: Option<IpAddr>) -> bool {
        match self {
            AclRule::Name(n) => n.eq_ignore_ascii_case(initiator),
            AclRule::Net { addr, prefix } => peer.is_some_and(|p| in_block(canonical(p), *addr, *prefix)),
        }
    }
}

/// An IPv4-mapped IPv6 peer (`::ffff:a.b.c.d`) compares as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn in_block(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The rules of one target.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Acl {
    /// Rules; empty admits everyone.
    pub rules: Vec<AclRule>,
}

impl Acl {
    /// Is this initiator (name, and peer address when known) admitted?
    pub fn admits(&self, initiator: &str, peer: Option<IpAddr>) -> bool {
        self.rules.is_empty() || self.rules.iter().any(|r| r.matches(initiator, peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn empty_admits_everyone() {
        assert!(Acl::default().admits("iqn.x", None));
    }

    #[test]
    fn names_and_blocks() {
        let acl = Acl {
            rules: vec![
                AclRule::Name("iqn.2026-11.test:good".into()),
                AclRule::parse_address("10.1.0.0/16").unwrap(),
                AclRule::parse_address("fd00::/8").unwrap(),
                AclRule::parse_address("[::1]").unwrap(),
            ],
        };
        assert!(acl.admits("IQN.2026-11.TEST:GOOD", None));
        assert!(acl.admits("iqn.other", ip("10.1.200.3")));
        assert!(!acl.admits("iqn.other", ip("10.2.0.1")));
        assert!(acl.admits("iqn.other", ip("fd12::5")));
        assert!(acl.admits("iqn.other", ip("::1")));
        assert!(!acl.admits("iqn.other", ip("fe80::1")));
        // IPv4-mapped IPv6 peers match IPv4 rules.
        assert!(acl.admits("iqn.other", ip("::ffff:10.1.0.9")));
        assert!(!acl.admits("iqn.other", None));
    }

    #[test]
    fn bad_rules() {
        assert!(AclRule::parse_address("10.0.0.0/33").is_err());
        assert!(AclRule::parse_address("::/129").is_err());
        assert!(AclRule::parse_address("host.example").is_err());
        assert!(AclRule::parse_address("0.0.0.0/0").unwrap().matches("x", ip("8.8.8.8")));
    }
}
