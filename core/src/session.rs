//! Sessions known to the whole target: TSIH allocation and session
//! reinstatement (RFC 7143 §6.3.5). Touched only at login and logout,
//! never per I/O, so one mutex is enough here.
//!
//! A session is keyed by (InitiatorName, ISID, TargetName). A leading login
//! with TSIH 0 for a key that already has a session reinstates it: the old
//! session is marked killed, its connection ends its tasks and closes at its
//! next tick, and the new session gets a fresh TSIH.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::ids::{Isid, Tsih};

/// One open session, as the connection that owns it holds it.
#[derive(Debug)]
pub struct SessionLease {
    /// The TSIH given to the session.
    pub tsih: Tsih,
    /// Set when another login reinstated this session (or an admin forced a logout).
    pub killed: Arc<AtomicBool>,
}

impl SessionLease {
    /// Has this session been reinstated or killed?
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }
}

#[derive(Debug)]
struct Entry {
    key: (String, Isid, String),
    killed: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
struct Inner {
    next_tsih: u16,
    by_tsih: HashMap<u16, Entry>,
    /// Failed logins per initiator address: (count, start of window, ms).
    auth_failures: HashMap<IpAddr, (u32, u64)>,
}

/// Failed authentications from one address within [`AUTH_WINDOW_MS`]
/// after which its logins are refused until the window ends.
pub const AUTH_FAILURES_MAX: u32 = 5;
/// The back-off window, ms.
pub const AUTH_WINDOW_MS: u64 = 60_000;
/// Addresses tracked at most (the table is bounded; stale entries go first).
const AUTH_TRACKED_MAX: usize = 4096;

/// The target-wide session table.
#[derive(Debug, Default)]
pub struct Registry {
    inner: Mutex<Inner>,
    max_sessions: usize,
}

/// A session as listed by [`Registry::list`]. Names are as registered
/// (lower-cased for matching).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SessionInfo {
    /// TSIH.
    pub tsih: Tsih,
    /// Initiator name.
    pub initiator: String,
    /// ISID.
    pub isid: Isid,
    /// Target name (empty for discovery sessions).
    pub target: String,
}

/// Why a session could not be opened.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OpenError {
    /// The session limit is reached (login status 0x0302 out of resources).
    TooManySessions,
}

impl Registry {
    /// A registry allowing at most `max_sessions` sessions (0 = 65535).
    pub fn new(max_sessions: usize) -> Self {
        Registry {
            inner: Mutex::new(Inner::default()),
            max_sessions: if max_sessions == 0 { 65_535 } else { max_sessions.min(65_535) },
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock means a panic elsewhere while holding it: the table
        // itself is always left consistent (single inserts/removes), so go on.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Open a new session for a leading login (TSIH 0). Any existing session
    /// with the same (initiator, ISID, target) is marked killed: that is
    /// session reinstatement (RFC 7143 §6.3.5). `target_limit`: sessions the
    /// target accepts at once (`None`: only the registry-wide limit).
    pub fn open(
        &self,
        initiator: &str,
        isid: Isid,
        target: &str,
        target_limit: Option<usize>,
    ) -> Result<SessionLease, OpenError> {
        let key = (initiator.to_ascii_lowercase(), isid, target.to_ascii_lowercase());
        let mut inner = self.lock();
        let old: Vec<u16> = inner.by_tsih.iter().filter(|(_, e)| e.key == key).map(|(t, _)| *t).collect();
        for t in old {
            if let Some(e) = inner.by_tsih.remove(&t) {
                e.killed.store(true, Ordering::Release);
            }
        }
        if inner.by_tsih.len() >= self.max_sessions {
            return Err(OpenError::TooManySessions);
        }
        if let Some(limit) = target_limit {
            // Only at login, under the registry lock: a scan is fine.
            if inner.by_tsih.values().filter(|e| e.key.2 == key.2).count() >= limit {
                return Err(OpenError::TooManySessions);
            }
        }
        // TSIH 0 is reserved; skip values in use.
        let mut tsih = inner.next_tsih;
        loop {
            tsih = tsih.wrapping_add(1);
            if tsih != 0 && !inner.by_tsih.contains_key(&tsih) {
                break;
            }
        }
        inner.next_tsih = tsih;
        let killed = Arc::new(AtomicBool::new(false));
        inner.by_tsih.insert(tsih, Entry { key, killed: killed.clone() });
        Ok(SessionLease { tsih: Tsih(tsih), killed })
    }

    /// Forget a session (its last connection closed). A lease that was
    /// already reinstated is not in the table any more; that is fine.
    pub fn close(&self, lease: &SessionLease) {
        let mut inner = self.lock();
        if let Some(e) = inner.by_tsih.get(&lease.tsih.0) {
            if Arc::ptr_eq(&e.killed, &lease.killed) {
                inner.by_tsih.remove(&lease.tsih.0);
            }
        }
    }

    /// Does a session with this TSIH exist?
    pub fn exists(&self, tsih: Tsih) -> bool {
        self.lock().by_tsih.contains_key(&tsih.0)
    }

    /// Number of open sessions.
    pub fn len(&self) -> usize {
        self.lock().by_tsih.len()
    }

    /// No sessions open?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every open session, for listings (TSIH order).
    pub fn list(&self) -> Vec<SessionInfo> {
        let inner = self.lock();
        let mut v: Vec<SessionInfo> = inner
            .by_tsih
            .iter()
            .map(|(t, e)| SessionInfo {
                tsih: Tsih(*t),
                initiator: e.key.0.clone(),
                isid: e.key.1,
                target: e.key.2.clone(),
            })
            .collect();
        v.sort_by_key(|s| s.tsih.0);
        v
    }

    /// Force one session out (admin "force logout"): its connection ends
    /// its tasks and closes at its next tick. False if no such session.
    pub fn kill(&self, tsih: Tsih) -> bool {
        let mut inner = self.lock();
        match inner.by_tsih.remove(&tsih.0) {
            Some(e) => {
                e.killed.store(true, Ordering::Release);
                true
            }
            None => false,
        }
    }

    /// Is this address in its back-off period after too many failed
    /// logins (RFC 7143 §12: limit guessing of CHAP secrets)?
    pub fn auth_backoff(&self, ip: IpAddr, now_ms: u64) -> bool {
        let inner = self.lock();
        inner
            .auth_failures
            .get(&ip)
            .is_some_and(|(n, start)| *n >= AUTH_FAILURES_MAX && now_ms < start + AUTH_WINDOW_MS)
    }

    /// Count a failed authentication from `ip`.
    pub fn note_auth_failure(&self, ip: IpAddr, now_ms: u64) {
        let mut inner = self.lock();
        if !inner.auth_failures.contains_key(&ip) && inner.auth_failures.len() >= AUTH_TRACKED_MAX {
            inner.auth_failures.retain(|_, (_, start)| now_ms < *start + AUTH_WINDOW_MS);
            if inner.auth_failures.len() >= AUTH_TRACKED_MAX {
                return;
            }
        }
        let e = inner.auth_failures.entry(ip).or_insert((0, now_ms));
        if now_ms >= e.1 + AUTH_WINDOW_MS {
            *e = (0, now_ms);
        }
        e.0 += 1;
    }

    /// A successful login from `ip` clears its failure count.
    pub fn note_auth_success(&self, ip: IpAddr) {
        self.lock().auth_failures.remove(&ip);
    }

    /// Mark every session killed (admin or shutdown).
    pub fn kill_all(&self) {
        for e in self.lock().by_tsih.values() {
            e.killed.store(true, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reinstatement_kills_old_session() {
        let r = Registry::new(0);
        let a = r.open("iqn.a", Isid(1), "iqn.t", None).unwrap();
        let b = r.open("iqn.a", Isid(2), "iqn.t", None).unwrap();
        assert_ne!(a.tsih, b.tsih);
        let a2 = r.open("IQN.A", Isid(1), "iqn.t", None).unwrap();
        assert!(a.is_killed());
        assert!(!b.is_killed());
        assert!(!a2.is_killed());
        assert_ne!(a2.tsih, a.tsih);
        // Closing the reinstated lease does not remove the new one.
        r.close(&a);
        assert!(r.exists(a2.tsih));
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn list_and_kill() {
        let r = Registry::new(0);
        let a = r.open("iqn.a", Isid(1), "iqn.t", None).unwrap();
        let b = r.open("iqn.b", Isid(2), "", None).unwrap();
        let l = r.list();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].tsih, a.tsih);
        assert_eq!(l[1].target, "");
        assert!(r.kill(b.tsih));
        assert!(b.is_killed() && !a.is_killed());
        assert!(!r.kill(b.tsih));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn auth_failures_back_off_then_expire() {
        let r = Registry::new(0);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for i in 0..AUTH_FAILURES_MAX {
            assert!(!r.auth_backoff(ip, 1000 + u64::from(i)));
            r.note_auth_failure(ip, 1000 + u64::from(i));
        }
        assert!(r.auth_backoff(ip, 2000));
        assert!(!r.auth_backoff("192.0.2.8".parse().unwrap(), 2000));
        assert!(!r.auth_backoff(ip, 1000 + AUTH_WINDOW_MS));
        r.note_auth_success(ip);
        assert!(!r.auth_backoff(ip, 2000));
    }

    #[test]
    fn limit_is_enforced() {
        let r = Registry::new(1);
        let _a = r.open("iqn.a", Isid(1), "t", None).unwrap();
        assert_eq!(r.open("iqn.b", Isid(1), "t", None).unwrap_err(), OpenError::TooManySessions);
    }

    #[test]
    fn per_target_limit() {
        let r = Registry::new(100);
        let _a = r.open("iqn.a", Isid(1), "iqn.t1", Some(2)).unwrap();
        let b = r.open("iqn.b", Isid(1), "IQN.T1", Some(2)).unwrap();
        assert_eq!(r.open("iqn.c", Isid(1), "iqn.t1", Some(2)).unwrap_err(), OpenError::TooManySessions);
        // Other targets and discovery are not counted against it.
        let _d = r.open("iqn.c", Isid(1), "iqn.t2", Some(1)).unwrap();
        let _e = r.open("iqn.c", Isid(2), "", None).unwrap();
        // Reinstating a session of the target replaces it: not one more.
        let _b2 = r.open("iqn.b", Isid(1), "iqn.t1", Some(2)).unwrap();
        r.close(&b);
        assert_eq!(r.open("iqn.c", Isid(1), "iqn.t1", Some(2)).unwrap_err(), OpenError::TooManySessions);
    }
}
