//! Full feature phase (RFC 7143 §4.2, §11): command ordering by CmdSN, SCSI
//! commands with immediate/unsolicited/solicited data, Data-In, NOP, text,
//! task management, logout and SNACK at ErrorRecoveryLevel 0.

use super::task::{Phase, R2tState, SENSE_MAX};
use super::tx::Out;
use super::{ConnState, Connection, Flow, Held, PendingTmf, TextExchange};
use crate::bytes::{copy_range, prefix, prefix_mut, range};
use crate::ids::{Itt, Ttt};
use crate::pdu::{
    Bhs, DataOut, LogoutReason, LogoutRequest, NopOut, Pdu, RejectReason, ScsiCommand, Snack, TaskAttr, TextRequest,
    TextResponse, TmfFunction, TmfRequest, TmfResponseCode,
};
use crate::scsi::{self, Asc, BackendOp, BackendStatus, CmdContext, NexusState, Outcome, ScsiStatus, Sense};
use crate::serial::CmdSn;

/// Largest text request we gather across C-bit PDUs.
const TEXT_REQUEST_MAX: usize = 64 * 1024;
/// Largest Data-In buffer an emulated command (INQUIRY, MODE SENSE, ...) gets.
const EMULATED_BUF_MAX: u32 = 64 * 1024;

impl Connection {
    /// Route one decoded full-feature-phase PDU.
    pub(super) fn handle_ffp(&mut self, bhs: &Bhs, pdu: Pdu, data_at: usize, data_len: usize) -> Flow {
        let discovery = self.session.as_ref().is_some_and(|s| s.discovery);
        if discovery && !matches!(pdu, Pdu::TextRequest(_) | Pdu::LogoutRequest(_) | Pdu::NopOut(_)) {
            // RFC 7143 §4.3: a discovery session carries only Text and Logout
            // (NOP too, for keep-alive). Anything else is a protocol error.
            self.reject(bhs, RejectReason::PROTOCOL_ERROR);
            return Flow::Continue;
        }
        match pdu {
            Pdu::DataOut(d) => self.handle_data_out(bhs, d, data_at, data_len, false),
            Pdu::Snack(s) => self.handle_snack(bhs, s),
            Pdu::ScsiCommand(cmd) => self.accept_command(bhs, cmd, data_at, data_len),
            other => {
                let (immediate, cmdsn) = match &other {
                    Pdu::NopOut(p) => (p.immediate, p.cmdsn),
                    Pdu::TmfRequest(p) => (p.immediate, p.cmdsn),
                    Pdu::TextRequest(p) => (p.immediate, p.cmdsn),
                    Pdu::LogoutRequest(p) => (p.immediate, p.cmdsn),
                    _ => {
                        self.reject(bhs, RejectReason::PROTOCOL_ERROR);
                        return Flow::Continue;
                    }
                };
                // A NOP-Out answering our ping (ITT reserved) carries no CmdSN
                // of its own to advance (RFC 7143 §11.18.1).
                if let Pdu::NopOut(n) = &other {
                    if n.itt == Itt::RESERVED {
                        if self.ping.is_some_and(|(t, _)| t == n.ttt) {
                            self.ping = None;
                        }
                        return Flow::Continue;
                    }
                }
                if immediate {
                    let data = range(&self.rx, data_at, data_len).unwrap_or_default().to_vec();
                    return self.run_pdu(other, data);
                }
                match self.order(cmdsn) {
                    Order::Now => {
                        let data = range(&self.rx, data_at, data_len).unwrap_or_default().to_vec();
                        let f = self.run_pdu(other, data);
                        self.advance_exp_cmdsn();
                        f
                    }
                    Order::Hold => {
                        let data = range(&self.rx, data_at, data_len).unwrap_or_default().to_vec();
                        self.held.insert(cmdsn.0, Held::Pdu(other, data));
                        Flow::Continue
                    }
                    Order::Ignore => Flow::Continue,
                }
            }
        }
    }

    /// Where a non-immediate PDU with `cmdsn` stands (RFC 7143 §4.2.2.1).
    fn order(&mut self, cmdsn: CmdSn) -> Order {
        if cmdsn == self.exp_cmdsn {
            self.exp_cmdsn = self.exp_cmdsn.next();
            return Order::Now;
        }
        // Outside [ExpCmdSN, MaxCmdSN]: silently ignored. A duplicate of a
        // held CmdSN is ignored too.
        if cmdsn.lt(self.exp_cmdsn) || cmdsn.gt(self.max_cmdsn()) || self.held.contains_key(&cmdsn.0) {
            return Order::Ignore;
        }
        Order::Hold
    }

    /// Run held PDUs whose CmdSN has come up.
    fn advance_exp_cmdsn(&mut self) {
        while let Some(h) = self.held.remove(&self.exp_cmdsn.0) {
            self.exp_cmdsn = self.exp_cmdsn.next();
            let flow = match h {
                Held::Task(slot) => {
                    self.tasks.held -= 1;
                    self.execute_task(slot);
                    Flow::Continue
                }
                Held::Pdu(p, data) => self.run_pdu(p, data),
            };
            if flow == Flow::Drop {
                self.close_now();
                return;
            }
        }
    }

    /// Execute a non-SCSI PDU whose turn has come.
    fn run_pdu(&mut self, pdu: Pdu, data: Vec<u8>) -> Flow {
        match pdu {
            Pdu::NopOut(n) => self.handle_nop_out(n, data),
            Pdu::TmfRequest(t) => self.handle_tmf(t),
            Pdu::TextRequest(t) => self.handle_text(t, data),
            Pdu::LogoutRequest(l) => self.handle_logout(l),
            _ => Flow::Continue,
        }
    }

    fn handle_nop_out(&mut self, n: NopOut, data: Vec<u8>) -> Flow {
        // RFC 7143 §11.18: answer a ping with the same ITT and its data.
        let mut data = data;
        data.truncate(self.op.max_xmit_dsl as usize);
        self.out.push_back(Out::NopIn { itt: n.itt, ttt: Ttt::RESERVED, data });
        Flow::Continue
    }

    fn handle_logout(&mut self, l: LogoutRequest) -> Flow {
        let cid = self.session.as_ref().map(|s| s.cid);
        let response = match l.reason {
            LogoutReason::CLOSE_SESSION => 0,
            LogoutReason::CLOSE_CONNECTION if Some(l.cid) == cid => 0,
            // CID not found (RFC 7143 §11.15.1).
            LogoutReason::CLOSE_CONNECTION => 1,
            // Connection recovery is not supported at ERL 0.
            _ => 2,
        };
        if response == 0 {
            // Tasks of the connection end without responses (RFC 7143 §11.14.1 at ERL 0).
            let slots: Vec<u32> = self.tasks.in_use().map(|(s, _)| s).collect();
            for s in slots {
                self.tasks.free(s);
            }
            self.out.retain(|o| !matches!(o, Out::Task { .. } | Out::R2t { .. }));
            self.state = ConnState::LoggingOut;
        }
        self.out.push_back(Out::Logout { itt: l.itt, response, close: response == 0 });
        Flow::Continue
    }

    fn handle_snack(&mut self, bhs: &Bhs, _s: Snack) -> Flow {
        // RFC 7143 §11.16: at ErrorRecoveryLevel 0 SNACK is not supported;
        // the target answers with a Reject "protocol error" (RFC 7143 §11.17.1,
        // reason 0x04; 0x03 "SNACK reject" is for ERL > 0 targets that cannot
        // satisfy a valid SNACK).
        self.reject(bhs, RejectReason::PROTOCOL_ERROR);
        Flow::Continue
    }

    fn handle_text(&mut self, t: TextRequest, data: Vec<u8>) -> Flow {
        let max_seg = self.op.max_xmit_dsl as usize;
        // Continuation of a long answer: empty request with our TTT.
        if t.ttt != Ttt::RESERVED {
            match self.text.as_mut() {
                Some(x) if x.ttt == t.ttt && x.itt == t.itt && x.answer_off < x.answer.len() => {}
                _ => {
                    // RFC 7143 §11.10.4: an unknown TTT is a protocol error.
                    self.reject_pdu(&Pdu::TextRequest(t), RejectReason::PROTOCOL_ERROR);
                    return Flow::Continue;
                }
            }
            self.send_text_chunk(t.itt, max_seg);
            return Flow::Continue;
        }
        let ex = self.text.get_or_insert_with(TextExchange::default);
        if ex.itt != t.itt {
            *ex = TextExchange { itt: t.itt, ..Default::default() };
        }
        if ex.request.len() + data.len() > TEXT_REQUEST_MAX {
            self.text = None;
            self.reject_pdu(&Pdu::TextRequest(t), RejectReason::OUT_OF_RESOURCES);
            return Flow::Continue;
        }
        ex.request.extend_from_slice(&data);
        if t.continue_ {
            // More request text follows: answer with an empty response (RFC 7143 §11.11.1).
            let ttt = self.alloc_ttt();
            if let Some(x) = self.text.as_mut() {
                x.ttt = ttt;
            }
            let resp =
                TextResponse { final_: false, continue_: false, lun: t.lun, itt: t.itt, ttt, ..Default::default() };
            self.out.push_back(Out::Text { resp, data: Vec::new() });
            return Flow::Continue;
        }
        let request = self.text.as_mut().map(|x| std::mem::take(&mut x.request)).unwrap_or_default();
        let answer = self.text_answer(&request);
        let ttt = self.alloc_ttt();
        self.text = Some(TextExchange { itt: t.itt, ttt, request: Vec::new(), answer, answer_off: 0 });
        self.send_text_chunk(t.itt, max_seg);
        Flow::Continue
    }

    /// Queue the next chunk of the text answer; C=1 while more remains.
    fn send_text_chunk(&mut self, itt: Itt, max_seg: usize) {
        let Some(x) = self.text.as_mut() else { return };
        let end = (x.answer_off + max_seg).min(x.answer.len());
        let data = x.answer.get(x.answer_off..end).unwrap_or_default().to_vec();
        x.answer_off = end;
        let more = end < x.answer.len();
        let resp = TextResponse {
            final_: !more,
            continue_: more,
            itt,
            // RFC 7143 §11.11.4: TTT is reserved on the final response.
            ttt: if more { x.ttt } else { Ttt::RESERVED },
            ..Default::default()
        };
        if !more {
            self.text = None;
        }
        self.out.push_back(Out::Text { resp, data });
    }

    /// Answer the keys of a full-feature Text Request (SendTargets and
    /// anything else through the negotiation table).
    fn text_answer(&mut self, request: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let keys = match crate::login::keys::parse_keys(request) {
            Ok(k) => k,
            Err(_) => return out,
        };
        for (k, v) in &keys {
            if k == "SendTargets" {
                let own = self
                    .session
                    .as_ref()
                    .and_then(|s| s.target)
                    .and_then(|i| self.targets.targets.get(i))
                    .map(|t| t.name.clone());
                // Targets the initiator may not access stay hidden (ACL).
                let initiator = self.session.as_ref().map_or("", |s| s.initiator_name.as_str()).to_string();
                let peer = self.peer_ip();
                crate::login::sendtargets::send_targets(
                    v,
                    own.as_deref(),
                    &self.targets,
                    |t| t.acl.admits(&initiator, peer),
                    &mut out,
                );
            } else {
                crate::login::keys::push_key(&mut out, k, "NotUnderstood");
            }
        }
        out
    }

    /// A SCSI Command PDU arrived: create its task, take its immediate data,
    /// and run it now or when its CmdSN comes up.
    fn accept_command(&mut self, bhs: &Bhs, cmd: ScsiCommand, data_at: usize, data_len: usize) -> Flow {
        let lim_xfer = self.targets.limits.max_transfer_len;
        if !cmd.immediate
            && (cmd.cmdsn.lt(self.exp_cmdsn) || cmd.cmdsn.gt(self.max_cmdsn()) || self.held.contains_key(&cmd.cmdsn.0))
        {
            // RFC 7143 §4.2.2.1: outside the window, silently ignored.
            return Flow::Continue;
        }
        if self.tasks.itt_in_use(cmd.itt) {
            // RFC 7143 §11.17.1: ITT of a task still in progress.
            self.reject(bhs, RejectReason::TASK_IN_PROGRESS);
            return Flow::Continue;
        }
        if data_len > 0 && (!cmd.write || !self.op.immediate_data) {
            // Immediate data without W, or when ImmediateData=No: protocol error (RFC 7143 §13.11).
            self.reject(bhs, RejectReason::PROTOCOL_ERROR);
            return Flow::Drop;
        }
        if data_len as u32 > cmd.edtl || data_len as u32 > self.op.first_burst {
            self.reject(bhs, RejectReason::PROTOCOL_ERROR);
            return Flow::Drop;
        }
        if !cmd.final_ && (self.op.initial_r2t || !cmd.write) {
            // Unsolicited Data-Out announced although InitialR2T=Yes (RFC 7143 §13.10).
            self.reject(bhs, RejectReason::PROTOCOL_ERROR);
            return Flow::Drop;
        }
        let Some((slot, gen)) = self.tasks.alloc(cmd.itt, cmd.immediate) else {
            if cmd.immediate {
                self.reject(bhs, RejectReason::IMMEDIATE_COMMAND_REJECT);
            } else {
                // The window says there is room, so this is our bug if it happens.
                self.reject(bhs, RejectReason::OUT_OF_RESOURCES);
            }
            return Flow::Continue;
        };
        let Some(t) = self.tasks.get_mut(slot, gen) else {
            // `alloc` just returned this slot; nothing to run.
            self.reject(bhs, RejectReason::OUT_OF_RESOURCES);
            return Flow::Continue;
        };
        t.lun = cmd.lun;
        t.cmdsn = cmd.cmdsn;
        t.attr = cmd.attr;
        t.cdb = cmd.cdb;
        t.ext_cdb = cmd.ext_cdb;
        t.edtl = cmd.edtl;
        t.read = cmd.read;
        t.write = cmd.write;
        t.unsol_pending = !cmd.final_;
        t.abort_gen = cmd.lun.index().and_then(|i| self.nexus.get(&i)).map_or(0, |n| n.abort_gen());
        if cmd.write && cmd.edtl <= lim_xfer {
            // Room for what the initiator sends unasked: the immediate data,
            // or the whole unsolicited burst when one follows (at most
            // FirstBurstLength, RFC 7143 §13.14). The rest of the buffer is
            // granted from the write budget before the first R2T
            // (write_progress). Buffers are reused across tasks.
            let unasked = if cmd.final_ { data_len as u32 } else { cmd.edtl.min(self.op.first_burst) };
            self.tasks.charge_unsolicited(slot, unasked);
            let Some(t) = self.tasks.get_mut(slot, gen) else { return Flow::Continue };
            // data_len <= EDTL and FirstBurstLength was checked above, so the copy always fits.
            let copied = copy_range(&mut t.buf, 0, &self.rx, data_at, data_len);
            t.received = if copied { data_len as u32 } else { 0 };
        } else {
            t.received = 0;
        }
        if !cmd.final_ {
            // An unsolicited burst is announced: the initiator owes it.
            self.tasks.owe(1, self.now_ms);
        }
        if cmd.immediate {
            self.execute_task(slot);
            return Flow::Continue;
        }
        if cmd.cmdsn == self.exp_cmdsn {
            self.exp_cmdsn = self.exp_cmdsn.next();
            self.execute_task(slot);
            self.advance_exp_cmdsn();
        } else {
            self.tasks.held += 1;
            self.held.insert(cmd.cmdsn.0, Held::Task(slot));
        }
        Flow::Continue
    }

    /// A task whose CmdSN turn has come: run it now, or defer it while task
    /// attributes say it must wait (SAM-5 §8.6: an ORDERED task starts after
    /// every older task of the task set and blocks newer ones; HEAD OF QUEUE
    /// starts at once; SIMPLE waits only for an ORDERED one). The task set is
    /// per I_T nexus (Control mode page TST 001b), so this is per connection.
    pub(super) fn execute_task(&mut self, slot: u32) {
        if self.defer_for_ordering(slot, false) {
            return;
        }
        self.run_task(slot);
    }

    /// Must `slot` wait for older tasks? Marks it executing when not.
    /// `from_queue`: it is the head of the deferred queue (entries left in
    /// the queue are newer than it).
    fn defer_for_ordering(&mut self, slot: u32, from_queue: bool) -> bool {
        let Some(t) = self.tasks.slot_mut(slot) else { return false };
        let (lun, attr, gen) = (t.lun, t.attr, t.gen);
        // O(1) in the common case: nothing deferred, no ORDERED task running,
        // and a SIMPLE (or untagged) task.
        let may_block =
            if attr == TaskAttr::ORDERED { self.tasks.executing > 0 } else { self.tasks.ordered_executing > 0 };
        let queued = !from_queue
            && !self.deferred.is_empty()
            && self.deferred.iter().any(|&(s, g)| self.tasks.get(s, g).is_some_and(|o| o.lun == lun));
        let blocked = attr != TaskAttr::HEAD_OF_QUEUE
            && (queued
                || may_block
                    && self.tasks.in_use().any(|(s, o)| {
                        s != slot
                            && o.executing
                            && o.lun == lun
                            && (attr == TaskAttr::ORDERED || o.attr == TaskAttr::ORDERED)
                    }));
        if blocked {
            if !from_queue {
                self.deferred.push_back((slot, gen));
            }
            return true;
        }
        self.tasks.set_executing(slot, true);
        false
    }

    /// Start deferred tasks whose turn has come, oldest first.
    pub(super) fn kick_deferred(&mut self) {
        self.kick = false;
        self.retry_budget_waiters();
        while let Some(&(s, g)) = self.deferred.front() {
            if self.tasks.get(s, g).is_none() {
                self.deferred.pop_front();
                continue;
            }
            if self.defer_for_ordering(s, true) {
                break;
            }
            self.deferred.pop_front();
            self.run_task(s);
        }
    }

    /// Run SCSI emulation for a task.
    fn run_task(&mut self, slot: u32) {
        let Some(t) = self.tasks.slot_mut(slot) else { return };
        let gen = t.gen;
        let lun_index = t.lun.index();
        let target = self.session.as_ref().and_then(|s| s.target);
        let Some(target) = target.and_then(|i| self.targets.targets.get(i)) else { return };
        let lu = lun_index.and_then(|i| target.lu(i));
        let mut cdb = [0u8; 260];
        let cdb_len = t.cdb_bytes(&mut cdb);
        let edtl = t.edtl;
        let tpgt = self.info.tpgt;
        let nexus = self.nexus.entry(lun_index.unwrap_or(u16::MAX)).or_insert_with(|| {
            let (name, isid) = self.session.as_ref().map_or(("", 0), |s| (s.initiator_name.as_str(), s.isid.0));
            let mut n = NexusState::for_initiator(name, isid, tpgt);
            if let Some(l) = lu {
                n.attach(&l.shared);
            }
            n
        });
        t.reset_epoch = nexus.reset_epoch();
        if nexus.abort_gen() != t.abort_gen {
            // PREEMPT AND ABORT from another nexus while the task waited for
            // its CmdSN or behind an ORDERED task: it never runs
            // (finish_with answers TASK ABORTED or nothing, as TAS says).
            self.finish_with(slot, gen, ScsiStatus::GOOD, None, 0, 0);
            return;
        }
        let ctx = CmdContext {
            lu: lu.map(|l| &l.info),
            luns: &target.lun_indices,
            cdb: prefix(&cdb, cdb_len),
            edtl,
            write_bit: t.write,
            read_bit: t.read,
        };
        if let Some(sense) = t.failed {
            // Its data already broke the sequence rules (handle_data_out).
            let spdtl = t.edtl;
            self.finish_with(slot, gen, ScsiStatus::CHECK_CONDITION, Some(sense), spdtl, 0);
            return;
        }
        if edtl > self.targets.limits.max_transfer_len {
            let sense = Sense::new(scsi::SenseKey::ILLEGAL_REQUEST, scsi::Asc(0x2400));
            self.finish_with(slot, gen, ScsiStatus::CHECK_CONDITION, Some(sense), 0, 0);
            return;
        }
        if let Some(plen) = scsi::parameter_list_len(prefix(&cdb, cdb_len)).filter(|_| t.write) {
            // MODE SELECT and friends: collect the parameter list like write
            // data, then run emulation on it (write_progress).
            t.param_list = true;
            t.need = plen.min(edtl);
            t.spdtl = plen;
            t.phase = Phase::WaitData;
            self.write_progress(slot, gen);
            return;
        }
        // Emulated commands get a bounded buffer; READ/WRITE size it below.
        // Not zeroed here (a READ would pay for it on every I/O): emulation
        // writes Data-In only through `DataIn`, which zeroes the buffer
        // it is given before the command builds its parameter data.
        // A command without the R bit sends no Data-In, so it gets no buffer
        // here: a task buffer, once grown, is a page-aligned allocation that
        // its slot keeps, and a WRITE waiting for its R2T must not pin one.
        let emu_len = if t.read { edtl.clamp(256, EMULATED_BUF_MAX) } else { 0 };
        t.buf.resize_for_overwrite(t.buf.len().max(emu_len as usize));
        let outcome = scsi::execute(&ctx, nexus, &mut t.buf[..]);
        let backend = lu.map_or(0, |l| l.backend);
        match outcome {
            Outcome::Done { status, sense, data_len } => {
                let sent = data_len.min(edtl).min(t.buf.len() as u32);
                self.finish_with(slot, gen, status, sense, data_len, sent);
            }
            Outcome::Job(job) => {
                t.backend = backend;
                let bs = lu.map_or(512, |l| l.info.block_size).max(1);
                let want = job.data_out_len();
                t.spdtl = want;
                t.need = if want == 0 { 0 } else { want.min(edtl) / bs * bs };
                t.job = Some(job);
                if t.need == 0 {
                    self.run_job(slot, gen, None);
                } else {
                    t.phase = Phase::WaitData;
                    self.write_progress(slot, gen);
                }
            }
            Outcome::Io(io) => {
                t.backend = backend;
                t.io = Some(io);
                t.spdtl = if io.op == BackendOp::Flush { 0 } else { io.len };
                match io.op {
                    BackendOp::Read if io.verify => {
                        // VERIFY with BYTCHK: take the initiator's data first,
                        // then read the medium into a second buffer and compare.
                        t.spdtl = io.len;
                        t.need = io.len.min(edtl);
                        t.verify_buf.resize(io.len as usize, 0);
                        t.phase = Phase::WaitData;
                        self.write_progress(slot, gen);
                    }
                    BackendOp::Read => {
                        // Not zeroed: a backend that answers `Ok` has filled
                        // all `io.len` bytes (a short read is resumed or fails,
                        // see `ShardBackend`), and a failed read ends without
                        // Data-In (backend_done), so no stale byte is sent.
                        t.buf.resize_for_overwrite(io.len as usize);
                        self.submit_io(slot);
                    }
                    BackendOp::Flush | BackendOp::Deallocate | BackendOp::MapStatus => self.submit_io(slot),
                    BackendOp::Write => {
                        // RFC 7143 §11.4.5.1 / SAM-5 §5.4: with EDTL and the
                        // CDB's length disagreeing, write only whole blocks
                        // that both cover and report the residual (libiscsi's
                        // Write*Residuals expect exactly this).
                        let bs = lu.map_or(512, |l| l.info.block_size).max(1);
                        t.need = io.len.min(edtl) / bs * bs;
                        t.phase = Phase::WaitData;
                        self.write_progress(slot, gen);
                    }
                }
            }
        }
    }

    /// Run a command whose parameter list (MODE SELECT) has arrived.
    fn run_parameter_list(&mut self, slot: u32, gen: u32) {
        let Some(t) = self.tasks.get_mut(slot, gen) else { return };
        let lun_index = t.lun.index();
        let Some(target) = self.session.as_ref().and_then(|s| s.target).and_then(|i| self.targets.targets.get(i))
        else {
            return;
        };
        let lu = lun_index.and_then(|i| target.lu(i));
        let mut cdb = [0u8; 260];
        let cdb_len = t.cdb_bytes(&mut cdb);
        let ctx = CmdContext {
            lu: lu.map(|l| &l.info),
            luns: &target.lun_indices,
            cdb: prefix(&cdb, cdb_len),
            edtl: t.edtl,
            write_bit: t.write,
            read_bit: t.read,
        };
        let tpgt = self.info.tpgt;
        let nexus = self.nexus.entry(lun_index.unwrap_or(u16::MAX)).or_insert_with(|| {
            let (name, isid) = self.session.as_ref().map_or(("", 0), |s| (s.initiator_name.as_str(), s.isid.0));
            let mut n = NexusState::for_initiator(name, isid, tpgt);
            if let Some(l) = lu {
                n.attach(&l.shared);
            }
            n
        });
        let mut scratch = [0u8; 256];
        let need = t.need as usize;
        let outcome = scsi::execute_with_parameter_list(&ctx, nexus, prefix(&t.buf, need), &mut scratch);
        let spdtl = t.spdtl;
        match outcome {
            Outcome::Done { status, sense, .. } => self.finish_with(slot, gen, status, sense, spdtl, 0),
            Outcome::Job(job) if job.data_out_len() == 0 => {
                t.backend = lu.map_or(0, |l| l.backend);
                t.job = Some(job);
                t.need = 0;
                self.run_job(slot, gen, None);
            }
            Outcome::Io(_) | Outcome::Job(_) => {
                let sense = Sense::internal_target_failure();
                self.finish_with(slot, gen, ScsiStatus::CHECK_CONDITION, Some(sense), spdtl, 0);
            }
        }
    }

    /// Record a final status and queue the response.
    fn finish_with(&mut self, slot: u32, gen: u32, status: ScsiStatus, sense: Option<Sense>, spdtl: u32, data_in: u32) {
        let was_executing = self.tasks.get(slot, gen).is_some_and(|t| t.executing);
        if was_executing {
            self.tasks.set_executing(slot, false);
            self.kick = true;
        }
        let Some(t) = self.tasks.get_mut(slot, gen) else { return };
        let nexus = t.lun.index().and_then(|i| self.nexus.get(&i));
        // Fixed or descriptor sense as the LU's D_SENSE says (SPC-4 §7.5.8).
        let d_sense = nexus.is_some_and(|n| n.d_sense);
        // A reset of the LU by another nexus while the task ran, or PREEMPT
        // AND ABORT by another nexus since it was accepted, aborted it: with
        // TAS = 1 it ends with TASK ABORTED, with TAS = 0 without a response
        // (SAM-5 §5.6, SPC-4 §7.5.8). One load each.
        let by_other =
            nexus.is_some_and(|n| (was_executing && n.reset_epoch() != t.reset_epoch) || n.abort_gen() != t.abort_gen);
        if by_other && !nexus.is_none_or(|n| n.tas()) {
            self.drop_task(slot);
            return;
        }
        let (status, sense, data_in) =
            if by_other { (ScsiStatus::TASK_ABORTED, None, 0) } else { (status, sense, data_in) };
        t.spdtl = spdtl;
        t.data_in_len = if t.read { data_in } else { 0 };
        match sense {
            Some(s) => {
                let mut buf = [0u8; SENSE_MAX];
                let n = if d_sense { s.encode_descriptor(&mut buf) } else { s.encode_fixed(&mut buf) };
                t.set_status(status, Some((&buf, n)));
            }
            None => t.set_status(status, None),
        }
        self.tasks.release_window(slot);
        self.out.push_back(Out::Task { slot, gen });
    }

    /// End a task without a response (aborted by another nexus with TAS =
    /// 0): its R2Ts and CAW wait go, its slot and window credit come back.
    fn drop_task(&mut self, slot: u32) {
        self.out.retain(|o| !matches!(o, Out::R2t { slot: s, .. } if *s == slot));
        self.job_wait.retain(|&(s, _)| s != slot);
        self.tasks.free(slot);
        self.kick = true;
    }

    /// PREEMPT AND ABORT from another nexus (SPC-4 §5.13.11.2.5): when the
    /// abort generation of one of this session's nexuses moved (one load
    /// per LU the session uses), end its tasks accepted before the move
    /// that are waiting for Data-Out or for a COMPARE AND WRITE range.
    /// Tasks with backend I/O in flight end when it completes, and held or
    /// deferred ones when their turn comes (both through `finish_with` /
    /// `run_task`); responses already queued stand.
    pub(super) fn sweep_preempted(&mut self) {
        let mut moved: Option<Vec<(u16, u64)>> = None;
        for (&lun, n) in self.nexus.iter_mut() {
            let Some(l) = n.link.as_mut() else { continue };
            let g = l.abort.load(std::sync::atomic::Ordering::Acquire);
            if g != l.abort_seen {
                l.abort_seen = g;
                moved.get_or_insert_with(Vec::new).push((lun, g));
            }
        }
        let Some(moved) = moved else { return };
        let victims: Vec<(u32, u32)> = self
            .tasks
            .in_use()
            .filter(|(_, t)| {
                t.status.is_none()
                    && !t.aborted
                    && !t.io_in_flight
                    && matches!(t.phase, Phase::WaitData | Phase::Io)
                    && t.lun.index().is_some_and(|i| moved.iter().any(|&(l, g)| l == i && t.abort_gen != g))
            })
            .map(|(s, t)| (s, t.gen))
            .collect();
        for (slot, gen) in victims {
            let Some(t) = self.tasks.get_mut(slot, gen) else { continue };
            if let Some(mut j) = t.job.take() {
                j.cancel();
            }
            let closed = t.stop_awaiting_data();
            // Data-Out still on its way for the task is dropped silently.
            t.failed = Some(Sense::new(scsi::SenseKey::ABORTED_COMMAND, Asc(0)));
            let spdtl = t.spdtl;
            self.tasks.paid(closed);
            self.out.retain(|o| !matches!(o, Out::R2t { slot: s, .. } if *s == slot));
            self.job_wait.retain(|&(s, _)| s != slot);
            self.finish_with(slot, gen, ScsiStatus::GOOD, None, spdtl, 0);
        }
        self.kick = true;
    }

    fn submit_io(&mut self, slot: u32) {
        let Some(t) = self.tasks.slot_mut(slot) else { return };
        let Some(io) = t.io else { return };
        t.phase = Phase::Io;
        t.io_in_flight = true;
        self.backend_q.push_back(super::BackendRequest {
            tag: slot,
            backend: t.backend,
            op: io.op,
            offset: io.offset,
            len: io.len,
            fua: io.fua,
        });
    }

    /// A backend request finished.
    pub(super) fn backend_done(&mut self, slot: u32, status: BackendStatus) {
        let Some(t) = self.tasks.slot_mut(slot) else { return };
        t.io_in_flight = false;
        let gen = t.gen;
        if t.aborted {
            self.tasks.free(slot);
            self.kick = true;
            self.tmf_progress(slot);
            return;
        }
        if t.job.is_some() {
            self.run_job(slot, gen, Some(status));
            return;
        }
        let Some(io) = t.io else { return };
        let outcome = if io.verify {
            let n = io.len as usize;
            scsi::complete_verify(&io, status, prefix(&t.buf, n), prefix(&t.verify_buf, n))
        } else {
            scsi::complete_backend(&io, status)
        };
        match outcome {
            Outcome::Done { status, sense, .. } => {
                let good = status == ScsiStatus::GOOD;
                let edtl = t.edtl;
                let read = io.op == BackendOp::Read && !io.verify;
                let data_in = if read && good { io.len.min(edtl) } else { 0 };
                let spdtl = t.spdtl;
                self.finish_with(slot, gen, status, sense, spdtl, data_in);
            }
            Outcome::Io(_) | Outcome::Job(_) => {}
        }
    }

    /// Advance a task's [`scsi::Job`]: submit its next backend operation,
    /// park it until a CAW lock frees ([`Self::retry_waiting_jobs`]), or
    /// finish the task.
    pub(super) fn run_job(&mut self, slot: u32, gen: u32, last: Option<BackendStatus>) {
        let Some(t) = self.tasks.get_mut(slot, gen) else { return };
        let Some(mut job) = t.job.take() else { return };
        let need = (t.need as usize).min(t.buf.len());
        let step = job.step(last, prefix_mut(&mut t.buf, need), &mut t.verify_buf);
        match step {
            scsi::JobStep::Io(io, which) => {
                t.job = Some(job);
                t.io = Some(scsi::IoRequest { verify: which == scsi::JobBuf::Scratch, ..io });
                self.submit_io(slot);
            }
            scsi::JobStep::Wait => {
                t.job = Some(job);
                t.phase = Phase::Io;
                self.job_wait.push((slot, gen));
            }
            scsi::JobStep::Done(outcome) => {
                let spdtl = t.spdtl;
                match outcome {
                    Outcome::Done { status, sense, data_len } if data_len > 0 => {
                        // Data-In a job leaves in its scratch buffer (GET LBA STATUS).
                        let n = (data_len as usize).min(t.verify_buf.len()).min(t.buf.len());
                        if let (Some(to), Some(from)) = (t.buf.get_mut(..n), t.verify_buf.get(..n)) {
                            to.copy_from_slice(from);
                        }
                        let sent = (n as u32).min(t.edtl);
                        self.finish_with(slot, gen, status, sense, data_len, sent);
                    }
                    Outcome::Done { status, sense, .. } => self.finish_with(slot, gen, status, sense, spdtl, 0),
                    _ => {
                        let sense = Sense::internal_target_failure();
                        self.finish_with(slot, gen, ScsiStatus::CHECK_CONDITION, Some(sense), spdtl, 0);
                    }
                }
            }
        }
    }

    /// Step every job that waits for a COMPARE AND WRITE lock again.
    pub(super) fn retry_waiting_jobs(&mut self) {
        let waiting = std::mem::take(&mut self.job_wait);
        for (slot, gen) in waiting {
            self.run_job(slot, gen, None);
        }
    }

    /// Called when a task's last PDU went out.
    pub(super) fn task_finished(&mut self, slot: u32, gen: u32) {
        if self.tasks.get(slot, gen).is_some() {
            self.tasks.free(slot);
        }
    }

    /// Data-Out (RFC 7143 §11.7): check TTT, DataSN and offset, place the data.
    /// `corrupt`: its data digest failed (RFC 7143 §7.8); the PDU counts in
    /// the sequence but its bytes are not used, and the task ends with
    /// PROTOCOL SERVICE CRC ERROR once all its data is in.
    pub(super) fn handle_data_out(
        &mut self,
        bhs: &Bhs,
        d: DataOut,
        data_at: usize,
        data_len: usize,
        corrupt: bool,
    ) -> Flow {
        let Some((slot, gen)) = self.tasks.by_itt(d.itt) else {
            // Data for a task that already ended (aborted or refused):
            // discard silently; for a TTT we never issued, reject.
            if d.ttt != Ttt::RESERVED {
                self.reject(bhs, RejectReason::PROTOCOL_ERROR);
            }
            return Flow::Continue;
        };
        let first_burst = self.op.first_burst;
        let Some(t) = self.tasks.get_mut(slot, gen) else { return Flow::Continue };
        if !t.write {
            self.reject(bhs, RejectReason::PROTOCOL_ERROR);
            return Flow::Continue;
        }
        if t.failed.is_some() {
            // The task already failed on bad data; the rest of its data is dropped.
            return Flow::Continue;
        }
        let len = data_len as u32;
        let off = d.buffer_offset;
        // A sequence error fails the command but keeps the connection: the
        // framing is intact, so the initiator gets CHECK CONDITION / ABORTED
        // COMMAND (RFC 7143 §11.4.7.2 sense for iSCSI errors) instead of
        // losing every other task with the connection.
        let mut failure = None;
        // Owed sequences this PDU completes (an R2T's, or the unsolicited burst).
        let mut completed = 0;
        if d.ttt == Ttt::RESERVED {
            // Unsolicited data (RFC 7143 §11.7.4): allowed only while the
            // command's unsolicited burst is open, in order, within FirstBurstLength.
            if !t.unsol_pending || off.checked_add(len).is_none_or(|end| end > first_burst.min(t.edtl)) {
                failure = Some(Asc::UNEXPECTED_UNSOLICITED_DATA);
            } else if d.datasn != t.unsol_datasn {
                failure = Some(Asc::DATA_PHASE_ERROR);
            } else if off != t.received || !place(&mut t.buf, off as usize, &self.rx, data_at, data_len, corrupt) {
                // Out of order, or no buffer behind it: a write whose EDTL we
                // refuse, or a W-bit command that is not a write.
                failure = Some(Asc::DATA_OFFSET_ERROR);
            } else {
                t.unsol_datasn += 1;
                t.received += len;
                if d.final_ {
                    t.unsol_pending = false;
                    completed = 1;
                }
            }
        } else {
            let Some(r) = t.r2ts.iter_mut().find(|r| r.active && r.ttt == d.ttt) else {
                // RFC 7143 §11.7.4: a TTT that matches no outstanding R2T.
                self.reject(bhs, RejectReason::PROTOCOL_ERROR);
                return Flow::Continue;
            };
            // DataSN restarts at 0 for each R2T's sequence; offsets run in
            // order (DataPDUInOrder=Yes).
            if d.datasn != r.datasn {
                failure = Some(Asc::DATA_PHASE_ERROR);
            } else if off != r.offset + r.received
                || r.received + len > r.len
                || (d.final_ && r.received + len != r.len)
                || !place(&mut t.buf, off as usize, &self.rx, data_at, data_len, corrupt)
            {
                failure = Some(Asc::DATA_OFFSET_ERROR);
            } else {
                r.datasn += 1;
                r.received += len;
                if d.final_ {
                    r.active = false;
                    completed = 1;
                }
                t.received = t.received.max(off + len);
            }
        }
        if let Some(asc) = failure {
            let sense = Sense::new(scsi::SenseKey::ABORTED_COMMAND, asc);
            t.failed = Some(sense);
            // None of its data is wanted any more.
            let closed = t.stop_awaiting_data();
            let (waiting, spdtl) = (t.phase == Phase::WaitData, t.spdtl);
            self.tasks.paid(closed);
            if waiting {
                self.finish_with(slot, gen, ScsiStatus::CHECK_CONDITION, Some(sense), spdtl, 0);
            }
            return Flow::Continue;
        }
        t.crc_error |= corrupt;
        let waiting = t.phase == Phase::WaitData;
        // Progress: the solicited-data timeout starts over (handle_timeout).
        self.tasks.paid(completed);
        self.tasks.data_arrived(self.now_ms);
        if waiting {
            self.write_progress(slot, gen);
        }
        Flow::Continue
    }

    /// Give waiting writes their grant, oldest first, while the write budget
    /// allows; the first that still does not fit stays at the head (so a
    /// large command is not overtaken forever by this connection's small ones).
    pub(super) fn retry_budget_waiters(&mut self) {
        for _ in 0..self.budget_wait.len() {
            let Some((s, g)) = self.budget_wait.pop_front() else { break };
            let Some(t) = self.tasks.get_mut(s, g) else { continue };
            t.budget_waiting = false;
            if t.phase != Phase::WaitData || t.failed.is_some() {
                continue;
            }
            self.write_progress(s, g);
            if self.tasks.get(s, g).is_some_and(|t| t.budget_waiting) {
                // Queued again at the back: put it back at the head and stop.
                if let Some(e) = self.budget_wait.pop_back() {
                    self.budget_wait.push_front(e);
                }
                break;
            }
        }
    }

    /// Issue R2Ts for missing write data, or start the backend write when
    /// everything needed has arrived.
    fn write_progress(&mut self, slot: u32, gen: u32) {
        let max_burst = self.op.max_burst;
        let max_r2t = (self.op.max_outstanding_r2t as usize).clamp(1, super::task::R2T_MAX);
        let Some(t) = self.tasks.get_mut(slot, gen) else { return };
        if t.received >= t.need && !t.unsol_pending && !t.r2ts.iter().any(|r| r.active) {
            if t.crc_error {
                // RFC 7143 §7.8 (b): all data is in, some of it failed its
                // digest: CHECK CONDITION, ABORTED COMMAND, 47/05 (§11.4.7.2).
                let spdtl = t.spdtl;
                let sense = Sense::new(scsi::SenseKey::ABORTED_COMMAND, Asc::PROTOCOL_SERVICE_CRC_ERROR);
                self.finish_with(slot, gen, ScsiStatus::CHECK_CONDITION, Some(sense), spdtl, 0);
                return;
            }
            if t.param_list {
                self.run_parameter_list(slot, gen);
                return;
            }
            if t.job.is_some() {
                self.run_job(slot, gen, None);
                return;
            }
            if t.need == 0 {
                // Nothing to write (EDTL 0): done, with the residual.
                let spdtl = t.spdtl;
                self.finish_with(slot, gen, ScsiStatus::GOOD, None, spdtl, 0);
                return;
            }
            if let Some(io) = t.io.as_mut() {
                if io.verify && t.need < io.len {
                    // Fewer bytes than the CDB covers: compare what arrived.
                    io.len = t.need;
                }
                if !io.verify {
                    io.len = t.need;
                }
            }
            self.submit_io(slot);
            return;
        }
        if t.unsol_pending {
            // R2Ts start after the unsolicited burst (offsets follow it).
            return;
        }
        if t.r2t_next < t.received {
            t.r2t_next = t.received;
        }
        if t.r2t_next < t.need && !t.granted {
            // The whole rest of the buffer is granted before the first R2T;
            // when the write budget is spent the task waits, with no R2T
            // sent, until other commands release theirs (retry_budget_waiters).
            let need = t.need;
            let limit = self.targets.limits.write_buffer_budget;
            if !self.tasks.try_grant(slot, need, limit, max_burst) {
                if let Some(t) = self.tasks.get_mut(slot, gen) {
                    if !t.budget_waiting {
                        t.budget_waiting = true;
                        self.budget_wait.push_back((slot, gen));
                    }
                }
                return;
            }
        }
        // Issue R2Ts up to MaxOutstandingR2T, each at most MaxBurstLength
        // (RFC 7143 §13.13, §13.17). No allocation: straight into the queue.
        loop {
            let Some(t) = self.tasks.get_mut(slot, gen) else { return };
            if t.r2t_next >= t.need || t.r2ts.iter().filter(|r| r.active).count() >= max_r2t {
                return;
            }
            let len = (t.need - t.r2t_next).min(max_burst);
            let ttt = super::next_ttt(&mut self.next_ttt);
            let Some(r) = t.r2ts.iter_mut().find(|r| !r.active) else { return };
            *r = R2tState { ttt, offset: t.r2t_next, len, received: 0, datasn: 0, active: true };
            let item = Out::R2t { slot, gen, ttt, r2tsn: t.r2tsn, offset: t.r2t_next, len };
            t.r2tsn += 1;
            t.datasn += 1;
            t.r2t_next += len;
            self.out.push_back(item);
            // The initiator owes this R2T's data (solicited-data timeout).
            self.tasks.owe(1, self.now_ms);
        }
    }

    /// Task management (RFC 7143 §11.5, SAM-5 §7).
    fn handle_tmf(&mut self, req: TmfRequest) -> Flow {
        let lun_ok = |c: &Connection, lun: crate::ids::Lun| {
            let target = c.session.as_ref().and_then(|s| s.target).and_then(|i| c.targets.targets.get(i));
            lun.index().and_then(|i| target.and_then(|t| t.lu(i))).is_some()
        };
        let mut close_after = false;
        let (response, victims): (TmfResponseCode, Vec<u32>) = match req.function {
            TmfFunction::ABORT_TASK => {
                match self.tasks.by_itt(req.rtt) {
                    Some((slot, _)) if self.tasks.slot_mut(slot).is_some_and(|t| t.lun == req.lun) => {
                        (TmfResponseCode::COMPLETE, vec![slot])
                    }
                    Some(_) => (TmfResponseCode::TASK_DOES_NOT_EXIST, vec![]),
                    None => {
                        // RFC 7143 §11.5.1: a task never received whose
                        // RefCmdSN is in the window counts as received and
                        // done ("Function complete"); otherwise it does not exist.
                        if req.refcmdsn.le(self.max_cmdsn()) && !req.refcmdsn.lt(self.exp_cmdsn) {
                            (TmfResponseCode::COMPLETE, vec![])
                        } else {
                            (TmfResponseCode::TASK_DOES_NOT_EXIST, vec![])
                        }
                    }
                }
            }
            TmfFunction::ABORT_TASK_SET | TmfFunction::CLEAR_TASK_SET | TmfFunction::LOGICAL_UNIT_RESET => {
                if !lun_ok(self, req.lun) {
                    (TmfResponseCode::LUN_DOES_NOT_EXIST, vec![])
                } else {
                    let v = self
                        .tasks
                        .in_use()
                        .filter(|(_, t)| t.lun == req.lun && t.itt != req.itt && is_older_or_immediate(t, &req))
                        .map(|(s, _)| s)
                        .collect();
                    if req.function == TmfFunction::LOGICAL_UNIT_RESET {
                        // SAM-5 §6.3.2: the reset raises 29/03 on every I_T
                        // nexus of the LU (this one included) and ends its
                        // SPC-2 reservation.
                        if let Some(lu) = self.tmf_lu(req.lun) {
                            lu.lun_reset();
                        }
                    }
                    (TmfResponseCode::COMPLETE, v)
                }
            }
            TmfFunction::TARGET_WARM_RESET | TmfFunction::TARGET_COLD_RESET => {
                let v = self.tasks.in_use().filter(|(_, t)| t.itt != req.itt).map(|(s, _)| s).collect();
                close_after = req.function == TmfFunction::TARGET_COLD_RESET;
                // SAM-5 §6.3: a target reset resets every LU of the target.
                if let Some(t) = self.session.as_ref().and_then(|s| s.target).and_then(|i| self.targets.targets.get(i))
                {
                    for lu in &t.luns {
                        lu.shared.target_reset();
                    }
                }
                (TmfResponseCode::COMPLETE, v)
            }
            TmfFunction::CLEAR_ACA => (TmfResponseCode::NOT_SUPPORTED, vec![]),
            TmfFunction::TASK_REASSIGN => (TmfResponseCode::REASSIGN_NOT_SUPPORTED, vec![]),
            _ => (TmfResponseCode::REJECTED, vec![]),
        };
        let mut waiting = Vec::new();
        for slot in victims {
            let in_flight = self.tasks.slot_mut(slot).is_some_and(|t| t.io_in_flight);
            self.held.retain(|_, h| !matches!(h, Held::Task(s) if *s == slot));
            self.tasks.free(slot);
            if in_flight {
                waiting.push(slot);
            }
            self.out.retain(|o| !matches!(o, Out::Task { slot: s, .. } | Out::R2t { slot: s, .. } if *s == slot));
        }
        self.tasks.held = self.held.values().filter(|h| matches!(h, Held::Task(_))).count();
        self.kick = true;
        self.tmfs.push(PendingTmf { itt: req.itt, response, waiting, close_after });
        self.tmf_progress(u32::MAX);
        Flow::Continue
    }

    /// Send TMF responses whose aborted tasks have finished their backend I/O
    /// (SAM-5 §7.1: the function completes after the tasks are gone).
    fn tmf_progress(&mut self, done_slot: u32) {
        for t in &mut self.tmfs {
            t.waiting.retain(|s| *s != done_slot);
        }
        while let Some(pos) = self.tmfs.iter().position(|t| t.waiting.is_empty()) {
            let t = self.tmfs.remove(pos);
            self.out.push_back(Out::Tmf { itt: t.itt, response: t.response });
            if t.close_after {
                self.out.push_back(Out::CloseAfter);
            }
        }
    }
}

impl Connection {
    /// The shared state of the LU a TMF names, if configured.
    fn tmf_lu(&self, lun: crate::ids::Lun) -> Option<std::sync::Arc<scsi::LuShared>> {
        let target = self.session.as_ref().and_then(|s| s.target).and_then(|i| self.targets.targets.get(i))?;
        lun.index().and_then(|i| target.lu(i)).map(|l| l.shared.clone())
    }
}

/// ABORT TASK SET aborts tasks received before the TMF (RFC 7143 §11.5.1 /
/// SAM-5 §7.3): the ones whose CmdSN precedes the TMF's, and immediate ones.
fn is_older_or_immediate(t: &super::task::Task, req: &TmfRequest) -> bool {
    t.immediate || t.cmdsn.lt(req.cmdsn) || req.immediate
}

/// Where a non-immediate PDU stands against the CmdSN window.
enum Order {
    Now,
    Hold,
    Ignore,
}

/// Store a Data-Out payload at `off` of the task buffer (bounds-checked);
/// with `corrupt` (its data digest failed) only the bounds are checked and
/// nothing is stored.
fn place(buf: &mut [u8], off: usize, rx: &[u8], data_at: usize, len: usize, corrupt: bool) -> bool {
    if corrupt {
        off.checked_add(len).is_some_and(|end| end <= buf.len())
    } else {
        copy_range(buf, off, rx, data_at, len)
    }
}
