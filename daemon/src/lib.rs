//! shardtgt-daemon: the `shardtgtd` program around the library crates.
//!
//! - [`config`]: the TOML configuration, validated with located errors.
//! - [`args`]: command line.
//! - [`serve`]: start backends, shards and acceptor; run until SIGTERM or
//!   SIGINT; shut down gracefully.
//! - [`signals`]: termination signals through a signalfd.
//!
//! It never speaks iSCSI and never touches a connection: that is the core's
//! and the shards' work.

pub mod args;
pub mod config;
pub mod serve;
pub mod signals;

/// Exit code: configuration or usage error (systemd: do not restart).
pub const EXIT_CONFIG: u8 = 2;
/// Exit code: runtime failure (busy port, io_uring unavailable, shard died).
pub const EXIT_RUNTIME: u8 = 1;
