//! The management API: `shardtgtadm` ↔ `shardtgtd` over a unix socket.
//!
//! - [`protocol`]: the request/response format (documented there).
//! - [`ops`]: configuration changes as pure functions, `show` views, diffs.
//! - [`control`]: the control thread's state and how a change is applied.
//! - [`socket`]: the listening socket (0600, directory 0700) and the
//!   line-based exchange.
//!
//! It never runs on a shard and never speaks iSCSI.

pub mod control;
pub mod ops;
pub mod protocol;
pub mod socket;
