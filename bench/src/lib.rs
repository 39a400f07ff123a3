//! shardtgt-bench: an iSCSI initiator load generator built on the core's
//! codec (initiator role), side-by-side comparisons with Linux tgt, reports
//! and charts.
//!
//! - [`url`]: `iscsi://host:port/iqn/lun` addresses.
//! - [`workload`]: what to run (pattern, block size, queue depth, sessions).
//! - [`session`]: blocking login and setup commands (TEST UNIT READY, READ
//!   CAPACITY) over one TCP connection.
//! - [`engine`]: the load loop: a few sessions per thread on a `mio` poll,
//!   pipelined commands, R2T / Data-Out, Data-In, NOP-In answers, logout.
//! - [`verify`]: stamped 512-byte blocks for integrity runs.
//! - [`run`]: one benchmark run (threads, progress line, report).
//! - [`stats`]: percentiles, min/median/max, ratios; the report types.
//! - [`cpu`]: CPU time of a process from `/proc`.
//! - [`compare`]: tgt versus shardtgt on the same machine, pinned apart.
//! - [`chart`]: the SVG chart of a comparison (plotters).
//! - [`tcpstream`]: the raw loopback TCP ceiling.
//! - [`machine`]: a description of the machine for reports.
//!
//! It never runs a target itself except as a child process in [`compare`].

pub mod args;
pub mod chart;
pub mod compare;
pub mod cpu;
pub mod engine;
pub mod machine;
pub mod run;
pub mod session;
pub mod stats;
pub mod tcpstream;
pub mod url;
pub mod verify;
pub mod workload;

/// An error with a message for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchError(pub String);

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BenchError {}

impl From<std::io::Error> for BenchError {
    fn from(e: std::io::Error) -> Self {
        BenchError(e.to_string())
    }
}

/// Shorthand for results with a [`BenchError`].
pub type Result<T> = std::result::Result<T, BenchError>;

/// Build a [`BenchError`] from a format string.
#[macro_export]
macro_rules! berr {
    ($($t:tt)*) => { $crate::BenchError(format!($($t)*)) };
}
