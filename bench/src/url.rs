//! `iscsi://host[:port]/target-iqn/lun` addresses (the libiscsi URL form,
//! without CHAP credentials).

use crate::{berr, Result};

/// A parsed iSCSI URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IscsiUrl {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// TCP port (default 3260).
    pub port: u16,
    /// Target IQN.
    pub target: String,
    /// LUN index.
    pub lun: u16,
}

impl IscsiUrl {
    /// Parse `iscsi://host[:port]/target/lun`. IPv6 hosts go in brackets.
    pub fn parse(s: &str) -> Result<IscsiUrl> {
        let rest = s.strip_prefix("iscsi://").ok_or_else(|| berr!("{s}: URL must start with iscsi://"))?;
        let (hostport, path) = rest.split_once('/').ok_or_else(|| berr!("{s}: missing /target/lun"))?;
        if hostport.contains('@') {
            return Err(berr!("{s}: CHAP credentials in the URL are not supported yet"));
        }
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let (h, p) = h.split_once(']').ok_or_else(|| berr!("{s}: unclosed ["))?;
            (h.to_string(), p.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(berr!("{s}: empty host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| berr!("{s}: bad port {p:?}"))?,
            None => 3260,
        };
        let (target, lun) = path.rsplit_once('/').ok_or_else(|| berr!("{s}: missing /lun after the target"))?;
        if target.is_empty() {
            return Err(berr!("{s}: empty target name"));
        }
        let lun = lun.parse().ok().filter(|l| *l < 16384).ok_or_else(|| berr!("{s}: bad LUN {lun:?}"))?;
        Ok(IscsiUrl { host, port, target: target.to_string(), lun })
    }

    /// `host:port` for connecting (IPv6 in brackets).
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for IscsiUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "iscsi://{}/{}/{}", self.addr(), self.target, self.lun)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        let u = IscsiUrl::parse("iscsi://127.0.0.1:3262/iqn.2026-11.io.x:t/1").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.target.as_str(), u.lun), ("127.0.0.1", 3262, "iqn.2026-11.io.x:t", 1));
        assert_eq!(u.to_string(), "iscsi://127.0.0.1:3262/iqn.2026-11.io.x:t/1");
        let u = IscsiUrl::parse("iscsi://[::1]/iqn.a:b/0").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 3260));
        assert_eq!(u.addr(), "[::1]:3260");
        assert!(IscsiUrl::parse("http://x/y/0").is_err());
        assert!(IscsiUrl::parse("iscsi://x/y").is_err());
        assert!(IscsiUrl::parse("iscsi://x/y/99999").is_err());
        assert!(IscsiUrl::parse("iscsi://u%p@x/y/0").is_err());
    }
}
