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
//! Whole-PDU framing with digests and padding (used by tests, the scripted
//! initiator and the bench's load generator) is in [`frame`].
//!
//! # Codec rules
//! - Decoding never panics on any 48-byte BHS and any AHS slice.
//! - Every field a header struct holds is written at its RFC 7143 offset;
//!   bytes with no field (reserved) are written as zero and ignored on
//!   receive (RFC 7143 §11.2: senders zero reserved fields, receivers ignore
//!   them). Reserved flag bits set by a peer are ignored, not rejected.
//! - Fields the RFC makes "X or Reserved" depending on a flag in the same
//!   header are written only when that flag is set and decode to zero
//!   otherwise: Data-In Status, StatSN, Residual Count and the O/U bits
//!   (only with S, RFC 7143 §11.7), SCSI Response Residual Count (only with
//!   O or U) and Bidirectional Read Residual Count (only with o or u,
//!   RFC 7143 §11.4), and Login NSG (only with T, RFC 7143 §11.12).
//! - Fixed values are written by the encoder and not checked by the
//!   decoder: the F bit of PDUs that always carry it, the top bit of byte 1
//!   of TMF/Logout/SNACK requests, the I bit of Login Requests, the
//!   0xffffffff Initiator Task Tag of Reject and Asynchronous Message.
//! - Code values (task attributes, stages, reasons, functions, types) are
//!   newtypes and pass through unchanged; whether a value is allowed is the
//!   session layer's decision (RFC 7143 §11.2: reserved code values are a
//!   protocol error, reported by whoever acts on them).
//! - Bit fields narrower than their struct field are masked on encode
//!   (ATTR 3 bits, CSG/NSG 2 bits, SNACK Type 4 bits, TMF function and
//!   Logout reason 7 bits).
//! - AHS (RFC 7143 §11.2.2) is parsed for SCSI Commands only, bounded by
//!   TotalAHSLength: a length that runs past it, an Extended CDB AHS without
//!   its reserved byte or longer than 244 bytes (a 260-byte CDB), or a
//!   bidirectional read length AHS whose AHSLength is not 5 is
//!   [`DecodeError::BadAhs`]; a repeated Extended CDB or bidirectional AHS
//!   is [`DecodeError::InvalidField`]; unknown AHS codes are skipped. Other
//!   PDUs ignore their AHS bytes.

pub mod async_msg;
pub mod bhs;
pub mod data_in;
pub mod data_out;
pub mod frame;
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
pub use task_mgmt::{TmfFunction, TmfRequest, TmfResponse, TmfResponseCode};
pub use text::{TextRequest, TextResponse};

use crate::ids::Itt;
use core::fmt;

/// Why a header could not be decoded (RFC 7143 §11). Each maps to a Reject
/// reason or a connection drop in one place (the connection).
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

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnknownOpcode(op) => write!(f, "unknown opcode {op:#04x}"),
            DecodeError::InvalidField(what) => write!(f, "invalid PDU field: {what}"),
            DecodeError::BadAhs => write!(f, "malformed additional header segment"),
            DecodeError::Truncated => write!(f, "PDU header truncated"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A typed PDU header, both directions (RFC 7143 §11.2.1.2 opcodes).
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

/// Fail unless `bhs` carries `op` (a caller handed a header to the wrong
/// family's decoder; an error rather than a panic, because the bytes came
/// from the network).
pub(crate) fn check_opcode(bhs: &Bhs, op: Opcode) -> Result<(), DecodeError> {
    if bhs.opcode() == op {
        Ok(())
    } else {
        Err(DecodeError::InvalidField("opcode"))
    }
}

/// Evaluates `$body` for whichever variant `$self` is, with the header bound as `$h`.
macro_rules! for_each_pdu {
    ($self:expr, $h:ident => $body:expr) => {
        match $self {
            Pdu::NopOut($h) => $body,
            Pdu::ScsiCommand($h) => $body,
            Pdu::TmfRequest($h) => $body,
            Pdu::LoginRequest($h) => $body,
            Pdu::TextRequest($h) => $body,
            Pdu::DataOut($h) => $body,
            Pdu::LogoutRequest($h) => $body,
            Pdu::Snack($h) => $body,
            Pdu::NopIn($h) => $body,
            Pdu::ScsiResponse($h) => $body,
            Pdu::TmfResponse($h) => $body,
            Pdu::LoginResponse($h) => $body,
            Pdu::TextResponse($h) => $body,
            Pdu::DataIn($h) => $body,
            Pdu::LogoutResponse($h) => $body,
            Pdu::R2t($h) => $body,
            Pdu::AsyncMessage($h) => $body,
            Pdu::Reject($h) => $body,
        }
    };
}

/// Generic opcode of a header type, for [`for_each_pdu!`] bodies.
fn opcode_of<T: Codec>(_: &T) -> Opcode {
    T::OPCODE
}

impl Pdu {
    /// Decode a typed header from its BHS and AHS bytes (RFC 7143 §11).
    ///
    /// `ahs` must hold at least `bhs.total_ahs_len()` bytes (more are
    /// ignored), else [`DecodeError::Truncated`]. Opcodes of both directions
    /// are accepted; whether one is allowed from this peer is the caller's
    /// decision. Unassigned opcodes give [`DecodeError::UnknownOpcode`].
    /// Allocates only for an Extended CDB AHS.
    pub fn decode(bhs: &Bhs, ahs: &[u8]) -> Result<Pdu, DecodeError> {
        let ahs = ahs.get(..bhs.total_ahs_len()).ok_or(DecodeError::Truncated)?;
        Ok(match bhs.opcode() {
            Opcode::NOP_OUT => Pdu::NopOut(NopOut::decode(bhs, ahs)?),
            Opcode::SCSI_COMMAND => Pdu::ScsiCommand(ScsiCommand::decode(bhs, ahs)?),
            Opcode::TMF_REQUEST => Pdu::TmfRequest(TmfRequest::decode(bhs, ahs)?),
            Opcode::LOGIN_REQUEST => Pdu::LoginRequest(LoginRequest::decode(bhs, ahs)?),
            Opcode::TEXT_REQUEST => Pdu::TextRequest(TextRequest::decode(bhs, ahs)?),
            Opcode::DATA_OUT => Pdu::DataOut(DataOut::decode(bhs, ahs)?),
            Opcode::LOGOUT_REQUEST => Pdu::LogoutRequest(LogoutRequest::decode(bhs, ahs)?),
            Opcode::SNACK => Pdu::Snack(Snack::decode(bhs, ahs)?),
            Opcode::NOP_IN => Pdu::NopIn(NopIn::decode(bhs, ahs)?),
            Opcode::SCSI_RESPONSE => Pdu::ScsiResponse(ScsiResponse::decode(bhs, ahs)?),
            Opcode::TMF_RESPONSE => Pdu::TmfResponse(TmfResponse::decode(bhs, ahs)?),
            Opcode::LOGIN_RESPONSE => Pdu::LoginResponse(LoginResponse::decode(bhs, ahs)?),
            Opcode::TEXT_RESPONSE => Pdu::TextResponse(TextResponse::decode(bhs, ahs)?),
            Opcode::DATA_IN => Pdu::DataIn(DataIn::decode(bhs, ahs)?),
            Opcode::LOGOUT_RESPONSE => Pdu::LogoutResponse(LogoutResponse::decode(bhs, ahs)?),
            Opcode::R2T => Pdu::R2t(R2t::decode(bhs, ahs)?),
            Opcode::ASYNC_MESSAGE => Pdu::AsyncMessage(AsyncMessage::decode(bhs, ahs)?),
            Opcode::REJECT => Pdu::Reject(Reject::decode(bhs, ahs)?),
            op => return Err(DecodeError::UnknownOpcode(op.0)),
        })
    }

    /// The opcode of this header (RFC 7143 §11.2.1.2).
    pub fn opcode(&self) -> Opcode {
        for_each_pdu!(self, h => opcode_of(h))
    }

    /// Append the BHS and any AHS, with TotalAHSLength and
    /// DataSegmentLength (`data_len`, without padding) set (RFC 7143 §11.2).
    /// Digests, data and padding are the caller's (see [`frame::encode_pdu`]).
    ///
    /// # Panics
    /// If `data_len` does not fit 24 bits or the AHS exceeds 1020 bytes
    /// (caller bugs).
    pub fn encode_header(&self, data_len: u32, out: &mut Vec<u8>) {
        assert!(data_len <= bhs::DATA_LEN_MAX, "data segment length {data_len}");
        let mut bhs = Bhs::default();
        let start = out.len();
        out.extend_from_slice(&[0u8; BHS_LEN]);
        for_each_pdu!(self, h => {
            h.encode(&mut bhs);
            h.encode_ahs(out);
        });
        bhs.set_total_ahs_len(out.len() - start - BHS_LEN);
        bhs.set_data_len(data_len);
        if let Some(b) = out.get_mut(start..start + BHS_LEN) {
            b.copy_from_slice(&bhs.0);
        }
    }

    /// The Initiator Task Tag. Reject and Asynchronous Message carry the
    /// reserved 0xffffffff (RFC 7143 §11.17, §11.9).
    pub fn itt(&self) -> Itt {
        match self {
            Pdu::NopOut(h) => h.itt,
            Pdu::ScsiCommand(h) => h.itt,
            Pdu::TmfRequest(h) => h.itt,
            Pdu::LoginRequest(h) => h.itt,
            Pdu::TextRequest(h) => h.itt,
            Pdu::DataOut(h) => h.itt,
            Pdu::LogoutRequest(h) => h.itt,
            Pdu::Snack(h) => h.itt,
            Pdu::NopIn(h) => h.itt,
            Pdu::ScsiResponse(h) => h.itt,
            Pdu::TmfResponse(h) => h.itt,
            Pdu::LoginResponse(h) => h.itt,
            Pdu::TextResponse(h) => h.itt,
            Pdu::DataIn(h) => h.itt,
            Pdu::LogoutResponse(h) => h.itt,
            Pdu::R2t(h) => h.itt,
            Pdu::AsyncMessage(_) | Pdu::Reject(_) => Itt::RESERVED,
        }
    }

    /// The I bit as this header encodes it (RFC 7143 §11.2.1.1): set for
    /// immediate requests and always for Login Requests (RFC 7143 §11.12).
    pub fn immediate(&self) -> bool {
        match self {
            Pdu::NopOut(h) => h.immediate,
            Pdu::ScsiCommand(h) => h.immediate,
            Pdu::TmfRequest(h) => h.immediate,
            Pdu::TextRequest(h) => h.immediate,
            Pdu::LogoutRequest(h) => h.immediate,
            Pdu::LoginRequest(_) => true,
            _ => false,
        }
    }
}

/// `impl From<Header> for Pdu` for every header type.
macro_rules! pdu_from {
    ($($variant:ident),* $(,)?) => {
        $(
            impl From<$variant> for Pdu {
                fn from(h: $variant) -> Pdu {
                    Pdu::$variant(h)
                }
            }
        )*
    };
}

pdu_from!(
    NopOut,
    ScsiCommand,
    TmfRequest,
    LoginRequest,
    TextRequest,
    DataOut,
    LogoutRequest,
    Snack,
    NopIn,
    ScsiResponse,
    TmfResponse,
    LoginResponse,
    TextResponse,
    DataIn,
    LogoutResponse,
    R2t,
    AsyncMessage,
    Reject,
);

/// Helpers for the per-family layout tests.
#[cfg(test)]
pub(crate) mod test_util {
    use super::{Bhs, Codec, BHS_LEN};

    /// Bytes from hex digits, ignoring whitespace.
    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
    }

    /// A BHS from 96 hex digits.
    pub(crate) fn bhs(s: &str) -> Bhs {
        let b = hex(s);
        assert_eq!(b.len(), BHS_LEN, "test BHS must be 48 bytes");
        Bhs::from_slice(&b).unwrap()
    }

    /// Encode a header into a zeroed BHS and return its 48 bytes.
    pub(crate) fn encode_bhs<T: Codec>(h: &T) -> Vec<u8> {
        let mut b = Bhs::default();
        h.encode(&mut b);
        b.0.to_vec()
    }

    /// Decode `wire`, compare with `expect`, encode back and compare bytes.
    pub(crate) fn check_layout<T: Codec + PartialEq + core::fmt::Debug>(wire: &str, expect: &T) {
        let b = bhs(wire);
        let got = T::decode(&b, &[]).unwrap();
        assert_eq!(&got, expect);
        assert_eq!(encode_bhs(expect), b.0.to_vec());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Lun, Ttt};
    use crate::serial::{CmdSn, StatSn};

    #[test]
    fn unknown_opcodes_are_rejected() {
        for op in 0u8..64 {
            let mut b = Bhs::default();
            b.set_opcode(Opcode(op));
            let r = Pdu::decode(&b, &[]);
            if Opcode(op).name().is_some() {
                assert_eq!(r.unwrap().opcode(), Opcode(op));
            } else {
                assert_eq!(r, Err(DecodeError::UnknownOpcode(op)));
            }
        }
    }

    #[test]
    fn encode_header_sets_lengths() {
        let pdu = Pdu::from(NopOut {
            immediate: true,
            lun: Lun::from_index(2),
            itt: Itt(9),
            ttt: Ttt::RESERVED,
            cmdsn: CmdSn(1),
            expstatsn: StatSn(2),
        });
        let mut out = vec![0xee];
        pdu.encode_header(0x12_3456, &mut out);
        assert_eq!(out.len(), 1 + BHS_LEN);
        assert_eq!(out[1], 0x40);
        assert_eq!(out[2], 0x80);
        assert_eq!(&out[5..9], &[0, 0x12, 0x34, 0x56]);
        let b = Bhs::from_slice(&out[1..]).unwrap();
        assert_eq!(b.data_len(), 0x12_3456);
        assert_eq!(Pdu::decode(&b, &[]).unwrap(), pdu);
        assert_eq!(pdu.itt(), Itt(9));
        assert!(pdu.immediate());
    }

    #[test]
    fn short_ahs_is_truncated() {
        let mut b = Bhs::default();
        b.set_opcode(Opcode::NOP_IN);
        b.set_total_ahs_len(4);
        assert_eq!(Pdu::decode(&b, &[0; 3]), Err(DecodeError::Truncated));
        assert!(Pdu::decode(&b, &[0; 4]).is_ok());
    }

    #[test]
    fn wrong_family_decoder_is_an_error() {
        let mut b = Bhs::default();
        b.set_opcode(Opcode::NOP_IN);
        assert_eq!(NopOut::decode(&b, &[]), Err(DecodeError::InvalidField("opcode")));
    }

    #[test]
    #[should_panic(expected = "data segment length")]
    fn oversized_data_len_is_a_caller_bug() {
        Pdu::from(NopIn::default()).encode_header(1 << 24, &mut Vec::new());
    }
}
