//! `shardtgtadm`: the management client.
//!
//! - [`cli`]: its command line → requests.
//! - [`render`]: tree and tables for people (`--json` prints the daemon's JSON).
//! - [`tgtadm`]: the tgtadm-compatible forms and tgt-like output.
//! - [`import_tgt`]: tgt targets.conf → our TOML.
//!
//! It never changes anything itself: every change goes through the daemon.

pub mod cli;
pub mod import_tgt;
pub mod render;
pub mod tgtadm;
