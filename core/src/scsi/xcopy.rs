//! EXTENDED COPY (LID1) and RECEIVE COPY RESULTS (SPC-4 §6.4, §6.18), as
//! VMware's clone (VAAI XCOPY) uses them: identification CSCD descriptors
//! (E4h) that name this LU by its NAA designator, and block-to-block
//! segment descriptors (02h). The copy runs as a [`Job`] (read a chunk,
//! write it) within the LU. Copies between LUs, inline data and the other
//! descriptor types are not supported.
//!
//! RECEIVE COPY RESULTS COPY STATUS reports the last [`COPY_RESULTS_MAX`]
//! copies of the I_T nexus (held list identifiers) as completed: the copy's
//! own status carries any failure, and the copy has finished by the time
//! its status is sent.

use super::cdb;
use super::commands::{check_range, lu, Exec};
use super::inquiry::naa_designator;
use super::job::Job;
use super::sense::{Asc, Sense, SenseKey};
use super::writer::DataIn;
use super::Outcome;

/// MAXIMUM CSCD DESCRIPTOR COUNT.
pub const CSCD_MAX: u16 = 2;
/// MAXIMUM SEGMENT DESCRIPTOR COUNT.
pub const SEGMENTS_MAX: u16 = 8;
/// MAXIMUM DESCRIPTOR LIST LENGTH (bytes).
pub const DESCRIPTOR_LIST_MAX: u32 = 1024;
/// Copies whose results a nexus keeps for RECEIVE COPY RESULTS.
pub const COPY_RESULTS_MAX: usize = 16;
/// Largest number of blocks one segment may copy.
const SEGMENT_BLOCKS_MAX: u32 = 65_535;

fn cc(s: Sense) -> Outcome {
    Outcome::check_condition(s)
}

fn copy_aborted(asc: Asc) -> Outcome {
    cc(Sense::new(SenseKey::COPY_ABORTED, asc))
}

fn param(asc: u16) -> Outcome {
    cc(Sense::new(SenseKey::ILLEGAL_REQUEST, Asc(asc)))
}

/// Parameter list length of an EXTENDED COPY CDB (bytes 10..14).
pub(crate) fn param_len(cdb: &[u8]) -> u32 {
    cdb::be32(cdb, 10)
}

/// EXTENDED COPY (LID1). Checks, in order: an empty list → GOOD; a list
/// shorter than its header or than the lengths it declares → PARAMETER
/// LIST LENGTH ERROR; descriptor lists longer than [`DESCRIPTOR_LIST_MAX`]
/// → PARAMETER LIST LENGTH ERROR; more than [`CSCD_MAX`] CSCD or
/// [`SEGMENTS_MAX`] segment descriptors → TOO MANY TARGET / SEGMENT
/// DESCRIPTORS (26h/06h, 26h/08h); a CSCD type other than E4h → 26h/07h; a
/// segment type other than 02h → 26h/09h; a CSCD that does not name this LU,
/// or a segment index past the CSCD list → COPY ABORTED, COPY TARGET DEVICE
/// NOT REACHABLE (0Dh/02h); a segment range outside the LU → COPY ABORTED
/// (LOGICAL BLOCK ADDRESS OUT OF RANGE is not in the COPY ABORTED set
/// initiators check; we send 00h/00h with the key); a write-protected LU →
/// DATA PROTECT.
pub(crate) fn extended_copy(ex: &mut Exec<'_, '_>) -> Outcome {
    let lu = lu!(ex);
    let plen = param_len(ex.cdb()) as usize;
    if plen == 0 {
        return Outcome::good(0);
    }
    let p = ex.params;
    if plen < 16 || p.len() < plen {
        return cc(Sense::parameter_list_length_error());
    }
    let list_id = cdb::u8_at(p, 0);
    let usage = (cdb::u8_at(p, 1) >> 3) & 0x03;
    if usage == 0x03 {
        return cc(Sense::invalid_field_in_parameter_list(1, Some(4)));
    }
    let cscd_len = usize::from(cdb::be16(p, 2));
    let seg_len = cdb::be32(p, 8) as usize;
    let inline = cdb::be32(p, 12) as usize;
    if 16 + cscd_len + seg_len + inline > plen {
        return cc(Sense::parameter_list_length_error());
    }
    if cscd_len + seg_len > DESCRIPTOR_LIST_MAX as usize {
        return cc(Sense::parameter_list_length_error());
    }
    if inline != 0 {
        return cc(Sense::invalid_field_in_parameter_list(12, None));
    }
    let ncscd = cscd_len / 32;
    if ncscd > usize::from(CSCD_MAX) {
        return param(0x2606);
    }
    // CSCD descriptors: identification (E4h) of this LU only.
    let me = naa_designator(lu);
    let mut reachable = [false; CSCD_MAX as usize];
    let descs = p.get(16..).unwrap_or_default().chunks_exact(32);
    for (r, d) in reachable.iter_mut().zip(descs).take(ncscd) {
        let Some(d) = d.first_chunk::<32>() else { break };
        if d[0] != 0xE4 {
            return param(0x2607);
        }
        let dlen = usize::from(d[7]);
        *r = d[1] & 0x1f == 0 && dlen == 16 && d[4..8] == me[..4] && d[8..24] == me[4..];
    }
    // Segment descriptors.
    let seg_at = 16 + cscd_len;
    let mut segs = Vec::new();
    let mut at = seg_at;
    while at + 4 <= seg_at + seg_len {
        if segs.len() >= usize::from(SEGMENTS_MAX) {
            return param(0x2608);
        }
        let ty = cdb::u8_at(p, at);
        let dlen = usize::from(cdb::be16(p, at + 2)) + 4;
        if ty != 0x02 {
            return param(0x2609);
        }
        if dlen != 28 || at + dlen > seg_at + seg_len {
            return cc(Sense::invalid_field_in_parameter_list((at + 2) as u16, None));
        }
        let src = usize::from(cdb::be16(p, at + 4));
        let dst = usize::from(cdb::be16(p, at + 6));
        let blocks = u32::from(cdb::be16(p, at + 10));
        let src_lba = cdb::be64(p, at + 12);
        let dst_lba = cdb::be64(p, at + 20);
        segs.push((src, dst, blocks, src_lba, dst_lba));
        at += dlen;
    }
    // Count the segments before judging them (TOO MANY wins over contents).
    let mut out = Vec::with_capacity(segs.len());
    for (src, dst, blocks, src_lba, dst_lba) in segs {
        let reach = |i: usize| i < ncscd && reachable.get(i).copied().unwrap_or(false);
        if !reach(src) || !reach(dst) {
            return copy_aborted(Asc::COPY_TARGET_DEVICE_NOT_REACHABLE);
        }
        if blocks > SEGMENT_BLOCKS_MAX
            || check_range(ex.nexus.num_blocks(lu), src_lba, u64::from(blocks)).is_err()
            || check_range(ex.nexus.num_blocks(lu), dst_lba, u64::from(blocks)).is_err()
        {
            return copy_aborted(Asc::NO_ADDITIONAL_SENSE);
        }
        if blocks > 0 {
            out.push((src_lba, dst_lba, u64::from(blocks)));
        }
    }
    if ex.nexus.write_protected(lu) {
        return cc(Sense::write_protected());
    }
    let n = out.len() as u16;
    if usage != 0x02 {
        // Held results (LIST ID USAGE 00b/01b): remember for RECEIVE COPY RESULTS.
        let r = &mut ex.nexus.copy_results;
        r.retain(|&(id, _)| id != list_id);
        if r.len() >= COPY_RESULTS_MAX {
            r.remove(0);
        }
        r.push((list_id, n));
    }
    if out.is_empty() {
        return Outcome::good(0);
    }
    Outcome::Job(Box::new(Job::copy(out, lu.block_size)))
}

/// RECEIVE COPY RESULTS (SPC-4 §6.18): COPY STATUS (00h) of a held list
/// identifier of this nexus (unknown → INVALID FIELD IN CDB byte 2) and
/// OPERATING PARAMETERS (03h).
pub(crate) fn receive_copy_results(ex: &mut Exec<'_, '_>) -> Outcome {
    let lu = lu!(ex);
    let sa = cdb::service_action(ex.cdb());
    let list_id = cdb::u8_at(ex.cdb(), 2);
    let alloc = cdb::be32(ex.cdb(), 10) as usize;
    let mut w = DataIn::new(ex.buf, alloc);
    if sa == 0x00 {
        let Some(&(_, segs)) = ex.nexus.copy_results.iter().find(|r| r.0 == list_id) else {
            return cc(Sense::invalid_field_in_cdb(2, None));
        };
        w.u32(8); // AVAILABLE DATA
        w.u8(0x00); // HDD 0, COPY MANAGER STATUS: completed without errors
        w.u16(segs); // SEGMENTS PROCESSED
        w.u8(0); // TRANSFER COUNT UNITS: bytes
        w.u32(0); // TRANSFER COUNT
        return Outcome::good(w.data_len());
    }
    w.u32(0); // AVAILABLE DATA, patched
    w.u8(0); // SNLID 0
    w.zeros(3);
    w.u16(CSCD_MAX);
    w.u16(SEGMENTS_MAX);
    w.u32(DESCRIPTOR_LIST_MAX);
    w.u32(SEGMENT_BLOCKS_MAX * lu.block_size); // MAXIMUM SEGMENT LENGTH
    w.u32(0); // MAXIMUM INLINE DATA LENGTH
    w.u32(0); // HELD DATA LIMIT
    w.u32(0); // MAXIMUM STREAM DEVICE TRANSFER SIZE
    w.u16(0);
    w.u16(1); // TOTAL CONCURRENT COPIES
    w.u8(1); // MAXIMUM CONCURRENT COPIES
    w.u8(lu.block_size.trailing_zeros() as u8); // DATA SEGMENT GRANULARITY (log2)
    w.u8(0); // INLINE DATA GRANULARITY
    w.u8(0); // HELD DATA GRANULARITY
    w.zeros(3);
    w.u8(2); // IMPLEMENTED DESCRIPTOR LIST LENGTH
    w.u8(0x02); // block → block
    w.u8(0xE4); // identification CSCD
    let total = w.pos();
    w.patch_u32(0, (total - 4) as u32);
    Outcome::good(w.data_len())
}
