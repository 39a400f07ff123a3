//! SBC-4 commands beyond READ/WRITE: logical block provisioning (UNMAP,
//! WRITE SAME, GET LBA STATUS), COMPARE AND WRITE, ORWRITE, WRITE ATOMIC,
//! SANITIZE, READ DEFECT DATA, and REPORT SUPPORTED TASK MANAGEMENT
//! FUNCTIONS (SPC-4). The multi-step ones answer [`Outcome::Job`].
//!
//! Limits (advertised in the Block Limits VPD page, [`limits`]):
//! - UNMAP / WRITE SAME: at most [`UNMAP_BYTES_MAX`] per command, at most
//!   [`UNMAP_DESCRIPTORS_MAX`] descriptors. On an LU whose backend
//!   deallocates ([`LuInfo::deallocate`]: file LUNs on a filesystem that
//!   punches holes, block devices) the blocks are deallocated and GET LBA
//!   STATUS reports what the backend says; on another thin LU (RAM)
//!   "unmapping" writes zeros, so GET LBA STATUS honestly reports every
//!   block mapped;
//! - COMPARE AND WRITE: at most [`CAW_BLOCKS_MAX`] blocks, atomic against
//!   other CAW / ORWRITE / WRITE ATOMIC and against writes that start while
//!   it holds its range (range lock in [`super::LuShared`]);
//! - WRITE ATOMIC(16): up to the READ/WRITE transfer limit, one backend
//!   write (the RAM and file backends apply a write in one piece), held
//!   back while a CAW or ORWRITE holds an overlapping range; no atomic
//!   boundary.

use super::cdb;
use super::commands::{check_range, lu, max_transfer_blocks, Exec};
use super::job::{Job, Pattern};
use super::sanitize::SanitizeOp;
use super::sense::Sense;
use super::writer::DataIn;
use super::{LuInfo, Outcome};
use crate::bytes::{prefix, range};

/// Largest range one UNMAP or WRITE SAME covers, bytes.
pub const UNMAP_BYTES_MAX: u64 = 1 << 30;
/// Most UNMAP block descriptors per command.
pub const UNMAP_DESCRIPTORS_MAX: u32 = 256;
/// MAXIMUM COMPARE AND WRITE LENGTH, blocks.
pub const CAW_BLOCKS_MAX: u8 = 255;

/// The Block Limits numbers for `lu`: (max unmap LBA count, max unmap
/// descriptors, max WRITE SAME length, max atomic transfer length).
pub(crate) fn limits(lu: &LuInfo) -> (u32, u32, u64, u32) {
    let bs = u64::from(lu.block_size.max(1));
    // libiscsi calls an UNMAP limit above 2^20 blocks insane; WRITE SAME and
    // atomic writes are held to the READ/WRITE transfer limit (a WRITE of
    // MAXIMUM WRITE SAME LENGTH blocks must be possible for its tests).
    let lbas = (UNMAP_BYTES_MAX / bs).min(1 << 20) as u32;
    let xfer = max_transfer_blocks(lu.block_size);
    (lbas, UNMAP_DESCRIPTORS_MAX, u64::from(xfer), xfer)
}

fn cc(s: Sense) -> Outcome {
    Outcome::check_condition(s)
}

/// GET LBA STATUS (SBC-4 §5.6, SERVICE ACTION IN(16) / 12h). An LBA past
/// the end → LBA OUT OF RANGE (05h/21h/00h); ALLOCATION LENGTH 0 → GOOD
/// without data. On an LU whose backend deallocates, a [`Job`] asks it
/// ([`Job::lba_status`]): LBA status descriptors from the requested LBA,
/// MAPPED or DEALLOCATED, as many as the allocation length holds (at most
/// [`super::job::LBA_STATUS_DESCRIPTORS_MAX`]). Otherwise one descriptor
/// from the requested LBA to the end of the LU (at most 2^32 - 1 blocks),
/// MAPPED (see the module documentation).
pub(crate) fn get_lba_status(ex: &mut Exec<'_, '_>) -> Outcome {
    let lu = lu!(ex);
    let lba = cdb::be64(ex.cdb(), 2);
    let alloc = cdb::be32(ex.cdb(), 10);
    let capacity = ex.nexus.num_blocks(lu);
    if lba >= capacity {
        return cc(Sense::lba_out_of_range());
    }
    if alloc == 0 {
        return Outcome::good(0);
    }
    if lu.thin && lu.deallocate {
        return Outcome::Job(Box::new(Job::lba_status(lba, capacity, lu.block_size, alloc)));
    }
    let mut w = DataIn::new(ex.buf, alloc as usize);
    w.u32(20); // PARAMETER DATA LENGTH
    w.u32(0);
    w.u64(lba);
    w.u32(u32::try_from(capacity - lba).unwrap_or(u32::MAX));
    w.u8(0); // PROVISIONING STATUS: mapped
    w.zeros(3);
    Outcome::good(w.data_len())
}

/// READ DEFECT DATA(10/12) (SBC-4): an empty list in the requested format
/// (PLISTV/GLISTV set as requested, length 0).
pub(crate) fn read_defect_data(ex: &mut Exec<'_, '_>) -> Outcome {
    let _ = lu!(ex);
    let twelve = cdb::u8_at(ex.cdb(), 0) == 0xB7;
    let (flags, alloc) = if twelve {
        (cdb::u8_at(ex.cdb(), 1), cdb::be32(ex.cdb(), 6) as usize)
    } else {
        (cdb::u8_at(ex.cdb(), 2), usize::from(cdb::be16(ex.cdb(), 7)))
    };
    let mut w = DataIn::new(ex.buf, alloc);
    w.u8(0);
    w.u8(flags & 0x1f); // PLISTV, GLISTV, DEFECT LIST FORMAT as requested
    if twelve {
        w.u16(0);
        w.u32(0);
    } else {
        w.u16(0);
    }
    Outcome::good(w.data_len())
}

/// REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS (SPC-4, MAINTENANCE IN /
/// 0Dh): ABORT TASK, ABORT TASK SET, CLEAR TASK SET, LOGICAL UNIT RESET,
/// TARGET RESET (iSCSI TARGET WARM RESET). REPD → the 16-byte extended form.
pub(crate) fn report_supported_tmfs(ex: &mut Exec<'_, '_>) -> Outcome {
    let repd = cdb::u8_at(ex.cdb(), 2) & 0x80 != 0;
    let alloc = cdb::be32(ex.cdb(), 6) as usize;
    if alloc < 4 {
        return cc(Sense::invalid_field_in_cdb(6, None));
    }
    let mut w = DataIn::new(ex.buf, alloc);
    w.u8(0x80 | 0x40 | 0x10 | 0x08 | 0x02); // ATS ATSS CTSS LURS TRS
    w.u8(0);
    w.u8(0);
    w.u8(if repd { 0x0c } else { 0 });
    if repd {
        w.zeros(12);
    }
    Outcome::good(w.data_len())
}

/// Shared checks of the write-type commands: WRPROTECT, range, write
/// protection. Returns the first failing sense.
fn write_checks(ex: &Exec<'_, '_>, lu: &LuInfo, lba: u64, blocks: u64) -> Result<(), Sense> {
    if cdb::u8_at(ex.cdb(), 1) & 0xe0 != 0 {
        return Err(Sense::invalid_field_in_cdb(1, Some(7)));
    }
    check_range(ex.nexus.num_blocks(lu), lba, blocks)?;
    if ex.nexus.write_protected(lu) {
        return Err(Sense::write_protected());
    }
    Ok(())
}

/// WRITE SAME(10/16) (SBC-4 §5.49/5.50): the one block of Data-Out written
/// over NUMBER OF LOGICAL BLOCKS blocks (0 = to the end of the LU). UNMAP
/// (only on a thin LU, else INVALID FIELD IN CDB): the blocks are unmapped
/// whatever the Data-Out holds (SBC-4 §5.50; libiscsi's UnmapUntilEnd
/// sends 0xFF and expects zeros back on an LBPRZ LU) — deallocated on a
/// backend that can ([`Job::deallocate`]), written with zeros otherwise.
/// NDOB (16 only; no Data-Out, zeros). ANCHOR → INVALID FIELD IN CDB (ANC_SUP 0); LBDATA/PBDATA →
/// INVALID FIELD IN CDB (obsolete); more than the Block Limits MAXIMUM
/// WRITE SAME LENGTH → INVALID FIELD IN CDB at the length field.
pub(crate) fn write_same(ex: &mut Exec<'_, '_>) -> Outcome {
    let lu = lu!(ex);
    let sixteen = cdb::u8_at(ex.cdb(), 0) == 0x93;
    let b1 = cdb::u8_at(ex.cdb(), 1);
    let (lba, blocks, len_field) = if sixteen {
        (cdb::be64(ex.cdb(), 2), u64::from(cdb::be32(ex.cdb(), 10)), 10)
    } else {
        (u64::from(cdb::be32(ex.cdb(), 2)), u64::from(cdb::be16(ex.cdb(), 7)), 7)
    };
    let unmap = b1 & 0x08 != 0;
    let ndob = sixteen && b1 & 0x01 != 0;
    if !ndob && ex.ctx.edtl != lu.block_size {
        // The Data-Out is exactly one logical block (SBC-4 §5.49); a
        // different EDTL is an initiator error, not a residual.
        return cc(Sense::invalid_field_in_cdb(len_field, None));
    }
    if b1 & 0x10 != 0 {
        return cc(Sense::invalid_field_in_cdb(1, Some(4)));
    }
    if b1 & 0x06 != 0 {
        return cc(Sense::invalid_field_in_cdb(1, Some(2)));
    }
    if unmap && !lu.thin {
        return cc(Sense::invalid_field_in_cdb(1, Some(3)));
    }
    let blocks = if blocks == 0 { ex.nexus.num_blocks(lu).saturating_sub(lba) } else { blocks };
    let (_, _, ws_max, _) = limits(lu);
    if blocks > ws_max {
        return cc(Sense::invalid_field_in_cdb(len_field, None));
    }
    if let Err(s) = write_checks(ex, lu, lba, blocks) {
        return cc(s);
    }
    if blocks == 0 {
        return Outcome::good(0);
    }
    let data_out = if ndob { 0 } else { lu.block_size };
    let ranges = vec![(lba, blocks)];
    if unmap && lu.deallocate {
        return Outcome::Job(Box::new(Job::deallocate(ranges, lu.block_size, data_out)));
    }
    let pattern = if ndob || unmap { Pattern::Zeros } else { Pattern::DataBlock };
    Outcome::Job(Box::new(Job::fill(ranges, pattern, lu.block_size, data_out)))
}

/// UNMAP (SBC-4 §5.32), thin LUs only (else INVALID COMMAND OPERATION
/// CODE): the parameter list's block descriptors are checked (count ≤
/// [`UNMAP_DESCRIPTORS_MAX`], each in range, total ≤ the Block Limits
/// MAXIMUM UNMAP LBA COUNT) and then deallocated where the backend can
/// ([`LuInfo::deallocate`]), zeroed otherwise. A parameter list length of 0
/// → GOOD; 1..7 → PARAMETER LIST LENGTH ERROR; ANCHOR → INVALID FIELD IN
/// CDB (ANC_SUP 0).
pub(crate) fn unmap(ex: &mut Exec<'_, '_>) -> Outcome {
    let lu = lu!(ex);
    if !lu.thin {
        return cc(Sense::invalid_opcode());
    }
    if cdb::u8_at(ex.cdb(), 1) & 0x01 != 0 {
        return cc(Sense::invalid_field_in_cdb(1, Some(0)));
    }
    let plen = usize::from(cdb::be16(ex.cdb(), 7));
    if plen == 0 {
        return Outcome::good(0);
    }
    if ex.nexus.write_protected(lu) {
        return cc(Sense::write_protected());
    }
    let p = ex.params;
    if plen < 8 || p.len() < 8 {
        return cc(Sense::parameter_list_length_error());
    }
    let p = prefix(p, plen);
    let bd_len = usize::from(cdb::be16(p, 2));
    let (max_lbas, max_desc, _, _) = limits(lu);
    let n = bd_len / 16;
    if n > max_desc as usize {
        return cc(Sense::invalid_field_in_parameter_list(2, None));
    }
    let mut ranges = Vec::with_capacity(n);
    let mut total = 0u64;
    for i in 0..n {
        let at = 8 + i * 16;
        if at + 16 > p.len() {
            return cc(Sense::parameter_list_length_error());
        }
        let lba = cdb::be64(p, at);
        let count = u64::from(cdb::be32(p, at + 8));
        if let Err(s) = check_range(ex.nexus.num_blocks(lu), lba, count) {
            return cc(s);
        }
        total += count;
        if count > 0 {
            ranges.push((lba, count));
        }
    }
    if total > u64::from(max_lbas) {
        return cc(Sense::invalid_field_in_parameter_list(8, None));
    }
    if ranges.is_empty() {
        return Outcome::good(0);
    }
    if lu.deallocate {
        return Outcome::Job(Box::new(Job::deallocate(ranges, lu.block_size, 0)));
    }
    Outcome::Job(Box::new(Job::fill(ranges, Pattern::Zeros, lu.block_size, 0)))
}

/// COMPARE AND WRITE (SBC-4 §5.3): NUMBER OF LOGICAL BLOCKS (byte 13) up to
/// [`CAW_BLOCKS_MAX`]; 0 → GOOD without Data-Out, INVALID FIELD IN CDB
/// byte 13 with Data-Out (a count of 256 wrapped to 0). The
/// Data-Out is the verify data then the write data. On a mismatch:
/// MISCOMPARE, MISCOMPARE DURING VERIFY OPERATION with INFORMATION = offset
/// of the first differing byte; nothing is written.
pub(crate) fn compare_and_write(ex: &mut Exec<'_, '_>) -> Outcome {
    let lu = lu!(ex);
    let lba = cdb::be64(ex.cdb(), 2);
    let blocks = cdb::u8_at(ex.cdb(), 13);
    // The one-byte count cannot pass CAW_BLOCKS_MAX (255); 0 blocks with
    // Data-Out is what a count of 256 wraps to.
    if blocks == 0 && ex.ctx.edtl != 0 {
        return cc(Sense::invalid_field_in_cdb(13, None));
    }
    if let Err(s) = write_checks(ex, lu, lba, u64::from(blocks)) {
        return cc(s);
    }
    if blocks == 0 {
        return Outcome::good(0);
    }
    if ex.ctx.edtl != 2 * u32::from(blocks) * lu.block_size {
        // The Data-Out is the verify and the write data, nothing else.
        return cc(Sense::invalid_field_in_cdb(13, None));
    }
    let fua = cdb::u8_at(ex.cdb(), 1) & 0x08 != 0 || !ex.nexus.write_cache_enabled(lu);
    let shared = ex.nexus.shared();
    Outcome::Job(Box::new(Job::compare_and_write(lba, u64::from(blocks), lu.block_size, shared, fua)))
}

/// ORWRITE(16) (SBC-4 §5.9): medium := medium OR Data-Out, under the CAW
/// range lock. ORPROTECT ≠ 0 → INVALID FIELD IN CDB; transfer length as for
/// WRITE.
pub(crate) fn or_write(ex: &mut Exec<'_, '_>) -> Outcome {
    let lu = lu!(ex);
    let lba = cdb::be64(ex.cdb(), 2);
    let blocks = cdb::be32(ex.cdb(), 10);
    if cdb::u8_at(ex.cdb(), 1) & 0xe0 != 0 {
        return cc(Sense::invalid_field_in_cdb(1, Some(7)));
    }
    if blocks > max_transfer_blocks(lu.block_size) {
        return cc(Sense::invalid_field_in_cdb(10, None));
    }
    if let Err(s) = write_checks(ex, lu, lba, u64::from(blocks)) {
        return cc(s);
    }
    if blocks == 0 {
        return Outcome::good(0);
    }
    let fua = cdb::u8_at(ex.cdb(), 1) & 0x08 != 0 || !ex.nexus.write_cache_enabled(lu);
    let shared = ex.nexus.shared();
    Outcome::Job(Box::new(Job::or_write(lba, u64::from(blocks), lu.block_size, shared, fua)))
}

/// WRITE ATOMIC(16) (SBC-4 §5.48): TRANSFER LENGTH (bytes 12..14) up to the
/// Block Limits MAXIMUM ATOMIC TRANSFER LENGTH (else INVALID FIELD IN CDB
/// byte 12); ATOMIC BOUNDARY ≠ 0 → INVALID FIELD IN CDB byte 10 (no
/// boundary support). One backend write, held back while a CAW or ORWRITE
/// holds an overlapping range.
pub(crate) fn write_atomic(ex: &mut Exec<'_, '_>) -> Outcome {
    let lu = lu!(ex);
    let lba = cdb::be64(ex.cdb(), 2);
    let boundary = cdb::be16(ex.cdb(), 10);
    let blocks = cdb::be16(ex.cdb(), 12);
    let (_, _, _, atomic_max) = limits(lu);
    if boundary != 0 {
        return cc(Sense::invalid_field_in_cdb(10, None));
    }
    if let Err(s) = write_checks(ex, lu, lba, u64::from(blocks)) {
        return cc(s);
    }
    if u32::from(blocks) > atomic_max {
        return cc(Sense::invalid_field_in_cdb(12, None));
    }
    if blocks == 0 {
        return Outcome::good(0);
    }
    let fua = cdb::u8_at(ex.cdb(), 1) & 0x08 != 0 || !ex.nexus.write_cache_enabled(lu);
    let shared = ex.nexus.shared();
    let bs = lu.block_size;
    let io = super::IoRequest {
        op: super::BackendOp::Write,
        offset: lba * u64::from(bs),
        len: u32::from(blocks) * bs,
        fua,
        verify: false,
    };
    Outcome::Job(Box::new(Job::gated_write(io, lba, u64::from(blocks), bs, shared)))
}

/// SANITIZE (SBC-4 §5.30). OVERWRITE: the parameter list (OVERWRITE COUNT
/// 1..=31 passes, INVERT and TEST 0, an initialization pattern of 1..=block
/// size bytes) is written over every block, pass after pass. As libiscsi
/// expects, every malformed parameter list, and reserved CDB bits, answer
/// INVALID FIELD IN CDB. BLOCK ERASE (only offered on an LU whose backend
/// deallocates, [`LuInfo::deallocate`]; no parameter list): every block is
/// deallocated and reads back as zeros (VPD B1h WABEREQ 01b), GET LBA
/// STATUS then reports the whole LU deallocated.
///
/// With a [`super::Sanitizer`] installed on the LU, the operation runs in
/// the background and outlives this command, resets and nexus loss (SBC-4
/// §4.11.2, see [`super::sanitize`]): IMMED = 1 answers GOOD at once,
/// IMMED = 0 waits for the end (GOOD, or MEDIUM ERROR / SANITIZE COMMAND
/// FAILED). Without one it runs inside the command. While it runs, other
/// commands get NOT READY, SANITIZE IN PROGRESS with its progress.
/// CRYPTO ERASE and EXIT FAILURE MODE are not supported (not in the command
/// table).
pub(crate) fn sanitize(ex: &mut Exec<'_, '_>) -> Outcome {
    let lu = lu!(ex);
    let b1 = cdb::u8_at(ex.cdb(), 1);
    let plen = usize::from(cdb::be16(ex.cdb(), 7));
    if b1 & 0x20 != 0 {
        return cc(Sense::invalid_field_in_cdb(1, Some(5))); // AUSE
    }
    if b1 & 0x40 != 0 {
        return cc(Sense::invalid_field_in_cdb(1, Some(6)));
    }
    if let Some(i) = (2..7).find(|&i| cdb::u8_at(ex.cdb(), i) != 0) {
        return cc(Sense::invalid_field_in_cdb(i as u16, None));
    }
    let bad = cc(Sense::invalid_field_in_cdb(7, None));
    if b1 & 0x1f == SA_BLOCK_ERASE {
        // SBC-4 §5.30.3: no parameter list.
        if plen != 0 {
            return bad;
        }
        if ex.nexus.write_protected(lu) {
            return cc(Sense::write_protected());
        }
        return start_sanitize(ex, lu, None, b1 & 0x80 != 0);
    }
    let p = ex.params;
    if plen < 5 || p.len() < plen || plen > 4 + lu.block_size as usize {
        return bad;
    }
    let n = usize::from(cdb::be16(p, 2));
    let Some(&b0) = p.first() else { return bad };
    if b0 & 0x1f == 0 || b0 & 0xe0 != 0 || n == 0 || n > lu.block_size as usize || 4 + n != plen {
        return bad;
    }
    let Some(pattern) = range(p, 4, n) else { return bad };
    if ex.nexus.write_protected(lu) {
        return cc(Sense::write_protected());
    }
    start_sanitize(ex, lu, Some((pattern.to_vec(), b0 & 0x1f)), b1 & 0x80 != 0)
}

/// SANITIZE service action BLOCK ERASE.
const SA_BLOCK_ERASE: u8 = 0x02;

/// Start a sanitize operation: an overwrite with (pattern, passes), or a
/// block erase (`None`). See [`sanitize`].
fn start_sanitize(ex: &mut Exec<'_, '_>, lu: &LuInfo, overwrite: Option<(Vec<u8>, u8)>, immed: bool) -> Outcome {
    let shared = ex.nexus.shared();
    let capacity = ex.nexus.num_blocks(lu);
    let Some(runner) = shared.sanitize.runner() else {
        let pattern = overwrite.map(|(bytes, _)| Pattern::Bytes(bytes));
        return Outcome::Job(Box::new(Job::sanitize(capacity, pattern, lu.block_size, shared)));
    };
    let erase = overwrite.is_none();
    let (pattern, passes) = overwrite.unwrap_or((Vec::new(), 1));
    let op = SanitizeOp { pattern, passes, block_size: lu.block_size, blocks: capacity, erase };
    if !shared.try_begin_sanitize() {
        // Another nexus started one since this command was checked.
        return cc(Sense::sanitize_in_progress(shared.sanitize.progress()));
    }
    let before = shared.sanitize.finished_count();
    if shared.sanitize.begin(&shared, &op).is_err() {
        // SBC-4 §4.11.2 wants it resumed after a restart: refuse rather
        // than start one that could not be recorded.
        shared.set_sanitizing(false);
        return cc(Sense::internal_target_failure());
    }
    if runner.start(op, shared.clone()).is_err() {
        // The runner logged why; nothing was written.
        shared.set_sanitizing(false);
        return cc(Sense::internal_target_failure());
    }
    if immed {
        return Outcome::good(0);
    }
    Outcome::Job(Box::new(Job::await_sanitize(before, shared)))
}
