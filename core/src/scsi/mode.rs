//! MODE SENSE(6/10) and MODE SELECT(6/10) (SPC-4), with the mode pages of a
//! direct-access block device:
//! - 01h Read-Write Error Recovery (SBC-4): all zero, nothing changeable;
//! - 08h Caching (SBC-4): WCE, changeable and saveable, LU-wide
//!   ([`super::LuShared`]; a change raises MODE PARAMETERS CHANGED on the
//!   other nexuses);
//! - 0Ah Control (SPC-4 §7.5.8): TST 001b (one task set per I_T nexus:
//!   ORDERED and HEAD OF QUEUE order commands of one connection), QUEUE
//!   ALGORITHM MODIFIER 1 (unrestricted reordering: backend I/O completes in
//!   any order), QERR
//!   00b, BUSY TIMEOUT PERIOD FFFFh (unlimited), D_SENSE changeable
//!   (per nexus), SWP and TAS (default 1) changeable and shared by every
//!   nexus of the LU
//!   ([`super::LuShared`]; a change raises MODE PARAMETERS CHANGED on the
//!   others);
//! - 1Ch Informational Exceptions Control (SPC-4): all zero.
//!
//! Saved values: MODE SELECT with SP = 1 saves WCE, SWP, TAS and D_SENSE for
//! the LU (written next to its state file when it has one, so they survive
//! a restart); page control 11b returns them (defaults where nothing was
//! saved); pages 08h and 0Ah carry PS = 1. A LOGICAL UNIT RESET restores
//! the saved values.

use super::cdb;
use super::commands::Exec;
use super::sense::Sense;
use super::writer::DataIn;
use super::{LuInfo, NexusState, Outcome, SavedMode};
use crate::bytes::prefix;

/// Page codes we implement, ascending (the order of "all pages").
const PAGES: [u8; 4] = [0x01, 0x08, 0x0a, 0x1c];
/// Largest page (Caching: 20 bytes).
const PAGE_MAX: usize = 20;

/// Page control (SPC-4 MODE SENSE): which values to return.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PageControl {
    Current,
    Changeable,
    Default,
    Saved,
}

/// Build mode page `code` into an array; returns the bytes and the page's
/// length including its 2-byte header, or `None` for a page we lack.
fn page(code: u8, pc: PageControl, lu: &LuInfo, nexus: &NexusState) -> Option<([u8; PAGE_MAX], usize)> {
    let mut p = [0u8; PAGE_MAX];
    let saved = nexus.link.as_ref().map(|l| l.shared.saved_mode()).unwrap_or_default();
    let len = match code {
        0x01 | 0x1c => 12,
        0x08 => {
            p[2] = match pc {
                PageControl::Current => wce(nexus.write_cache_enabled(lu)),
                PageControl::Default => wce(lu.write_cache),
                PageControl::Saved => wce(saved.wce.unwrap_or(lu.write_cache)),
                PageControl::Changeable => 0x04,
            };
            20
        }
        0x0a => {
            match pc {
                PageControl::Changeable => {
                    p[2] = 0x04; // D_SENSE
                    p[4] = 0x08; // SWP
                    p[5] = 0x40; // TAS
                }
                PageControl::Current | PageControl::Default | PageControl::Saved => {
                    p[2] = 0x20; // TST 001b: a task set per I_T nexus
                    let (d_sense, swp, tas) = match pc {
                        PageControl::Current => {
                            (nexus.d_sense, nexus.link.as_ref().is_some_and(|l| l.shared.swp()), nexus.tas())
                        }
                        PageControl::Saved => {
                            (saved.d_sense.unwrap_or(false), saved.swp.unwrap_or(false), saved.tas.unwrap_or(true))
                        }
                        _ => (false, false, true),
                    };
                    if d_sense {
                        p[2] |= 0x04;
                    }
                    if swp {
                        p[4] = 0x08; // SWP (shared by every nexus)
                    }
                    p[3] = 0x10; // QUEUE ALGORITHM MODIFIER 1, QERR 00b
                    if tas {
                        p[5] = 0x40; // TAS (shared by every nexus)
                    }
                    p[8] = 0xff; // BUSY TIMEOUT PERIOD: unlimited
                    p[9] = 0xff;
                }
            }
            12
        }
        _ => return None,
    };
    p[0] = code;
    p[1] = (len - 2) as u8;
    Some((p, len))
}

const fn wce(on: bool) -> u8 {
    if on {
        0x04
    } else {
        0
    }
}

/// MODE SENSE(6) (SPC-4).
pub(crate) fn mode_sense_6(ex: &mut Exec<'_, '_>) -> Outcome {
    mode_sense(ex, false)
}

/// MODE SENSE(10) (SPC-4).
pub(crate) fn mode_sense_10(ex: &mut Exec<'_, '_>) -> Outcome {
    mode_sense(ex, true)
}

/// MODE SENSE(6/10): mode parameter header, a block descriptor unless DBD
/// (short, 8 bytes, NUMBER OF LOGICAL BLOCKS capped at FFFFFFFFh; long, 16
/// bytes, with LLBAA in MODE SENSE(10)), then the page or all pages (3Fh).
/// The DEVICE-SPECIFIC PARAMETER (SBC-4) has WP for a read-only LU and
/// DPOFUA. SUBPAGE CODE 00h or FFh only, else INVALID FIELD IN CDB byte 3;
/// an unknown page → INVALID FIELD IN CDB byte 2 bit 5.
fn mode_sense(ex: &mut Exec<'_, '_>, ten: bool) -> Outcome {
    let Some(lu) = ex.ctx.lu else {
        return Outcome::check_condition(Sense::lun_not_supported());
    };
    let cdb = ex.ctx.cdb;
    let b1 = cdb::u8_at(cdb, 1);
    let dbd = b1 & 0x08 != 0;
    let llbaa = ten && b1 & 0x10 != 0;
    let pc = match cdb::u8_at(cdb, 2) >> 6 {
        0 => PageControl::Current,
        1 => PageControl::Changeable,
        2 => PageControl::Default,
        _ => PageControl::Saved,
    };
    let code = cdb::u8_at(cdb, 2) & 0x3f;
    let subpage = cdb::u8_at(cdb, 3);
    let alloc = if ten { usize::from(cdb::be16(cdb, 7)) } else { usize::from(cdb::u8_at(cdb, 4)) };
    let pages: &[u8] = if code == 0x3f {
        &PAGES
    } else {
        match PAGES.iter().position(|&p| p == code).and_then(|i| PAGES.get(i..=i)) {
            Some(one) => one,
            None => return Outcome::check_condition(Sense::invalid_field_in_cdb(2, Some(5))),
        }
    };
    if subpage != 0x00 && subpage != 0xff {
        return Outcome::check_condition(Sense::invalid_field_in_cdb(3, None));
    }

    let dsp = if ex.nexus.write_protected(lu) { 0x80 } else { 0 } | 0x10; // WP, DPOFUA
    let bd_len: u16 = match (dbd, llbaa) {
        (true, _) => 0,
        (false, true) => 16,
        (false, false) => 8,
    };
    let mut w = DataIn::new(ex.buf, alloc);
    if ten {
        w.u16(0); // MODE DATA LENGTH, patched
        w.u8(0); // MEDIUM TYPE
        w.u8(dsp);
        w.u8(u8::from(bd_len == 16)); // LONGLBA
        w.u8(0);
        w.u16(bd_len);
    } else {
        w.u8(0); // MODE DATA LENGTH, patched
        w.u8(0);
        w.u8(dsp);
        w.u8(bd_len as u8);
    }
    match bd_len {
        8 => {
            w.u32(u32::try_from(ex.nexus.num_blocks(lu)).unwrap_or(u32::MAX));
            w.u8(0);
            w.bytes(&lu.block_size.to_be_bytes()[1..]);
        }
        16 => {
            w.u64(ex.nexus.num_blocks(lu));
            w.u32(0);
            w.u32(lu.block_size);
        }
        _ => {}
    }
    for &code in pages {
        if let Some((mut p, n)) = page(code, pc, lu, ex.nexus) {
            if matches!(code, 0x08 | 0x0a) {
                p[0] |= 0x80; // PS: saveable
            }
            w.bytes(prefix(&p, n));
        }
    }
    let total = w.pos();
    if ten {
        w.patch_u16(0, (total - 2) as u16);
    } else {
        w.patch(0, &[(total - 1) as u8]);
    }
    Outcome::good(w.data_len())
}

/// MODE SELECT(6) (SPC-4).
pub(crate) fn mode_select_6(ex: &mut Exec<'_, '_>) -> Outcome {
    mode_select(ex, false)
}

/// MODE SELECT(10) (SPC-4).
pub(crate) fn mode_select_10(ex: &mut Exec<'_, '_>) -> Outcome {
    mode_select(ex, true)
}

/// MODE SELECT(6/10): SP = 1 also saves the values of the pages in the
/// list (LU-wide; next to the LU's state file when it has one); a
/// parameter list with PF = 0 → INVALID FIELD IN CDB byte 1 bit 4. The
/// parameter list: a header, block descriptors that must repeat the current
/// block length (and the current or a zero block count), then pages; only
/// WCE (Caching), D_SENSE, SWP and TAS (Control) may differ from the current values,
/// anything else → INVALID FIELD IN PARAMETER LIST with a field pointer to
/// the first wrong byte and bit. A list cut short → PARAMETER LIST LENGTH
/// ERROR. Nothing changes unless the whole list is valid.
fn mode_select(ex: &mut Exec<'_, '_>, ten: bool) -> Outcome {
    let Some(lu) = ex.ctx.lu else {
        return Outcome::check_condition(Sense::lun_not_supported());
    };
    let cdb = ex.ctx.cdb;
    let b1 = cdb::u8_at(cdb, 1);
    let declared = if ten { usize::from(cdb::be16(cdb, 7)) } else { usize::from(cdb::u8_at(cdb, 4)) };
    let save = b1 & 0x01 != 0;
    if declared == 0 {
        return Outcome::good(0);
    }
    if b1 & 0x10 == 0 {
        return Outcome::check_condition(Sense::invalid_field_in_cdb(1, Some(4)));
    }
    if ex.params.len() < declared {
        return Outcome::check_condition(Sense::parameter_list_length_error());
    }
    let p = prefix(ex.params, declared);
    match parse_mode_select(p, ten, lu, ex.nexus) {
        Ok(change) => {
            let shared = ex.nexus.shared();
            let from = ex.nexus.link_id();
            if let Some(w) = change.wce {
                ex.nexus.write_cache = Some(w);
                shared.set_wce(w, from);
            }
            if let Some(d) = change.d_sense {
                ex.nexus.d_sense = d;
            }
            if let Some(swp) = change.swp {
                shared.set_swp(swp, from);
            }
            if let Some(tas) = change.tas {
                shared.set_tas(tas, from);
            }
            if save {
                let m = SavedMode { wce: change.wce, swp: change.swp, d_sense: change.d_sense, tas: change.tas };
                if shared.save_mode(m).is_err() {
                    return Outcome::check_condition(Sense::new(
                        super::sense::SenseKey::HARDWARE_ERROR,
                        super::sense::Asc::INTERNAL_TARGET_FAILURE,
                    ));
                }
            }
            Outcome::good(0)
        }
        Err(s) => Outcome::check_condition(s),
    }
}

/// What a valid MODE SELECT parameter list changes.
#[derive(Default)]
struct Change {
    wce: Option<bool>,
    d_sense: Option<bool>,
    swp: Option<bool>,
    tas: Option<bool>,
}

fn bad(at: usize, bit: Option<u8>) -> Sense {
    Sense::invalid_field_in_parameter_list(u16::try_from(at).unwrap_or(u16::MAX), bit)
}

fn parse_mode_select(p: &[u8], ten: bool, lu: &LuInfo, nexus: &NexusState) -> Result<Change, Sense> {
    let hdr = if ten { 8 } else { 4 };
    if p.len() < hdr {
        return Err(Sense::parameter_list_length_error());
    }
    let (bd_len, bd_len_at, long) = if ten {
        (usize::from(cdb::be16(p, 6)), 6, cdb::u8_at(p, 4) & 0x01 != 0)
    } else {
        (usize::from(cdb::u8_at(p, 3)), 3, false)
    };
    let desc_len = if long { 16 } else { 8 };
    if bd_len % desc_len != 0 {
        return Err(bad(bd_len_at, None));
    }
    if p.len() < hdr + bd_len {
        return Err(Sense::parameter_list_length_error());
    }
    let mut at = hdr;
    while at < hdr + bd_len {
        let (blocks, current, len_at, block_len) = if long {
            (cdb::be64(p, at), nexus.num_blocks(lu), at + 12, cdb::be32(p, at + 12))
        } else {
            (u64::from(cdb::be32(p, at)), nexus.num_blocks(lu).min(u64::from(u32::MAX)), at + 5, cdb::be24(p, at + 5))
        };
        if blocks != 0 && blocks != current {
            return Err(bad(at, None));
        }
        if block_len != lu.block_size {
            return Err(bad(len_at, None));
        }
        at += desc_len;
    }
    let mut change = Change::default();
    let mut rest = p.get(at..).unwrap_or_default();
    while !rest.is_empty() {
        let [b0, b1, ..] = *rest else {
            return Err(Sense::parameter_list_length_error());
        };
        if b0 & 0x40 != 0 {
            return Err(bad(at, Some(6))); // SPF: we have no subpages
        }
        let code = b0 & 0x3f;
        let Some((cur, n)) = page(code, PageControl::Current, lu, nexus) else {
            return Err(bad(at, Some(5)));
        };
        if usize::from(b1) + 2 != n {
            return Err(bad(at + 1, None));
        }
        let Some((pg, tail)) = rest.split_at_checked(n) else {
            return Err(Sense::parameter_list_length_error());
        };
        let changeable = page(code, PageControl::Changeable, lu, nexus).map_or([0; PAGE_MAX], |c| c.0);
        for (i, ((x, c), ch)) in pg.iter().zip(cur.iter()).zip(changeable.iter()).enumerate().skip(2) {
            let diff = (x ^ c) & !ch;
            if diff != 0 {
                return Err(bad(at + i, Some(7 - diff.leading_zeros() as u8)));
            }
        }
        match code {
            0x08 => change.wce = Some(cdb::u8_at(pg, 2) & 0x04 != 0),
            0x0a => {
                change.d_sense = Some(cdb::u8_at(pg, 2) & 0x04 != 0);
                change.swp = Some(cdb::u8_at(pg, 4) & 0x08 != 0);
                change.tas = Some(cdb::u8_at(pg, 5) & 0x40 != 0);
            }
            _ => {}
        }
        at += n;
        rest = tail;
    }
    Ok(change)
}
