//! Portal addresses: parsing the configured form and formatting the form
//! used in `TargetAddress` (RFC 7143 §13.8: `domainname[:port]`, with IPv6
//! literals in brackets, RFC 3986). Only IP literals: no name resolution.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// The iSCSI well-known port (RFC 7143 §13.8).
pub const ISCSI_PORT: u16 = 3260;

/// Why an address string is not a usable portal.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AddrError(pub String);

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AddrError {}

/// Parse a portal address: `127.0.0.1:3260`, `[::1]:3260`, or an address
/// without port (`127.0.0.1`, `[::1]`) meaning port 3260. IPv6 literals must
/// be in brackets: `::1:3260` would otherwise be ambiguous.
pub fn parse_portal(s: &str) -> Result<SocketAddr, AddrError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(AddrError("empty address".into()));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        if sa.port() == 0 {
            return Err(AddrError(format!("{s}: port 0 is not a listening port")));
        }
        return Ok(sa);
    }
    // Without a port.
    if let Some(ip) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        if let Ok(ip) = ip.parse::<std::net::Ipv6Addr>() {
            return Ok(SocketAddr::new(IpAddr::V6(ip), ISCSI_PORT));
        }
    } else if let Ok(ip) = s.parse::<std::net::Ipv4Addr>() {
        return Ok(SocketAddr::new(IpAddr::V4(ip), ISCSI_PORT));
    }
    if s.matches(':').count() >= 2 && !s.starts_with('[') {
        return Err(AddrError(format!("{s}: an IPv6 address with a port must be in brackets, e.g. \"[::1]:3260\"")));
    }
    Err(AddrError(format!("{s}: not an IP address with optional port (e.g. \"127.0.0.1:3260\" or \"[::1]:3260\")")))
}

/// Format an address for `TargetAddress` and logs: `127.0.0.1:3260`,
/// `[::1]:3260` (an IPv6 scope id is dropped: it means nothing to the peer).
pub fn format_portal(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => format!("{}:{}", v4, a.port()),
            None => format!("[{}]:{}", a.ip(), a.port()),
        },
    }
}

/// `TargetAddress` value for SendTargets (RFC 7143 §13.8): `address,tpgt`.
pub fn target_address(addr: &SocketAddr, tpgt: u16) -> String {
    format!("{},{}", format_portal(addr), tpgt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v4_v6_and_default_port() {
        assert_eq!(parse_portal("127.0.0.1:3260").unwrap(), "127.0.0.1:3260".parse().unwrap());
        assert_eq!(parse_portal("[::1]:3261").unwrap(), "[::1]:3261".parse().unwrap());
        assert_eq!(parse_portal("10.1.2.3").unwrap(), "10.1.2.3:3260".parse().unwrap());
        assert_eq!(parse_portal("[::1]").unwrap(), "[::1]:3260".parse().unwrap());
        assert_eq!(parse_portal("[fe80::1]").unwrap(), "[fe80::1]:3260".parse().unwrap());
        assert_eq!(parse_portal(" 0.0.0.0:3260 ").unwrap(), "0.0.0.0:3260".parse().unwrap());
    }

    #[test]
    fn rejects_garbage_with_reason() {
        assert!(parse_portal("").is_err());
        assert!(parse_portal("localhost:3260").unwrap_err().0.contains("not an IP address"));
        assert!(parse_portal("127.0.0.1:0").unwrap_err().0.contains("port 0"));
        assert!(parse_portal("127.0.0.1:99999").is_err());
        assert!(parse_portal("[::1:3260").is_err());
        assert!(parse_portal("::1:3260").unwrap_err().0.contains("brackets"));
        assert!(parse_portal("::1").unwrap_err().0.contains("brackets"));
        assert!(parse_portal("[127.0.0.1]").is_err());
    }

    #[test]
    fn formats_with_brackets() {
        assert_eq!(format_portal(&"[::1]:3260".parse().unwrap()), "[::1]:3260");
        assert_eq!(format_portal(&"[fe80::1%2]:3260".parse().unwrap()), "[fe80::1]:3260");
        assert_eq!(format_portal(&"[::ffff:10.0.0.1]:3260".parse().unwrap()), "10.0.0.1:3260");
        assert_eq!(format_portal(&"127.0.0.1:3260".parse().unwrap()), "127.0.0.1:3260");
        assert_eq!(target_address(&"[2001:db8::5]:3260".parse().unwrap(), 3), "[2001:db8::5]:3260,3");
    }
}
