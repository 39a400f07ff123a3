//! shardtgt-daemon: the `shardtgtd` and `shardtgtadm` programs around the
//! library crates.
//!
//! - [`config`]: the TOML configuration, validated with located errors.
//! - [`args`]: command line.
//! - [`serve`]: start backends, shards and acceptor; run until SIGTERM or
//!   SIGINT; shut down gracefully.
//! - [`signals`]: SIGTERM/SIGINT/SIGHUP through a signalfd.
//! - [`admin`]: the management socket, its protocol, and how runtime
//!   changes are applied to the shards.
//! - [`persist`]: the configuration written back as TOML, atomically.
//! - [`adm`]: the `shardtgtadm` client (commands, output, tgtadm
//!   compatibility, targets.conf import).
//!
//! It never speaks iSCSI and never touches a connection: that is the core's
//! and the shards' work.

pub mod adm;
pub mod admin;
pub mod args;
pub mod config;
pub mod persist;
pub mod serve;
pub mod signals;

/// Exit code: configuration or usage error (systemd: do not restart).
pub const EXIT_CONFIG: u8 = 2;
/// Exit code: runtime failure (busy port, io_uring unavailable, shard died).
pub const EXIT_RUNTIME: u8 = 1;
