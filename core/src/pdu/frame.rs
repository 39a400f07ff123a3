//! Whole-PDU framing (RFC 7143 §11.1, §11.2): BHS, AHS, optional header
//! digest, data segment, zero padding to 4 bytes, optional data digest.
//!
//! These helpers work on one contiguous buffer. They serve tests, the
//! scripted initiator and the bench's load generator; the target's
//! transports use the two-phase path ([`Bhs`] then [`Pdu::decode`]) so that
//! the core can place the data segment itself. They never perform I/O.
//!
//! # Digest byte order
//! HeaderDigest and DataDigest are CRC32C (RFC 7143 §13.1), sent least
//! significant byte first, i.e. the `u32` from [`crc32c`] in little-endian
//! order. This is not network order; the evidence:
//! - the CRC examples of RFC 3720 Appendix B.4 (the same CRC32C) list
//!   the digest of 32 zero bytes as the byte sequence `aa 36 91 8a`, and of
//!   its "iSCSI - Read (10) Command PDU" as `56 3a 96 d9`; `crc32c` of those
//!   inputs is 0x8a9136aa and 0xd9963a56 (tested in `digest.rs` and
//!   `scsi_cmd.rs`);
//! - the IPS working-group thread that fixed those examples
//!   (<https://pdl.cmu.edu/mailinglists/ips/mail/msg05898.html>) agrees that
//!   `aa` goes out first;
//! - libiscsi (`sahlberg/libiscsi`, `lib/socket.c`,
//!   `iscsi_pdu_update_headerdigest`) stores the header digest as
//!   `data[48] = crc`, `data[49] = crc >> 8`, … and checks received digests
//!   the same way; the Linux initiator digests through the kernel's "crc32c"
//!   shash, whose `chksum_final` (`crypto/crc32c_generic.c`) emits
//!   `put_unaligned_le32(~crc)`, and sends those bytes as they are.
//!
//! A data digest is present only when the data segment is, i.e. when
//! DataSegmentLength is not zero: it covers the data segment and its padding
//! (RFC 7143 §11.2.3, §13.1), and there is nothing to cover otherwise (Linux
//! and libiscsi agree).

use super::bhs::{pad_len, Bhs, BHS_LEN, DATA_LEN_MAX, DIGEST_LEN};
use super::{DecodeError, Pdu};
use crate::digest::{crc32c, crc32c_parts};
use core::fmt;
use core::ops::Range;

/// Zero bytes used as data-segment padding (at most 3 are needed).
const ZERO_PAD: [u8; 3] = [0; 3];

/// Which digests the connection negotiated (HeaderDigest / DataDigest
/// = CRC32C, RFC 7143 §13.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct DigestMode {
    /// A CRC32C header digest follows the BHS and AHS.
    pub header: bool,
    /// A CRC32C data digest follows a non-empty, padded data segment.
    pub data: bool,
}

impl DigestMode {
    /// No digests (the default, "None").
    pub const NONE: DigestMode = DigestMode { header: false, data: false };
    /// Header digest only.
    pub const HEADER: DigestMode = DigestMode { header: true, data: false };
    /// Data digest only.
    pub const DATA: DigestMode = DigestMode { header: false, data: true };
    /// Both digests.
    pub const BOTH: DigestMode = DigestMode { header: true, data: true };
    /// All four modes, for tests.
    pub const ALL: [DigestMode; 4] = [Self::NONE, Self::HEADER, Self::DATA, Self::BOTH];

    /// Bytes of header digest on the wire.
    pub fn header_len(self) -> usize {
        if self.header {
            DIGEST_LEN
        } else {
            0
        }
    }

    /// Bytes of data digest on the wire for a data segment of `data_len` bytes.
    pub fn data_digest_len(self, data_len: usize) -> usize {
        if self.data && data_len > 0 {
            DIGEST_LEN
        } else {
            0
        }
    }
}

/// `len` rounded up to a multiple of 4: a data segment with its padding
/// (RFC 7143 §11.2.4).
pub fn padded(len: usize) -> usize {
    len + pad_len(len)
}

/// Bytes a whole PDU occupies on the wire (RFC 7143 §11.1).
pub fn pdu_len(ahs_len: usize, data_len: usize, digests: DigestMode) -> usize {
    BHS_LEN + ahs_len + digests.header_len() + padded(data_len) + digests.data_digest_len(data_len)
}

/// Append one whole PDU to `out`: BHS, AHS, header digest (CRC32C over
/// BHS+AHS), `data`, zero padding to 4 bytes, data digest (CRC32C over
/// data+padding), as RFC 7143 §11.1 lays it out. Digests are written
/// little-endian (see the module docs).
///
/// # Panics
/// If `data` is 2^24 bytes or longer (a caller bug: DataSegmentLength has 24 bits).
pub fn encode_pdu(pdu: &Pdu, data: &[u8], digests: DigestMode, out: &mut Vec<u8>) {
    let data_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    assert!(data_len <= DATA_LEN_MAX, "data segment length {}", data.len());
    let start = out.len();
    pdu.encode_header(data_len, out);
    if digests.header {
        let hd = crc32c(out.get(start..).unwrap_or_default());
        out.extend_from_slice(&hd.to_le_bytes());
    }
    out.extend_from_slice(data);
    let pad = ZERO_PAD.get(..pad_len(data.len())).unwrap_or_default();
    out.extend_from_slice(pad);
    if digests.data && !data.is_empty() {
        let dd = crc32c_parts(&[data, pad]);
        out.extend_from_slice(&dd.to_le_bytes());
    }
}

/// One PDU decoded from the front of a buffer by [`decode_pdu`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Frame {
    /// The typed header.
    pub pdu: Pdu,
    /// The raw BHS (for a Reject, which echoes it, and for logging).
    pub bhs: Bhs,
    /// Where the data segment (without padding) lies in the input buffer.
    pub data: Range<usize>,
    /// Total bytes this PDU occupied, including padding and digests.
    pub len: usize,
}

/// Why [`decode_pdu`] could not produce a PDU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FrameError {
    /// The header is malformed (RFC 7143 §11).
    Decode(DecodeError),
    /// The header digest does not match (RFC 7143 §13.1; the PDU must be
    /// discarded and the connection recovered or dropped, RFC 7143 §7).
    HeaderDigest {
        /// CRC32C computed over the received BHS and AHS.
        expected: u32,
        /// The digest the PDU carried.
        got: u32,
    },
    /// The data digest does not match (RFC 7143 §13.1; Reject reason 0x02
    /// or recovery, RFC 7143 §7).
    DataDigest {
        /// CRC32C computed over the received data segment and padding.
        expected: u32,
        /// The digest the PDU carried.
        got: u32,
    },
    /// DataSegmentLength exceeds the caller's limit (the receiver's
    /// MaxRecvDataSegmentLength, RFC 7143 §13.12).
    DataTooLong(u32),
}

impl From<DecodeError> for FrameError {
    fn from(e: DecodeError) -> Self {
        FrameError::Decode(e)
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Decode(e) => write!(f, "{e}"),
            FrameError::HeaderDigest { expected, got } => {
                write!(f, "header digest mismatch: computed {expected:#010x}, received {got:#010x}")
            }
            FrameError::DataDigest { expected, got } => {
                write!(f, "data digest mismatch: computed {expected:#010x}, received {got:#010x}")
            }
            FrameError::DataTooLong(len) => write!(f, "data segment of {len} bytes is too long"),
        }
    }
}

impl std::error::Error for FrameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FrameError::Decode(e) => Some(e),
            _ => None,
        }
    }
}

/// Little-endian u32 digest at `off` (the caller checked the bounds).
fn digest_at(buf: &[u8], off: usize) -> Option<u32> {
    let b = buf.get(off..)?.first_chunk::<DIGEST_LEN>()?;
    Some(u32::from_le_bytes(*b))
}

/// Decode one PDU from the front of `buf`.
///
/// Returns `Ok(None)` while `buf` holds less than the whole PDU. The header
/// digest and the data length limit are checked as soon as the header is
/// complete (so a bad header is reported without waiting for its data);
/// the typed header is decoded and the data digest checked once the whole
/// PDU is present. Padding bytes are not checked (receivers ignore them).
/// Never panics; allocates only for an Extended CDB AHS.
pub fn decode_pdu(buf: &[u8], digests: DigestMode, max_data_len: u32) -> Result<Option<Frame>, FrameError> {
    let Some(bhs) = Bhs::from_slice(buf) else {
        return Ok(None);
    };
    let ahs_end = BHS_LEN + bhs.total_ahs_len();
    let header_end = ahs_end + digests.header_len();
    let Some(header) = buf.get(..ahs_end) else {
        return Ok(None);
    };
    if digests.header {
        let Some(got) = digest_at(buf, ahs_end) else {
            return Ok(None);
        };
        let expected = crc32c(header);
        if expected != got {
            return Err(FrameError::HeaderDigest { expected, got });
        }
    }
    let data_len = bhs.data_len();
    if data_len > max_data_len {
        return Err(FrameError::DataTooLong(data_len));
    }
    // data_len < 2^24, so none of this can overflow.
    let data_len = data_len as usize;
    let data = header_end..header_end + data_len;
    let padded_end = header_end + padded(data_len);
    let len = padded_end + digests.data_digest_len(data_len);
    let Some(whole) = buf.get(..len) else {
        return Ok(None);
    };
    let pdu = Pdu::decode(&bhs, whole.get(BHS_LEN..ahs_end).unwrap_or_default())?;
    if digests.data && data_len > 0 {
        let Some(got) = digest_at(whole, padded_end) else {
            return Ok(None);
        };
        let expected = whole.get(header_end..padded_end).map_or(0, crc32c);
        if expected != got {
            return Err(FrameError::DataDigest { expected, got });
        }
    }
    Ok(Some(Frame { pdu, bhs, data, len }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Itt, Ttt};
    use crate::pdu::{DataIn, NopOut, ScsiCommand};

    fn nop(itt: u32) -> Pdu {
        Pdu::from(NopOut { immediate: true, itt: Itt(itt), ttt: Ttt::RESERVED, ..Default::default() })
    }

    #[test]
    fn layout_with_both_digests() {
        let data = b"hello";
        let mut out = Vec::new();
        encode_pdu(&nop(1), data, DigestMode::BOTH, &mut out);
        assert_eq!(out.len(), 48 + 4 + 8 + 4);
        assert_eq!(out.len(), pdu_len(0, 5, DigestMode::BOTH));
        assert_eq!(&out[48..52], &crc32c(&out[..48]).to_le_bytes());
        assert_eq!(&out[52..57], data);
        assert_eq!(&out[57..60], &[0, 0, 0]);
        assert_eq!(&out[60..64], &crc32c(&out[52..60]).to_le_bytes());
        let f = decode_pdu(&out, DigestMode::BOTH, 8192).unwrap().unwrap();
        assert_eq!(f.pdu, nop(1));
        assert_eq!(&out[f.data.clone()], data);
        assert_eq!(f.len, out.len());
    }

    #[test]
    fn data_digest_of_32_zero_bytes_is_aa_36_91_8a() {
        // RFC 3720 Appendix B.4: the CRC of 32 bytes of zeroes is sent as aa 36 91 8a.
        let mut out = Vec::new();
        encode_pdu(&nop(1), &[0u8; 32], DigestMode::DATA, &mut out);
        assert_eq!(&out[out.len() - 4..], &[0xaa, 0x36, 0x91, 0x8a]);
    }

    #[test]
    fn rfc_read10_header_digest_bytes() {
        // RFC 3720 Appendix B.4 Read (10) command: header digest 56 3a 96 d9.
        let mut cdb = [0u8; 16];
        cdb[0] = 0x28;
        cdb[8] = 2;
        let cmd = ScsiCommand {
            final_: true,
            read: true,
            itt: Itt(0x1400_0000),
            edtl: 0x400,
            cmdsn: crate::serial::CmdSn(0x14),
            expstatsn: crate::serial::StatSn(0x18),
            cdb,
            ..Default::default()
        };
        let mut out = Vec::new();
        encode_pdu(&Pdu::from(cmd), &[], DigestMode::BOTH, &mut out);
        assert_eq!(out.len(), 52, "no data digest without a data segment");
        assert_eq!(&out[48..], &[0x56, 0x3a, 0x96, 0xd9]);
    }

    #[test]
    fn no_data_digest_without_data() {
        let mut out = Vec::new();
        encode_pdu(&nop(2), &[], DigestMode::DATA, &mut out);
        assert_eq!(out.len(), 48);
        let f = decode_pdu(&out, DigestMode::DATA, 0).unwrap().unwrap();
        assert_eq!((f.data, f.len), (48..48, 48));
    }

    #[test]
    fn every_prefix_needs_more() {
        for mode in DigestMode::ALL {
            let mut out = Vec::new();
            encode_pdu(&Pdu::from(DataIn::default()), &[1, 2, 3, 4, 5, 6], mode, &mut out);
            for cut in 0..out.len() {
                assert_eq!(decode_pdu(&out[..cut], mode, 1 << 20), Ok(None), "cut {cut} {mode:?}");
            }
            // Trailing bytes of the next PDU are left alone.
            out.extend_from_slice(&[0xff; 7]);
            let f = decode_pdu(&out, mode, 1 << 20).unwrap().unwrap();
            assert_eq!(f.len, out.len() - 7);
        }
    }

    #[test]
    fn digest_errors() {
        let mut out = Vec::new();
        encode_pdu(&nop(3), b"abcd", DigestMode::BOTH, &mut out);
        let mut bad = out.clone();
        bad[20] ^= 1;
        assert!(matches!(
            decode_pdu(&bad, DigestMode::BOTH, 100),
            Err(FrameError::HeaderDigest { got, .. }) if got == crc32c(&out[..48])
        ));
        let mut bad = out.clone();
        bad[53] ^= 1;
        assert!(matches!(
            decode_pdu(&bad, DigestMode::BOTH, 100),
            Err(FrameError::DataDigest { expected, got })
                if got == crc32c(b"abcd") && expected == crc32c(&bad[52..56])
        ));
    }

    #[test]
    fn data_too_long_is_reported_before_the_data_arrives() {
        let mut out = Vec::new();
        encode_pdu(&nop(4), &[7u8; 100], DigestMode::NONE, &mut out);
        assert_eq!(decode_pdu(&out[..48], DigestMode::NONE, 99), Err(FrameError::DataTooLong(100)));
        assert!(decode_pdu(&out, DigestMode::NONE, 100).unwrap().is_some());
    }

    #[test]
    fn padded_rounds_up() {
        assert_eq!([0, 1, 2, 3, 4, 5].map(padded), [0, 4, 4, 4, 4, 8]);
    }
}
