//! The connection's output queue. Items are queued as descriptors and
//! serialized into the transmit buffer only when the transport asks for
//! bytes, so StatSN is assigned in wire order and ExpCmdSN/MaxCmdSN are as
//! fresh as possible (RFC 7143 §4.2.2.2), and Data-In is produced from the
//! task buffer in bounded batches instead of piling up in memory.

use super::{ConnState, Connection, TX_BATCH};
use crate::bytes::copy_prefix;
use crate::ids::{Itt, Lun, Ttt};
use crate::pdu::frame::DigestMode;
use crate::pdu::{
    AsyncMessage, Bhs, DataIn, LoginResponse, LogoutResponse, NopIn, Pdu, R2t, Reject, RejectReason, ScsiResponse,
    TextResponse, TmfResponse, TmfResponseCode,
};
use crate::serial::StatSn;

/// One queued output item.
#[derive(Debug)]
pub(super) enum Out {
    /// A login response; it carries its own StatSN handling.
    Login { resp: LoginResponse, data: Vec<u8> },
    /// A text response chunk.
    Text { resp: TextResponse, data: Vec<u8> },
    /// NOP-In (answer or ping).
    NopIn { itt: Itt, ttt: Ttt, data: Vec<u8> },
    /// Reject with the offending header.
    Reject { reason: RejectReason, bhs: Box<Bhs> },
    /// TMF response.
    Tmf { itt: Itt, response: TmfResponseCode },
    /// Logout response; with `close` the connection closes once it is sent.
    Logout { itt: Itt, response: u8, close: bool },
    /// Close the connection once everything before this is sent.
    CloseAfter,
    /// Async Message asking the initiator to log out (RFC 7143 §11.9.1 event 1).
    AsyncLogout { wait_s: u16 },
    /// An R2T for a task.
    R2t { slot: u32, gen: u32, ttt: Ttt, r2tsn: u32, offset: u32, len: u32 },
    /// A task's Data-In and/or status.
    Task { slot: u32, gen: u32 },
}

impl Connection {
    pub(super) fn digests(&self) -> DigestMode {
        DigestMode { header: self.op.header_digest, data: self.op.data_digest }
    }

    fn next_statsn(&mut self) -> StatSn {
        let s = self.statsn;
        self.statsn = s.next();
        s
    }

    /// Serialize queued items into `tx_next` until it holds about
    /// [`TX_BATCH`] bytes or the queue is empty.
    pub(super) fn serialize(&mut self) {
        while self.tx_next.len() < TX_BATCH {
            let Some(item) = self.out.pop_front() else { break };
            match item {
                Out::Task { slot, gen } => {
                    // A task may need several calls to emit its Data-In.
                    if !self.emit_task(slot, gen) {
                        self.out.push_front(Out::Task { slot, gen });
                        break;
                    }
                }
                other => self.emit(other),
            }
        }
    }

    pub(super) fn write_pdu(&mut self, pdu: &Pdu, data: &[u8]) {
        let d = self.digests();
        crate::pdu::frame::encode_pdu(pdu, data, d, &mut self.tx_next);
    }

    fn emit(&mut self, item: Out) {
        let expcmdsn = self.exp_cmdsn;
        let maxcmdsn = self.max_cmdsn();
        match item {
            Out::Login { mut resp, data } => {
                resp.statsn = self.next_statsn();
                resp.expcmdsn = expcmdsn;
                resp.maxcmdsn = maxcmdsn;
                let failed = resp.status.class() != 0;
                // Login PDUs never carry digests (RFC 7143 §13.1: they start after login).
                crate::pdu::frame::encode_pdu(
                    &Pdu::LoginResponse(resp),
                    &data,
                    DigestMode { header: false, data: false },
                    &mut self.tx_next,
                );
                if failed {
                    self.state = ConnState::CloseAfterFlush;
                }
            }
            Out::Text { mut resp, data } => {
                resp.statsn = self.next_statsn();
                resp.expcmdsn = expcmdsn;
                resp.maxcmdsn = maxcmdsn;
                self.write_pdu(&Pdu::TextResponse(resp), &data);
            }
            Out::NopIn { itt, ttt, data } => {
                // A ping (ITT reserved) does not advance StatSN (RFC 7143 §11.19.2).
                let statsn = if itt == Itt::RESERVED { self.statsn } else { self.next_statsn() };
                let pdu = NopIn { lun: Lun(0), itt, ttt, statsn, expcmdsn, maxcmdsn };
                self.write_pdu(&Pdu::NopIn(pdu), &data);
            }
            Out::Reject { reason, bhs } => {
                let pdu = Reject { reason, statsn: self.next_statsn(), expcmdsn, maxcmdsn, datasn: 0 };
                self.write_pdu(&Pdu::Reject(pdu), &bhs.0);
            }
            Out::Tmf { itt, response } => {
                let pdu = TmfResponse { response, itt, statsn: self.next_statsn(), expcmdsn, maxcmdsn };
                self.write_pdu(&Pdu::TmfResponse(pdu), &[]);
            }
            Out::CloseAfter => self.state = ConnState::CloseAfterFlush,
            Out::Logout { itt, response, close } => {
                let pdu = LogoutResponse {
                    response,
                    itt,
                    statsn: self.next_statsn(),
                    expcmdsn,
                    maxcmdsn,
                    time2wait: 0,
                    time2retain: 0,
                };
                self.write_pdu(&Pdu::LogoutResponse(pdu), &[]);
                if close {
                    self.state = ConnState::CloseAfterFlush;
                }
            }
            Out::AsyncLogout { wait_s } => {
                let pdu = AsyncMessage {
                    lun: Lun(0),
                    statsn: self.next_statsn(),
                    expcmdsn,
                    maxcmdsn,
                    event: 1,
                    vcode: 0,
                    param1: 0,
                    param2: 0,
                    param3: wait_s,
                };
                self.write_pdu(&Pdu::AsyncMessage(pdu), &[]);
            }
            Out::R2t { slot, gen, ttt, r2tsn, offset, len } => {
                let Some(t) = self.tasks.get(slot, gen) else { return };
                let pdu = R2t {
                    lun: t.lun,
                    itt: t.itt,
                    ttt,
                    statsn: self.statsn,
                    expcmdsn,
                    maxcmdsn,
                    r2tsn,
                    buffer_offset: offset,
                    desired_len: len,
                };
                self.write_pdu(&Pdu::R2t(pdu), &[]);
            }
            // Tasks are emitted by `serialize` itself (they may span batches).
            Out::Task { .. } => {}
        }
    }

    /// Emit Data-In PDUs and/or the status of a finished task. Returns false
    /// if the batch filled up before the task was fully emitted.
    fn emit_task(&mut self, slot: u32, gen: u32) -> bool {
        let d = self.digests();
        let max_seg = self.op.max_xmit_dsl.max(512);
        let max_burst = self.op.max_burst.max(512);
        loop {
            let expcmdsn = self.exp_cmdsn;
            let maxcmdsn = self.max_cmdsn();
            let statsn_now = self.statsn;
            let Some(t) = self.tasks.get_mut(slot, gen) else { return true };
            let total = t.data_in_len;
            if t.data_in_sent < total {
                if self.tx_next.len() >= TX_BATCH {
                    return false;
                }
                let off = t.data_in_sent;
                let burst_left = max_burst - (off % max_burst);
                let seg = (total - off).min(max_seg).min(burst_left);
                let last = off + seg == total;
                let end_of_burst = last || (off + seg) % max_burst == 0;
                // Status rides in the final Data-In when there is no sense
                // (RFC 7143 §11.7.4: S bit; sense needs a SCSI Response).
                let with_status = last && t.sense_len == 0 && t.status.is_some();
                let mut pdu = DataIn {
                    final_: end_of_burst || with_status,
                    ack: false,
                    overflow: false,
                    underflow: false,
                    has_status: false,
                    status: 0,
                    lun: t.lun,
                    itt: t.itt,
                    ttt: Ttt::RESERVED,
                    statsn: statsn_now,
                    expcmdsn,
                    maxcmdsn,
                    datasn: t.datasn,
                    buffer_offset: off,
                    residual: 0,
                };
                t.datasn += 1;
                t.data_in_sent += seg;
                if with_status {
                    pdu.has_status = true;
                    pdu.final_ = true;
                    pdu.status = t.status.map_or(0, |s| s.0);
                    let (o, u, r) = t.residual();
                    pdu.overflow = o;
                    pdu.underflow = u;
                    pdu.residual = r;
                    t.status_sent = true;
                }
                let pdu = Pdu::DataIn(pdu);
                crate::pdu::frame::encode_pdu(&pdu, t.data_in_slice(off, seg), d, &mut self.tx_next);
                if with_status {
                    self.statsn = self.statsn.next();
                    self.task_finished(slot, gen);
                    return true;
                }
                continue;
            }
            if !t.status_sent {
                if t.status.is_none() {
                    // Data-In without status yet: nothing more to send now.
                    return true;
                }
                let (o, u, r) = t.residual();
                let resp = ScsiResponse {
                    bidi_overflow: false,
                    bidi_underflow: false,
                    overflow: o,
                    underflow: u,
                    response: 0,
                    status: t.status.map_or(0, |s| s.0),
                    itt: t.itt,
                    snack_tag: 0,
                    statsn: statsn_now,
                    expcmdsn,
                    maxcmdsn,
                    expdatasn: t.datasn,
                    bidi_residual: 0,
                    residual: r,
                };
                t.status_sent = true;
                let sense_len = t.sense_len;
                let sense = t.sense_buf;
                self.statsn = self.statsn.next();
                let pdu = Pdu::ScsiResponse(resp);
                if sense_len > 0 {
                    // RFC 7143 §11.4.7: SenseLength (2 bytes) then sense data.
                    let mut data = [0u8; 2 + super::task::SENSE_MAX];
                    let (len_field, body) = data.split_at_mut(2);
                    len_field.copy_from_slice(&(sense_len as u16).to_be_bytes());
                    let n = copy_prefix(body, crate::bytes::prefix(&sense, sense_len));
                    crate::pdu::frame::encode_pdu(&pdu, crate::bytes::prefix(&data, 2 + n), d, &mut self.tx_next);
                } else {
                    crate::pdu::frame::encode_pdu(&pdu, &[], d, &mut self.tx_next);
                }
                self.task_finished(slot, gen);
            }
            return true;
        }
    }
}
