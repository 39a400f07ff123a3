//! Command dispatch and the SBC-4 / SPC-4 command set of a direct-access
//! block device.
//!
//! [`execute`] checks, in this order (SAM-5 §5.3 / SPC-4 §5.14 precedence):
//! 1. an empty CDB → INVALID FIELD IN CDB;
//! 2. a LUN without an LU → LOGICAL UNIT NOT SUPPORTED (25h/00h), except
//!    INQUIRY, REPORT LUNS and REQUEST SENSE (SPC-4 §6.6.2, SAM-5);
//! 3. a pending unit attention → CHECK CONDITION with the oldest one, which
//!    is then cleared; INQUIRY, REPORT LUNS and REQUEST SENSE are exempt
//!    (SAM-5 unit attention conditions; REQUEST SENSE reports it as its
//!    parameter data instead, REPORT LUNS clears REPORTED LUNS DATA HAS
//!    CHANGED);
//! 4. an unknown operation code → INVALID COMMAND OPERATION CODE (20h/00h);
//!    an unknown service action of a known operation code → INVALID FIELD
//!    IN CDB pointing at byte 1 bit 4;
//! 5. a CDB shorter than its group code says (SPC-4 §4.2.5.1) → INVALID
//!    FIELD IN CDB without a field pointer;
//! 6. the NACA bit of the CONTROL byte (SAM-5 §5.2): NACA is not supported
//!    → INVALID FIELD IN CDB pointing at it;
//! 7. the command itself.
//!
//! Commands (operation code / service action):
//!
//! | CDB | command | standard |
//! |---|---|---|
//! | 00h | TEST UNIT READY | SPC-4 |
//! | 03h | REQUEST SENSE | SPC-4 |
//! | 08h 28h A8h 88h | READ(6/10/12/16) | SBC-4 |
//! | 0Ah 2Ah AAh 8Ah | WRITE(6/10/12/16) | SBC-4 |
//! | 2Eh AEh 8Eh | WRITE AND VERIFY(10/12/16) | SBC-4 |
//! | 2Fh AFh 8Fh | VERIFY(10/12/16) | SBC-4 |
//! | 12h | INQUIRY (standard; VPD 00h 80h 83h B0h B1h, B2h when thin) | SPC-4 §6.6, SBC-4 |
//! | 15h 55h | MODE SELECT(6/10) | SPC-4 |
//! | 1Ah 5Ah | MODE SENSE(6/10) (pages 01h 08h 0Ah 1Ch 3Fh) | SPC-4, SBC-4 |
//! | 1Bh | START STOP UNIT | SBC-4 |
//! | 1Eh | PREVENT ALLOW MEDIUM REMOVAL | SBC-4 |
//! | 25h | READ CAPACITY(10) | SBC-4 |
//! | 9Eh/10h | READ CAPACITY(16) | SBC-4 |
//! | 34h 90h | PRE-FETCH(10/16) | SBC-4 |
//! | 35h 91h | SYNCHRONIZE CACHE(10/16) | SBC-4 |
//! | A0h | REPORT LUNS | SPC-4 |
//! | A3h/0Ah | REPORT TARGET PORT GROUPS | SPC-4 |
//! | A3h/0Ch | REPORT SUPPORTED OPERATION CODES (with command timeouts) | SPC-4 |
//! | A3h/0Dh | REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS | SPC-4 |
//! | 16h 56h / 17h 57h | RESERVE / RELEASE (6/10) | SPC-2 ([`super::pr`]) |
//! | 5Eh/00h-03h | PERSISTENT RESERVE IN | SPC-4 ([`super::pr`]) |
//! | 5Fh/00h-07h | PERSISTENT RESERVE OUT | SPC-4 ([`super::pr`]) |
//! | 37h B7h | READ DEFECT DATA(10/12) (empty list) | SBC-4 |
//! | 41h 93h | WRITE SAME(10/16) (UNMAP, NDOB) | SBC-4 ([`super::job`]) |
//! | 42h | UNMAP (thin LUs) | SBC-4 |
//! | 48h/01h | SANITIZE OVERWRITE | SBC-4 |
//! | 83h/00h | EXTENDED COPY (LID1) | SPC-4 |
//! | 84h/00h 03h | RECEIVE COPY RESULTS | SPC-4 |
//! | 89h | COMPARE AND WRITE | SBC-4 |
//! | 8Bh | ORWRITE(16) | SBC-4 |
//! | 9Ch | WRITE ATOMIC(16) | SBC-4 |
//! | 9Eh/12h | GET LBA STATUS | SBC-4 |
//!
//! Before a command runs, unit attentions posted by other nexuses
//! ([`super::LuShared`]) are moved into the nexus, and while the LU has a
//! reservation a command that conflicts with it ends with RESERVATION
//! CONFLICT (after the unit attention check, before the command).
//!
//! Decisions:
//! - READ/WRITE: RDPROTECT/WRPROTECT/VRPROTECT ≠ 0 → INVALID FIELD IN CDB
//!   (no protection information); a transfer length above
//!   [`max_transfer_blocks`] → INVALID FIELD IN CDB at the length field;
//!   `lba + blocks > capacity` (with overflow) → LBA OUT OF RANGE; writes to
//!   a read-only LU → DATA PROTECT / WRITE PROTECTED; length 0 → GOOD
//!   without I/O (READ(6)/WRITE(6): 0 means 256). DPO is accepted and
//!   ignored; FUA sets [`IoRequest::fua`]; with WCE off every write gets
//!   `fua`. Checks run in that order.
//! - WRITE AND VERIFY is a write with `fua = true`; BYTCHK 00b and 01b are
//!   accepted (the data just written is the data compared), 10b/11b →
//!   INVALID FIELD IN CDB.
//! - VERIFY with BYTCHK 00b: range check, GOOD, no I/O. BYTCHK 01b: a
//!   [`BackendOp::Read`] with [`IoRequest::verify`] set, finished by
//!   [`complete_verify`]. BYTCHK 10b/11b → INVALID FIELD IN CDB.
//! - PRE-FETCH: range check, then GOOD (nothing is cached here, so never
//!   CONDITION MET; libiscsi expects GOOD).
//! - SYNCHRONIZE CACHE: range check, then a [`BackendOp::Flush`] (GOOD
//!   without I/O on a read-only LU). IMMED is ignored: status comes after the
//!   flush.
//! - START STOP UNIT: GOOD (nothing to spin). PREVENT ALLOW MEDIUM
//!   REMOVAL: PREVENT 00b/01b → GOOD, others INVALID FIELD IN CDB.
//! - Reserved CDB bits are not checked (SPC-4 allows either).

use super::cdb::{self, LbaRange, ScsiOpcode};
use super::sense::{Asc, Sense, DESCRIPTOR_SENSE_MAX_LEN};
use super::writer::DataIn;
use super::{ext, pr, xcopy};
use super::{inquiry, mode, AluaState, BackendOp, BackendStatus, CmdContext, IoRequest, LuInfo, NexusState, Outcome};
use crate::bytes::prefix;
use crate::ids::Lun;

/// Largest data transfer of one READ/WRITE/VERIFY command, in bytes (the
/// Block Limits VPD MAXIMUM TRANSFER LENGTH is derived from it).
pub const MAX_TRANSFER_BYTES: u32 = 8 << 20;

/// MAXIMUM TRANSFER LENGTH in logical blocks for `block_size` (SBC-4 Block
/// Limits VPD page): [`MAX_TRANSFER_BYTES`] / block size, 0 for a block size
/// of 0.
pub fn max_transfer_blocks(block_size: u32) -> u32 {
    MAX_TRANSFER_BYTES.checked_div(block_size).unwrap_or(0)
}

/// Everything a command handler sees.
pub(crate) struct Exec<'x, 'c> {
    /// The command.
    pub(crate) ctx: &'x CmdContext<'c>,
    /// I_T_L nexus state (unit attentions, mode parameters).
    pub(crate) nexus: &'x mut NexusState,
    /// Data-In goes here.
    pub(crate) buf: &'x mut [u8],
    /// Parameter list (Data-Out) for MODE SELECT.
    pub(crate) params: &'x [u8],
}

impl Exec<'_, '_> {
    /// The CDB.
    pub(crate) fn cdb(&self) -> &[u8] {
        self.ctx.cdb
    }
}

type Handler = fn(&mut Exec<'_, '_>) -> Outcome;

/// One supported command: dispatch and REPORT SUPPORTED OPERATION CODES.
pub(crate) struct CommandDesc {
    /// Operation code.
    pub(crate) opcode: u8,
    /// Service action, for operation codes that have them.
    pub(crate) sa: Option<u8>,
    /// CDB USAGE DATA (SPC-4 REPORT SUPPORTED OPERATION CODES): the CDB
    /// length is its length; byte 0 is the operation code.
    pub(crate) usage: &'static [u8],
    /// Handler.
    exec: Handler,
}

const fn c(opcode: u8, sa: Option<u8>, usage: &'static [u8], exec: Handler) -> CommandDesc {
    CommandDesc { opcode, sa, usage, exec }
}

/// Supported commands, sorted by operation code and service action.
pub(crate) static COMMANDS: &[CommandDesc] = &[
    c(0x00, None, &[0x00, 0, 0, 0, 0, 0], test_unit_ready),
    c(0x03, None, &[0x03, 0x01, 0, 0, 0xff, 0], request_sense),
    c(0x08, None, &[0x08, 0x1f, 0xff, 0xff, 0xff, 0], read),
    c(0x0A, None, &[0x0a, 0x1f, 0xff, 0xff, 0xff, 0], write),
    c(0x12, None, &[0x12, 0x01, 0xff, 0xff, 0xff, 0], inquiry::inquiry),
    c(0x15, None, &[0x15, 0x10, 0, 0, 0xff, 0], mode::mode_select_6),
    c(0x16, None, &[0x16, 0, 0, 0, 0, 0], pr::reserve),
    c(0x17, None, &[0x17, 0, 0, 0, 0, 0], pr::release),
    c(0x1A, None, &[0x1a, 0x08, 0xff, 0xff, 0xff, 0], mode::mode_sense_6),
    c(0x1B, None, &[0x1b, 0x01, 0, 0x0f, 0xf7, 0], start_stop_unit),
    c(0x1E, None, &[0x1e, 0, 0, 0, 0x03, 0], prevent_allow),
    c(0x25, None, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], read_capacity_10),
    c(0x28, None, &RW10, read),
    c(0x2A, None, &RW10, write),
    c(0x2E, None, &WV10, write_and_verify),
    c(0x2F, None, &WV10, verify),
    c(0x34, None, &PF10, pre_fetch),
    c(0x35, None, &PF10, synchronize_cache),
    c(0x37, None, &[0x37, 0, 0x1f, 0, 0, 0, 0, 0xff, 0xff, 0], ext::read_defect_data),
    c(0x41, None, &[0x41, 0x08, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0], ext::write_same),
    c(0x42, None, &[0x42, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0], ext::unmap),
    c(0x48, Some(0x01), &[0x48, 0x81, 0, 0, 0, 0, 0, 0xff, 0xff, 0], ext::sanitize),
    c(0x48, Some(0x02), &[0x48, 0x82, 0, 0, 0, 0, 0, 0xff, 0xff, 0], ext::sanitize),
    c(0x55, None, &[0x55, 0x10, 0, 0, 0, 0, 0, 0xff, 0xff, 0], mode::mode_select_10),
    c(0x56, None, &[0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0], pr::reserve),
    c(0x57, None, &[0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0], pr::release),
    c(0x5A, None, &[0x5a, 0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, 0], mode::mode_sense_10),
    c(0x5E, Some(0), &PRIN0, pr::pr_in),
    c(0x5E, Some(1), &PRIN1, pr::pr_in),
    c(0x5E, Some(2), &PRIN2, pr::pr_in),
    c(0x5E, Some(3), &PRIN3, pr::pr_in),
    c(0x5F, Some(0), &PROUT0, pr::pr_out),
    c(0x5F, Some(1), &PROUT1, pr::pr_out),
    c(0x5F, Some(2), &PROUT2, pr::pr_out),
    c(0x5F, Some(3), &PROUT3, pr::pr_out),
    c(0x5F, Some(4), &PROUT4, pr::pr_out),
    c(0x5F, Some(5), &PROUT5, pr::pr_out),
    c(0x5F, Some(6), &PROUT6, pr::pr_out),
    c(0x5F, Some(7), &PROUT7, pr::pr_out),
    c(0x83, Some(0x00), &[0x83, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0], xcopy::extended_copy),
    c(
        0x84,
        Some(0x00),
        &[0x84, 0x00, 0xff, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0],
        xcopy::receive_copy_results,
    ),
    c(
        0x84,
        Some(0x03),
        &[0x84, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0],
        xcopy::receive_copy_results,
    ),
    c(0x88, None, &RW16, read),
    c(
        0x89,
        None,
        &[0x89, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0xff, 0, 0],
        ext::compare_and_write,
    ),
    c(0x8A, None, &RW16, write),
    c(0x8B, None, &RW16, ext::or_write),
    c(0x8E, None, &WV16, write_and_verify),
    c(0x8F, None, &WV16, verify),
    c(0x90, None, &PF16, pre_fetch),
    c(0x91, None, &PF16, synchronize_cache),
    c(
        0x93,
        None,
        &[0x93, 0x09, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0],
        ext::write_same,
    ),
    c(
        0x9C,
        None,
        &[0x9c, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0],
        ext::write_atomic,
    ),
    c(
        0x9E,
        Some(cdb::SAI_READ_CAPACITY_16),
        &[0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0],
        read_capacity_16,
    ),
    c(
        0x9E,
        Some(cdb::SAI_GET_LBA_STATUS),
        &[0x9e, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0],
        ext::get_lba_status,
    ),
    c(0xA0, None, &[0xa0, 0, 0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0], report_luns),
    c(
        0xA3,
        Some(cdb::MI_REPORT_TARGET_PORT_GROUPS),
        &[0xa3, 0x2a, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0],
        report_target_port_groups,
    ),
    c(
        0xA3,
        Some(cdb::MI_REPORT_SUPPORTED_OPCODES),
        &[0xa3, 0x0c, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0],
        report_supported_opcodes,
    ),
    c(0xA3, Some(0x0D), &[0xa3, 0x0d, 0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0], ext::report_supported_tmfs),
    c(0xA8, None, &RW12, read),
    c(0xAA, None, &RW12, write),
    c(0xAE, None, &WV12, write_and_verify),
    c(0xAF, None, &WV12, verify),
    c(0xB7, None, &[0xb7, 0x1f, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0], ext::read_defect_data),
];

const PRIN0: [u8; 10] = [0x5e, 0x00, 0, 0, 0, 0, 0, 0xff, 0xff, 0];
const PRIN1: [u8; 10] = [0x5e, 0x01, 0, 0, 0, 0, 0, 0xff, 0xff, 0];
const PRIN2: [u8; 10] = [0x5e, 0x02, 0, 0, 0, 0, 0, 0xff, 0xff, 0];
const PRIN3: [u8; 10] = [0x5e, 0x03, 0, 0, 0, 0, 0, 0xff, 0xff, 0];
const PROUT0: [u8; 10] = [0x5f, 0x00, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0];
const PROUT1: [u8; 10] = [0x5f, 0x01, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0];
const PROUT2: [u8; 10] = [0x5f, 0x02, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0];
const PROUT3: [u8; 10] = [0x5f, 0x03, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0];
const PROUT4: [u8; 10] = [0x5f, 0x04, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0];
const PROUT5: [u8; 10] = [0x5f, 0x05, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0];
const PROUT6: [u8; 10] = [0x5f, 0x06, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0];
const PROUT7: [u8; 10] = [0x5f, 0x07, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0];

// CDB usage data templates shared by commands of the same layout; byte 0
// (the operation code) is filled in by `usage_of`.
// READ/WRITE: DPO, FUA; LBA; length.
const RW10: [u8; 10] = [0, 0x18, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0];
const RW12: [u8; 12] = [0, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0];
const RW16: [u8; 16] = [0, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0];
// WRITE AND VERIFY / VERIFY: DPO, BYTCHK (its low bit only).
const WV10: [u8; 10] = [0, 0x12, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0];
const WV12: [u8; 12] = [0, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0];
const WV16: [u8; 16] = [0, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0];
// PRE-FETCH / SYNCHRONIZE CACHE: IMMED; LBA; length.
const PF10: [u8; 10] = [0, 0x02, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0];
const PF16: [u8; 16] = [0, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0];

/// Look a CDB up in [`COMMANDS`].
enum Lookup {
    Found(&'static CommandDesc),
    UnknownServiceAction,
    UnknownOpcode,
}

fn lookup(cdb: &[u8], lu: Option<&LuInfo>) -> Lookup {
    let op = cdb::u8_at(cdb, 0);
    let sa = cdb::service_action(cdb);
    let mut known_op = false;
    for d in COMMANDS {
        if d.opcode != op {
            continue;
        }
        if !offered(d, lu) {
            known_op = true;
            continue;
        }
        match d.sa {
            None => return Lookup::Found(d),
            Some(s) if s == sa => return Lookup::Found(d),
            Some(_) => known_op = true,
        }
    }
    if known_op {
        Lookup::UnknownServiceAction
    } else {
        Lookup::UnknownOpcode
    }
}

/// Whether `d` is offered on `lu`: SANITIZE BLOCK ERASE only where the
/// backend deallocates (SBC-4 §4.11.3 wants the blocks really erased); every
/// other command everywhere.
fn offered(d: &CommandDesc, lu: Option<&LuInfo>) -> bool {
    !(d.opcode == ScsiOpcode::SANITIZE.0 && d.sa == Some(0x02)) || lu.is_some_and(|l| l.deallocate)
}

/// The CDB usage data of a supported command (for the CDB bytes the
/// command really has: `usage[0]` must equal the operation code).
fn usage_of(d: &CommandDesc) -> impl Iterator<Item = u8> + '_ {
    d.usage.iter().enumerate().map(move |(i, &b)| if i == 0 { d.opcode } else { b })
}

/// INQUIRY, REPORT LUNS and REQUEST SENSE: served for a LUN without an LU
/// and not held back by a unit attention (SAM-5, SPC-4 §6.6.2).
fn exempt(op: u8) -> bool {
    matches!(ScsiOpcode(op), ScsiOpcode::INQUIRY | ScsiOpcode::REPORT_LUNS | ScsiOpcode::REQUEST_SENSE)
}

/// Decode `ctx.cdb` and finish it or ask for backend I/O (see the module
/// documentation for the order of checks and the command list).
///
/// Data-In is written at the start of `buf`; `data_len` in the result is
/// what the command transfers, min(allocation length, bytes available). If
/// that exceeds `buf.len()` only `buf.len()` bytes are written; the caller
/// passes at least min(EDTL, 64 KiB). Never panics, whatever the CDB;
/// never allocates.
///
/// A MODE SELECT that announces a parameter list must go through
/// [`execute_with_parameter_list`]; here its parameter list is empty and it
/// ends with PARAMETER LIST LENGTH ERROR.
pub fn execute(ctx: &CmdContext<'_>, nexus: &mut NexusState, buf: &mut [u8]) -> Outcome {
    execute_with_parameter_list(ctx, nexus, &[], buf)
}

/// Length of the parameter list (Data-Out consumed by SCSI emulation) a
/// CDB announces: MODE SELECT(6) byte 4, MODE SELECT(10) bytes 7..9
/// (SPC-4). `None` for every other command: their Data-Out, if any, goes
/// to the backend through [`Outcome::Io`].
///
/// The connection collects min(this, EDTL) bytes of Data-Out into a small
/// buffer and calls [`execute_with_parameter_list`].
pub fn parameter_list_len(cdb: &[u8]) -> Option<u32> {
    match ScsiOpcode(*cdb.first()?) {
        ScsiOpcode::MODE_SELECT_6 => Some(u32::from(cdb::u8_at(cdb, 4))),
        ScsiOpcode::MODE_SELECT_10 => Some(u32::from(cdb::be16(cdb, 7))),
        ScsiOpcode::UNMAP | ScsiOpcode::SANITIZE => Some(u32::from(cdb::be16(cdb, 7))),
        ScsiOpcode::PERSISTENT_RESERVE_OUT => Some(pr::pr_out_param_len(cdb)),
        ScsiOpcode::EXTENDED_COPY => Some(xcopy::param_len(cdb)),
        _ => None,
    }
}

/// [`execute`] for a command whose parameter list (Data-Out) has been
/// collected into `params` (see [`parameter_list_len`]). For other commands
/// `params` is ignored.
pub fn execute_with_parameter_list(
    ctx: &CmdContext<'_>,
    nexus: &mut NexusState,
    params: &[u8],
    buf: &mut [u8],
) -> Outcome {
    let Some(&op) = ctx.cdb.first() else {
        return Outcome::check_condition(Sense::invalid_cdb());
    };
    let exempt = exempt(op);
    if ctx.lu.is_none() && !exempt {
        return Outcome::check_condition(Sense::lun_not_supported());
    }
    if ctx.lu.is_some() {
        nexus.sync_unit_attentions();
    }
    if ctx.lu.is_some() && !exempt {
        if let Some(ua) = nexus.take_unit_attention() {
            return Outcome::check_condition(ua);
        }
    }
    if let Some(lu) = ctx.lu.filter(|l| !l.port_groups.is_empty()) {
        // SPC-4 §5.16.2.4: what the nexus's target port group state serves.
        let sa = cdb::u8_at(ctx.cdb, 1) & 0x1f;
        if let Some(s) = super::alua::refusal(lu.alua_state(nexus.tpgt), op, sa) {
            return Outcome::check_condition(s);
        }
    }
    if ctx.lu.is_some() && !exempt {
        if let Some(l) = nexus.link.as_ref() {
            if l.shared.sanitizing() {
                // SBC-4 §4.11.2: SANITIZE IN PROGRESS until it ends.
                return Outcome::check_condition(Sense::sanitize_in_progress(l.shared.sanitize.progress()));
            }
            if op != ScsiOpcode::SANITIZE.0 && l.shared.sanitize.failed() {
                // SBC-4 §4.11.5: until a SANITIZE succeeds.
                return Outcome::check_condition(Sense::sanitize_failed());
            }
        }
    }
    let desc = match lookup(ctx.cdb, ctx.lu) {
        Lookup::Found(d) => d,
        Lookup::UnknownServiceAction => return Outcome::check_condition(Sense::invalid_field_in_cdb(1, Some(4))),
        Lookup::UnknownOpcode => return Outcome::check_condition(Sense::invalid_opcode()),
    };
    let len = desc.usage.len();
    // The CONTROL byte is the CDB's last (SAM-5 §5.2).
    let Some(control) = len.checked_sub(1).and_then(|i| ctx.cdb.get(i)) else {
        return Outcome::check_condition(Sense::invalid_cdb());
    };
    if control & cdb::CONTROL_NACA != 0 {
        return Outcome::check_condition(Sense::invalid_field_in_cdb(len as u16 - 1, Some(2)));
    }
    if let Some(link) = nexus.link.as_ref().filter(|l| l.shared.reserved()) {
        let class = access_class(op, desc.sa);
        let st = link.shared.lock();
        if pr::conflicts(&st, &nexus.it, class) {
            return Outcome::Done { status: super::ScsiStatus::RESERVATION_CONFLICT, sense: None, data_len: 0 };
        }
    }
    let mut ex = Exec { ctx, nexus, buf, params };
    (desc.exec)(&mut ex)
}

/// How reservations treat a command (SPC-4 §5.13.1, SBC-4 table of
/// commands allowed in the presence of reservations).
fn access_class(op: u8, sa: Option<u8>) -> pr::AccessClass {
    use pr::AccessClass::*;
    match (op, sa) {
        // INQUIRY, REQUEST SENSE, TEST UNIT READY, READ CAPACITY, REPORT
        // LUNS, PERSISTENT RESERVE IN, MAINTENANCE IN, GET LBA STATUS/RC16.
        (0x12 | 0x03 | 0x00 | 0x25 | 0xA0 | 0x5E | 0xA3 | 0x84, _) | (0x9E, _) => Allowed,
        (0x17 | 0x57, _) => Release,
        (0x5F, _) => PrOut,
        // READ, VERIFY, PRE-FETCH, MODE SENSE, READ DEFECT DATA.
        (0x08 | 0x28 | 0xA8 | 0x88 | 0x2F | 0xAF | 0x8F | 0x34 | 0x90 | 0x1A | 0x5A | 0x37 | 0xB7, _) => Read,
        _ => Write,
    }
}

/// Map a backend result to status and sense — the one place that does
/// (DESIGN "Errors"):
/// - `Ok` → GOOD (Data-In length `io.len` for a read);
/// - `MediumError` → MEDIUM ERROR, UNRECOVERED READ ERROR (03h/11h/00h) for
///   reads, WRITE ERROR (03h/0Ch/00h) for writes and flushes;
/// - `NoSpace` → DATA PROTECT, SPACE ALLOCATION FAILED WRITE PROTECT
///   (07h/27h/07h, SBC-4 thin provisioning);
/// - `ReadOnly` → DATA PROTECT, WRITE PROTECTED (07h/27h/00h);
/// - `Other(errno)` → HARDWARE ERROR, INTERNAL TARGET FAILURE (04h/44h/00h).
///
/// A VERIFY read ([`IoRequest::verify`]) must be finished with
/// [`complete_verify`]; here `Ok` means GOOD without comparing.
pub fn complete_backend(io: &IoRequest, status: BackendStatus) -> Outcome {
    let sense = match status {
        BackendStatus::Ok => {
            let data_len = if io.op == BackendOp::Read && !io.verify { io.len } else { 0 };
            return Outcome::good(data_len);
        }
        BackendStatus::MediumError => match io.op {
            BackendOp::Read | BackendOp::MapStatus => Sense::unrecovered_read_error(),
            BackendOp::Write | BackendOp::Flush | BackendOp::Deallocate => Sense::write_error(),
        },
        BackendStatus::NoSpace => Sense::space_allocation_failed(),
        BackendStatus::ReadOnly => Sense::write_protected(),
        BackendStatus::Other(_) => Sense::internal_target_failure(),
    };
    Outcome::check_condition(sense)
}

/// Finish a VERIFY with BYTCHK = 01b (SBC-4): after the backend read of
/// `io` (its result in `status`), compare the Data-Out with the medium.
/// GOOD when the first `io.len` bytes match; otherwise MISCOMPARE,
/// MISCOMPARE DURING VERIFY OPERATION (0Eh/1Dh/00h) with INFORMATION set to
/// the offset of the first byte that differs (a missing byte counts as
/// differing). A failed read maps as in [`complete_backend`].
pub fn complete_verify(io: &IoRequest, status: BackendStatus, data_out: &[u8], medium: &[u8]) -> Outcome {
    if status != BackendStatus::Ok {
        return complete_backend(io, status);
    }
    let n = io.len as usize;
    let a = prefix(data_out, n);
    let b = prefix(medium, n);
    let first_diff =
        a.iter().zip(b).position(|(x, y)| x != y).or_else(|| (a.len().min(b.len()) < n).then(|| a.len().min(b.len())));
    match first_diff {
        None => Outcome::good(0),
        Some(off) => Outcome::check_condition(Sense::miscompare(off as u64)),
    }
}

pub(crate) fn lu_of<'c>(ex: &Exec<'_, 'c>) -> Result<&'c LuInfo, Outcome> {
    ex.ctx.lu.ok_or_else(|| Outcome::check_condition(Sense::lun_not_supported()))
}

macro_rules! lu {
    ($ex:expr) => {
        match $crate::scsi::commands::lu_of($ex) {
            Ok(lu) => lu,
            Err(o) => return o,
        }
    };
}
pub(crate) use lu;

/// TEST UNIT READY (SPC-4): the LU is always ready.
fn test_unit_ready(_ex: &mut Exec<'_, '_>) -> Outcome {
    Outcome::good(0)
}

/// REQUEST SENSE (SPC-4): the oldest pending unit attention (cleared by
/// reporting it), else NOT READY / SANITIZE IN PROGRESS while a SANITIZE
/// runs, else NO SENSE; for a LUN without an LU, LOGICAL UNIT NOT
/// SUPPORTED. Format by the DESC bit (byte 1 bit 0); allocation length in
/// byte 4. Status GOOD.
fn request_sense(ex: &mut Exec<'_, '_>) -> Outcome {
    let desc = cdb::u8_at(ex.cdb(), 1) & 0x01 != 0;
    let alloc = usize::from(cdb::u8_at(ex.cdb(), 4));
    let sanitizing = ex.nexus.link.as_ref().filter(|l| l.shared.sanitizing()).map(|l| l.shared.sanitize.progress());
    let sense = if ex.ctx.lu.is_none() {
        Sense::lun_not_supported()
    } else if let Some(ua) = ex.nexus.take_unit_attention() {
        ua
    } else if let Some(progress) = sanitizing {
        Sense::sanitize_in_progress(progress)
    } else {
        Sense::no_sense()
    };
    let mut tmp = [0u8; DESCRIPTOR_SENSE_MAX_LEN];
    let n = sense.encode(desc, &mut tmp);
    let mut w = DataIn::new(ex.buf, alloc);
    w.bytes(prefix(&tmp, n));
    Outcome::good(w.data_len())
}

/// REPORT LUNS (SPC-4): SELECT REPORT 00h and 02h list every configured LUN
/// (peripheral addressing below 256, flat from 256, SAM-5 §4.7 via
/// [`Lun::from_index`]); 01h (well-known LUNs only) lists none; other
/// values → INVALID FIELD IN CDB byte 2. An allocation length below 16 →
/// INVALID FIELD IN CDB byte 6. A target with no LUs reports LUN 0 (as LIO
/// does) so that initiators still find the target. Clears a pending
/// REPORTED LUNS DATA HAS CHANGED unit attention.
fn report_luns(ex: &mut Exec<'_, '_>) -> Outcome {
    let select = cdb::u8_at(ex.cdb(), 2);
    let alloc = cdb::be32(ex.cdb(), 6);
    if !matches!(select, 0x00..=0x02) {
        return Outcome::check_condition(Sense::invalid_field_in_cdb(2, None));
    }
    if alloc < 16 {
        return Outcome::check_condition(Sense::invalid_field_in_cdb(6, None));
    }
    ex.nexus.unit_attentions.retain(|s| s.asc != Asc::REPORTED_LUNS_DATA_HAS_CHANGED);
    let luns: &[u16] = match (select, ex.ctx.luns.is_empty()) {
        (0x01, _) => &[],
        (_, true) => &[0],
        (_, false) => ex.ctx.luns,
    };
    let mut w = DataIn::new(ex.buf, alloc as usize);
    w.u32(u32::try_from(luns.len() * 8).unwrap_or(u32::MAX));
    w.zeros(4);
    for &l in luns {
        w.u64(Lun::from_index(l).0);
    }
    Outcome::good(w.data_len())
}

/// READ CAPACITY(10) (SBC-4): RETURNED LOGICAL BLOCK ADDRESS (the last
/// LBA, FFFFFFFFh when it does not fit in 32 bits) and LOGICAL BLOCK LENGTH
/// IN BYTES; always 8 bytes.
fn read_capacity_10(ex: &mut Exec<'_, '_>) -> Outcome {
    let lu = lu!(ex);
    let last = ex.nexus.num_blocks(lu).saturating_sub(1);
    let last = u32::try_from(last).unwrap_or(u32::MAX);
    let mut w = DataIn::new(ex.buf, 8);
    w.u32(last);
    w.u32(lu.block_size);
    Outcome::good(w.data_len())
}

/// READ CAPACITY(16) (SBC-4, SERVICE ACTION IN(16) / 10h): 32 bytes with the
/// last LBA, block length, PROT_EN 0, LOGICAL BLOCKS PER PHYSICAL BLOCK
/// EXPONENT from [`lbppbe`], LBPME and LBPRZ from [`LuInfo::thin`];
/// allocation length in bytes 10..14 (a short one is not an error).
fn read_capacity_16(ex: &mut Exec<'_, '_>) -> Outcome {
    let lu = lu!(ex);
    let alloc = cdb::be32(ex.cdb(), 10) as usize;
    let mut w = DataIn::new(ex.buf, alloc);
    w.u64(ex.nexus.num_blocks(lu).saturating_sub(1));
    w.u32(lu.block_size);
    w.u8(0); // P_TYPE, PROT_EN
    w.u8(lbppbe(lu)); // P_I_EXPONENT 0, LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT
    w.u16(if lu.thin { 0xc000 } else { 0 }); // LBPME, LBPRZ, LOWEST ALIGNED LBA
    w.zeros(16);
    Outcome::good(w.data_len())
}

/// LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT (SBC-4): 0, a physical block
/// is a logical block. (Reporting 4096-byte physical blocks for 512-byte
/// LUs would be as true and enables five more libiscsi tests, but libiscsi
/// 1.19's GetLBAStatus.UnmapSingle then wants the first GET LBA STATUS
/// descriptor at the next physical-block boundary instead of the requested
/// LBA, which SBC-4 forbids.)
pub(crate) fn lbppbe(_lu: &LuInfo) -> u8 {
    0
}

/// START STOP UNIT (SBC-4): GOOD; there is no medium to start or eject.
fn start_stop_unit(_ex: &mut Exec<'_, '_>) -> Outcome {
    Outcome::good(0)
}

/// PREVENT ALLOW MEDIUM REMOVAL (SBC-4): PREVENT 00b (allow) and 01b
/// (prevent) → GOOD (the medium is not removable); 10b/11b → INVALID FIELD
/// IN CDB byte 4 bit 1.
fn prevent_allow(ex: &mut Exec<'_, '_>) -> Outcome {
    if cdb::u8_at(ex.cdb(), 4) & 0x03 > 1 {
        return Outcome::check_condition(Sense::invalid_field_in_cdb(4, Some(1)));
    }
    Outcome::good(0)
}

/// Which medium-access command [`medium_access`] runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    WriteAndVerify,
    Verify,
}

fn read(ex: &mut Exec<'_, '_>) -> Outcome {
    medium_access(ex, Access::Read)
}

fn write(ex: &mut Exec<'_, '_>) -> Outcome {
    medium_access(ex, Access::Write)
}

fn write_and_verify(ex: &mut Exec<'_, '_>) -> Outcome {
    medium_access(ex, Access::WriteAndVerify)
}

fn verify(ex: &mut Exec<'_, '_>) -> Outcome {
    medium_access(ex, Access::Verify)
}

/// `lba + blocks` must not pass `capacity` (blocks, from
/// [`NexusState::num_blocks`]; SBC-4: LOGICAL BLOCK ADDRESS
/// OUT OF RANGE), counting overflow as passing it.
pub(crate) fn check_range(capacity: u64, lba: u64, blocks: u64) -> Result<(), Sense> {
    match lba.checked_add(blocks) {
        Some(end) if end <= capacity => Ok(()),
        _ => Err(Sense::lba_out_of_range()),
    }
}

/// READ, WRITE, WRITE AND VERIFY and VERIFY in all their sizes (SBC-4); see
/// the module documentation for the checks and their order. Allocates
/// nothing.
fn medium_access(ex: &mut Exec<'_, '_>, access: Access) -> Outcome {
    let lu = lu!(ex);
    let Some(LbaRange { lba, blocks, len_field, flags }) = cdb::lba_range(ex.cdb()) else {
        return Outcome::check_condition(Sense::invalid_cdb());
    };
    // RDPROTECT / WRPROTECT / VRPROTECT: no protection information here.
    if flags & 0xe0 != 0 {
        return Outcome::check_condition(Sense::invalid_field_in_cdb(1, Some(7)));
    }
    let bytchk = (flags >> 1) & 0x03;
    if matches!(access, Access::Verify | Access::WriteAndVerify) && bytchk > 1 {
        return Outcome::check_condition(Sense::invalid_field_in_cdb(1, Some(2)));
    }
    let transfers = access != Access::Verify || bytchk != 0;
    if transfers && blocks > max_transfer_blocks(lu.block_size) {
        return Outcome::check_condition(Sense::invalid_field_in_cdb(len_field, None));
    }
    if let Err(s) = check_range(ex.nexus.num_blocks(lu), lba, u64::from(blocks)) {
        return Outcome::check_condition(s);
    }
    let writes = matches!(access, Access::Write | Access::WriteAndVerify);
    if writes && ex.nexus.write_protected(lu) {
        return Outcome::check_condition(Sense::write_protected());
    }
    if blocks == 0 || !transfers {
        return Outcome::good(0);
    }
    let (Some(offset), Some(len)) = (lba.checked_mul(u64::from(lu.block_size)), blocks.checked_mul(lu.block_size))
    else {
        return Outcome::check_condition(Sense::lba_out_of_range());
    };
    let fua_bit = flags & 0x08 != 0;
    let (op, fua, verify) = match access {
        Access::Read => (BackendOp::Read, fua_bit, false),
        Access::Write => (BackendOp::Write, fua_bit || !ex.nexus.write_cache_enabled(lu), false),
        Access::WriteAndVerify => (BackendOp::Write, true, false),
        Access::Verify => (BackendOp::Read, false, true),
    };
    let io = IoRequest { op, offset, len, fua, verify };
    if writes {
        if let Some(l) = ex.nexus.link.as_ref().filter(|l| l.shared.caw_overlaps(lba, u64::from(blocks))) {
            // A COMPARE AND WRITE holds part of the range: write after it.
            let job = super::Job::gated_write(io, lba, u64::from(blocks), lu.block_size, l.shared.clone());
            return Outcome::Job(Box::new(job));
        }
    }
    Outcome::Io(io)
}

/// PRE-FETCH(10/16) (SBC-4): range check, then GOOD. Nothing is cached in
/// SCSI emulation, so it never answers CONDITION MET.
fn pre_fetch(ex: &mut Exec<'_, '_>) -> Outcome {
    let lu = lu!(ex);
    let Some(r) = cdb::lba_range(ex.cdb()) else {
        return Outcome::check_condition(Sense::invalid_cdb());
    };
    match check_range(ex.nexus.num_blocks(lu), r.lba, u64::from(r.blocks)) {
        Ok(()) => Outcome::good(0),
        Err(s) => Outcome::check_condition(s),
    }
}

/// SYNCHRONIZE CACHE(10/16) (SBC-4): range check (NUMBER OF LOGICAL BLOCKS
/// 0 means "to the end of the medium"), then a [`BackendOp::Flush`] of the
/// range, or of the whole LU (`offset` 0, `len` 0) when the count is 0 or
/// the range does not fit a u32 byte length. A read-only LU has nothing to
/// flush: GOOD.
fn synchronize_cache(ex: &mut Exec<'_, '_>) -> Outcome {
    let lu = lu!(ex);
    let Some(r) = cdb::lba_range(ex.cdb()) else {
        return Outcome::check_condition(Sense::invalid_cdb());
    };
    if let Err(s) = check_range(ex.nexus.num_blocks(lu), r.lba, u64::from(r.blocks)) {
        return Outcome::check_condition(s);
    }
    if ex.nexus.write_protected(lu) {
        return Outcome::good(0);
    }
    let bs = u64::from(lu.block_size);
    let range = r.lba.checked_mul(bs).zip(u32::try_from(u64::from(r.blocks) * bs).ok()).filter(|&(_, len)| len != 0);
    let (offset, len) = range.unwrap_or((0, 0));
    Outcome::Io(IoRequest { op: BackendOp::Flush, offset, len, fua: false, verify: false })
}

/// REPORT TARGET PORT GROUPS (SPC-4 §6.37, MAINTENANCE IN / 0Ah): every
/// target port group of [`LuInfo::port_groups`] (id = portal group tag)
/// with its asymmetric access state and one target port (relative target
/// port identifier = the tag); with no list, one group
/// ([`LuInfo::port_group`], port [`LuInfo::rel_port_id`]) active/optimized.
/// Implicit ALUA (TPGS = 01b in INQUIRY) makes this command mandatory. PARAMETER DATA FORMAT 000b
/// (length-only header) and 001b (extended header) are supported; others →
/// INVALID FIELD IN CDB byte 1 bit 7.
fn report_target_port_groups(ex: &mut Exec<'_, '_>) -> Outcome {
    let lu = lu!(ex);
    let format = cdb::u8_at(ex.cdb(), 1) >> 5;
    if format > 1 {
        return Outcome::check_condition(Sense::invalid_field_in_cdb(1, Some(7)));
    }
    let alloc = cdb::be32(ex.cdb(), 6) as usize;
    let mut w = DataIn::new(ex.buf, alloc);
    w.u32(0); // RETURN DATA LENGTH, patched
    if format == 1 {
        w.u8(0x10); // FORMAT TYPE 001b
        w.u8(0); // IMPLICIT TRANSITION TIME
        w.zeros(2);
    }
    let single = [(lu.port_group, AluaState::ACTIVE_OPTIMIZED)];
    let groups: &[(u16, AluaState)] = if lu.port_groups.is_empty() { &single } else { &lu.port_groups };
    for &(id, state) in groups {
        w.u8(state.0); // PREF 0, ASYMMETRIC ACCESS STATE
        w.u8(super::alua::SUPPORTED);
        w.u16(id);
        w.u8(0);
        w.u8(0); // STATUS CODE
        w.u8(0);
        w.u8(1); // TARGET PORT COUNT
        w.zeros(2);
        w.u16(if lu.port_groups.is_empty() { lu.rel_port_id } else { id });
    }
    let total = w.pos();
    w.patch_u32(0, (total - 4) as u32);
    Outcome::good(w.data_len())
}

/// Command timeouts descriptor (SPC-4 §6.35.4): length 0Ah, NOMINAL
/// COMMAND PROCESSING TIMEOUT and RECOMMENDED COMMAND TIMEOUT in seconds.
/// Commands that walk the whole LU or many ranges (SANITIZE, WRITE SAME,
/// UNMAP, EXTENDED COPY) get longer ones; everything else is one backend
/// operation.
fn timeouts_descriptor(w: &mut DataIn<'_>, opcode: u8) {
    let (nominal, recommended) = match opcode {
        0x48 => (600, 3600),
        0x41 | 0x93 | 0x42 | 0x83 => (10, 120),
        _ => (1, 30),
    };
    w.u16(0x000a);
    w.u8(0);
    w.u8(0); // COMMAND SPECIFIC
    w.u32(nominal);
    w.u32(recommended);
}

/// REPORT SUPPORTED OPERATION CODES (SPC-4, MAINTENANCE IN / 0Ch) from
/// [`COMMANDS`]. REPORTING OPTIONS 000b lists every command (with a command
/// timeouts descriptor each when RCTD is set); 001b reports one operation
/// code without service actions (one that has them → INVALID FIELD IN CDB
/// byte 3); 010b reports one operation code and service action (an
/// operation code we know without service actions → INVALID FIELD IN CDB
/// byte 3); unknown commands report SUPPORT 001b (not supported). Other
/// options → INVALID FIELD IN CDB byte 2 bit 2.
fn report_supported_opcodes(ex: &mut Exec<'_, '_>) -> Outcome {
    let cdb = ex.ctx.cdb;
    let rctd = cdb::u8_at(cdb, 2) & 0x80 != 0;
    let options = cdb::u8_at(cdb, 2) & 0x07;
    let req_op = cdb::u8_at(cdb, 3);
    let req_sa = cdb::be16(cdb, 4);
    let alloc = cdb::be32(cdb, 6) as usize;
    let lu = ex.ctx.lu;
    let with_sa = COMMANDS.iter().any(|d| d.opcode == req_op && d.sa.is_some());
    let without_sa = COMMANDS.iter().any(|d| d.opcode == req_op && d.sa.is_none());
    let one = match options {
        0 => None,
        1 if with_sa => return Outcome::check_condition(Sense::invalid_field_in_cdb(3, None)),
        1 => Some(COMMANDS.iter().find(|d| d.opcode == req_op)),
        2 if without_sa => return Outcome::check_condition(Sense::invalid_field_in_cdb(3, None)),
        2 => {
            Some(COMMANDS.iter().find(|d| d.opcode == req_op && d.sa.map(u16::from) == Some(req_sa) && offered(d, lu)))
        }
        _ => return Outcome::check_condition(Sense::invalid_field_in_cdb(2, Some(2))),
    };
    let mut w = DataIn::new(ex.buf, alloc);
    match one {
        None => {
            w.u32(0); // COMMAND DATA LENGTH, patched
            for d in COMMANDS.iter().filter(|d| offered(d, lu)) {
                w.u8(d.opcode);
                w.u8(0);
                w.u16(d.sa.map_or(0, u16::from));
                w.u8(0);
                w.u8(if rctd { 0x02 } else { 0 } | u8::from(d.sa.is_some())); // CTDP, SERVACTV
                w.u16(d.usage.len() as u16);
                if rctd {
                    timeouts_descriptor(&mut w, d.opcode);
                }
            }
            let total = w.pos();
            w.patch_u32(0, (total - 4) as u32);
        }
        Some(None) => {
            w.u8(0);
            w.u8(0x01); // SUPPORT 001b: not supported
            w.u16(0);
        }
        Some(Some(d)) => {
            w.u8(0);
            w.u8(if rctd { 0x80 } else { 0 } | 0x03); // CTDP, SUPPORT 011b
            w.u16(d.usage.len() as u16);
            for b in usage_of(d) {
                w.u8(b);
            }
            if rctd {
                timeouts_descriptor(&mut w, d.opcode);
            }
        }
    }
    Outcome::good(w.data_len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_consistent() {
        for pair in COMMANDS.windows(2) {
            let a = (pair[0].opcode, pair[0].sa);
            let b = (pair[1].opcode, pair[1].sa);
            assert!(a < b, "{a:?} before {b:?}");
        }
        for d in COMMANDS {
            assert_eq!(Some(d.usage.len()), cdb::group_len(d.opcode), "{:#x}", d.opcode);
            assert_eq!(usage_of(d).next(), Some(d.opcode));
            if let Some(sa) = d.sa {
                assert_eq!(d.usage[1] & 0x1f, sa);
                assert!(cdb::has_service_action(d.opcode));
            }
        }
    }

    #[test]
    fn max_transfer() {
        assert_eq!(max_transfer_blocks(512), 16384);
        assert_eq!(max_transfer_blocks(4096), 2048);
        assert_eq!(max_transfer_blocks(0), 0);
    }

    #[test]
    fn verify_compare() {
        let io = IoRequest { op: BackendOp::Read, offset: 0, len: 4, fua: false, verify: true };
        assert_eq!(complete_verify(&io, BackendStatus::Ok, &[1, 2, 3, 4], &[1, 2, 3, 4]), Outcome::good(0));
        assert_eq!(
            complete_verify(&io, BackendStatus::Ok, &[1, 2, 9, 4], &[1, 2, 3, 4]).sense(),
            Some(Sense::miscompare(2))
        );
        assert_eq!(complete_verify(&io, BackendStatus::Ok, &[1, 2], &[1, 2, 3, 4]).sense(), Some(Sense::miscompare(2)));
        assert_eq!(
            complete_verify(&io, BackendStatus::MediumError, &[], &[]).sense(),
            Some(Sense::unrecovered_read_error())
        );
    }
}
