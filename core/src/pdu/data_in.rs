//! SCSI Data-In PDU, opcode 0x25 (RFC 7143 §11.7).

use super::bhs::{
    Bhs, Opcode, FLAG_DATA_ACK, FLAG_DATA_STATUS, FLAG_FINAL, FLAG_OVERFLOW, FLAG_UNDERFLOW, OFF_BUFFER_OFFSET,
    OFF_DATASN, OFF_EXPCMDSN, OFF_ITT, OFF_LUN, OFF_MAXCMDSN, OFF_RESIDUAL, OFF_STATSN, OFF_STATUS, OFF_TTT,
};
use super::{check_opcode, Codec, DecodeError};
use crate::ids::{Itt, Lun, Ttt};
use crate::serial::{CmdSn, StatSn};

/// Data-In header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct DataIn {
    /// F bit: last PDU of the sequence.
    pub final_: bool,
    /// A bit: acknowledge requested (ERL > 0).
    pub ack: bool,
    /// O bit (valid only with S).
    pub overflow: bool,
    /// U bit (valid only with S).
    pub underflow: bool,
    /// S bit: status is in this PDU.
    pub has_status: bool,
    /// SCSI status (valid only with S).
    pub status: u8,
    /// LUN (valid with A; otherwise reserved, we still round-trip it).
    pub lun: Lun,
    /// Initiator task tag.
    pub itt: Itt,
    /// Target transfer tag.
    pub ttt: Ttt,
    /// StatSN (valid only with S).
    pub statsn: StatSn,
    /// ExpCmdSN.
    pub expcmdsn: CmdSn,
    /// MaxCmdSN.
    pub maxcmdsn: CmdSn,
    /// DataSN.
    pub datasn: u32,
    /// Buffer offset.
    pub buffer_offset: u32,
    /// Residual count (valid only with S).
    pub residual: u32,
}

impl Codec for DataIn {
    const OPCODE: Opcode = Opcode::DATA_IN;

    fn decode(bhs: &Bhs, _ahs: &[u8]) -> Result<Self, DecodeError> {
        check_opcode(bhs, Self::OPCODE)?;
        // "The fields StatSN, Status, and Residual Count only have meaningful
        // content if the S bit is set to 1" (RFC 7143 §11.7); O and U
        // qualify the Residual Count.
        let s = bhs.flag(FLAG_DATA_STATUS);
        let if_s = |v: u32| if s { v } else { 0 };
        Ok(DataIn {
            final_: bhs.flag(FLAG_FINAL),
            ack: bhs.flag(FLAG_DATA_ACK),
            overflow: s && bhs.flag(FLAG_OVERFLOW),
            underflow: s && bhs.flag(FLAG_UNDERFLOW),
            has_status: s,
            status: if s { bhs.u8_at(OFF_STATUS) } else { 0 },
            lun: Lun(bhs.u64_at(OFF_LUN)),
            itt: Itt(bhs.itt()),
            ttt: Ttt(bhs.u32_at(OFF_TTT)),
            statsn: StatSn(if_s(bhs.u32_at(OFF_STATSN))),
            expcmdsn: CmdSn(bhs.u32_at(OFF_EXPCMDSN)),
            maxcmdsn: CmdSn(bhs.u32_at(OFF_MAXCMDSN)),
            datasn: bhs.u32_at(OFF_DATASN),
            buffer_offset: bhs.u32_at(OFF_BUFFER_OFFSET),
            residual: if_s(bhs.u32_at(OFF_RESIDUAL)),
        })
    }

    /// Status, StatSN, Residual Count and O/U are written only with S
    /// (zero otherwise, as reserved fields). S without F is the caller's
    /// error (RFC 7143 §11.7: "If the S bit is set to 1, the F bit MUST
    /// also be set to 1"); it is encoded as given.
    fn encode(&self, bhs: &mut Bhs) {
        bhs.set_opcode(Self::OPCODE);
        let s = self.has_status;
        bhs.set_flag(FLAG_FINAL, self.final_);
        bhs.set_flag(FLAG_DATA_ACK, self.ack);
        bhs.set_flag(FLAG_OVERFLOW, s && self.overflow);
        bhs.set_flag(FLAG_UNDERFLOW, s && self.underflow);
        bhs.set_flag(FLAG_DATA_STATUS, s);
        bhs.put_u64(OFF_LUN, self.lun.0);
        bhs.put_u32(OFF_ITT, self.itt.0);
        bhs.put_u32(OFF_TTT, self.ttt.0);
        if s {
            bhs.put_u8(OFF_STATUS, self.status);
            bhs.put_u32(OFF_STATSN, self.statsn.0);
            bhs.put_u32(OFF_RESIDUAL, self.residual);
        }
        bhs.put_u32(OFF_EXPCMDSN, self.expcmdsn.0);
        bhs.put_u32(OFF_MAXCMDSN, self.maxcmdsn.0);
        bhs.put_u32(OFF_DATASN, self.datasn);
        bhs.put_u32(OFF_BUFFER_OFFSET, self.buffer_offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::test_util::{bhs, check_layout, encode_bhs};

    #[test]
    fn final_data_in_with_status() {
        // F|U|S, status GOOD, ITT 0x20, TTT 0xffffffff, StatSN 7, ExpCmdSN 8,
        // MaxCmdSN 0x27, DataSN 2, offset 0x4000, residual 0x200.
        check_layout(
            "25830000 00000000 00000000 00000000
             00000020 ffffffff 00000007 00000008
             00000027 00000002 00004000 00000200",
            &DataIn {
                final_: true,
                underflow: true,
                has_status: true,
                itt: Itt(0x20),
                ttt: Ttt::RESERVED,
                statsn: StatSn(7),
                expcmdsn: CmdSn(8),
                maxcmdsn: CmdSn(0x27),
                datasn: 2,
                buffer_offset: 0x4000,
                residual: 0x200,
                ..Default::default()
            },
        );
    }

    #[test]
    fn ack_requested_with_lun_and_ttt() {
        // A (ERL>0) with a TTT and the LUN it requires; no status.
        check_layout(
            "25400000 00000000 00030000 00000000
             00000021 00000099 00000000 00000008
             00000027 00000000 00000000 00000000",
            &DataIn {
                ack: true,
                lun: Lun::from_index(3),
                itt: Itt(0x21),
                ttt: Ttt(0x99),
                expcmdsn: CmdSn(8),
                maxcmdsn: CmdSn(0x27),
                ..Default::default()
            },
        );
    }

    #[test]
    fn status_fields_without_s_are_ignored() {
        // O|U set, status 0x02, StatSN and residual filled, but S clear.
        let b = bhs("25860002 00000000 00000000 00000000
                     00000001 ffffffff 00000005 00000000
                     00000000 00000000 00000000 00000010");
        let d = DataIn::decode(&b, &[]).unwrap();
        assert!(!d.has_status && !d.overflow && !d.underflow);
        assert_eq!((d.status, d.statsn, d.residual), (0, StatSn(0), 0));
        // And the encoder keeps them zero.
        let sent = DataIn { status: 2, statsn: StatSn(5), residual: 16, underflow: true, ..d };
        let wire = encode_bhs(&sent);
        assert_eq!(wire[1], 0x80);
        assert_eq!(wire[3], 0);
        assert_eq!(&wire[24..28], &[0; 4]);
        assert_eq!(&wire[44..48], &[0; 4]);
    }
}
