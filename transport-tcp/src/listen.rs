//! Binding portals. A failure names the address and says what is wrong in
//! words (`127.0.0.1:3260: address already in use`), because the daemon
//! prints it as its last word. It never accepts connections itself.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};

use crate::addr::format_portal;

/// A portal could not be bound.
#[derive(Debug)]
pub struct ListenError {
    /// The address we tried.
    pub addr: SocketAddr,
    /// The OS error.
    pub source: io::Error,
}

impl ListenError {
    /// The reason in words, without the address.
    pub fn reason(&self) -> String {
        match self.source.kind() {
            io::ErrorKind::AddrInUse => "address already in use".into(),
            io::ErrorKind::AddrNotAvailable => "address not available on this host".into(),
            io::ErrorKind::PermissionDenied => "permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)".into(),
            _ => self.source.to_string(),
        }
    }
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", format_portal(&self.addr), self.reason())
    }
}

impl std::error::Error for ListenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Bind and listen on `addr` (`SO_REUSEADDR` as std sets it on Unix, so a
/// restart does not wait for TIME_WAIT). The listener is non-blocking.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, ListenError> {
    let l = TcpListener::bind(addr).map_err(|source| ListenError { addr, source })?;
    l.set_nonblocking(true).map_err(|source| ListenError { addr, source })?;
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_port_says_so() {
        let first = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        let err = bind(addr).unwrap_err();
        assert_eq!(err.to_string(), format!("127.0.0.1:{}: address already in use", addr.port()));
    }

    #[test]
    fn foreign_address_says_so() {
        // TEST-NET-1 is never configured on this host.
        let err = bind("192.0.2.1:3260".parse().unwrap()).unwrap_err();
        assert!(err.to_string().starts_with("192.0.2.1:3260: "), "{err}");
    }
}
