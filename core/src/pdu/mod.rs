//! iSCSI PDU codec (RFC 7143 §11), both roles.
//!
//! Every PDU is 48 bytes of Basic Header Segment ([`bhs::Bhs`]), optional
//! Additional Header Segments, an optional header digest, a data segment
//! padded to 4 bytes, and an optional data digest. Decoding is two-phase:
//! [`bhs::Bhs`] first (so the caller learns `TotalAHSLength` and
//! `DataSegmentLength` and can decide where the data goes), then
//! [`Pdu::decode`] for the typed header. The data segment is never owned by
//! the typed header: the caller places it.
//!
//! One file per PDU family; offsets and constants live in [`bhs`].
//! This module never allocates for a PDU except for an extended CDB AHS.

pub mod async_msg;
pub mod bhs;
pub mod data_in;
pub mod data_out;
pub mod login;
pub mod logout;
pub mod nop;
pub mod r2t;
pub mod reject;
pub mod scsi_cmd;
pub mod scsi_resp;
pub mod snack;
pub mod task_mgmt;
pub mod text;

pub use async_msg::AsyncMessage;
pub use bhs::{Bhs, Opcode, BHS_LEN};
pub use data_in::DataIn;
pub use data_out::DataOut;
pub use login::{LoginRequest, LoginResponse, LoginStatus, Stage};
pub use logout::{LogoutReason, LogoutRequest, LogoutResponse};
pub use nop::{NopIn, NopOut};
pub use r2t::R2t;
pub use reject::{Reject, RejectReason};
pub use scsi_cmd::{ScsiCommand, TaskAttr};
pub use scsi_resp::ScsiResponse;
pub use snack::Snack;
pub use task_mgmt::{TmfFunction, TmfResponse, TmfResponseCode, TmfRequest};
pub use text::{TextRequest, TextResponse};

/// Why a header could not be decoded. Each maps to a Reject reason or a
/// connection drop in one place (the connection).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DecodeError {
    /// Opcode not defined for the direction being decoded (RFC 7143 §11.17.1: Reject, reason 0x04 or 0x05).
    UnknownOpcode(u8),
    /// A field holds a value the standard forbids (Reject 0x09 "invalid PDU field").
    InvalidField(&'static str),
    /// The AHS bytes are malformed (lengths lie or run past TotalAHSLength).
    BadAhs,
    /// Fewer bytes than the structure needs.
    Truncated,
}

/// A typed PDU header, both directions.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Pdu {
    /// 0x00
    NopOut(NopOut),
    /// 0x01
    ScsiCommand(ScsiCommand),
    /// 0x02
    TmfRequest(TmfRequest),
    /// 0x03
    LoginRequest(LoginRequest),
    /// 0x04
    TextRequest(TextRequest),
    /// 0x05
    DataOut(DataOut),
    /// 0x06
    LogoutRequest(LogoutRequest),
    /// 0x10
    Snack(Snack),
    /// 0x20
    NopIn(NopIn),
    /// 0x21
    ScsiResponse(ScsiResponse),
    /// 0x22
    TmfResponse(TmfResponse),
    /// 0x23
    LoginResponse(LoginResponse),
    /// 0x24
    TextResponse(TextResponse),
    /// 0x25
    DataIn(DataIn),
    /// 0x26
    LogoutResponse(LogoutResponse),
    /// 0x31
    R2t(R2t),
    /// 0x32
    AsyncMessage(AsyncMessage),
    /// 0x3f
    Reject(Reject),
}

/// Encode/decode of one PDU family's header.
pub trait Codec: Sized {
    /// The opcode this header carries.
    const OPCODE: Opcode;
    /// Decode from a BHS whose opcode is `Self::OPCODE` and its AHS bytes
    /// (`TotalAHSLength * 4` bytes, possibly empty).
    fn decode(bhs: &Bhs, ahs: &[u8]) -> Result<Self, DecodeError>;
    /// Write every field into `bhs` (which the caller zeroed), including the
    /// opcode and, for the immediate bit, `I`. The caller sets
    /// `DataSegmentLength` with [`Bhs::set_data_len`] and, when
    /// [`Codec::encode_ahs`] wrote bytes, `TotalAHSLength`.
    fn encode(&self, bhs: &mut Bhs);
    /// Append this header's AHS (already padded to 4 bytes). Most PDUs have none.
    fn encode_ahs(&self, _out: &mut Vec<u8>) {}
}
