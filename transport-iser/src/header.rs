//! The iSER header that precedes every iSCSI control-type PDU on an RDMA
//! Send message, and the Hello exchange (RFC 7145 §9.2, §9.3).

/// Length of the iSER header in bytes (RFC 7145 §9.2: 28 bytes).
pub const ISER_HEADER_LEN: usize = 28;

/// iSER header opcode, high 4 bits of byte 0 (RFC 7145 §9.2).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IserOpcode(pub u8);

impl IserOpcode {
    /// 0001b: iSCSI control-type PDU follows.
    pub const ISCSI_CTRL: IserOpcode = IserOpcode(0x1);
    /// 0010b: iSER Hello message.
    pub const HELLO: IserOpcode = IserOpcode(0x2);
    /// 0011b: iSER HelloReply message.
    pub const HELLO_REPLY: IserOpcode = IserOpcode(0x3);
}

/// W flag: the Write STag and Write Base Offset are valid (RFC 7145 §9.2).
const FLAG_W: u8 = 0x08;
/// R flag: the Read STag and Read Base Offset are valid.
const FLAG_R: u8 = 0x04;

/// Why bytes are not a valid iSER header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IserError {
    /// Fewer than [`ISER_HEADER_LEN`] bytes.
    Truncated,
    /// An opcode that is not iSCSI control / Hello / HelloReply.
    UnknownOpcode(u8),
}

/// The iSER header of an iSCSI control-type PDU (RFC 7145 §9.2). The
/// initiator advertises its tagged buffers here: a Write STag for data the
/// target pulls with RDMA Read (instead of R2T/Data-Out) and a Read STag for
/// data the target pushes with RDMA Write (instead of Data-In).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct IserHeader {
    /// Write STag and base offset, when the W flag is set.
    pub write: Option<(u32, u64)>,
    /// Read STag and base offset, when the R flag is set.
    pub read: Option<(u32, u64)>,
}

impl IserHeader {
    /// Decode from the start of a received RDMA Send message.
    pub fn decode(b: &[u8]) -> Result<IserHeader, IserError> {
        let b: &[u8; ISER_HEADER_LEN] =
            b.get(..ISER_HEADER_LEN).and_then(|s| s.try_into().ok()).ok_or(IserError::Truncated)?;
        let op = b[0] >> 4;
        if op != IserOpcode::ISCSI_CTRL.0 {
            return Err(IserError::UnknownOpcode(op));
        }
        let u32_at = |o: usize| u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| (u64::from(u32_at(o)) << 32) | u64::from(u32_at(o + 4));
        let write = (b[0] & FLAG_W != 0).then(|| (u32_at(4), u64_at(8)));
        let read = (b[0] & FLAG_R != 0).then(|| (u32_at(16), u64_at(20)));
        Ok(IserHeader { write, read })
    }

    /// Encode into the first [`ISER_HEADER_LEN`] bytes of `out`.
    pub fn encode(&self, out: &mut [u8; ISER_HEADER_LEN]) {
        *out = [0; ISER_HEADER_LEN];
        out[0] = IserOpcode::ISCSI_CTRL.0 << 4;
        if let Some((stag, va)) = self.write {
            out[0] |= FLAG_W;
            out[4..8].copy_from_slice(&stag.to_be_bytes());
            out[8..16].copy_from_slice(&va.to_be_bytes());
        }
        if let Some((stag, va)) = self.read {
            out[0] |= FLAG_R;
            out[16..20].copy_from_slice(&stag.to_be_bytes());
            out[20..28].copy_from_slice(&va.to_be_bytes());
        }
    }
}

/// iSER Hello (initiator → target) or HelloReply (target → initiator),
/// RFC 7145 §9.3 / §9.4: protocol versions and the receive data segment
/// length each side can take.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IserHello {
    /// Hello or HelloReply.
    pub opcode: IserOpcode,
    /// HelloReply only: the F bit, set when the target rejects the connection.
    pub reject: bool,
    /// Maximum iSER version supported (only 0x10 exists).
    pub max_ver: u8,
    /// Minimum (Hello) or chosen (HelloReply) version.
    pub min_ver: u8,
    /// iSER-IRD (Hello) or iSER-ORD (HelloReply).
    pub ird_ord: u16,
}

impl IserHello {
    /// Decode a Hello/HelloReply message.
    pub fn decode(b: &[u8]) -> Result<IserHello, IserError> {
        let b = b.get(..ISER_HEADER_LEN).ok_or(IserError::Truncated)?;
        let opcode = IserOpcode(b[0] >> 4);
        if opcode != IserOpcode::HELLO && opcode != IserOpcode::HELLO_REPLY {
            return Err(IserError::UnknownOpcode(opcode.0));
        }
        Ok(IserHello {
            opcode,
            reject: opcode == IserOpcode::HELLO_REPLY && b[0] & 0x01 != 0,
            max_ver: b[1],
            min_ver: b[2],
            ird_ord: u16::from_be_bytes([b[6], b[7]]),
        })
    }

    /// Encode into a 28-byte message.
    pub fn encode(&self, out: &mut [u8; ISER_HEADER_LEN]) {
        *out = [0; ISER_HEADER_LEN];
        out[0] = (self.opcode.0 << 4) | u8::from(self.reject && self.opcode == IserOpcode::HELLO_REPLY);
        out[1] = self.max_ver;
        out[2] = self.min_ver;
        out[6..8].copy_from_slice(&self.ird_ord.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_each_flag_combination() {
        for write in [None, Some((0x1122_3344, 0x5566_7788_99aa_bbcc))] {
            for read in [None, Some((0xdead_beef, 0x0123_4567_89ab_cdef))] {
                let h = IserHeader { write, read };
                let mut b = [0u8; ISER_HEADER_LEN];
                h.encode(&mut b);
                assert_eq!(IserHeader::decode(&b), Ok(h));
            }
        }
    }

    #[test]
    fn header_layout_matches_rfc_7145() {
        let h = IserHeader { write: Some((1, 2)), read: None };
        let mut b = [0u8; ISER_HEADER_LEN];
        h.encode(&mut b);
        assert_eq!(b[0], 0x18);
        assert_eq!(&b[4..8], &[0, 0, 0, 1]);
        assert_eq!(&b[8..16], &[0, 0, 0, 0, 0, 0, 0, 2]);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(IserHeader::decode(&[0x10; 10]), Err(IserError::Truncated));
        assert_eq!(IserHeader::decode(&[0x50; 28]), Err(IserError::UnknownOpcode(5)));
        assert_eq!(IserHello::decode(&[0x10; 28]), Err(IserError::UnknownOpcode(1)));
    }

    #[test]
    fn hello_reply_round_trips() {
        let m = IserHello { opcode: IserOpcode::HELLO_REPLY, reject: true, max_ver: 0x10, min_ver: 0x10, ird_ord: 16 };
        let mut b = [0u8; ISER_HEADER_LEN];
        m.encode(&mut b);
        assert_eq!(IserHello::decode(&b), Ok(m));
    }
}
