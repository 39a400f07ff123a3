//! shardtgt-core: the sans-IO heart of the target.
//!
//! It decodes and encodes iSCSI PDUs (RFC 7143 §11), runs login and
//! negotiation (RFC 7143 §6, §13), the session and connection state machines,
//! and emulates SCSI block devices (SPC-4, SBC-4). It never performs I/O,
//! never spawns threads and never reads a clock: bytes, backend completions
//! and the current time (milliseconds, from the caller) come in through
//! `handle_*` methods, and bytes to send, backend requests and deadlines come
//! out through `poll_*` methods.
//!
//! Nothing the network sends may panic it: outside tests the crate denies
//! `unwrap`, `expect`, `panic!`, `unreachable!` and unchecked indexing or
//! slicing (clippy, enforced by `scripts/test.sh`); input that does not fit
//! gets a precise protocol or SCSI error instead.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

pub mod acl;
pub mod buf;
mod bytes;
pub mod conn;
pub mod digest;
pub mod ids;
pub mod login;
pub mod pdu;
pub mod scsi;
pub mod serial;
pub mod session;
pub mod target;
