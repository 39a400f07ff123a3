//! The configuration the core serves: targets, their LUNs and portals, and
//! the limits it negotiates. Built by the daemon, shared read-only as an
//! `Arc<TargetSet>` snapshot; a change makes a new snapshot.

use std::sync::Arc;

use crate::scsi::{LuInfo, LuShared};

/// One portal (address:port) and its target portal group tag.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Portal {
    /// Address as it goes into TargetAddress: `127.0.0.1:3260` or `[::1]:3260`.
    pub address: String,
    /// Target portal group tag (RFC 7143 §13.9).
    pub tpgt: u16,
}

/// One logical unit of a target.
#[derive(Clone, Debug)]
pub struct LuConfig {
    /// LUN index (0..16383).
    pub lun: u16,
    /// Backend index in the daemon's backend table (the shard uses it to route I/O).
    pub backend: usize,
    /// What SCSI emulation needs to know.
    pub info: LuInfo,
    /// State of the LU shared by every connection on every shard
    /// (reservations, unit attentions, SWP, CAW locks). A new
    /// configuration snapshot must carry the same `Arc` over for an LU it
    /// keeps. `Default` gives fresh state without APTPL persistence; use
    /// [`LuShared::new`] with a state file to persist reservations.
    pub shared: Arc<LuShared>,
}

/// One iSCSI target.
#[derive(Clone, Debug, Default)]
pub struct TargetConfig {
    /// iSCSI qualified name.
    pub name: String,
    /// Optional TargetAlias.
    pub alias: Option<String>,
    /// Logical units, sorted by LUN.
    pub luns: Vec<LuConfig>,
    /// LUN indices, sorted (for REPORT LUNS).
    pub lun_indices: Vec<u16>,
    /// Who may see and log in to this target (empty: everyone).
    pub acl: crate::acl::Acl,
    /// CHAP accounts; `Some` makes CHAP mandatory for this target
    /// (RFC 7143 §12.1.3).
    pub chap: Option<crate::login::chap::ChapAccounts>,
    /// Sessions this target accepts at once (`None`: only the daemon-wide
    /// limit applies); one more login gets 0x0302 (out of resources).
    pub max_sessions: Option<usize>,
}

impl TargetConfig {
    /// The LU at `lun`, if configured.
    pub fn lu(&self, lun: u16) -> Option<&LuConfig> {
        self.luns.binary_search_by_key(&lun, |l| l.lun).ok().and_then(|i| self.luns.get(i))
    }
}

/// Limits and timers the target applies to every session.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Limits {
    /// Commands an initiator may have outstanding (MaxCmdSN - ExpCmdSN + 1). Default 128.
    pub queue_depth: u32,
    /// Our MaxRecvDataSegmentLength (declared). Default 262144.
    pub max_recv_data_segment_len: u32,
    /// Our MaxBurstLength offer. Default 262144.
    pub max_burst_len: u32,
    /// Our FirstBurstLength offer. Default 65536.
    pub first_burst_len: u32,
    /// We accept ImmediateData=Yes.
    pub immediate_data: bool,
    /// We want InitialR2T=Yes (No lets unsolicited data flow).
    pub initial_r2t: bool,
    /// MaxOutstandingR2T offer. Default 1.
    pub max_outstanding_r2t: u32,
    /// Largest transfer (EDTL) we accept for one command, bytes. Default 8 MiB.
    pub max_transfer_len: u32,
    /// Interval of target NOP-In pings on an idle connection, ms (0 = off). Default 5000.
    pub nop_interval_ms: u64,
    /// How long a ping may go unanswered before the connection is dropped, ms. Default 30000.
    pub nop_timeout_ms: u64,
    /// Login must reach full feature phase within this, ms. Default 15000.
    pub login_timeout_ms: u64,
    /// On shutdown, time to wait for the initiator's logout, ms. Default 2000.
    pub logout_timeout_ms: u64,
    /// Allow CRC32C header/data digests when the initiator asks.
    pub digests_allowed: bool,
    /// Bytes of task buffer that write commands may hold for Data-Out, per
    /// [`crate::conn::WriteBudget`] (one per shard in the daemon). When it is
    /// spent, new writes wait for their R2Ts. Default 256 MiB.
    pub write_buffer_budget: u64,
    /// A connection that owes Data-Out (open R2Ts or an announced
    /// unsolicited burst) and sends none for this long is dropped, ms
    /// (RFC 7143 §7.1.4.1: sequence reception timeout). Default 15000.
    pub r2t_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            queue_depth: 128,
            max_recv_data_segment_len: 262_144,
            max_burst_len: 262_144,
            first_burst_len: 65_536,
            immediate_data: true,
            initial_r2t: false,
            max_outstanding_r2t: 1,
            max_transfer_len: 8 << 20,
            nop_interval_ms: 5_000,
            nop_timeout_ms: 30_000,
            login_timeout_ms: 15_000,
            logout_timeout_ms: 2_000,
            digests_allowed: true,
            write_buffer_budget: 256 << 20,
            r2t_timeout_ms: 15_000,
        }
    }
}

/// Everything a connection needs to know about the configuration.
#[derive(Clone, Debug, Default)]
pub struct TargetSet {
    /// Targets, by name.
    pub targets: Vec<TargetConfig>,
    /// Portals, for SendTargets.
    pub portals: Vec<Portal>,
    /// Limits.
    pub limits: Limits,
    /// CHAP accounts for discovery sessions; `Some` makes CHAP mandatory there.
    pub discovery_chap: Option<crate::login::chap::ChapAccounts>,
}

impl TargetSet {
    /// One target `name` serving one LU `info` as LUN 0 (backend slot 0,
    /// fresh shared state) behind one portal, 127.0.0.1:3260 with TPGT 1:
    /// the configuration tests, fuzzers and benches drive a connection with.
    pub fn single_lu(name: &str, info: LuInfo, limits: Limits) -> TargetSet {
        TargetSet {
            targets: vec![TargetConfig {
                name: name.into(),
                luns: vec![LuConfig { lun: 0, backend: 0, info, shared: Arc::default() }],
                lun_indices: vec![0],
                ..TargetConfig::default()
            }],
            portals: vec![Portal { address: "127.0.0.1:3260".into(), tpgt: 1 }],
            limits,
            discovery_chap: None,
        }
    }

    /// Find a target by name (iSCSI names compare case-insensitively after
    /// stringprep, RFC 7143 §4.2.7.2; we compare ASCII case-insensitively).
    pub fn target(&self, name: &str) -> Option<(usize, &TargetConfig)> {
        self.targets.iter().enumerate().find(|(_, t)| t.name.eq_ignore_ascii_case(name))
    }
}
