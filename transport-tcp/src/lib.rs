//! shardtgt-transport-tcp: what is specific to TCP between a socket and the
//! sans-IO core.
//!
//! - [`addr`]: portal addresses as configured and as they appear in
//!   `TargetAddress` (IPv6 in brackets).
//! - [`listen`]: binding portals, with errors a person can act on
//!   (`127.0.0.1:3260: address already in use`).
//! - [`sockopt`]: options for accepted sockets (`TCP_NODELAY`, keepalive).
//! - [`ops`]: the io_uring entries a shard uses on a connected socket
//!   (receive into the core's buffer, send from the core's transmit bytes)
//!   and what their results mean (data, end of stream, retry, failure).
//!
//! It never runs a loop or a thread, never owns a ring and never looks into
//! iSCSI bytes: the shard reactor drives it, the core decides where received
//! bytes go.

pub mod addr;
pub mod listen;
pub mod ops;
pub mod sockopt;
