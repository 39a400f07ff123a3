//! One iSCSI connection, target role, sans-IO (RFC 7143).
//!
//! ```text
//!  Login ──(T to FFP)──► FullFeature ──(Logout / shutdown)──► LoggingOut ──► Closed
//!    │                        │
//!    └──(error, timeout)──────┴──(fatal protocol error, dead peer)──────────► Closed
//! ```
//!
//! Contract with the transport (the shard):
//! - receive: write bytes into [`Connection::recv_buf`], then call
//!   [`Connection::recv_done`]. The slice stays untouched by the core until
//!   `recv_done`, so it may be the target of an in-flight io_uring recv.
//! - send: [`Connection::poll_transmit`] returns bytes to send; they stay
//!   valid and unchanged until [`Connection::transmit_done`] reports how many
//!   went out.
//! - backend: [`Connection::poll_backend`] yields requests; the task buffer
//!   ([`Connection::backend_buffer`]) stays put until
//!   [`Connection::handle_backend`] completes the request, even if the task
//!   is aborted meanwhile.
//! - time: [`Connection::next_deadline`] / [`Connection::handle_timeout`].
//! - [`Connection::state`] says when to close.

use std::sync::Arc;

pub use self::budget::WriteBudget;
use crate::scsi::{BackendOp, BackendStatus};
use crate::session::Registry;
use crate::target::TargetSet;

/// Where a connection is in its life.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ConnState {
    /// Login phase (security / operational negotiation).
    Login,
    /// Full feature phase.
    FullFeature,
    /// Logout accepted or requested; closes once everything is sent.
    LoggingOut,
    /// Send what is queued, then close the socket.
    CloseAfterFlush,
    /// Close the socket now (nothing more will be sent).
    Closed,
}

/// A request to the backend for one task.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BackendRequest {
    /// Opaque tag to hand back in [`Connection::handle_backend`] and [`Connection::backend_buffer`].
    pub tag: u32,
    /// Backend index (from [`crate::target::LuConfig::backend`]).
    pub backend: usize,
    /// Operation.
    pub op: BackendOp,
    /// Byte offset on the LU.
    pub offset: u64,
    /// Byte length; the task buffer has exactly this length, except for
    /// [`BackendOp::Flush`] and [`BackendOp::Deallocate`], which have no
    /// buffer (an empty one) and where it is the range's length.
    pub len: u32,
    /// Force unit access.
    pub fua: bool,
}

/// Facts about the peer and the portal the connection came in on.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// Peer address, for logs and session listings.
    pub peer: String,
    /// Target portal group tag of the portal the connection arrived on.
    pub tpgt: u16,
}

mod budget;
mod ffp;
mod login;
mod task;
mod tx;

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::bytes::range;
use crate::ids::{Cid, Isid, Itt, Tsih, Ttt};
use crate::pdu::bhs::pad_len;
use crate::pdu::{Bhs, DecodeError, Opcode, Pdu, RejectReason, BHS_LEN};
use crate::scsi::NexusState;
use crate::serial::{CmdSn, StatSn};
use crate::session::SessionLease;

use self::login::LoginState;
use self::task::TaskTable;
use self::tx::Out;

/// Largest data segment we accept during login (RFC 7143 §13.12: the
/// default MaxRecvDataSegmentLength, 8192, applies until negotiated).
const LOGIN_DSL_MAX: u32 = 8192;
/// Largest AHS (TotalAHSLength is one byte of 4-byte words).
const AHS_MAX: usize = 255 * 4;
/// Bytes a PDU needs beyond its data segment: BHS, AHS, two digests, padding.
const PDU_OVERHEAD: usize = BHS_LEN + AHS_MAX + 4 + 4 + 4;
/// Serialize queued output until the next transmit chunk holds this much.
const TX_BATCH: usize = 256 * 1024;
/// Queued output items beyond which we stop reading PDUs until the
/// initiator takes what we have (backpressure against a peer that sends
/// but never reads, e.g. a NOP-Out flood).
const OUT_BACKLOG_MAX: usize = 1024;
/// Keep at least this much room after the received bytes (compacting the
/// partial PDU to the front when there is less), so receives stay large.
const RX_MIN_ROOM: usize = 64 * 1024;

/// Negotiated values the full feature phase needs (copied out of the
/// negotiation once, so the per-PDU path reads plain fields).
#[derive(Clone, Copy, Debug)]
struct Op {
    header_digest: bool,
    data_digest: bool,
    /// Our MaxRecvDataSegmentLength (what we declared).
    max_recv_dsl: u32,
    /// The initiator's MaxRecvDataSegmentLength: our largest Data-In / text segment.
    max_xmit_dsl: u32,
    max_burst: u32,
    first_burst: u32,
    initial_r2t: bool,
    immediate_data: bool,
    max_outstanding_r2t: u32,
}

impl Default for Op {
    fn default() -> Self {
        // RFC 7143 §13 defaults, as they apply during login.
        Op {
            header_digest: false,
            data_digest: false,
            max_recv_dsl: LOGIN_DSL_MAX,
            max_xmit_dsl: LOGIN_DSL_MAX,
            max_burst: 262_144,
            first_burst: 65_536,
            initial_r2t: true,
            immediate_data: true,
            max_outstanding_r2t: 1,
        }
    }
}

/// The session this connection carries, once login succeeded.
#[derive(Debug)]
struct Session {
    lease: Option<SessionLease>,
    /// Index into `TargetSet::targets` for a normal session.
    target: Option<usize>,
    discovery: bool,
    initiator_name: String,
    isid: Isid,
    tsih: Tsih,
    cid: Cid,
}

/// A text exchange in progress (RFC 7143 §11.10: C bit and TTT continuation).
#[derive(Debug, Default)]
struct TextExchange {
    itt: Itt,
    ttt: Ttt,
    /// Request bytes gathered from PDUs with C=1.
    request: Vec<u8>,
    /// Answer bytes not yet sent.
    answer: Vec<u8>,
    answer_off: usize,
}

/// A TMF waiting for aborted tasks' backend operations to finish.
#[derive(Debug)]
struct PendingTmf {
    itt: Itt,
    response: crate::pdu::TmfResponseCode,
    /// Task slots whose in-flight backend I/O must complete first.
    waiting: Vec<u32>,
    /// Close the connection after the response (TARGET COLD RESET).
    close_after: bool,
}

/// One connection (and, since MaxConnections=1, its session).
#[derive(Debug)]
pub struct Connection {
    targets: Arc<TargetSet>,
    registry: Arc<Registry>,
    info: ConnInfo,
    state: ConnState,

    rx: Vec<u8>,
    rx_start: usize,
    rx_end: usize,
    /// Parsing stopped on output backlog; resumes as transmits complete.
    rx_paused: bool,

    op: Op,
    login: Option<Box<LoginState>>,
    session: Option<Session>,

    statsn: StatSn,
    exp_cmdsn: CmdSn,
    /// Non-immediate PDUs that arrived ahead of ExpCmdSN, by CmdSN.
    held: BTreeMap<u32, Held>,
    tasks: TaskTable,
    nexus: HashMap<u16, NexusState>,
    text: Option<TextExchange>,
    tmfs: Vec<PendingTmf>,
    next_ttt: u32,
    /// Tasks whose job waits for a COMPARE AND WRITE range lock (retried
    /// every millisecond through [`Connection::next_deadline`]).
    job_wait: Vec<(u32, u32)>,
    /// Tasks deferred by task attribute ordering (slot, generation), oldest first.
    deferred: VecDeque<(u32, u32)>,
    /// Writes waiting for a write-budget grant before their first R2T
    /// (slot, generation), oldest first; retried every millisecond and
    /// whenever this connection frees a task.
    budget_wait: VecDeque<(u32, u32)>,
    /// A task finished or was aborted: deferred tasks may start.
    kick: bool,

    out: VecDeque<Out>,
    tx_next: Vec<u8>,
    tx_out: Vec<u8>,
    tx_off: usize,

    backend_q: VecDeque<BackendRequest>,
    backend_in_flight: usize,

    now_ms: u64,
    login_deadline_ms: u64,
    last_rx_ms: u64,
    /// Our outstanding NOP-In ping: (TTT, sent at).
    ping: Option<(Ttt, u64)>,
    /// Logout requested by us (shutdown): close at this time.
    logout_deadline_ms: Option<u64>,
}

/// A PDU held until its CmdSN comes up (RFC 7143 §4.2.2.1: commands are
/// delivered in CmdSN order).
#[derive(Debug)]
enum Held {
    /// A SCSI command, already in the task table (its data may still be arriving).
    Task(u32),
    /// Any other non-immediate PDU, with its data segment.
    Pdu(Pdu, Vec<u8>),
}

/// What to do with the connection after a PDU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flow {
    Continue,
    /// A protocol error from which ERL 0 cannot recover: drop the connection.
    Drop,
}

impl Connection {
    /// A fresh connection in the login phase.
    pub fn new(targets: Arc<TargetSet>, registry: Arc<Registry>, info: ConnInfo, now_ms: u64) -> Self {
        let limits = &targets.limits;
        let rx_cap = PDU_OVERHEAD + limits.max_recv_data_segment_len.max(LOGIN_DSL_MAX) as usize;
        let qd = limits.queue_depth as usize;
        let login_deadline_ms = now_ms + limits.login_timeout_ms;
        Connection {
            rx: vec![0; rx_cap],
            rx_start: 0,
            rx_end: 0,
            rx_paused: false,
            op: Op::default(),
            login: Some(Box::default()),
            session: None,
            statsn: StatSn(0),
            exp_cmdsn: CmdSn(0),
            held: BTreeMap::new(),
            tasks: TaskTable::new(qd),
            nexus: HashMap::new(),
            text: None,
            tmfs: Vec::new(),
            next_ttt: 1,
            job_wait: Vec::new(),
            deferred: VecDeque::new(),
            budget_wait: VecDeque::new(),
            kick: false,
            out: VecDeque::with_capacity(qd * 2 + 16),
            tx_next: Vec::with_capacity(TX_BATCH + PDU_OVERHEAD),
            tx_out: Vec::with_capacity(TX_BATCH + PDU_OVERHEAD),
            tx_off: 0,
            backend_q: VecDeque::with_capacity(qd),
            backend_in_flight: 0,
            now_ms,
            login_deadline_ms,
            last_rx_ms: now_ms,
            ping: None,
            logout_deadline_ms: None,
            state: ConnState::Login,
            targets,
            registry,
            info,
        }
    }

    /// Where the next received bytes go. Empty while the connection holds
    /// back (too much output the peer has not taken, or the connection is
    /// closing): ask again after transmit progress.
    pub fn recv_buf(&mut self) -> &mut [u8] {
        if self.rx_paused || self.state == ConnState::Closed {
            return &mut [];
        }
        if self.rx_start == self.rx_end || (self.rx_start > 0 && self.rx.len() - self.rx_end < RX_MIN_ROOM) {
            // Move the partial PDU to the front; a whole PDU always fits.
            self.rx.copy_within(self.rx_start..self.rx_end, 0);
            self.rx_end -= self.rx_start;
            self.rx_start = 0;
        }
        self.rx.get_mut(self.rx_end..).unwrap_or_default()
    }

    /// `n` bytes were written at the start of the last [`Self::recv_buf`] slice.
    pub fn recv_done(&mut self, n: usize, now_ms: u64) {
        self.now_ms = now_ms;
        if n == 0 {
            self.peer_closed();
            return;
        }
        assert!(self.rx_end + n <= self.rx.len(), "recv_done beyond recv_buf");
        self.rx_end += n;
        self.last_rx_ms = now_ms;
        if self.state == ConnState::FullFeature {
            self.sweep_preempted();
        }
        self.parse_loop();
        if self.kick {
            self.kick_deferred();
        }
    }

    /// The peer closed its side (recv returned 0) or the socket failed.
    pub fn peer_closed(&mut self) {
        self.close_now();
    }

    /// Bytes to send next, or `None` when nothing is queued.
    pub fn poll_transmit(&mut self) -> Option<&[u8]> {
        if self.tx_off == self.tx_out.len() {
            self.tx_out.clear();
            self.tx_off = 0;
            self.serialize();
            std::mem::swap(&mut self.tx_out, &mut self.tx_next);
            if self.tx_out.is_empty() {
                return None;
            }
        }
        self.tx_out.get(self.tx_off..)
    }

    /// `n` bytes of the last [`Self::poll_transmit`] slice were sent.
    pub fn transmit_done(&mut self, n: usize, now_ms: u64) {
        self.now_ms = now_ms;
        assert!(self.tx_off + n <= self.tx_out.len(), "transmit_done beyond poll_transmit");
        self.tx_off += n;
        if self.state == ConnState::CloseAfterFlush && !self.has_output() {
            self.close_now();
        }
        if !self.budget_wait.is_empty() && self.state == ConnState::FullFeature {
            // Responses went out, so tasks (and their write buffers) were freed.
            self.retry_budget_waiters();
        }
        if self.rx_paused && self.out.len() < OUT_BACKLOG_MAX / 2 {
            self.rx_paused = false;
            self.parse_loop();
        }
    }

    fn has_output(&self) -> bool {
        self.tx_off < self.tx_out.len() || !self.tx_next.is_empty() || !self.out.is_empty()
    }

    /// The next backend request, if any.
    pub fn poll_backend(&mut self) -> Option<BackendRequest> {
        let r = self.backend_q.pop_front()?;
        self.backend_in_flight += 1;
        Some(r)
    }

    /// The task buffer of an outstanding backend request (exactly `len` bytes).
    pub fn backend_buffer(&mut self, tag: u32) -> &mut [u8] {
        self.tasks.io_buffer(tag)
    }

    /// A backend request finished.
    pub fn handle_backend(&mut self, tag: u32, status: BackendStatus, now_ms: u64) {
        self.now_ms = now_ms;
        assert!(self.backend_in_flight > 0, "completion without a request");
        self.backend_in_flight -= 1;
        self.backend_done(tag, status);
        if self.kick && self.state == ConnState::FullFeature {
            self.kick_deferred();
        }
    }

    /// When [`Self::handle_timeout`] must be called next (absolute ms).
    pub fn next_deadline(&self) -> Option<u64> {
        match self.state {
            ConnState::Closed => None,
            ConnState::Login => Some(self.login_deadline_ms),
            _ => {
                let mut d = self.logout_deadline_ms;
                if !self.job_wait.is_empty() || !self.budget_wait.is_empty() {
                    d = min_opt(d, Some(self.now_ms + 1));
                }
                let lim = &self.targets.limits;
                if self.state == ConnState::FullFeature {
                    d = min_opt(d, self.tasks.data_overdue_at(lim.r2t_timeout_ms));
                }
                if let Some((_, sent)) = self.ping {
                    d = min_opt(d, Some(sent + lim.nop_timeout_ms));
                } else if lim.nop_interval_ms > 0 && self.state == ConnState::FullFeature {
                    d = min_opt(d, Some(self.last_rx_ms + lim.nop_interval_ms));
                }
                d
            }
        }
    }

    /// Time passed: run timers (login timeout, NOP-In, solicited-data
    /// timeout, reinstatement check).
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        if self.state == ConnState::Closed {
            return;
        }
        if self.session.as_ref().and_then(|s| s.lease.as_ref()).is_some_and(|l| l.is_killed()) {
            // Reinstated by a new login (RFC 7143 §6.3.5) or killed by an admin:
            // end every task without a response and drop the connection.
            self.close_now();
            return;
        }
        if self.state == ConnState::FullFeature {
            if self.tasks.data_overdue_at(self.targets.limits.r2t_timeout_ms).is_some_and(|d| now_ms >= d) {
                // Data-Out owed (R2Ts, an unsolicited burst) and none came
                // for r2t_timeout_ms: a sequence reception timeout (RFC 7143
                // §7.1.4.1 (b)). ERL 0 has no recovery R2T, so the connection
                // ends and gives back every task slot and buffer it held.
                self.tasks.budget().note_data_timeout();
                self.close_now();
                return;
            }
            self.sweep_preempted();
            if self.kick {
                self.kick_deferred();
            }
        }
        if !self.budget_wait.is_empty() && self.state == ConnState::FullFeature {
            // Another connection of the shard may have released budget.
            self.retry_budget_waiters();
        }
        if !self.job_wait.is_empty() && self.state == ConnState::FullFeature {
            self.retry_waiting_jobs();
            if self.kick {
                self.kick_deferred();
            }
        }
        match self.state {
            ConnState::Login if now_ms >= self.login_deadline_ms => self.close_now(),
            ConnState::FullFeature | ConnState::LoggingOut | ConnState::CloseAfterFlush => {
                if self.logout_deadline_ms.is_some_and(|d| now_ms >= d) {
                    self.close_now();
                    return;
                }
                let lim = &self.targets.limits;
                if let Some((_, sent)) = self.ping {
                    if now_ms >= sent + lim.nop_timeout_ms {
                        // RFC 7143 §7.1: no answer to our NOP-In: the connection is dead.
                        self.close_now();
                    }
                } else if self.state == ConnState::FullFeature
                    && lim.nop_interval_ms > 0
                    && now_ms >= self.last_rx_ms + lim.nop_interval_ms
                {
                    self.send_ping();
                }
            }
            _ => {}
        }
    }

    /// Graceful shutdown: ask the initiator to log out (Async Message), then
    /// close at the logout deadline.
    pub fn shutdown(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        match self.state {
            ConnState::FullFeature => {
                let wait = self.targets.limits.logout_timeout_ms;
                self.out.push_back(Out::AsyncLogout { wait_s: wait.div_ceil(1000) as u16 });
                self.logout_deadline_ms = Some(now_ms + wait);
            }
            ConnState::Login => self.close_now(),
            _ => {
                self.logout_deadline_ms.get_or_insert(now_ms);
            }
        }
    }

    /// Current state.
    pub fn state(&self) -> ConnState {
        self.state
    }

    /// Backend requests handed out and not yet completed. The connection may
    /// be dropped only when this is 0.
    pub fn backend_in_flight(&self) -> usize {
        self.backend_in_flight
    }

    /// Charge write buffers to `budget` (the daemon shares one per shard;
    /// by default each connection has its own). Limit:
    /// [`crate::target::Limits::write_buffer_budget`].
    pub fn set_write_budget(&mut self, budget: Arc<WriteBudget>) {
        self.tasks.set_budget(budget);
    }

    /// The budget this connection's write buffers are charged to.
    pub fn write_budget(&self) -> &Arc<WriteBudget> {
        self.tasks.budget()
    }

    /// Bytes of the write budget this connection's tasks hold now (at most
    /// its share, see [`WriteBudget`]).
    pub fn write_buffer_held(&self) -> u64 {
        self.tasks.charged()
    }

    /// Swap in a new configuration snapshot.
    pub fn set_targets(&mut self, targets: Arc<TargetSet>) {
        self.targets = targets;
    }

    /// The session's TSIH, once logged in.
    pub fn tsih(&self) -> Option<Tsih> {
        self.session.as_ref().map(|s| s.tsih)
    }

    /// The peer's IP address, when `ConnInfo::peer` holds a socket address.
    pub(crate) fn peer_ip(&self) -> Option<std::net::IpAddr> {
        self.info.peer.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())
    }

    /// The session's ISID, once logged in.
    pub fn isid(&self) -> Option<Isid> {
        self.session.as_ref().map(|s| s.isid)
    }

    /// The initiator's name, once logged in.
    pub fn initiator_name(&self) -> Option<&str> {
        self.session.as_ref().map(|s| s.initiator_name.as_str())
    }

    /// End the connection now: tasks end without responses (RFC 7143 §6.3.5
    /// at ERL 0), queued output is dropped, the session is forgotten.
    fn close_now(&mut self) {
        if self.state == ConnState::Closed {
            return;
        }
        self.state = ConnState::Closed;
        self.out.clear();
        self.tx_next.clear();
        self.backend_q.clear();
        self.held.clear();
        self.job_wait.clear();
        self.deferred.clear();
        self.budget_wait.clear();
        self.tasks.abort_all_for_close();
        // I_T nexus loss (SAM-5 §6.3.4): leave every LU's shared state.
        for n in self.nexus.values_mut() {
            n.detach();
        }
        if let Some(s) = self.session.as_mut() {
            if let Some(lease) = s.lease.take() {
                self.registry.close(&lease);
            }
        }
    }

    fn send_ping(&mut self) {
        let ttt = self.alloc_ttt();
        self.ping = Some((ttt, self.now_ms));
        self.out.push_back(Out::NopIn { itt: Itt::RESERVED, ttt, data: Vec::new() });
    }

    fn alloc_ttt(&mut self) -> Ttt {
        next_ttt(&mut self.next_ttt)
    }

    /// MaxCmdSN: the window stays open only as far as free task slots allow,
    /// so outstanding commands never exceed the queue depth (RFC 7143 §4.2.2.1).
    fn max_cmdsn(&self) -> CmdSn {
        let free = self.tasks.free_for_window() as u32;
        // MaxCmdSN = ExpCmdSN - 1 + free; free == 0 closes the window.
        self.exp_cmdsn.plus(free).plus(u32::MAX)
    }

    /// Parse and dispatch every complete PDU in the receive buffer.
    /// The loop is bounded by the receive buffer's size (a PDU is at least
    /// 48 bytes) and stops early on output backlog.
    fn parse_loop(&mut self) {
        loop {
            if matches!(self.state, ConnState::Closed | ConnState::CloseAfterFlush | ConnState::LoggingOut) {
                return;
            }
            if self.out.len() >= OUT_BACKLOG_MAX {
                self.rx_paused = true;
                return;
            }
            let avail = self.rx_end - self.rx_start;
            if avail < BHS_LEN {
                return;
            }
            let Some(bhs) = self.rx.get(self.rx_start..self.rx_end).and_then(Bhs::from_slice) else {
                return;
            };
            let ahs_len = bhs.total_ahs_len();
            let data_len = bhs.data_len() as usize;
            let dsl_max = if self.state == ConnState::Login { LOGIN_DSL_MAX } else { self.op.max_recv_dsl };
            if data_len > dsl_max as usize {
                // RFC 7143 §6.1 / §12.12: a data segment beyond our
                // MaxRecvDataSegmentLength is a protocol error; we cannot
                // buffer it, so the connection goes.
                self.close_now();
                return;
            }
            let hd = if self.op.header_digest { 4 } else { 0 };
            let dd = if self.op.data_digest && data_len > 0 { 4 } else { 0 };
            let padded = data_len + pad_len(data_len);
            let total = BHS_LEN + ahs_len + hd + padded + dd;
            if avail < total {
                return;
            }
            let start = self.rx_start;
            self.rx_start += total;
            if hd != 0 {
                let header_end = start + BHS_LEN + ahs_len;
                let header = self.rx.get(start..header_end);
                let got = self.rx.get(header_end..).and_then(|b| b.first_chunk::<4>());
                // (Both ranges lie inside the `total` bytes checked above.)
                let ok =
                    matches!((header, got), (Some(h), Some(g)) if crate::digest::crc32c(h) == u32::from_le_bytes(*g));
                if !ok {
                    // RFC 7143 §7.8: a header digest error leaves framing in
                    // doubt; at ERL 0 the connection is dropped.
                    self.close_now();
                    return;
                }
            }
            let data_at = start + BHS_LEN + ahs_len + hd;
            if dd != 0 {
                let data = range(&self.rx, data_at, padded);
                let got = self.rx.get(data_at + padded..).and_then(|b| b.first_chunk::<4>());
                let ok =
                    matches!((data, got), (Some(d), Some(g)) if crate::digest::crc32c(d) == u32::from_le_bytes(*g));
                if !ok {
                    // RFC 7143 §7.8: Reject with "data digest error" and
                    // discard the PDU.
                    self.reject(&bhs, RejectReason::DATA_DIGEST_ERROR);
                    match bhs.opcode() {
                        Opcode::DATA_OUT if self.state == ConnState::FullFeature => {
                            // A data PDU: at ERL 0 (no recovery R2T) the task
                            // ends with CHECK CONDITION, PROTOCOL SERVICE CRC
                            // ERROR, once all its data has arrived. The header
                            // is sound (header digest), so it still counts in
                            // the task's data sequence; its bytes are dropped.
                            let ahs = range(&self.rx, start + BHS_LEN, ahs_len).unwrap_or_default();
                            if let Ok(Pdu::DataOut(d)) = Pdu::decode(&bhs, ahs) {
                                if self.handle_data_out(&bhs, d, data_at, data_len, true) == Flow::Drop {
                                    self.close_now();
                                    return;
                                }
                            }
                        }
                        // A command whose immediate data is lost would leave
                        // a hole in the CmdSN sequence that only a retry
                        // (ERL 0 has none) could fill: escalate to session
                        // recovery, as §7.8 allows. Other non-data PDUs
                        // need nothing more.
                        Opcode::SCSI_COMMAND => self.state = ConnState::CloseAfterFlush,
                        _ => {}
                    }
                    continue;
                }
            }
            let flow = self.dispatch(&bhs, start + BHS_LEN, ahs_len, data_at, data_len);
            if flow == Flow::Drop {
                self.close_now();
                return;
            }
        }
    }

    /// Decode and route one PDU whose bytes sit in `self.rx`.
    fn dispatch(&mut self, bhs: &Bhs, ahs_at: usize, ahs_len: usize, data_at: usize, data_len: usize) -> Flow {
        let op = bhs.opcode();
        let decoded = Pdu::decode(bhs, range(&self.rx, ahs_at, ahs_len).unwrap_or_default());
        if self.state == ConnState::Login {
            return match decoded {
                Ok(Pdu::LoginRequest(req)) => {
                    let data = range(&self.rx, data_at, data_len).unwrap_or_default().to_vec();
                    self.handle_login(req, &data)
                }
                // RFC 7143 §6.3: only Login Requests before full feature phase.
                _ => Flow::Drop,
            };
        }
        let pdu = match decoded {
            Ok(p) => p,
            Err(DecodeError::UnknownOpcode(_)) => {
                let reason =
                    if op.is_initiator() { RejectReason::COMMAND_NOT_SUPPORTED } else { RejectReason::PROTOCOL_ERROR };
                self.reject(bhs, reason);
                return Flow::Continue;
            }
            Err(DecodeError::BadAhs) | Err(DecodeError::Truncated) | Err(DecodeError::InvalidField(_)) => {
                self.reject(bhs, RejectReason::INVALID_PDU_FIELD);
                return Flow::Continue;
            }
        };
        if !op.is_initiator() {
            // A target-role PDU from an initiator.
            self.reject(bhs, RejectReason::PROTOCOL_ERROR);
            return Flow::Continue;
        }
        self.handle_ffp(bhs, pdu, data_at, data_len)
    }

    /// Queue a Reject carrying the offending BHS (RFC 7143 §11.17).
    fn reject(&mut self, bhs: &Bhs, reason: RejectReason) {
        self.out.push_back(Out::Reject { reason, bhs: Box::new(bhs.clone()) });
    }

    /// Queue a Reject for a PDU we only have decoded.
    fn reject_pdu(&mut self, pdu: &Pdu, reason: RejectReason) {
        let mut v = Vec::with_capacity(BHS_LEN);
        pdu.encode_header(0, &mut v);
        let bhs = Bhs::from_slice(&v).unwrap_or_default();
        self.reject(&bhs, reason);
    }
}

/// Hand out target transfer tags 1, 2, ... skipping 0 and the reserved
/// 0xffffffff (RFC 7143 §11.7.4).
fn next_ttt(counter: &mut u32) -> Ttt {
    let t = *counter;
    *counter = match counter.wrapping_add(1) {
        0 | u32::MAX => 1,
        n => n,
    };
    Ttt(t)
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}
