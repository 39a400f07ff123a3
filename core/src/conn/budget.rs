//! The write-buffer budget: bytes of task buffer held for Data-Out
//! (immediate, unsolicited and solicited write data), shared by the
//! connections of one shard.
//!
//! A write command's buffer is charged in two parts:
//! - what the initiator may send unasked (immediate data and the
//!   unsolicited burst, at most FirstBurstLength per command, RFC 7143
//!   §13.14) is charged when the command arrives: it is on its way and must
//!   be stored;
//! - the rest is granted all at once, before the first R2T (RFC 7143
//!   §11.8). When the budget cannot cover it the command waits with no R2T
//!   sent (backpressure: the initiator simply gets its R2T later), and it
//!   is retried as other commands release their buffers.
//!
//! Granting a command's whole remainder at once means a granted command
//! never waits for more, so commands cannot deadlock holding partial
//! grants. A command larger than the whole budget is granted when no other
//! command holds a grant, so it makes progress alone.
//!
//! Two rules keep one initiator from holding the budget against the others
//! (the connection side lives in `TaskTable::try_grant` and
//! `Connection::handle_timeout`):
//! - a connection holds at most a share of the budget (half of it, or one
//!   MaxBurstLength if that is more), except that a connection with no grant
//!   may always ask for one, so a single large write still runs;
//! - a connection that owes Data-Out (open R2Ts, unsolicited bursts) and
//!   sends none for `r2t_timeout_ms` is dropped, which gives back all it
//!   held. RFC 7143 §7.1.4.1 (b): a sequence reception timeout is an
//!   implicit sequence error (§7.9); at ErrorRecoveryLevel 0 there is no
//!   recovery R2T, so the connection (and with it the session, §7.1.5) ends.
//!
//! The counters are atomics so that one budget can be shared by the
//! connections of a shard (uncontended: a shard is one thread) without a
//! lock; the limit itself is read from the configuration snapshot
//! ([`crate::target::Limits::write_buffer_budget`]). It never allocates.

use std::sync::atomic::{AtomicU64, Ordering};

/// See the module documentation.
#[derive(Debug, Default)]
pub struct WriteBudget {
    /// Bytes charged (unsolicited + granted).
    held: AtomicU64,
    /// Commands holding an R2T grant.
    grants: AtomicU64,
    /// Most bytes ever held at once.
    peak: AtomicU64,
    /// Grants refused for lack of budget or share (a command had to wait).
    waits: AtomicU64,
    /// Connections dropped because Data-Out they owed did not come in time.
    data_timeouts: AtomicU64,
}

impl WriteBudget {
    /// A budget with nothing held.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held now.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// The most bytes held at any one time.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Commands holding a grant now.
    pub fn grants(&self) -> u64 {
        self.grants.load(Ordering::Relaxed)
    }

    /// How often a command had to wait for budget.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    /// How many connections were dropped because Data-Out they owed
    /// (open R2Ts, announced unsolicited data) did not come within
    /// [`crate::target::Limits::r2t_timeout_ms`].
    pub fn data_timeouts(&self) -> u64 {
        self.data_timeouts.load(Ordering::Relaxed)
    }

    /// A command has to wait although the budget has room (its connection
    /// holds its share).
    pub(crate) fn note_wait(&self) {
        self.waits.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection owing Data-Out timed out and is being dropped.
    pub(crate) fn note_data_timeout(&self) {
        self.data_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Charge bytes that are arriving regardless (immediate / unsolicited data).
    pub(crate) fn charge_unsolicited(&self, bytes: u64) {
        if bytes > 0 {
            let now = self.held.fetch_add(bytes, Ordering::Relaxed) + bytes;
            self.peak.fetch_max(now, Ordering::Relaxed);
        }
    }

    /// Grant `bytes` more to one command if they fit under `limit`, or if no
    /// other command holds a grant (a command larger than the budget runs
    /// alone). `false`: the command must wait.
    pub(crate) fn try_grant(&self, bytes: u64, limit: u64) -> bool {
        let held = self.held.load(Ordering::Relaxed);
        if self.grants.load(Ordering::Relaxed) > 0 && held.saturating_add(bytes) > limit {
            self.waits.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.grants.fetch_add(1, Ordering::Relaxed);
        let now = self.held.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
        true
    }

    /// Take over a command's charge from another budget (see
    /// `TaskTable::set_budget`).
    pub(crate) fn adopt(&self, bytes: u64, granted: bool) {
        if granted {
            self.grants.fetch_add(1, Ordering::Relaxed);
        }
        self.charge_unsolicited(bytes);
    }

    /// A command ended: give back its `bytes` (and its grant, if it had one).
    pub(crate) fn release(&self, bytes: u64, granted: bool) {
        if bytes > 0 {
            let _ = self.held.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| Some(h.saturating_sub(bytes)));
        }
        if granted {
            let _ = self.grants.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |g| Some(g.saturating_sub(1)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_fit_or_wait_and_oversize_runs_alone() {
        let b = WriteBudget::new();
        assert!(b.try_grant(600, 1000));
        assert!(!b.try_grant(600, 1000), "would exceed the limit while another grant is held");
        assert_eq!(b.waits(), 1);
        assert!(b.try_grant(400, 1000));
        assert_eq!((b.held(), b.grants()), (1000, 2));
        b.release(600, true);
        b.release(400, true);
        assert_eq!((b.held(), b.grants()), (0, 0));
        // Larger than the whole budget: granted only when alone.
        assert!(b.try_grant(5000, 1000));
        assert!(!b.try_grant(1, 1000));
        b.release(5000, true);
        assert!(b.try_grant(1, 1000));
        assert_eq!(b.peak(), 5000);
    }

    #[test]
    fn unsolicited_counts_against_grants() {
        let b = WriteBudget::new();
        b.charge_unsolicited(900);
        // No grant held: the first grant goes through (progress) ...
        assert!(b.try_grant(200, 1000));
        // ... but a second one must wait while over the limit.
        assert!(!b.try_grant(1, 1000));
        b.release(900, false);
        assert!(b.try_grant(1, 1000));
    }
}
