//! Sense data (SPC-4 §4.5): sense keys, additional sense codes, and the
//! fixed (§4.5.3) and descriptor (§4.5.2) formats.
//!
//! A [`Sense`] is one condition: key, ASC/ASCQ, and optionally an
//! INFORMATION value and a sense-key-specific field. It is `Copy`, never
//! allocates, and encodes into a caller's buffer. Which format goes on the
//! wire is the caller's choice (the D_SENSE bit of the Control mode page,
//! SPC-4 §7.5.8, kept in [`super::NexusState::d_sense`]).

use core::fmt;

use crate::bytes::copy_prefix;

/// Sense key (SPC-4 §4.5.6, table "Sense key descriptions").
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SenseKey(pub u8);

impl SenseKey {
    /// NO SENSE (0h).
    pub const NO_SENSE: SenseKey = SenseKey(0x0);
    /// RECOVERED ERROR (1h).
    pub const RECOVERED_ERROR: SenseKey = SenseKey(0x1);
    /// NOT READY (2h).
    pub const NOT_READY: SenseKey = SenseKey(0x2);
    /// MEDIUM ERROR (3h).
    pub const MEDIUM_ERROR: SenseKey = SenseKey(0x3);
    /// HARDWARE ERROR (4h).
    pub const HARDWARE_ERROR: SenseKey = SenseKey(0x4);
    /// ILLEGAL REQUEST (5h).
    pub const ILLEGAL_REQUEST: SenseKey = SenseKey(0x5);
    /// UNIT ATTENTION (6h).
    pub const UNIT_ATTENTION: SenseKey = SenseKey(0x6);
    /// DATA PROTECT (7h).
    pub const DATA_PROTECT: SenseKey = SenseKey(0x7);
    /// BLANK CHECK (8h).
    pub const BLANK_CHECK: SenseKey = SenseKey(0x8);
    /// VENDOR SPECIFIC (9h).
    pub const VENDOR_SPECIFIC: SenseKey = SenseKey(0x9);
    /// COPY ABORTED (Ah).
    pub const COPY_ABORTED: SenseKey = SenseKey(0xA);
    /// ABORTED COMMAND (Bh).
    pub const ABORTED_COMMAND: SenseKey = SenseKey(0xB);
    /// VOLUME OVERFLOW (Dh).
    pub const VOLUME_OVERFLOW: SenseKey = SenseKey(0xD);
    /// MISCOMPARE (Eh).
    pub const MISCOMPARE: SenseKey = SenseKey(0xE);
    /// COMPLETED (Fh).
    pub const COMPLETED: SenseKey = SenseKey(0xF);

    /// The name SPC-4 gives this key, if it has one.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x0 => "NO_SENSE",
            0x1 => "RECOVERED_ERROR",
            0x2 => "NOT_READY",
            0x3 => "MEDIUM_ERROR",
            0x4 => "HARDWARE_ERROR",
            0x5 => "ILLEGAL_REQUEST",
            0x6 => "UNIT_ATTENTION",
            0x7 => "DATA_PROTECT",
            0x8 => "BLANK_CHECK",
            0x9 => "VENDOR_SPECIFIC",
            0xA => "COPY_ABORTED",
            0xB => "ABORTED_COMMAND",
            0xD => "VOLUME_OVERFLOW",
            0xE => "MISCOMPARE",
            0xF => "COMPLETED",
            _ => return None,
        })
    }
}

impl fmt::Debug for SenseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "SenseKey::{n}"),
            None => write!(f, "SenseKey({:#x})", self.0),
        }
    }
}

/// Additional sense code and qualifier, ASC in the high byte, ASCQ in the
/// low byte (SPC-4 §4.5.6, table "ASC and ASCQ assignments").
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Asc(pub u16);

macro_rules! asc_table {
    ($($(#[$doc:meta])* $name:ident = $val:expr;)*) => {
        impl Asc {
            $($(#[$doc])* pub const $name: Asc = Asc($val);)*

            /// The constant's name for a known ASC/ASCQ.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

asc_table! {
    /// 00/00 NO ADDITIONAL SENSE INFORMATION.
    NO_ADDITIONAL_SENSE = 0x0000;
    /// 04/00 LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE.
    LUN_NOT_READY = 0x0400;
    /// 04/01 LOGICAL UNIT IS IN PROCESS OF BECOMING READY.
    LUN_BECOMING_READY = 0x0401;
    /// 04/02 LOGICAL UNIT NOT READY, INITIALIZING COMMAND REQUIRED.
    LUN_NOT_READY_INIT_REQUIRED = 0x0402;
    /// 04/1B LOGICAL UNIT NOT READY, SANITIZE IN PROGRESS.
    SANITIZE_IN_PROGRESS = 0x041B;
    /// 31/03 SANITIZE COMMAND FAILED (SBC-4 §4.11.5).
    SANITIZE_COMMAND_FAILED = 0x3103;
    /// 04/0A LOGICAL UNIT NOT ACCESSIBLE, ASYMMETRIC ACCESS STATE TRANSITION.
    LUN_NOT_ACCESSIBLE_ALUA_TRANSITION = 0x040A;
    /// 04/0B LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE.
    LUN_NOT_ACCESSIBLE_STANDBY = 0x040B;
    /// 04/0C LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN UNAVAILABLE STATE.
    LUN_NOT_ACCESSIBLE_UNAVAILABLE = 0x040C;
    /// 08/00 LOGICAL UNIT COMMUNICATION FAILURE.
    LUN_COMMUNICATION_FAILURE = 0x0800;
    /// 0C/00 WRITE ERROR.
    WRITE_ERROR = 0x0C00;
    /// 0C/0C UNEXPECTED UNSOLICITED DATA (RFC 7143 §11.4.7.2).
    UNEXPECTED_UNSOLICITED_DATA = 0x0C0C;
    /// 0C/0D NOT ENOUGH UNSOLICITED DATA (RFC 7143 §11.4.7.2).
    NOT_ENOUGH_UNSOLICITED_DATA = 0x0C0D;
    /// 11/00 UNRECOVERED READ ERROR.
    UNRECOVERED_READ_ERROR = 0x1100;
    /// 11/13 READ ERROR - FAILED RETRANSMISSION REQUEST (SNACK rejected, RFC 7143 §11.4.7.2).
    READ_ERROR_FAILED_RETRANSMISSION = 0x1113;
    /// 1A/00 PARAMETER LIST LENGTH ERROR.
    PARAMETER_LIST_LENGTH_ERROR = 0x1A00;
    /// 1D/00 MISCOMPARE DURING VERIFY OPERATION.
    MISCOMPARE_DURING_VERIFY = 0x1D00;
    /// 20/00 INVALID COMMAND OPERATION CODE.
    INVALID_COMMAND_OPERATION_CODE = 0x2000;
    /// 21/00 LOGICAL BLOCK ADDRESS OUT OF RANGE.
    LBA_OUT_OF_RANGE = 0x2100;
    /// 24/00 INVALID FIELD IN CDB.
    INVALID_FIELD_IN_CDB = 0x2400;
    /// 25/00 LOGICAL UNIT NOT SUPPORTED.
    LOGICAL_UNIT_NOT_SUPPORTED = 0x2500;
    /// 26/00 INVALID FIELD IN PARAMETER LIST.
    INVALID_FIELD_IN_PARAMETER_LIST = 0x2600;
    /// 26/01 PARAMETER NOT SUPPORTED.
    PARAMETER_NOT_SUPPORTED = 0x2601;
    /// 26/02 PARAMETER VALUE INVALID.
    PARAMETER_VALUE_INVALID = 0x2602;
    /// 26/04 INVALID RELEASE OF PERSISTENT RESERVATION.
    INVALID_RELEASE_OF_PR = 0x2604;
    /// 27/00 WRITE PROTECTED.
    WRITE_PROTECTED = 0x2700;
    /// 27/07 SPACE ALLOCATION FAILED WRITE PROTECT.
    SPACE_ALLOC_FAILED = 0x2707;
    /// 28/00 NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED.
    NOT_READY_TO_READY_CHANGE = 0x2800;
    /// 29/00 POWER ON, RESET, OR BUS DEVICE RESET OCCURRED.
    POWER_ON_RESET = 0x2900;
    /// 29/01 POWER ON OCCURRED.
    POWER_ON_OCCURRED = 0x2901;
    /// 29/02 SCSI BUS RESET OCCURRED.
    SCSI_BUS_RESET = 0x2902;
    /// 29/03 BUS DEVICE RESET FUNCTION OCCURRED (LOGICAL UNIT RESET, TARGET RESET).
    BUS_DEVICE_RESET = 0x2903;
    /// 29/04 DEVICE INTERNAL RESET.
    DEVICE_INTERNAL_RESET = 0x2904;
    /// 29/07 I_T NEXUS LOSS OCCURRED.
    I_T_NEXUS_LOSS = 0x2907;
    /// 2A/00 PARAMETERS CHANGED.
    PARAMETERS_CHANGED = 0x2A00;
    /// 2A/01 MODE PARAMETERS CHANGED.
    MODE_PARAMETERS_CHANGED = 0x2A01;
    /// 2A/03 RESERVATIONS PREEMPTED.
    RESERVATIONS_PREEMPTED = 0x2A03;
    /// 2A/04 RESERVATIONS RELEASED.
    RESERVATIONS_RELEASED = 0x2A04;
    /// 2A/05 REGISTRATIONS PREEMPTED.
    REGISTRATIONS_PREEMPTED = 0x2A05;
    /// 2A/06 ASYMMETRIC ACCESS STATE CHANGED.
    ASYMMETRIC_ACCESS_STATE_CHANGED = 0x2A06;
    /// 2A/09 CAPACITY DATA HAS CHANGED.
    CAPACITY_DATA_HAS_CHANGED = 0x2A09;
    /// 2C/00 COMMAND SEQUENCE ERROR.
    COMMAND_SEQUENCE_ERROR = 0x2C00;
    /// 2F/00 COMMANDS CLEARED BY ANOTHER INITIATOR.
    COMMANDS_CLEARED_BY_ANOTHER_INITIATOR = 0x2F00;
    /// 39/00 SAVING PARAMETERS NOT SUPPORTED.
    SAVING_PARAMETERS_NOT_SUPPORTED = 0x3900;
    /// 3A/00 MEDIUM NOT PRESENT.
    MEDIUM_NOT_PRESENT = 0x3A00;
    /// 3F/00 TARGET OPERATING CONDITIONS HAVE CHANGED.
    TARGET_OPERATING_CONDITIONS_CHANGED = 0x3F00;
    /// 3F/03 INQUIRY DATA HAS CHANGED.
    INQUIRY_DATA_HAS_CHANGED = 0x3F03;
    /// 3F/0E REPORTED LUNS DATA HAS CHANGED.
    REPORTED_LUNS_DATA_HAS_CHANGED = 0x3F0E;
    /// 44/00 INTERNAL TARGET FAILURE.
    INTERNAL_TARGET_FAILURE = 0x4400;
    /// 47/05 PROTOCOL SERVICE CRC ERROR (iSCSI digest failure, RFC 7143 §11.4.7.2).
    PROTOCOL_SERVICE_CRC_ERROR = 0x4705;
    /// 49/00 INVALID MESSAGE ERROR.
    INVALID_MESSAGE_ERROR = 0x4900;
    /// 4B/00 DATA PHASE ERROR.
    DATA_PHASE_ERROR = 0x4B00;
    /// 4B/01 INVALID TARGET PORT TRANSFER TAG RECEIVED.
    INVALID_TTT_RECEIVED = 0x4B01;
    /// 4B/02 TOO MUCH WRITE DATA.
    TOO_MUCH_WRITE_DATA = 0x4B02;
    /// 4B/05 DATA OFFSET ERROR.
    DATA_OFFSET_ERROR = 0x4B05;
    /// 4B/06 INITIATOR RESPONSE TIMEOUT.
    INITIATOR_RESPONSE_TIMEOUT = 0x4B06;
    /// 55/03 INSUFFICIENT RESOURCES.
    INSUFFICIENT_RESOURCES = 0x5503;
    /// 55/04 INSUFFICIENT REGISTRATION RESOURCES.
    INSUFFICIENT_REGISTRATION_RESOURCES = 0x5504;
    /// 27/02 LOGICAL UNIT SOFTWARE WRITE PROTECTED.
    SOFTWARE_WRITE_PROTECTED = 0x2702;
    /// 0D/02 COPY TARGET DEVICE NOT REACHABLE.
    COPY_TARGET_DEVICE_NOT_REACHABLE = 0x0D02;
}

impl Asc {
    /// The additional sense code (high byte).
    pub fn asc(self) -> u8 {
        (self.0 >> 8) as u8
    }
    /// The additional sense code qualifier (low byte).
    pub fn ascq(self) -> u8 {
        self.0 as u8
    }
}

impl fmt::Debug for Asc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "Asc::{n}"),
            None => write!(f, "Asc({:02x}/{:02x})", self.asc(), self.ascq()),
        }
    }
}

/// The sense-key-specific field (SPC-4 §4.5.2.4): three bytes whose meaning
/// depends on the sense key. Only the variants we produce or parse exist.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SenseKeySpecific {
    /// Field pointer (ILLEGAL REQUEST, SPC-4 §4.5.2.4.2): which byte (and
    /// optionally which bit) of the CDB or parameter list is wrong.
    FieldPointer {
        /// C/D bit: `true` when the error is in the CDB, `false` when it is in
        /// the parameter list (Data-Out).
        cdb: bool,
        /// Bit pointer (0..=7) to the most significant bit of the field; the
        /// BPV bit is set when present.
        bit: Option<u8>,
        /// Byte offset of the field (its first byte).
        field: u16,
    },
    /// Actual retry count (RECOVERED ERROR, HARDWARE ERROR, MEDIUM ERROR,
    /// SPC-4 §4.5.2.4.3).
    ActualRetryCount(u16),
    /// Progress indication (NO SENSE, NOT READY, SPC-4 §4.5.2.4.4), in units
    /// of 1/65536 of the whole operation.
    Progress(u16),
}

impl SenseKeySpecific {
    /// The three wire bytes, SKSV bit set.
    pub fn to_bytes(self) -> [u8; 3] {
        match self {
            SenseKeySpecific::FieldPointer { cdb, bit, field } => {
                let mut b0 = 0x80;
                if cdb {
                    b0 |= 0x40;
                }
                if let Some(bit) = bit {
                    b0 |= 0x08 | (bit & 0x07);
                }
                let f = field.to_be_bytes();
                [b0, f[0], f[1]]
            }
            SenseKeySpecific::ActualRetryCount(v) | SenseKeySpecific::Progress(v) => {
                let v = v.to_be_bytes();
                [0x80, v[0], v[1]]
            }
        }
    }

    /// Parse the three wire bytes for sense key `key`; `None` when SKSV is 0
    /// or the key has no sense-key-specific format we know.
    pub fn from_bytes(key: SenseKey, b: [u8; 3]) -> Option<Self> {
        if b[0] & 0x80 == 0 {
            return None;
        }
        let v = u16::from_be_bytes([b[1], b[2]]);
        match key {
            SenseKey::ILLEGAL_REQUEST => Some(SenseKeySpecific::FieldPointer {
                cdb: b[0] & 0x40 != 0,
                bit: (b[0] & 0x08 != 0).then_some(b[0] & 0x07),
                field: v,
            }),
            SenseKey::RECOVERED_ERROR | SenseKey::HARDWARE_ERROR | SenseKey::MEDIUM_ERROR => {
                Some(SenseKeySpecific::ActualRetryCount(v))
            }
            SenseKey::NO_SENSE | SenseKey::NOT_READY => Some(SenseKeySpecific::Progress(v)),
            _ => None,
        }
    }
}

/// One sense condition (SPC-4 §4.5).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Sense {
    /// Sense key.
    pub key: SenseKey,
    /// ASC/ASCQ.
    pub asc: Asc,
    /// INFORMATION field (SPC-4 §4.5.2.2, §4.5.3), e.g. the offset of the
    /// first miscompare. Fixed format carries only 32 bits: a larger value
    /// is sent with VALID = 0 there.
    pub info: Option<u64>,
    /// Sense-key-specific field (SPC-4 §4.5.2.4).
    pub sks: Option<SenseKeySpecific>,
}

/// Length of fixed-format sense data as we send it (SPC-4 §4.5.3: 8-byte
/// header plus ADDITIONAL SENSE LENGTH 10).
pub const FIXED_SENSE_LEN: usize = 18;

/// The largest descriptor-format sense data we send (SPC-4 §4.5.2: 8-byte
/// header, 12-byte information descriptor, 8-byte sense-key-specific
/// descriptor).
pub const DESCRIPTOR_SENSE_MAX_LEN: usize = 28;

impl Sense {
    /// A condition with no INFORMATION and no sense-key-specific field.
    pub const fn new(key: SenseKey, asc: Asc) -> Self {
        Sense { key, asc, info: None, sks: None }
    }

    /// With an INFORMATION field value.
    pub const fn with_info(mut self, info: u64) -> Self {
        self.info = Some(info);
        self
    }

    /// NOT READY, SANITIZE IN PROGRESS with the fraction done (0..=0xFFFF)
    /// as the progress indication (SBC-4 §4.11.2, SPC-4 §4.5.2.4.4).
    pub const fn sanitize_in_progress(progress: u16) -> Self {
        Sense::new(SenseKey::NOT_READY, Asc::SANITIZE_IN_PROGRESS).with_sks(SenseKeySpecific::Progress(progress))
    }

    /// MEDIUM ERROR, SANITIZE COMMAND FAILED: the last sanitize operation
    /// failed and medium access stays refused (SBC-4 §4.11.5).
    pub const fn sanitize_failed() -> Self {
        Sense::new(SenseKey::MEDIUM_ERROR, Asc::SANITIZE_COMMAND_FAILED)
    }

    /// With a sense-key-specific field.
    pub const fn with_sks(mut self, sks: SenseKeySpecific) -> Self {
        self.sks = Some(sks);
        self
    }

    /// NO SENSE, NO ADDITIONAL SENSE INFORMATION (what REQUEST SENSE returns
    /// when nothing is pending, SPC-4 §6.39).
    pub const fn no_sense() -> Self {
        Sense::new(SenseKey::NO_SENSE, Asc::NO_ADDITIONAL_SENSE)
    }

    /// ILLEGAL REQUEST, INVALID FIELD IN CDB, with a field pointer to `byte`
    /// (and `bit`, the field's most significant bit) of the CDB
    /// (SPC-4 §4.5.2.4.2).
    pub const fn invalid_field_in_cdb(byte: u16, bit: Option<u8>) -> Self {
        Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB).with_sks(SenseKeySpecific::FieldPointer {
            cdb: true,
            bit,
            field: byte,
        })
    }

    /// ILLEGAL REQUEST, INVALID FIELD IN CDB without a field pointer (used
    /// when the CDB is shorter than its operation code requires).
    pub const fn invalid_cdb() -> Self {
        Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB)
    }

    /// ILLEGAL REQUEST, INVALID FIELD IN PARAMETER LIST, with a field pointer
    /// into the parameter data (C/D = 0, SPC-4 §4.5.2.4.2).
    pub const fn invalid_field_in_parameter_list(byte: u16, bit: Option<u8>) -> Self {
        Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_PARAMETER_LIST)
            .with_sks(SenseKeySpecific::FieldPointer { cdb: false, bit, field: byte })
    }

    /// ILLEGAL REQUEST, PARAMETER LIST LENGTH ERROR.
    pub const fn parameter_list_length_error() -> Self {
        Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::PARAMETER_LIST_LENGTH_ERROR)
    }

    /// ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE.
    pub const fn invalid_opcode() -> Self {
        Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::INVALID_COMMAND_OPERATION_CODE)
    }

    /// ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE (SBC-4).
    pub const fn lba_out_of_range() -> Self {
        Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::LBA_OUT_OF_RANGE)
    }

    /// ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED (a LUN with no LU, SPC-4 §6.6.2 / SAM-5).
    pub const fn lun_not_supported() -> Self {
        Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::LOGICAL_UNIT_NOT_SUPPORTED)
    }

    /// ILLEGAL REQUEST, SAVING PARAMETERS NOT SUPPORTED (MODE SENSE saved
    /// values, MODE SELECT SP=1).
    pub const fn saving_parameters_not_supported() -> Self {
        Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::SAVING_PARAMETERS_NOT_SUPPORTED)
    }

    /// DATA PROTECT, WRITE PROTECTED.
    pub const fn write_protected() -> Self {
        Sense::new(SenseKey::DATA_PROTECT, Asc::WRITE_PROTECTED)
    }

    /// DATA PROTECT, SPACE ALLOCATION FAILED WRITE PROTECT (SBC-4, thin provisioning).
    pub const fn space_allocation_failed() -> Self {
        Sense::new(SenseKey::DATA_PROTECT, Asc::SPACE_ALLOC_FAILED)
    }

    /// MEDIUM ERROR, UNRECOVERED READ ERROR.
    pub const fn unrecovered_read_error() -> Self {
        Sense::new(SenseKey::MEDIUM_ERROR, Asc::UNRECOVERED_READ_ERROR)
    }

    /// MEDIUM ERROR, WRITE ERROR.
    pub const fn write_error() -> Self {
        Sense::new(SenseKey::MEDIUM_ERROR, Asc::WRITE_ERROR)
    }

    /// HARDWARE ERROR, INTERNAL TARGET FAILURE.
    pub const fn internal_target_failure() -> Self {
        Sense::new(SenseKey::HARDWARE_ERROR, Asc::INTERNAL_TARGET_FAILURE)
    }

    /// MISCOMPARE, MISCOMPARE DURING VERIFY OPERATION, INFORMATION = offset
    /// of the first byte that differs (SBC-4, VERIFY with BYTCHK = 01b).
    pub const fn miscompare(offset: u64) -> Self {
        Sense::new(SenseKey::MISCOMPARE, Asc::MISCOMPARE_DURING_VERIFY).with_info(offset)
    }

    /// A UNIT ATTENTION condition with `asc` (SAM-5, unit attention conditions).
    pub const fn unit_attention(asc: Asc) -> Self {
        Sense::new(SenseKey::UNIT_ATTENTION, asc)
    }

    /// UNIT ATTENTION, POWER ON, RESET, OR BUS DEVICE RESET OCCURRED.
    pub const fn power_on_reset() -> Self {
        Sense::unit_attention(Asc::POWER_ON_RESET)
    }

    /// UNIT ATTENTION, BUS DEVICE RESET FUNCTION OCCURRED (after a LOGICAL UNIT RESET).
    pub const fn bus_device_reset() -> Self {
        Sense::unit_attention(Asc::BUS_DEVICE_RESET)
    }

    /// UNIT ATTENTION, REPORTED LUNS DATA HAS CHANGED.
    pub const fn reported_luns_changed() -> Self {
        Sense::unit_attention(Asc::REPORTED_LUNS_DATA_HAS_CHANGED)
    }

    /// UNIT ATTENTION, CAPACITY DATA HAS CHANGED.
    pub const fn capacity_changed() -> Self {
        Sense::unit_attention(Asc::CAPACITY_DATA_HAS_CHANGED)
    }

    /// UNIT ATTENTION, MODE PARAMETERS CHANGED.
    pub const fn mode_parameters_changed() -> Self {
        Sense::unit_attention(Asc::MODE_PARAMETERS_CHANGED)
    }

    /// UNIT ATTENTION, COMMANDS CLEARED BY ANOTHER INITIATOR.
    pub const fn commands_cleared_by_another_initiator() -> Self {
        Sense::unit_attention(Asc::COMMANDS_CLEARED_BY_ANOTHER_INITIATOR)
    }

    /// Fixed-format sense data (SPC-4 §4.5.3), response code 70h (current
    /// error): 18 bytes. VALID is set when [`Self::info`] fits in the 32-bit
    /// INFORMATION field; SKSV when [`Self::sks`] is present. Writes at most
    /// `out.len()` bytes and returns how many it wrote.
    pub fn encode_fixed(&self, out: &mut [u8]) -> usize {
        let mut b = [0u8; FIXED_SENSE_LEN];
        b[0] = 0x70;
        b[2] = self.key.0 & 0x0f;
        if let Some(info) = self.info {
            if let Ok(info) = u32::try_from(info) {
                b[0] |= 0x80;
                b[3..7].copy_from_slice(&info.to_be_bytes());
            }
        }
        b[7] = (FIXED_SENSE_LEN - 8) as u8;
        b[12] = self.asc.asc();
        b[13] = self.asc.ascq();
        if let Some(sks) = self.sks {
            b[15..18].copy_from_slice(&sks.to_bytes());
        }
        copy_prefix(out, &b)
    }

    /// Descriptor-format sense data (SPC-4 §4.5.2), response code 72h
    /// (current error): the 8-byte header, an Information descriptor
    /// (§4.5.2.2, 12 bytes) when [`Self::info`] is set and a Sense key
    /// specific descriptor (§4.5.2.4, 8 bytes) when [`Self::sks`] is set.
    /// Writes at most `out.len()` bytes and returns how many it wrote.
    pub fn encode_descriptor(&self, out: &mut [u8]) -> usize {
        let mut b = [0u8; DESCRIPTOR_SENSE_MAX_LEN];
        b[0] = 0x72;
        b[1] = self.key.0 & 0x0f;
        b[2] = self.asc.asc();
        b[3] = self.asc.ascq();
        let mut len = 8;
        let mut push = |d: &[u8]| {
            if let Some(dst) = b.get_mut(len..len + d.len()) {
                dst.copy_from_slice(d);
                len += d.len();
            }
        };
        if let Some(info) = self.info {
            let v = info.to_be_bytes();
            // Descriptor type 00h (information), additional length 0Ah, VALID.
            push(&[0x00, 0x0a, 0x80, 0, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]);
        }
        if let Some(sks) = self.sks {
            let [s0, s1, s2] = sks.to_bytes();
            // Descriptor type 02h (sense key specific), additional length 06h.
            push(&[0x02, 0x06, 0, 0, s0, s1, s2, 0]);
        }
        b[7] = (len - 8) as u8;
        copy_prefix(out, b.get(..len).unwrap_or(&b))
    }

    /// Encode in descriptor format when `descriptor` (D_SENSE) is set, else
    /// fixed format.
    pub fn encode(&self, descriptor: bool, out: &mut [u8]) -> usize {
        if descriptor {
            self.encode_descriptor(out)
        } else {
            self.encode_fixed(out)
        }
    }

    /// Parse fixed (70h/71h) or descriptor (72h/73h) sense data. Returns
    /// `None` for other response codes or data too short to hold the key and
    /// ASC/ASCQ. Unknown descriptors are skipped.
    pub fn decode(data: &[u8]) -> Option<Sense> {
        let code = *data.first()? & 0x7f;
        match code {
            0x70 | 0x71 => {
                let [b0, _, b2, i0, i1, i2, i3, _, _, _, _, _, asc, ascq, rest @ ..] = data else {
                    return None;
                };
                let key = SenseKey(b2 & 0x0f);
                let mut s = Sense::new(key, Asc(u16::from_be_bytes([*asc, *ascq])));
                if b0 & 0x80 != 0 {
                    s.info = Some(u64::from(u32::from_be_bytes([*i0, *i1, *i2, *i3])));
                }
                if let [_, k0, k1, k2, ..] = rest {
                    s.sks = SenseKeySpecific::from_bytes(key, [*k0, *k1, *k2]);
                }
                Some(s)
            }
            0x72 | 0x73 => {
                let [_, b1, asc, ascq, _, _, _, add_len, ..] = data else {
                    return None;
                };
                let key = SenseKey(b1 & 0x0f);
                let mut s = Sense::new(key, Asc(u16::from_be_bytes([*asc, *ascq])));
                let end = data.len().min(8 + usize::from(*add_len));
                let mut descs = data.get(8..end).unwrap_or_default();
                while let [ty, dlen, ..] = descs {
                    let (d, rest) = descs.split_at_checked(2 + usize::from(*dlen)).unwrap_or((descs, &[]));
                    match (*ty, d) {
                        (0x00, [_, _, valid, _, v @ ..]) if *valid & 0x80 != 0 => {
                            if let Some(v) = v.first_chunk::<8>() {
                                s.info = Some(u64::from_be_bytes(*v));
                            }
                        }
                        (0x02, [_, _, _, _, k0, k1, k2, ..]) => {
                            s.sks = SenseKeySpecific::from_bytes(key, [*k0, *k1, *k2]);
                        }
                        _ => {}
                    }
                    descs = rest;
                }
                Some(s)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_invalid_field_with_bit_pointer() {
        let s = Sense::invalid_field_in_cdb(2, Some(5));
        let mut out = [0xffu8; 32];
        assert_eq!(s.encode_fixed(&mut out), 18);
        assert_eq!(&out[..18], &[0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0x00, 0, 0xcd, 0x00, 0x02]);
        assert_eq!(out[18], 0xff, "nothing written past 18 bytes");
    }

    #[test]
    fn fixed_info_valid_only_when_it_fits() {
        let mut out = [0u8; 18];
        Sense::miscompare(0x1234).encode_fixed(&mut out);
        assert_eq!(out[0], 0xf0);
        assert_eq!(&out[3..7], &[0, 0, 0x12, 0x34]);
        Sense::miscompare(1 << 40).encode_fixed(&mut out);
        assert_eq!(out[0], 0x70);
        assert_eq!(&out[3..7], &[0, 0, 0, 0]);
    }

    #[test]
    fn fixed_truncates_to_buffer() {
        let mut out = [0u8; 8];
        assert_eq!(Sense::write_protected().encode_fixed(&mut out), 8);
        assert_eq!(out, [0x70, 0, 0x07, 0, 0, 0, 0, 10]);
    }

    #[test]
    fn descriptor_layout() {
        let s = Sense::invalid_field_in_parameter_list(0x0102, None).with_info(7);
        let mut out = [0u8; 40];
        let n = s.encode_descriptor(&mut out);
        assert_eq!(n, 28);
        assert_eq!(
            &out[..n],
            &[
                0x72, 0x05, 0x26, 0x00, 0, 0, 0, 20, // header
                0x00, 0x0a, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 7, // information
                0x02, 0x06, 0, 0, 0x80, 0x01, 0x02, 0, // sense key specific
            ]
        );
        let plain = Sense::write_protected();
        assert_eq!(plain.encode_descriptor(&mut out), 8);
        assert_eq!(&out[..8], &[0x72, 0x07, 0x27, 0x00, 0, 0, 0, 0]);
    }

    #[test]
    fn round_trips() {
        let cases = [
            Sense::invalid_field_in_cdb(1, Some(7)),
            Sense::invalid_field_in_cdb(300, None),
            Sense::invalid_field_in_parameter_list(9, Some(2)),
            Sense::miscompare(99),
            Sense::power_on_reset(),
            Sense::new(SenseKey::NOT_READY, Asc::LUN_BECOMING_READY).with_sks(SenseKeySpecific::Progress(0x8000)),
        ];
        for s in cases {
            let mut b = [0u8; 32];
            let n = s.encode_fixed(&mut b);
            assert_eq!(Sense::decode(&b[..n]), Some(s));
            let n = s.encode_descriptor(&mut b);
            assert_eq!(Sense::decode(&b[..n]), Some(s));
        }
        let big = Sense::miscompare(1 << 40);
        let mut b = [0u8; 32];
        let n = big.encode_descriptor(&mut b);
        assert_eq!(Sense::decode(&b[..n]), Some(big));
    }

    #[test]
    fn debug_by_name() {
        assert_eq!(format!("{:?}", SenseKey::ILLEGAL_REQUEST), "SenseKey::ILLEGAL_REQUEST");
        assert_eq!(format!("{:?}", Asc::LBA_OUT_OF_RANGE), "Asc::LBA_OUT_OF_RANGE");
        assert_eq!(format!("{:?}", Asc(0x7f01)), "Asc(7f/01)");
    }
}
