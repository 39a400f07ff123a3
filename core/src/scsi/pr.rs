//! Reservations: PERSISTENT RESERVE IN / OUT (SPC-4 §5.13, §6.15, §6.16)
//! and the SPC-2 RESERVE / RELEASE (6/10), with the access rules that turn
//! a command into RESERVATION CONFLICT.
//!
//! The state (`PrState`) lives in the LU's [`LuShared`] behind its
//! mutex; every function here runs with that lock held and never does I/O
//! except `PrState::save` (APTPL).
//!
//! Decisions:
//! - scope is LU_SCOPE only (others → INVALID FIELD IN CDB byte 2);
//! - PREEMPT AND ABORT removes registrations like PREEMPT and aborts every
//!   task of the preempted I_T nexuses on the LU, on every shard
//!   (`LuShared::abort_tasks_of`; TASK ABORTED or no response as TAS
//!   says); its own status does not wait for those tasks to end;
//! - registrations survive I_T nexus loss and LUN reset; the SPC-2
//!   reservation does not (SPC-2 §5.5.1);
//! - the APTPL state file holds registrations, the reservation and the
//!   generation, written atomically; without APTPL it is removed.

use crate::bytes::range;
use std::fmt::Write as _;
use std::path::Path;

use super::cdb;
use super::commands::Exec;
use super::lu_shared::{ItNexus, LuShared, LuState};
use super::sense::{Asc, Sense, SenseKey};
use super::writer::DataIn;
use super::{Outcome, ScsiStatus};

/// WRITE EXCLUSIVE.
pub const WE: u8 = 1;
/// EXCLUSIVE ACCESS.
pub const EA: u8 = 3;
/// WRITE EXCLUSIVE – REGISTRANTS ONLY.
pub const WE_RO: u8 = 5;
/// EXCLUSIVE ACCESS – REGISTRANTS ONLY.
pub const EA_RO: u8 = 6;
/// WRITE EXCLUSIVE – ALL REGISTRANTS.
pub const WE_AR: u8 = 7;
/// EXCLUSIVE ACCESS – ALL REGISTRANTS.
pub const EA_AR: u8 = 8;

fn valid_type(t: u8) -> bool {
    matches!(t, WE | EA | WE_RO | EA_RO | WE_AR | EA_AR)
}

fn all_registrants(t: u8) -> bool {
    matches!(t, WE_AR | EA_AR)
}

/// One registration.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Reg {
    pub(crate) it: ItNexus,
    pub(crate) key: u64,
    pub(crate) all_tg_pt: bool,
}

impl Reg {
    fn matches(&self, it: &ItNexus) -> bool {
        self.it.initiator == it.initiator && self.it.isid == it.isid && (self.all_tg_pt || self.it.tpgt == it.tpgt)
    }
}

/// The persistent reservation.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Reservation {
    pub(crate) holder: ItNexus,
    pub(crate) key: u64,
    pub(crate) rtype: u8,
}

/// Persistent reservation state of one LU.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub(crate) struct PrState {
    pub(crate) generation: u32,
    pub(crate) regs: Vec<Reg>,
    pub(crate) reservation: Option<Reservation>,
    pub(crate) aptpl: bool,
}

/// Most registrations kept per LU.
const REGS_MAX: usize = 256;

impl PrState {
    fn reg_of(&self, it: &ItNexus) -> Option<usize> {
        self.regs.iter().position(|r| r.matches(it))
    }

    /// The reservation key of registration `i`.
    fn key_at(&self, i: usize) -> Option<u64> {
        self.regs.get(i).map(|r| r.key)
    }

    /// Is `it` a reservation holder (SPC-4 §5.13.10: every registrant for
    /// the all-registrants types)?
    fn is_holder(&self, it: &ItNexus) -> bool {
        match &self.reservation {
            None => false,
            Some(r) if all_registrants(r.rtype) => self.reg_of(it).is_some(),
            Some(r) => r.holder.initiator == it.initiator && r.holder.isid == it.isid && r.holder.tpgt == it.tpgt,
        }
    }

    /// Text form of the state file.
    fn to_text(&self) -> String {
        let mut s = String::from("shardtgt-pr 1\n");
        let _ = writeln!(s, "generation {}", self.generation);
        for r in &self.regs {
            let _ = writeln!(
                s,
                "reg {:x} {:x} {} {} {}",
                r.key,
                r.it.isid,
                r.it.tpgt,
                u8::from(r.all_tg_pt),
                r.it.initiator
            );
        }
        if let Some(r) = &self.reservation {
            let _ =
                writeln!(s, "res {:x} {} {:x} {} {}", r.key, r.rtype, r.holder.isid, r.holder.tpgt, r.holder.initiator);
        }
        s
    }

    fn from_text(text: &str) -> Option<PrState> {
        let mut lines = text.lines();
        if lines.next()? != "shardtgt-pr 1" {
            return None;
        }
        let mut st = PrState { aptpl: true, ..PrState::default() };
        for line in lines {
            let f: Vec<&str> = line.splitn(6, ' ').collect();
            match f.as_slice() {
                ["generation", g] => st.generation = g.parse().ok()?,
                ["reg", key, isid, tpgt, all, name] => st.regs.push(Reg {
                    it: ItNexus {
                        initiator: (*name).to_string(),
                        isid: u64::from_str_radix(isid, 16).ok()?,
                        tpgt: tpgt.parse().ok()?,
                    },
                    key: u64::from_str_radix(key, 16).ok()?,
                    all_tg_pt: *all == "1",
                }),
                ["res", key, ty, isid, tpgt, name] => {
                    st.reservation = Some(Reservation {
                        holder: ItNexus {
                            initiator: (*name).to_string(),
                            isid: u64::from_str_radix(isid, 16).ok()?,
                            tpgt: tpgt.parse().ok()?,
                        },
                        key: u64::from_str_radix(key, 16).ok()?,
                        rtype: ty.parse().ok().filter(|t| valid_type(*t))?,
                    })
                }
                [""] => {}
                _ => return None,
            }
        }
        Some(st)
    }

    /// Restore the state saved with APTPL at `path` (None when absent or
    /// unreadable).
    pub(crate) fn load(path: &Path) -> Option<PrState> {
        PrState::from_text(&std::fs::read_to_string(path).ok()?)
    }

    /// Persist: with APTPL write temp file, fsync, rename over `path`,
    /// fsync the directory; without APTPL remove `path`.
    pub(crate) fn save(&self, path: &Path) -> std::io::Result<()> {
        if self.aptpl {
            return super::lu_shared::write_atomic(path, self.to_text().as_bytes());
        }
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::File::open(dir)?.sync_all()
    }
}

/// How a command is treated by reservations (SPC-4 §5.13.1 table 60 and
/// the SBC-4 table of commands allowed in the presence of reservations).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum AccessClass {
    /// Never conflicts (INQUIRY, REPORT LUNS, REQUEST SENSE, REPORT TARGET
    /// PORT GROUPS, REPORT SUPPORTED ..., PERSISTENT RESERVE IN, TEST UNIT
    /// READY, READ CAPACITY).
    Allowed,
    /// Reads the medium or LU state (READ, VERIFY, MODE SENSE, ...).
    Read,
    /// Changes the medium or LU state.
    Write,
    /// RELEASE(6/10): never conflicts with an SPC-2 reservation.
    Release,
    /// PERSISTENT RESERVE OUT: its own rules, but an SPC-2 reservation of
    /// another nexus conflicts (SPC-4 §5.13.3).
    PrOut,
}

/// Does a command of class `class` from `it` conflict with the LU's
/// reservations? Called with the lock held, only when [`LuShared::reserved`].
pub(crate) fn conflicts(st: &LuState, it: &ItNexus, class: AccessClass) -> bool {
    if class == AccessClass::Allowed {
        return false;
    }
    if let Some(h) = &st.spc2 {
        // SPC-2 §7.21: every command but the exempt ones and RELEASE conflicts.
        return h != it && class != AccessClass::Release;
    }
    let Some(res) = &st.pr.reservation else { return false };
    if class == AccessClass::PrOut || st.pr.is_holder(it) {
        return false;
    }
    let registered = st.pr.reg_of(it).is_some();
    match res.rtype {
        WE => class != AccessClass::Read,
        EA => true,
        WE_RO | WE_AR => !registered && class != AccessClass::Read,
        EA_RO | EA_AR => !registered,
        _ => false,
    }
}

fn conflict() -> Outcome {
    Outcome::Done { status: ScsiStatus::RESERVATION_CONFLICT, sense: None, data_len: 0 }
}

/// RESERVE(6/10) (SPC-2 §7.21): an LU-wide reservation for this nexus.
/// Conflicts with another nexus's SPC-2 reservation or with a persistent
/// reservation or registrations (SPC-4 §5.13.3). The 10-byte form's
/// third-party fields are not supported (INVALID FIELD IN CDB byte 1).
pub(crate) fn reserve(ex: &mut Exec<'_, '_>) -> Outcome {
    if cdb::u8_at(ex.cdb(), 0) == 0x56 && cdb::u8_at(ex.cdb(), 1) & 0x12 != 0 {
        return Outcome::check_condition(Sense::invalid_field_in_cdb(1, Some(4)));
    }
    let shared = ex.nexus.shared();
    let it = ex.nexus.it.clone();
    let mut st = shared.lock();
    if st.pr.reservation.is_some() || !st.pr.regs.is_empty() {
        return conflict();
    }
    match &st.spc2 {
        Some(h) if *h != it => return conflict(),
        _ => st.spc2 = Some(it),
    }
    shared.publish_reserved(&st);
    Outcome::good(0)
}

/// RELEASE(6/10) (SPC-2 §7.19): drop this nexus's SPC-2 reservation; GOOD
/// when it holds none. With a persistent reservation present the command
/// conflicts only where the reservation says so (checked before dispatch).
pub(crate) fn release(ex: &mut Exec<'_, '_>) -> Outcome {
    let shared = ex.nexus.shared();
    let it = ex.nexus.it.clone();
    let mut st = shared.lock();
    if st.spc2.as_ref() == Some(&it) {
        st.spc2 = None;
        shared.publish_reserved(&st);
    }
    Outcome::good(0)
}

/// iSCSI TransportID (SPC-4 §7.6.4.6) of `it`: FORMAT CODE 01b
/// (initiator port: name + ",i,0x" + ISID), null terminated, padded to a
/// multiple of 4 (at least 24 bytes in all).
fn transport_id(w: &mut DataIn<'_>, it: &ItNexus) -> usize {
    let name = format!("{},i,0x{:012x}", it.initiator, it.isid);
    let body = (name.len() + 1).div_ceil(4) * 4;
    let body = body.max(20);
    w.u8(0x45);
    w.u8(0);
    w.u16(body as u16);
    w.bytes(name.as_bytes());
    w.zeros(body - name.len());
    4 + body
}

fn transport_id_len(it: &ItNexus) -> usize {
    let name_len = it.initiator.len() + ",i,0x".len() + 12;
    4 + ((name_len + 1).div_ceil(4) * 4).max(20)
}

/// Parse an iSCSI TransportID at `p`: (initiator name lower case, ISID if
/// format 01b, total length). `None` when malformed.
fn parse_transport_id(p: &[u8]) -> Option<(String, Option<u64>, usize)> {
    let b0 = *p.first()?;
    if b0 & 0x0f != 0x05 {
        return None;
    }
    let len = usize::from(cdb::be16(p, 2));
    let body = p.get(4..4 + len)?;
    let text = body.split(|&b| b == 0).next()?;
    let text = std::str::from_utf8(text).ok()?.to_ascii_lowercase();
    match b0 >> 6 {
        0 => Some((text, None, 4 + len)),
        1 => {
            let (name, isid) = text.split_once(",i,0x")?;
            Some((name.to_string(), Some(u64::from_str_radix(isid, 16).ok()?), 4 + len))
        }
        _ => None,
    }
}

/// PERSISTENT RESERVE IN (SPC-4 §6.15): READ KEYS, READ RESERVATION,
/// REPORT CAPABILITIES, READ FULL STATUS; other service actions → INVALID
/// FIELD IN CDB byte 1 bit 4.
pub(crate) fn pr_in(ex: &mut Exec<'_, '_>) -> Outcome {
    let sa = cdb::service_action(ex.cdb());
    let alloc = usize::from(cdb::be16(ex.cdb(), 7));
    if sa > 3 {
        return Outcome::check_condition(Sense::invalid_field_in_cdb(1, Some(4)));
    }
    let shared = ex.nexus.shared();
    let st = shared.lock();
    let pr = &st.pr;
    let mut w = DataIn::new(ex.buf, alloc);
    match sa {
        0 => {
            w.u32(pr.generation);
            w.u32((pr.regs.len() * 8) as u32);
            for r in &pr.regs {
                w.u64(r.key);
            }
        }
        1 => {
            w.u32(pr.generation);
            match &pr.reservation {
                None => w.u32(0),
                Some(r) => {
                    w.u32(16);
                    w.u64(if all_registrants(r.rtype) { 0 } else { r.key });
                    w.u32(0);
                    w.u8(0);
                    w.u8(r.rtype & 0x0f); // SCOPE 0h (LU), TYPE
                    w.u16(0);
                }
            }
        }
        2 => {
            w.u16(8);
            w.u8(0x10 | 0x08 | 0x04 | 0x01); // CRH, SIP_C, ATP_C, PTPL_C
            w.u8(0x80 | if pr.aptpl { 0x01 } else { 0 }); // TMV, ALLOW COMMANDS 000b, PTPL_A
            w.u8(0x80 | 0x40 | 0x20 | 0x08 | 0x02); // WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX
            w.u8(0x01); // EX_AC_AR
            w.u16(0);
        }
        _ => {
            w.u32(pr.generation);
            w.u32(0); // ADDITIONAL LENGTH, patched
            for r in &pr.regs {
                let holder = pr.is_holder(&r.it);
                w.u64(r.key);
                w.u32(0);
                w.u8(u8::from(r.all_tg_pt) << 1 | u8::from(holder));
                w.u8(match (&pr.reservation, holder) {
                    (Some(res), true) => res.rtype & 0x0f,
                    _ => 0,
                });
                w.u32(0);
                w.u16(1); // RELATIVE TARGET PORT IDENTIFIER
                w.u32(transport_id_len(&r.it) as u32);
                transport_id(&mut w, &r.it);
            }
            let total = w.pos();
            w.patch_u32(4, (total - 8) as u32);
        }
    }
    Outcome::good(w.data_len())
}

/// The length of the PERSISTENT RESERVE OUT parameter list (CDB bytes
/// 5..9).
pub(crate) fn pr_out_param_len(cdb: &[u8]) -> u32 {
    cdb::be32(cdb, 5)
}

/// PERSISTENT RESERVE OUT (SPC-4 §6.16), every service action.
pub(crate) fn pr_out(ex: &mut Exec<'_, '_>) -> Outcome {
    let sa = cdb::service_action(ex.cdb());
    let scope = cdb::u8_at(ex.cdb(), 2) >> 4;
    let rtype = cdb::u8_at(ex.cdb(), 2) & 0x0f;
    let plen = pr_out_param_len(ex.cdb()) as usize;
    if sa > 7 {
        return Outcome::check_condition(Sense::invalid_field_in_cdb(1, Some(4)));
    }
    let p = ex.params;
    if plen < 24 || p.len() < 24 {
        return Outcome::check_condition(Sense::parameter_list_length_error());
    }
    let key = cdb::be64(p, 0);
    let sa_key = cdb::be64(p, 8);
    let flags = cdb::u8_at(p, 20);
    let (spec_i_pt, all_tg_pt, aptpl) = (flags & 0x08 != 0, flags & 0x04 != 0, flags & 0x01 != 0);
    if sa != 7 && !spec_i_pt && plen != 24 {
        return Outcome::check_condition(Sense::parameter_list_length_error());
    }
    let shared_arc = ex.nexus.shared();
    let shared: &LuShared = &shared_arc;
    let my_id = ex.nexus.link_id();
    let it = ex.nexus.it.clone();
    let mut guard = shared.lock();
    let st = &mut *guard;
    if st.spc2.as_ref().is_some_and(|h| *h != it) {
        return conflict();
    }
    let mine = st.pr.reg_of(&it);
    let out = match sa {
        // REGISTER / REGISTER AND IGNORE EXISTING KEY.
        0 | 6 => {
            if sa == 6 && spec_i_pt {
                return Outcome::check_condition(Sense::invalid_field_in_parameter_list(20, Some(3)));
            }
            match mine {
                None => {
                    if sa == 0 && key != 0 {
                        return conflict();
                    }
                    if sa_key == 0 {
                        return Outcome::good(0);
                    }
                    let mut new = vec![Reg { it: it.clone(), key: sa_key, all_tg_pt }];
                    if spec_i_pt {
                        let tid_len = cdb::be32(p, 24) as usize;
                        if plen < 28 + tid_len {
                            return Outcome::check_condition(Sense::parameter_list_length_error());
                        }
                        let mut at = 28;
                        while at < 28 + tid_len {
                            let Some((name, isid, n)) = p.get(at..28 + tid_len).and_then(parse_transport_id) else {
                                return Outcome::check_condition(Sense::invalid_field_in_parameter_list(
                                    at as u16, None,
                                ));
                            };
                            // Format 00b names every port of the initiator;
                            // we register the one port we know of it: ISID 0.
                            let other = ItNexus { initiator: name, isid: isid.unwrap_or(0), tpgt: it.tpgt };
                            if st.pr.reg_of(&other).is_some() || new.iter().any(|r| r.matches(&other)) {
                                return Outcome::check_condition(Sense::invalid_field_in_parameter_list(
                                    at as u16, None,
                                ));
                            }
                            new.push(Reg { it: other, key: sa_key, all_tg_pt });
                            at += n;
                        }
                    }
                    if st.pr.regs.len() + new.len() > REGS_MAX {
                        return Outcome::check_condition(Sense::new(
                            SenseKey::ILLEGAL_REQUEST,
                            Asc::INSUFFICIENT_REGISTRATION_RESOURCES,
                        ));
                    }
                    st.pr.regs.extend(new);
                }
                Some(i) => {
                    if sa == 0 && st.pr.key_at(i) != Some(key) {
                        return conflict();
                    }
                    if spec_i_pt {
                        return Outcome::check_condition(Sense::invalid_field_in_parameter_list(20, Some(3)));
                    }
                    if sa_key == 0 {
                        unregister(shared, st, i, my_id);
                    } else {
                        if let Some(r) = st.pr.regs.get_mut(i) {
                            r.key = sa_key;
                        }
                        if let Some(r) = st.pr.reservation.as_mut().filter(|r| !all_registrants(r.rtype)) {
                            if r.holder == it {
                                r.key = sa_key;
                            }
                        }
                    }
                }
            }
            st.pr.aptpl = aptpl;
            st.pr.generation = st.pr.generation.wrapping_add(1);
            Outcome::good(0)
        }
        // RESERVE.
        1 => {
            let Some(_) = mine.filter(|&i| st.pr.key_at(i) == Some(key)) else { return conflict() };
            if scope != 0 {
                return Outcome::check_condition(Sense::invalid_field_in_cdb(2, Some(7)));
            }
            if !valid_type(rtype) {
                return Outcome::check_condition(Sense::invalid_field_in_cdb(2, Some(3)));
            }
            match &st.pr.reservation {
                None => {
                    st.pr.reservation = Some(Reservation { holder: it.clone(), key, rtype });
                }
                Some(r) if st.pr.is_holder(&it) && r.rtype == rtype => {}
                Some(_) => return conflict(),
            }
            Outcome::good(0)
        }
        // RELEASE.
        2 => {
            let Some(_) = mine.filter(|&i| st.pr.key_at(i) == Some(key)) else { return conflict() };
            let Some(r) = st.pr.reservation.clone() else { return Outcome::good(0) };
            if !st.pr.is_holder(&it) {
                return Outcome::good(0);
            }
            if scope != 0 || r.rtype != rtype {
                return Outcome::check_condition(Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::INVALID_RELEASE_OF_PR));
            }
            st.pr.reservation = None;
            if matches!(r.rtype, WE_RO | EA_RO | WE_AR | EA_AR) {
                notify_registrants(shared, st, Sense::unit_attention(Asc::RESERVATIONS_RELEASED), Some(&it));
            }
            Outcome::good(0)
        }
        // CLEAR.
        3 => {
            let Some(_) = mine.filter(|&i| st.pr.key_at(i) == Some(key)) else { return conflict() };
            notify_registrants(shared, st, Sense::unit_attention(Asc::RESERVATIONS_PREEMPTED), Some(&it));
            st.pr.regs.clear();
            st.pr.reservation = None;
            st.pr.generation = st.pr.generation.wrapping_add(1);
            Outcome::good(0)
        }
        // PREEMPT / PREEMPT AND ABORT.
        4 | 5 => {
            let Some(_) = mine.filter(|&i| st.pr.key_at(i) == Some(key)) else { return conflict() };
            if scope != 0 {
                return Outcome::check_condition(Sense::invalid_field_in_cdb(2, Some(7)));
            }
            if !valid_type(rtype) {
                return Outcome::check_condition(Sense::invalid_field_in_cdb(2, Some(3)));
            }
            let res = st.pr.reservation.clone();
            let gone = match res {
                Some(r) if all_registrants(r.rtype) && sa_key == 0 => {
                    // Preempt every other registration and take the reservation.
                    let gone: Vec<ItNexus> =
                        st.pr.regs.iter().filter(|g| !g.matches(&it)).map(|g| g.it.clone()).collect();
                    st.pr.regs.retain(|g| g.matches(&it));
                    notify(shared, st, &gone, Sense::unit_attention(Asc::REGISTRATIONS_PREEMPTED));
                    let k = st.pr.regs.first().map_or(key, |g| g.key);
                    st.pr.reservation = Some(Reservation { holder: it.clone(), key: k, rtype });
                    gone
                }
                Some(r) if !all_registrants(r.rtype) && sa_key == r.key => {
                    let gone: Vec<ItNexus> = st
                        .pr
                        .regs
                        .iter()
                        .filter(|g| g.key == sa_key && !g.matches(&it))
                        .map(|g| g.it.clone())
                        .collect();
                    st.pr.regs.retain(|g| g.key != sa_key || g.matches(&it));
                    notify(shared, st, &gone, Sense::unit_attention(Asc::REGISTRATIONS_PREEMPTED));
                    let k = st.pr.reg_of(&it).and_then(|i| st.pr.key_at(i)).unwrap_or(key);
                    let changed = r.rtype != rtype;
                    st.pr.reservation = Some(Reservation { holder: it.clone(), key: k, rtype });
                    if changed {
                        notify_registrants(shared, st, Sense::unit_attention(Asc::RESERVATIONS_RELEASED), Some(&it));
                    }
                    gone
                }
                _ => {
                    if sa_key == 0 {
                        return Outcome::check_condition(Sense::invalid_field_in_parameter_list(8, None));
                    }
                    let gone: Vec<ItNexus> = st
                        .pr
                        .regs
                        .iter()
                        .filter(|g| g.key == sa_key && !g.matches(&it))
                        .map(|g| g.it.clone())
                        .collect();
                    if gone.is_empty() {
                        return conflict();
                    }
                    st.pr.regs.retain(|g| g.key != sa_key || g.matches(&it));
                    notify(shared, st, &gone, Sense::unit_attention(Asc::REGISTRATIONS_PREEMPTED));
                    if st.pr.reservation.as_ref().is_some_and(|r| gone.contains(&r.holder)) {
                        st.pr.reservation = None;
                    }
                    gone
                }
            };
            if sa == 5 {
                // PREEMPT AND ABORT (SPC-4 §5.13.11.2.5): every task of the
                // preempted I_T nexuses is aborted, on whichever shard.
                shared.abort_tasks_of(st, &gone);
            }
            st.pr.generation = st.pr.generation.wrapping_add(1);
            Outcome::good(0)
        }
        // REGISTER AND MOVE.
        _ => {
            let Some(_) = mine.filter(|&i| st.pr.key_at(i) == Some(key)) else { return conflict() };
            let unreg = cdb::u8_at(p, 17) & 0x02 != 0;
            let aptpl = cdb::u8_at(p, 17) & 0x01 != 0;
            let tid_len = cdb::be32(p, 20) as usize;
            if plen < 24 + tid_len || p.len() < 24 + tid_len {
                return Outcome::check_condition(Sense::parameter_list_length_error());
            }
            let Some(r) = st.pr.reservation.clone().filter(|_| st.pr.is_holder(&it)) else { return conflict() };
            if all_registrants(r.rtype) {
                return conflict();
            }
            if sa_key == 0 {
                return Outcome::check_condition(Sense::invalid_field_in_parameter_list(8, None));
            }
            let Some((name, isid, _)) = range(p, 24, tid_len).and_then(parse_transport_id) else {
                return Outcome::check_condition(Sense::invalid_field_in_parameter_list(24, None));
            };
            let dest = ItNexus { initiator: name, isid: isid.unwrap_or(0), tpgt: it.tpgt };
            if dest.initiator == it.initiator && dest.isid == it.isid {
                return Outcome::check_condition(Sense::invalid_field_in_parameter_list(24, None));
            }
            match st.pr.reg_of(&dest) {
                Some(j) => {
                    if let Some(g) = st.pr.regs.get_mut(j) {
                        g.key = sa_key;
                    }
                }
                None => st.pr.regs.push(Reg { it: dest.clone(), key: sa_key, all_tg_pt: false }),
            }
            st.pr.reservation = Some(Reservation { holder: dest, key: sa_key, rtype: r.rtype });
            if unreg {
                if let Some(i) = st.pr.reg_of(&it) {
                    st.pr.regs.remove(i);
                }
            }
            st.pr.aptpl = aptpl;
            st.pr.generation = st.pr.generation.wrapping_add(1);
            Outcome::good(0)
        }
    };
    shared.publish_reserved(st);
    if shared.persist(st).is_err() {
        return Outcome::check_condition(Sense::new(
            SenseKey::ILLEGAL_REQUEST,
            Asc::INSUFFICIENT_REGISTRATION_RESOURCES,
        ));
    }
    out
}

/// Remove registration `i`; a holder of a non-all-registrants reservation
/// releases it (SPC-4 §5.13.11.2.4), and for registrants-only types the
/// other registrants learn RESERVATIONS RELEASED.
fn unregister(shared: &LuShared, st: &mut LuState, i: usize, _my_id: Option<u64>) {
    let reg = st.pr.regs.remove(i);
    let Some(r) = st.pr.reservation.clone() else { return };
    let release = if all_registrants(r.rtype) { st.pr.regs.is_empty() } else { r.holder == reg.it };
    if release {
        st.pr.reservation = None;
        if matches!(r.rtype, WE_RO | EA_RO) {
            notify_registrants(shared, st, Sense::unit_attention(Asc::RESERVATIONS_RELEASED), Some(&reg.it));
        }
    }
}

/// Post `ua` to every nexus whose initiator port is one of `its`.
fn notify(shared: &LuShared, st: &mut LuState, its: &[ItNexus], ua: Sense) {
    if its.is_empty() {
        return;
    }
    let its = its.to_vec();
    shared.post_locked(st, ua, |_, n| its.iter().any(|g| g.initiator == n.initiator && g.isid == n.isid));
}

/// Post `ua` to every registered nexus except `except`.
fn notify_registrants(shared: &LuShared, st: &mut LuState, ua: Sense, except: Option<&ItNexus>) {
    let regs: Vec<Reg> = st.pr.regs.clone();
    shared.post_locked(st, ua, |_, n| except != Some(n) && regs.iter().any(|r| r.matches(n)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_text_round_trip() {
        let st = PrState {
            generation: 7,
            regs: vec![
                Reg { it: ItNexus::new("iqn.a", 0x23d000001, 1), key: 0xabc, all_tg_pt: false },
                Reg { it: ItNexus::new("iqn.b", 2, 1), key: 5, all_tg_pt: true },
            ],
            reservation: Some(Reservation { holder: ItNexus::new("iqn.a", 0x23d000001, 1), key: 0xabc, rtype: WE_RO }),
            aptpl: true,
        };
        assert_eq!(PrState::from_text(&st.to_text()), Some(st));
        assert_eq!(PrState::from_text("garbage"), None);
    }

    #[test]
    fn transport_ids() {
        let it = ItNexus::new("iqn.x", 0x1234, 1);
        let mut buf = [0u8; 64];
        let mut w = DataIn::new(&mut buf, 64);
        let n = transport_id(&mut w, &it);
        assert_eq!(n, transport_id_len(&it));
        assert_eq!(n % 4, 0);
        assert_eq!(parse_transport_id(&buf[..n]), Some(("iqn.x".into(), Some(0x1234), n)));
        let plain = [0x05, 0, 0, 8, b'i', b'q', b'n', b'.', b'y', 0, 0, 0];
        assert_eq!(parse_transport_id(&plain), Some(("iqn.y".into(), None, 12)));
    }
}
