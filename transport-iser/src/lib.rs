//! shardtgt-transport-iser: the iSER transport (RFC 7145), iSCSI over RDMA.
//!
//! Status: this crate holds the wire format of the iSER header and of the
//! iSER Hello/HelloReply messages, with tests. The RDMA CM and verbs side
//! (behind the `iser` feature, on rdma-sys) is not built yet: this machine
//! has no RDMA device. Login and session logic are never duplicated here;
//! they come from `shardtgt-core` exactly as for TCP.
//!
//! What it never does: interpret iSCSI PDUs beyond handing them to the core.

pub mod header;

pub use header::{IserHeader, IserHello, IserOpcode, ISER_HEADER_LEN};
