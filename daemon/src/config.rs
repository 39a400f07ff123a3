//! The configuration file (TOML): parsing, validation with errors that name
//! the file, the line and the field, and conversion into what the core and
//! the shards run on ([`TargetSet`], [`Limits`], [`LuInfo`], backend specs).
//!
//! Format (every `[global]` key optional; see `deploy/shardtgt.example.toml`):
//! ```toml
//! [global]
//! shards = 2
//! queue_depth = 128
//! [[portal]]
//! address = "127.0.0.1:3260"
//! tpgt = 1
//! [[target]]
//! name = "iqn.2026-11.io.shardtgt:default"
//!   [[target.lun]]
//!   lun = 0
//!   backend = "ram"
//!   size = "1GiB"
//!   [[target.lun]]
//!   lun = 1
//!   backend = "file"          # or "rdwr" (worker threads, `workers = 4`)
//!   path = "/srv/iscsi/disk1.img"
//!   size = "100GiB"           # optional for an existing file or a block device
//!   direct = false            # O_DIRECT
//! ```
//! Paths are checked while parsing (absolute, not a directory, a regular
//! file or block device, parent directory present when the file is to be
//! created, one LU per path), so `shardtgtd --check` catches them.
//! It never opens a backend or a socket: [`Config::build`] creates backends
//! only when the daemon asks for them.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use shardtgt_backends::fault::FaultRule;
use shardtgt_backends::{BackendError, BackendKind, BackendSpec, DEFAULT_WORKERS};
use shardtgt_core::acl::{Acl, AclRule};
use shardtgt_core::login::chap::{ChapAccount, ChapAccounts, SECRET_MAX_LEN, SECRET_MIN_LEN};
use shardtgt_core::scsi::{AluaState, LuInfo};
use shardtgt_core::target::{Limits, LuConfig, Portal, TargetConfig, TargetSet};
use shardtgt_transport_tcp::addr::{format_portal, parse_portal};
use toml::Spanned;

/// Where the daemon looks when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/shardtgt/shardtgt.toml";

/// Served when `--config` is not given and [`DEFAULT_PATH`] does not exist.
pub const EMBEDDED_DEFAULT: &str = r#"# shardtgt built-in default configuration
[[portal]]
address = "127.0.0.1:3260"
tpgt = 1

[[target]]
name = "iqn.2026-11.io.shardtgt:default"
alias = "default"
  [[target.lun]]
  lun = 0
  backend = "ram"
  size = "1GiB"
  block_size = 512
"#;

/// Default pace of SANITIZE OVERWRITE, MiB/s: about what one hard disk
/// writes sequentially, so a background sanitize leaves most of a shared
/// store's bandwidth to the other LUs (`global.sanitize_rate_mib`).
pub const DEFAULT_SANITIZE_RATE_MIB: u64 = 128;

/// Bytes in a MiB.
pub const MIB: u64 = 1 << 20;

/// Name used for the embedded default in messages.
pub const EMBEDDED_NAME: &str = "<built-in default>";

/// A configuration error, located.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ConfigError {
    /// File name as given.
    pub file: String,
    /// 1-based line, 0 when the error is not about a place in the file.
    pub line: usize,
    /// 1-based column (0 with `line == 0`).
    pub col: usize,
    /// Dotted field path (`target.lun.size`), empty when unknown.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}:{}: ", self.file, self.line, self.col)?;
        } else {
            write!(f, "{}: ", self.file)?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// One portal to listen on.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PortalDef {
    /// Socket address.
    pub addr: SocketAddr,
    /// Target portal group tag.
    pub tpgt: u16,
}

/// One logical unit.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LunDef {
    /// LUN (0..=16383).
    pub lun: u16,
    /// Backend to create.
    pub backend: BackendSpec,
    /// Read-only.
    pub read_only: bool,
    /// Write cache enabled.
    pub write_cache: bool,
    /// Unit serial number.
    pub serial: String,
    /// T10 vendor id.
    pub vendor: String,
    /// Product id.
    pub product: String,
    /// Fault injection rules of a `fault` LUN (`backend.fault`).
    pub faults: Vec<FaultRule>,
}

/// A CHAP account (user name and secret). `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountDef {
    /// CHAP_N.
    pub user: String,
    /// Shared secret, 12..=256 bytes (RFC 7143 §12.1.3 asks for at least 12).
    pub secret: String,
}

impl fmt::Debug for AccountDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountDef {{ user: {:?}, secret: <set> }}", self.user)
    }
}

/// CHAP accounts bound to a target (or to discovery sessions).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ChapDef {
    /// Initiator credentials the target accepts (one-way CHAP).
    pub incoming: Vec<AccountDef>,
    /// The target's own credentials (mutual CHAP).
    pub outgoing: Option<AccountDef>,
}

impl ChapDef {
    /// No account bound.
    pub fn is_empty(&self) -> bool {
        self.incoming.is_empty() && self.outgoing.is_none()
    }
}

/// One target.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TargetDef {
    /// iSCSI name.
    pub name: String,
    /// tgt-style target id (1..=65535), unique; assigned when not given.
    pub tid: u32,
    /// TargetAlias.
    pub alias: Option<String>,
    /// Logical units, sorted by LUN.
    pub luns: Vec<LunDef>,
    /// Allowed initiators: iSCSI names, addresses or CIDRs (`ALL` or empty:
    /// everyone).
    pub acl: Vec<String>,
    /// CHAP accounts; `None`: no authentication.
    pub chap: Option<ChapDef>,
    /// ALUA state of target port groups (portal group tags), ascending by
    /// tag; a group not listed is active/optimized (SPC-4 §5.16).
    pub alua: Vec<(u16, AluaState)>,
    /// Sessions this target accepts at once (`None`: only
    /// `global.max_sessions` applies).
    pub max_sessions: Option<usize>,
}

/// A validated configuration.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Config {
    /// Number of shards.
    pub shards: usize,
    /// Session limit for the registry.
    pub max_sessions: usize,
    /// Negotiation limits and timers.
    pub limits: Limits,
    /// Portals.
    pub portals: Vec<PortalDef>,
    /// Targets.
    pub targets: Vec<TargetDef>,
    /// CHAP accounts for discovery sessions.
    pub discovery_chap: Option<ChapDef>,
    /// Account store (`shardtgtadm chap account new`): accounts known to
    /// the daemon, bound to targets by copying them into `target.chap`.
    pub accounts: Vec<AccountDef>,
    /// Where per-LU state that must survive a restart lives (persistent
    /// reservations with APTPL, saved mode pages); `None`: not persisted.
    pub state_dir: Option<PathBuf>,
    /// Pace of SANITIZE OVERWRITE in bytes per second (0: unpaced).
    pub sanitize_rate: u64,
}

/// What [`Config::build`] produces.
#[derive(Debug)]
pub struct Built {
    /// The snapshot the core serves.
    pub targets: Arc<TargetSet>,
    /// Backends, indexed by `LuConfig::backend`.
    pub backends: Vec<Arc<dyn shardtgt_backends::Backend>>,
}

// ---- raw (serde) layer ------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    global: RawGlobal,
    #[serde(default)]
    portal: Vec<RawPortal>,
    #[serde(default)]
    target: Vec<RawTarget>,
    discovery_chap: Option<RawChap>,
    #[serde(default)]
    account: Vec<RawAccount>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawChap {
    #[serde(default)]
    incoming: Vec<RawAccount>,
    outgoing: Option<RawAccount>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    user: Spanned<String>,
    secret: Spanned<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGlobal {
    shards: Option<Spanned<i64>>,
    queue_depth: Option<Spanned<i64>>,
    max_recv_data_segment_len: Option<Spanned<i64>>,
    max_burst_len: Option<Spanned<i64>>,
    first_burst_len: Option<Spanned<i64>>,
    immediate_data: Option<bool>,
    initial_r2t: Option<bool>,
    max_outstanding_r2t: Option<Spanned<i64>>,
    nop_interval_ms: Option<Spanned<i64>>,
    nop_timeout_ms: Option<Spanned<i64>>,
    login_timeout_ms: Option<Spanned<i64>>,
    logout_timeout_ms: Option<Spanned<i64>>,
    max_sessions: Option<Spanned<i64>>,
    write_buffer_budget_mib: Option<Spanned<i64>>,
    r2t_timeout_ms: Option<Spanned<i64>>,
    workers: Option<Spanned<i64>>,
    state_dir: Option<Spanned<String>>,
    sanitize_rate_mib: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPortal {
    address: Spanned<String>,
    tpgt: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    name: Spanned<String>,
    tid: Option<Spanned<i64>>,
    alias: Option<Spanned<String>>,
    #[serde(default)]
    acl: Vec<Spanned<String>>,
    chap: Option<RawChap>,
    #[serde(default)]
    alua: std::collections::BTreeMap<String, Spanned<String>>,
    max_sessions: Option<Spanned<i64>>,
    #[serde(default)]
    lun: Vec<RawLun>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLun {
    lun: Spanned<i64>,
    backend: Spanned<String>,
    inner: Option<Spanned<String>>,
    faults: Option<Spanned<Vec<String>>>,
    size: Option<Spanned<SizeValue>>,
    block_size: Option<Spanned<i64>>,
    path: Option<Spanned<String>>,
    direct: Option<Spanned<bool>>,
    workers: Option<Spanned<i64>>,
    read_only: Option<bool>,
    write_cache: Option<bool>,
    serial: Option<Spanned<String>>,
    vendor: Option<Spanned<String>>,
    product: Option<Spanned<String>>,
}

/// A size as written: an integer or a string with a unit suffix.
#[derive(Clone, PartialEq, Eq, Debug)]
enum SizeValue {
    Int(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for SizeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SizeValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size: bytes as an integer, or a string like \"1GiB\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SizeValue, E> {
                Ok(SizeValue::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SizeValue, E> {
                i64::try_from(v).map(SizeValue::Int).map_err(|_| E::custom("size too large"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SizeValue, E> {
                Ok(SizeValue::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parse a size: `1073741824`, `"512"`, `"64K"`, `"64KiB"`, `"1G"`, `"1 GiB"`, `"2T"`.
/// K/M/G/T and KiB/MiB/GiB/TiB are both powers of 1024 (as in qemu-img and tgt).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!("`{s}` is not a size (e.g. 1073741824, \"512MiB\", \"1GiB\")"));
    }
    let n: u64 = num.parse().map_err(|_| format!("`{s}`: number too large"))?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        "T" | "TiB" => 40,
        u => return Err(format!("`{s}`: unknown unit `{u}` (use K, M, G, T, KiB, MiB, GiB or TiB)")),
    };
    n.checked_mul(1u64 << shift).ok_or_else(|| format!("`{s}`: size too large"))
}

// ---- locating ---------------------------------------------------------------

/// 1-based line and column of byte offset `pos` in `src`.
pub fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(src.len());
    let before = &src.as_bytes()[..pos];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let col = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    (line, col)
}

/// The dotted field a byte offset falls on: the last table header before it
/// plus the key of its line (`target.lun.size`).
pub fn field_at(src: &str, pos: usize) -> String {
    let pos = pos.min(src.len());
    let mut table = String::new();
    let mut offset = 0;
    for line in src.split_inclusive('\n') {
        let end = offset + line.len();
        let code = line.split('#').next().unwrap_or("").trim();
        let is_header = code.starts_with('[');
        if is_header {
            table = code.trim_start_matches('[').trim_end_matches(']').trim().to_string();
        }
        if pos < end || end == src.len() {
            if is_header {
                return table;
            }
            let key = code.split('=').next().unwrap_or("").trim().trim_matches('"');
            return match (table.is_empty(), key.is_empty() || !code.contains('=')) {
                (_, true) => table,
                (true, false) => key.to_string(),
                (false, false) => format!("{table}.{key}"),
            };
        }
        offset = end;
    }
    table
}

struct Ctx<'a> {
    src: &'a str,
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, field: &str, message: impl Into<String>) -> ConfigError {
        let (line, col) = line_col(self.src, span.start);
        ConfigError { file: self.file.into(), line, col, field: field.into(), message: message.into() }
    }

    fn int(&self, v: &Option<Spanned<i64>>, field: &str, min: i64, max: i64, default: i64) -> Result<i64, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) if (min..=max).contains(s.get_ref()) => Ok(*s.get_ref()),
            Some(s) => Err(self.err(s.span(), field, format!("{} is out of range {min}..={max}", s.get_ref()))),
        }
    }
}

// ---- validation -------------------------------------------------------------

/// Number of CPUs this process may run on (sched_getaffinity), at least 1.
pub fn allowed_cpus() -> usize {
    // SAFETY: `set` is a plain bitmask struct; zeroed is a valid value, and
    // sched_getaffinity writes at most `size_of::<cpu_set_t>()` bytes into it.
    let n = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            libc::CPU_COUNT(&set) as usize
        } else {
            0
        }
    };
    if n > 0 {
        n
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// Is `name` a well-formed iSCSI name (RFC 7143 §4.2.7)? Returns why not.
pub fn check_iscsi_name(name: &str) -> Result<(), String> {
    if name.len() > 223 {
        return Err(format!("`{name}` is longer than 223 bytes (RFC 7143 §4.2.7.2)"));
    }
    let lower = name.to_ascii_lowercase();
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(rest) = lower.strip_prefix("iqn.") {
        // iqn.yyyy-mm.reversed.domain[:anything]
        let b = rest.as_bytes();
        let date_ok = b.len() > 8
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[4] == b'-'
            && b[5..7].iter().all(u8::is_ascii_digit)
            && b[7] == b'.';
        if !date_ok {
            return Err(format!("`{name}`: an iqn. name is iqn.YYYY-MM.reversed.domain[:id] (RFC 7143 §4.2.7.3)"));
        }
        if let Some(c) = lower.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))) {
            return Err(format!("`{name}`: character `{c}` is not allowed in an iSCSI name"));
        }
        Ok(())
    } else if let Some(rest) = lower.strip_prefix("eui.") {
        if rest.len() == 16 && hex(rest) {
            Ok(())
        } else {
            Err(format!("`{name}`: an eui. name has 16 hex digits"))
        }
    } else if let Some(rest) = lower.strip_prefix("naa.") {
        if (rest.len() == 16 || rest.len() == 32) && hex(rest) {
            Ok(())
        } else {
            Err(format!("`{name}`: a naa. name has 16 or 32 hex digits"))
        }
    } else {
        Err(format!("`{name}` is not an iSCSI name: it must start with iqn., eui. or naa."))
    }
}

/// Stable 64-bit id of a LU: FNV-1a over the lower-cased target name and the LUN.
pub fn lu_id(target: &str, lun: u16) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in target.to_ascii_lowercase().bytes().chain([0u8]).chain(lun.to_be_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn check_ascii(ctx: &Ctx<'_>, v: &Spanned<String>, field: &str, max: usize) -> Result<String, ConfigError> {
    let s = v.get_ref();
    if s.is_empty() || s.len() > max || !s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(ctx.err(v.span(), field, format!("`{s}` must be 1 to {max} printable ASCII characters")));
    }
    Ok(s.clone())
}

/// Check a `file`/`rdwr` LU's path without opening it: absolute, and
/// either an existing regular file or block device, or a file that can be
/// created (parent directory present, a size given, the LU writable).
fn check_path(ctx: &Ctx<'_>, p: &Spanned<String>, size_given: bool, read_only: bool) -> Result<PathBuf, ConfigError> {
    let field = "target.lun.path";
    let path = PathBuf::from(p.get_ref());
    let err = |m: String| Err(ctx.err(p.span(), field, m));
    if !path.is_absolute() {
        return err(format!("`{}` must be an absolute path", p.get_ref()));
    }
    match std::fs::metadata(&path) {
        Ok(m) => {
            use std::os::unix::fs::FileTypeExt;
            let ft = m.file_type();
            if ft.is_dir() {
                return err(format!("{} is a directory", path.display()));
            }
            if !ft.is_file() && !ft.is_block_device() {
                return err(format!("{} is neither a regular file nor a block device", path.display()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("/"));
            if !parent.is_dir() {
                return err(format!(
                    "{} does not exist and its directory {} does not either",
                    path.display(),
                    parent.display()
                ));
            }
            if read_only {
                return err(format!("{} does not exist (a read-only LU never creates its file)", path.display()));
            }
            if !size_given {
                return err(format!("{} does not exist: give a size to create it", path.display()));
            }
        }
        Err(e) => return err(format!("{}: {e}", path.display())),
    }
    Ok(path)
}

/// The daemon's account model → the core's (`None` when nothing is bound).
pub fn chap_to_core(c: &ChapDef) -> Option<ChapAccounts> {
    if c.is_empty() {
        return None;
    }
    let acc = |a: &AccountDef| ChapAccount { user: a.user.clone(), secret: a.secret.as_bytes().to_vec() };
    Some(ChapAccounts { incoming: c.incoming.iter().map(acc).collect(), outgoing: c.outgoing.as_ref().map(acc) })
}

/// The one place a [`TargetDef`] becomes the core's [`TargetConfig`]:
/// ACL rules (already validated) and CHAP accounts converted.
pub fn to_core(t: &TargetDef, luns: Vec<LuConfig>, lun_indices: Vec<u16>) -> TargetConfig {
    let mut rules = Vec::new();
    for r in &t.acl {
        if r == "ALL" {
            // `ALL` admits everyone: an empty rule list.
            rules.clear();
            break;
        }
        let lower = r.to_ascii_lowercase();
        if lower.starts_with("iqn.") || lower.starts_with("eui.") || lower.starts_with("naa.") {
            rules.push(AclRule::Name(lower));
        } else if let Ok(rule) = AclRule::parse_address(r) {
            rules.push(rule);
        }
    }
    TargetConfig {
        name: t.name.clone(),
        alias: t.alias.clone(),
        luns,
        lun_indices,
        acl: Acl { rules },
        chap: t.chap.as_ref().and_then(chap_to_core),
        max_sessions: t.max_sessions,
    }
}

/// The ALUA state names, for messages.
pub fn alua_names() -> String {
    AluaState::NAMES.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
}

/// The smallest tid (1..) no target uses.
pub fn next_tid(targets: &[TargetDef]) -> u32 {
    (1..).find(|t| !targets.iter().any(|o| o.tid == *t)).unwrap_or(1)
}

/// Check an ACL rule: `ALL`, an iSCSI name, an IP address or a CIDR.
/// Returns it normalised (names lower-cased).
pub fn check_acl_rule(rule: &str) -> Result<String, String> {
    let r = rule.trim();
    if r.eq_ignore_ascii_case("all") {
        return Ok("ALL".into());
    }
    let lower = r.to_ascii_lowercase();
    if lower.starts_with("iqn.") || lower.starts_with("eui.") || lower.starts_with("naa.") {
        check_iscsi_name(r)?;
        return Ok(lower);
    }
    AclRule::parse_address(r).map_err(|e| format!("`{r}` is neither an iSCSI name nor an address or CIDR: {}", e.0))?;
    Ok(r.to_string())
}

/// Check a CHAP user name and secret (RFC 7143 §12.1.3: a secret of at
/// least 12 bytes; we also cap it at 256 and keep it printable).
pub fn check_secret(user: &str, secret: &str) -> Result<(), String> {
    if user.is_empty() || user.len() > 255 || !user.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(format!("user `{user}` must be 1 to 255 printable ASCII characters without spaces"));
    }
    if !(SECRET_MIN_LEN..=SECRET_MAX_LEN).contains(&secret.len()) {
        return Err(format!(
            "the secret of `{user}` is {} bytes long; it must be {SECRET_MIN_LEN} to {SECRET_MAX_LEN} bytes (RFC 7143 §12.1.3)",
            secret.len()
        ));
    }
    if !secret.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(format!("the secret of `{user}` must be printable ASCII"));
    }
    Ok(())
}

fn check_account(ctx: &Ctx<'_>, a: &RawAccount, field: &str) -> Result<AccountDef, ConfigError> {
    let (user, secret) = (a.user.get_ref(), a.secret.get_ref());
    if let Err(m) = check_secret(user, "x".repeat(SECRET_MIN_LEN).as_str()) {
        return Err(ctx.err(a.user.span(), &format!("{field}.user"), m));
    }
    check_secret(user, secret).map_err(|m| ctx.err(a.secret.span(), &format!("{field}.secret"), m))?;
    Ok(AccountDef { user: user.clone(), secret: secret.clone() })
}

fn check_chap(ctx: &Ctx<'_>, c: &RawChap, field: &str) -> Result<ChapDef, ConfigError> {
    let mut incoming: Vec<AccountDef> = Vec::new();
    for a in &c.incoming {
        let acc = check_account(ctx, a, &format!("{field}.incoming"))?;
        if incoming.iter().any(|o| o.user == acc.user) {
            return Err(ctx.err(
                a.user.span(),
                &format!("{field}.incoming.user"),
                format!("`{}` is bound twice", acc.user),
            ));
        }
        incoming.push(acc);
    }
    let outgoing = c.outgoing.as_ref().map(|a| check_account(ctx, a, &format!("{field}.outgoing"))).transpose()?;
    Ok(ChapDef { incoming, outgoing })
}

impl Config {
    /// Parse and validate `src`; `file` names it in errors.
    pub fn parse(src: &str, file: &str) -> Result<Config, ConfigError> {
        let ctx = Ctx { src, file };
        let raw: RawConfig = toml::from_str(src).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let (line, col) = if e.span().is_some() { line_col(src, span.start) } else { (0, 0) };
            ConfigError {
                file: file.into(),
                line,
                col,
                field: if e.span().is_some() { field_at(src, span.start) } else { String::new() },
                message: e.message().trim().to_string(),
            }
        })?;
        let g = &raw.global;
        let d = Limits::default();
        let max_seg = (1 << 24) - 1;
        let shards = ctx.int(&g.shards, "global.shards", 1, 1024, allowed_cpus() as i64)? as usize;
        let mut limits = Limits {
            queue_depth: ctx.int(&g.queue_depth, "global.queue_depth", 1, 16_384, d.queue_depth.into())? as u32,
            max_recv_data_segment_len: ctx.int(
                &g.max_recv_data_segment_len,
                "global.max_recv_data_segment_len",
                512,
                max_seg,
                d.max_recv_data_segment_len.into(),
            )? as u32,
            max_burst_len: ctx.int(&g.max_burst_len, "global.max_burst_len", 512, max_seg, d.max_burst_len.into())?
                as u32,
            first_burst_len: ctx.int(
                &g.first_burst_len,
                "global.first_burst_len",
                512,
                max_seg,
                d.first_burst_len.into(),
            )? as u32,
            immediate_data: g.immediate_data.unwrap_or(d.immediate_data),
            initial_r2t: g.initial_r2t.unwrap_or(d.initial_r2t),
            max_outstanding_r2t: ctx.int(
                &g.max_outstanding_r2t,
                "global.max_outstanding_r2t",
                1,
                65_535,
                d.max_outstanding_r2t.into(),
            )? as u32,
            nop_interval_ms: ctx.int(
                &g.nop_interval_ms,
                "global.nop_interval_ms",
                0,
                3_600_000,
                d.nop_interval_ms as i64,
            )? as u64,
            nop_timeout_ms: ctx.int(
                &g.nop_timeout_ms,
                "global.nop_timeout_ms",
                100,
                3_600_000,
                d.nop_timeout_ms as i64,
            )? as u64,
            login_timeout_ms: ctx.int(
                &g.login_timeout_ms,
                "global.login_timeout_ms",
                100,
                3_600_000,
                d.login_timeout_ms as i64,
            )? as u64,
            logout_timeout_ms: ctx.int(
                &g.logout_timeout_ms,
                "global.logout_timeout_ms",
                0,
                600_000,
                d.logout_timeout_ms as i64,
            )? as u64,
            write_buffer_budget: (ctx.int(
                &g.write_buffer_budget_mib,
                "global.write_buffer_budget_mib",
                1,
                1 << 20,
                (d.write_buffer_budget >> 20) as i64,
            )? as u64)
                << 20,
            r2t_timeout_ms: ctx.int(
                &g.r2t_timeout_ms,
                "global.r2t_timeout_ms",
                100,
                3_600_000,
                d.r2t_timeout_ms as i64,
            )? as u64,
            ..d
        };
        if limits.first_burst_len > limits.max_burst_len {
            let span = g.first_burst_len.as_ref().or(g.max_burst_len.as_ref()).map_or(0..0, |s| s.span());
            return Err(ctx.err(
                span,
                "global.first_burst_len",
                format!(
                    "first_burst_len {} exceeds max_burst_len {} (RFC 7143 §13.14)",
                    limits.first_burst_len, limits.max_burst_len
                ),
            ));
        }
        limits.max_transfer_len = limits.max_transfer_len.max(limits.max_burst_len);
        let max_sessions = ctx.int(&g.max_sessions, "global.max_sessions", 1, 65_535, 1024)? as usize;
        let workers = ctx.int(&g.workers, "global.workers", 1, 256, DEFAULT_WORKERS as i64)? as usize;
        let sanitize_rate =
            ctx.int(&g.sanitize_rate_mib, "global.sanitize_rate_mib", 0, 1 << 20, DEFAULT_SANITIZE_RATE_MIB as i64)?
                as u64
                * MIB;
        let state_dir = match &g.state_dir {
            None => None,
            Some(d) => {
                let p = PathBuf::from(d.get_ref());
                if !p.is_absolute() {
                    return Err(ctx.err(
                        d.span(),
                        "global.state_dir",
                        format!("{:?} is not an absolute path", d.get_ref()),
                    ));
                }
                Some(p)
            }
        };

        let mut portals: Vec<PortalDef> = Vec::new();
        for p in &raw.portal {
            let addr =
                parse_portal(p.address.get_ref()).map_err(|e| ctx.err(p.address.span(), "portal.address", e.0))?;
            if portals.iter().any(|q| q.addr == addr) {
                return Err(ctx.err(
                    p.address.span(),
                    "portal.address",
                    format!("portal {} is listed twice", format_portal(&addr)),
                ));
            }
            let tpgt = ctx.int(&p.tpgt, "portal.tpgt", 1, 65_535, 1)? as u16;
            portals.push(PortalDef { addr, tpgt });
        }

        let mut targets: Vec<TargetDef> = Vec::new();
        // Canonical path → (target, LUN) already using it.
        let mut paths: Vec<(PathBuf, String, u16)> = Vec::new();
        for t in &raw.target {
            let name = t.name.get_ref().trim().to_string();
            check_iscsi_name(&name).map_err(|m| ctx.err(t.name.span(), "target.name", m))?;
            if targets.iter().any(|o| o.name.eq_ignore_ascii_case(&name)) {
                return Err(ctx.err(t.name.span(), "target.name", format!("target `{name}` is defined twice")));
            }
            let alias = t.alias.as_ref().map(|a| check_ascii(&ctx, a, "target.alias", 255)).transpose()?;
            let tid = match &t.tid {
                Some(v) => {
                    let tid = ctx.int(&Some(v.clone()), "target.tid", 1, 65_535, 1)? as u32;
                    if targets.iter().any(|o| o.tid == tid) {
                        return Err(ctx.err(v.span(), "target.tid", format!("tid {tid} is used twice")));
                    }
                    tid
                }
                None => 0,
            };
            let mut acl = Vec::new();
            for a in &t.acl {
                acl.push(check_acl_rule(a.get_ref()).map_err(|m| ctx.err(a.span(), "target.acl", m))?);
            }
            let chap = t.chap.as_ref().map(|c| check_chap(&ctx, c, "target.chap")).transpose()?;
            let mut alua = Vec::new();
            for (k, v) in &t.alua {
                let tpgt = k.parse::<u16>().ok().filter(|&g| g != 0).ok_or_else(|| {
                    ctx.err(v.span(), "target.alua", format!("`{k}` is not a portal group tag (1..=65535)"))
                })?;
                let state = AluaState::from_name(v.get_ref()).ok_or_else(|| {
                    ctx.err(
                        v.span(),
                        "target.alua",
                        format!("unknown ALUA state `{}` (one of {})", v.get_ref(), alua_names()),
                    )
                })?;
                alua.push((tpgt, state));
            }
            alua.sort();
            let mut luns: Vec<LunDef> = Vec::new();
            for l in &t.lun {
                let lun = ctx.int(&Some(l.lun.clone()), "target.lun.lun", 0, 16_383, 0)? as u16;
                if luns.iter().any(|o| o.lun == lun) {
                    return Err(ctx.err(
                        l.lun.span(),
                        "target.lun.lun",
                        format!("LUN {lun} is defined twice in `{name}`"),
                    ));
                }
                // `backend = "fault"`: the store named by `inner`, wrapped in
                // the fault injector (shardtgt_backends::fault).
                let fault = l.backend.get_ref() == "fault";
                let kind_name = match (&l.inner, fault) {
                    (Some(i), true) => i,
                    (None, true) => {
                        return Err(ctx.err(
                            l.backend.span(),
                            "target.lun.inner",
                            format!(
                                "a fault LUN needs `inner`, the backend it wraps (one of {})",
                                BackendKind::NAMES.join(", ")
                            ),
                        ))
                    }
                    (Some(i), false) => {
                        return Err(ctx.err(i.span(), "target.lun.inner", "`inner` is only for backend = \"fault\""))
                    }
                    (None, false) => &l.backend,
                };
                let mut faults = Vec::new();
                if let Some(f) = &l.faults {
                    if !fault {
                        return Err(ctx.err(f.span(), "target.lun.faults", "`faults` is only for backend = \"fault\""));
                    }
                    if f.get_ref().len() > shardtgt_backends::fault::RULES_MAX {
                        return Err(ctx.err(f.span(), "target.lun.faults", "more than 64 fault rules"));
                    }
                    for r in f.get_ref() {
                        faults.push(FaultRule::parse(r).map_err(|m| ctx.err(f.span(), "target.lun.faults", m))?);
                    }
                }
                let kind = BackendKind::from_name(kind_name.get_ref()).ok_or_else(|| {
                    let b = kind_name.get_ref();
                    let why = match b.as_str() {
                        "rbd" => " is not available yet",
                        "block" | "aio" => " is unknown: block devices use backend = \"file\" with path = \"/dev/...\"",
                        _ => " is unknown",
                    };
                    ctx.err(
                        kind_name.span(),
                        if fault { "target.lun.inner" } else { "target.lun.backend" },
                        format!("backend `{b}`{why} (known: {}, fault)", BackendKind::NAMES.join(", ")),
                    )
                })?;
                let block_size = match &l.block_size {
                    None => 512,
                    Some(b) if matches!(*b.get_ref(), 512 | 4096) => *b.get_ref() as u32,
                    Some(b) => {
                        return Err(ctx.err(
                            b.span(),
                            "target.lun.block_size",
                            format!("block size {} must be 512 or 4096", b.get_ref()),
                        ))
                    }
                };
                let size_bytes = match &l.size {
                    None if kind.uses_path() => None,
                    None => {
                        return Err(ctx.err(
                            l.backend.span(),
                            "target.lun.size",
                            format!("backend `{}` needs a size", l.backend.get_ref()),
                        ))
                    }
                    Some(size) => {
                        let n = match size.get_ref() {
                            SizeValue::Int(n) if *n > 0 => Ok(*n as u64),
                            SizeValue::Int(n) => Err(format!("size {n} must be positive")),
                            SizeValue::Text(s) => parse_size(s),
                        }
                        .map_err(|m| ctx.err(size.span(), "target.lun.size", m))?;
                        if n == 0 || n % u64::from(block_size) != 0 {
                            return Err(ctx.err(
                                size.span(),
                                "target.lun.size",
                                format!("size {n} is not a positive multiple of the block size {block_size}"),
                            ));
                        }
                        Some(n)
                    }
                };
                let read_only = l.read_only.unwrap_or(false);
                let only_for = |field: &str, span: Range<usize>, what: &str| {
                    ctx.err(
                        span,
                        &format!("target.lun.{field}"),
                        format!("{field} applies only to {what}, not to backend `{}`", l.backend.get_ref()),
                    )
                };
                let path = match &l.path {
                    Some(p) if kind.uses_path() => {
                        let pb = check_path(&ctx, p, size_bytes.is_some(), read_only)?;
                        let key = std::fs::canonicalize(&pb).unwrap_or_else(|_| pb.clone());
                        if let Some((_, other_t, other_l)) = paths.iter().find(|(k, _, _)| *k == key) {
                            return Err(ctx.err(
                                p.span(),
                                "target.lun.path",
                                format!("{} is already the store of `{other_t}` LUN {other_l}", pb.display()),
                            ));
                        }
                        paths.push((key, name.clone(), lun));
                        Some(pb)
                    }
                    Some(p) => return Err(only_for("path", p.span(), "backend = \"file\" or \"rdwr\"")),
                    None if kind.uses_path() => {
                        return Err(ctx.err(
                            l.backend.span(),
                            "target.lun.path",
                            format!("backend `{}` needs a path (a file or a block device)", l.backend.get_ref()),
                        ))
                    }
                    None => None,
                };
                let direct = match &l.direct {
                    Some(d) if !kind.uses_path() => {
                        return Err(only_for("direct", d.span(), "backend = \"file\" or \"rdwr\""))
                    }
                    Some(d) => *d.get_ref(),
                    None => false,
                };
                let lun_workers = match &l.workers {
                    Some(w) if kind != BackendKind::Rdwr => {
                        return Err(only_for("workers", w.span(), "backend = \"rdwr\""))
                    }
                    w => ctx.int(w, "target.lun.workers", 1, 256, workers as i64)? as usize,
                };
                let id = lu_id(&name, lun);
                let serial = match &l.serial {
                    Some(s) => check_ascii(&ctx, s, "target.lun.serial", 64)?,
                    None => format!("{id:016x}"),
                };
                let vendor = match &l.vendor {
                    Some(s) => check_ascii(&ctx, s, "target.lun.vendor", 8)?,
                    None => "SHARDTGT".into(),
                };
                let product = match &l.product {
                    Some(s) => check_ascii(&ctx, s, "target.lun.product", 16)?,
                    None => "shardtgt disk".into(),
                };
                luns.push(LunDef {
                    lun,
                    backend: BackendSpec {
                        kind,
                        size_bytes,
                        block_size,
                        path,
                        read_only,
                        direct,
                        workers: lun_workers,
                        fault,
                    },
                    read_only,
                    write_cache: l.write_cache.unwrap_or(true),
                    serial,
                    vendor,
                    product,
                    faults,
                });
            }
            luns.sort_by_key(|l| l.lun);
            let max_sessions = match &t.max_sessions {
                None => None,
                Some(_) => Some(ctx.int(&t.max_sessions, "target.max_sessions", 1, 65_535, 0)? as usize),
            };
            targets.push(TargetDef { name, tid, alias, luns, acl, chap, alua, max_sessions });
        }
        // Targets without a tid get the next free ones, in file order.
        for i in 0..targets.len() {
            if targets[i].tid == 0 {
                targets[i].tid = next_tid(&targets);
            }
        }
        let discovery_chap = raw.discovery_chap.as_ref().map(|c| check_chap(&ctx, c, "discovery_chap")).transpose()?;
        let mut accounts: Vec<AccountDef> = Vec::new();
        for a in &raw.account {
            let acc = check_account(&ctx, a, "account")?;
            if accounts.iter().any(|o| o.user == acc.user) {
                return Err(ctx.err(a.user.span(), "account.user", format!("account `{}` is defined twice", acc.user)));
            }
            accounts.push(acc);
        }
        Ok(Config {
            shards,
            max_sessions,
            limits,
            portals,
            targets,
            discovery_chap,
            accounts,
            state_dir,
            sanitize_rate,
        })
    }

    /// Read and parse a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: 0,
            col: 0,
            field: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Config::parse(&src, &file)
    }

    /// The built-in default configuration.
    pub fn embedded_default() -> Config {
        Config::parse(EMBEDDED_DEFAULT, EMBEDDED_NAME).expect("the embedded default configuration is valid")
    }

    /// Number of LUNs over all targets.
    pub fn lun_count(&self) -> usize {
        self.targets.iter().map(|t| t.luns.len()).sum()
    }

    /// Create the backends and the snapshot the core serves.
    pub fn build(&self) -> Result<Built, BackendError> {
        let mut backends = Vec::new();
        let mut targets = Vec::new();
        for t in &self.targets {
            let mut luns = Vec::new();
            for l in &t.luns {
                let b = shardtgt_backends::create(&l.backend)
                    .map_err(|e| BackendError(format!("{} LUN {}: {e}", t.name, l.lun)))?;
                if b.read_only() && !l.read_only {
                    tracing::warn!(target = %t.name, lun = l.lun, "exported read-only: its store cannot be written");
                }
                luns.push(self.lu_config(t, l, backends.len(), &b, self.lu_shared(t, l)));
                backends.push(b);
            }
            let lun_indices = luns.iter().map(|l| l.lun).collect();
            targets.push(to_core(t, luns, lun_indices));
        }
        Ok(Built { targets: Arc::new(self.target_set(targets)), backends })
    }

    /// Fresh shared state for LU `l` of target `t`: with `state_dir`, its
    /// persistent reservations (APTPL) and saved mode pages are restored from
    /// and written to `<state_dir>/<target>-lun<N>.pr` (SPC-4 §5.14.2).
    pub fn lu_shared(&self, t: &TargetDef, l: &LunDef) -> Arc<shardtgt_core::scsi::LuShared> {
        let Some(dir) = &self.state_dir else { return Arc::default() };
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "state_dir unusable: reservations are not persisted");
            return Arc::default();
        }
        let safe: String =
            t.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
        let path = dir.join(format!("{safe}-lun{}.pr", l.lun));
        Arc::new(shardtgt_core::scsi::LuShared::new(Some(path)))
    }

    /// The core's view of LU `l` of target `t`, served by backend `b` at
    /// slot `backend`, with `shared` state (carried over when the LU is kept).
    pub fn lu_config(
        &self,
        t: &TargetDef,
        l: &LunDef,
        backend: usize,
        b: &Arc<dyn shardtgt_backends::Backend>,
        shared: Arc<shardtgt_core::scsi::LuShared>,
    ) -> LuConfig {
        // SBC-4 §4.11: sanitize operations run beside the shards and outlive
        // the command that starts them.
        let name = format!("{} LUN {}", t.name, l.lun);
        shared.sanitize.set_runner(Arc::new(shardtgt_backends::ThreadSanitizer::new(
            b.clone(),
            self.sanitize_rate,
            name,
        )));
        let port_group = self.portals.first().map_or(1, |p| p.tpgt);
        // One target port group per portal group (SPC-4 §5.16, see
        // shardtgt_core::scsi::alua), with the target's configured state.
        let mut port_groups: Vec<(u16, AluaState)> = Vec::new();
        for p in &self.portals {
            if !port_groups.iter().any(|(g, _)| *g == p.tpgt) {
                let state = t.alua.iter().find(|(g, _)| *g == p.tpgt).map_or(AluaState::ACTIVE_OPTIMIZED, |x| x.1);
                port_groups.push((p.tpgt, state));
            }
        }
        port_groups.sort();
        let revision: String = {
            let v = env!("CARGO_PKG_VERSION");
            let mm: Vec<&str> = v.split('.').take(2).collect();
            mm.join(".").chars().take(4).collect()
        };
        LuConfig {
            lun: l.lun,
            backend,
            info: LuInfo {
                block_size: l.backend.block_size,
                num_blocks: b.size_bytes() / u64::from(l.backend.block_size),
                vendor: l.vendor.clone(),
                product: l.product.clone(),
                revision,
                serial: l.serial.clone(),
                naa_id: lu_id(&t.name, l.lun),
                read_only: l.read_only || b.read_only(),
                write_cache: l.write_cache,
                target_name: t.name.clone(),
                rel_port_id: 1,
                port_group,
                port_groups,
                // What the store can do: RAM zero-fills and UNMAP writes
                // zeros; file stores punch holes where they can.
                thin: b.provisioning().thin,
                deallocate: b.provisioning().deallocate,
            },
            shared,
        }
    }

    /// The snapshot around already converted targets.
    pub fn target_set(&self, targets: Vec<TargetConfig>) -> TargetSet {
        let portals = self.portals.iter().map(|p| Portal { address: format_portal(&p.addr), tpgt: p.tpgt }).collect();
        TargetSet {
            targets,
            portals,
            limits: self.limits.clone(),
            discovery_chap: self.discovery_chap.as_ref().and_then(chap_to_core),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../deploy/shardtgt.example.toml");

    fn err(src: &str) -> ConfigError {
        Config::parse(src, "t.toml").unwrap_err()
    }

    const BASE: &str = "[[portal]]\naddress = \"127.0.0.1:3260\"\n\n[[target]]\nname = \"iqn.2026-11.io.shardtgt:t\"\n";

    fn with_lun(lun_body: &str) -> String {
        format!("{BASE}  [[target.lun]]\n{lun_body}")
    }

    #[test]
    fn example_config_parses() {
        let c = Config::parse(EXAMPLE, "example").unwrap();
        assert_eq!(c.shards, 2);
        assert_eq!(c.limits.queue_depth, 128);
        assert_eq!(c.limits.max_recv_data_segment_len, 262_144);
        assert_eq!(c.limits.first_burst_len, 65_536);
        assert!(c.limits.immediate_data);
        assert!(!c.limits.initial_r2t);
        assert_eq!(c.limits.nop_interval_ms, 5000);
        assert_eq!(c.limits.login_timeout_ms, 15_000);
        assert_eq!(c.limits.write_buffer_budget, 256 << 20);
        assert_eq!(c.limits.r2t_timeout_ms, 15_000);
        assert_eq!(c.max_sessions, 1024);
        assert_eq!(c.portals.len(), 1);
        assert!(!c.targets.is_empty());
        let t = &c.targets[0];
        assert_eq!(t.name, "iqn.2026-11.io.shardtgt:default");
        assert_eq!(t.alias.as_deref(), Some("default"));
        assert_eq!(t.luns[0].backend, BackendSpec::memory(BackendKind::Ram, 1 << 30, 512));
    }

    #[test]
    fn example_file_luns_parse_when_uncommented() {
        let d = temp_dir("example");
        let dev = d.join("vdb.img");
        std::fs::write(&dev, vec![0u8; 1 << 20]).unwrap();
        // Uncomment from the first commented-out LUN table to the end.
        let start = EXAMPLE.find("#  [[target.lun]]").expect("commented file LUN in the example");
        let tail: Vec<&str> = EXAMPLE[start..].lines().map(|l| l.strip_prefix("#").unwrap_or(l)).collect();
        let uncommented = format!("{}{}", &EXAMPLE[..start], tail.join("\n"))
            .replace("/var/lib/shardtgt/disk2.img", &d.join("disk2.img").display().to_string())
            .replace("/dev/vdb", &dev.display().to_string());
        let c = Config::parse(&uncommented, "example").unwrap();
        let l = &c.targets[0].luns;
        assert_eq!(l.len(), 5, "{uncommented}");
        assert!(l[4].backend.fault && l[4].backend.kind == BackendKind::Ram && l[4].faults.len() == 2);
        assert_eq!((l[2].backend.kind, l[2].backend.size_bytes), (BackendKind::File, Some(100 << 30)));
        assert_eq!((l[3].backend.kind, l[3].backend.workers, l[3].backend.size_bytes), (BackendKind::Rdwr, 8, None));
        assert_eq!(c.targets[0].luns[1].backend.workers, 4);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn embedded_default() {
        let c = Config::embedded_default();
        assert_eq!(c.portals, vec![PortalDef { addr: "127.0.0.1:3260".parse().unwrap(), tpgt: 1 }]);
        assert_eq!(c.targets.len(), 1);
        assert_eq!(c.targets[0].name, "iqn.2026-11.io.shardtgt:default");
        assert_eq!(c.lun_count(), 1);
        let l = &c.targets[0].luns[0];
        assert_eq!((l.lun, l.backend.kind, l.backend.size_bytes), (0, BackendKind::Ram, Some(1 << 30)));
        assert_eq!(c.shards, allowed_cpus());
        let built = c.build().unwrap();
        let lu = &built.targets.targets[0].luns[0];
        assert_eq!(lu.info.num_blocks, (1 << 30) / 512);
        assert_eq!(lu.info.port_group, 1);
        assert_eq!(lu.info.rel_port_id, 1);
        assert_eq!(lu.info.naa_id, lu_id("iqn.2026-11.io.shardtgt:default", 0));
        assert!(lu.info.revision.len() <= 4);
        assert_eq!(built.targets.portals[0].address, "127.0.0.1:3260");
        assert_eq!(built.backends.len(), 1);
        assert_eq!(built.targets.targets[0].lun_indices, vec![0]);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        assert_eq!(parse_size("2TiB"), Ok(2 << 40));
        assert!(parse_size("1GB").unwrap_err().contains("unknown unit"));
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999T").unwrap_err().contains("too large"));
        let c = Config::parse(&with_lun("  lun = 0\n  backend = \"null\"\n  size = 8192\n"), "t").unwrap();
        assert_eq!(c.targets[0].luns[0].backend.size_bytes, Some(8192));
    }

    #[test]
    fn lun_defaults_and_ordering() {
        let src = with_lun(
            "  lun = 3\n  backend = \"null\"\n  size = \"1MiB\"\n  [[target.lun]]\n  lun = 1\n  backend = \"ram\"\n  size = \"1MiB\"\n  block_size = 4096\n  read_only = true\n  write_cache = false\n  serial = \"ABC\"\n  vendor = \"ACME\"\n  product = \"thing\"\n",
        );
        let c = Config::parse(&src, "t").unwrap();
        let l = &c.targets[0].luns;
        assert_eq!(l.iter().map(|l| l.lun).collect::<Vec<_>>(), vec![1, 3]);
        assert!(l[0].read_only && !l[0].write_cache);
        assert_eq!((l[0].serial.as_str(), l[0].vendor.as_str(), l[0].product.as_str()), ("ABC", "ACME", "thing"));
        assert_eq!(l[1].vendor, "SHARDTGT");
        assert_eq!(l[1].product, "shardtgt disk");
        assert_eq!(l[1].serial, format!("{:016x}", lu_id("iqn.2026-11.io.shardtgt:t", 3)));
        assert!(!l[1].read_only && l[1].write_cache);
        assert_ne!(lu_id("iqn.a", 0), lu_id("iqn.a", 1));
        assert_eq!(lu_id("IQN.A", 0), lu_id("iqn.a", 0));
    }

    fn assert_err(e: &ConfigError, line: usize, field: &str, msg_part: &str) {
        let s = e.to_string();
        assert_eq!(e.line, line, "{s}");
        assert_eq!(e.field, field, "{s}");
        assert!(s.contains(msg_part), "{s}");
        assert!(s.starts_with(&format!("t.toml:{line}:")), "{s}");
        assert!(s.contains(field), "{s}");
    }

    #[test]
    fn size_not_multiple_of_block_size() {
        // Lines: 1-2 portal, 3 blank, 4-5 target, 6 [[target.lun]], 7 lun, 8 backend, 9 size, 10 block_size.
        let e = err(&with_lun("  lun = 0\n  backend = \"ram\"\n  size = 1000\n  block_size = 512\n"));
        assert_err(&e, 9, "target.lun.size", "not a positive multiple of the block size 512");
    }

    #[test]
    fn bad_block_size() {
        let e = err(&with_lun("  lun = 0\n  backend = \"ram\"\n  size = 4096\n  block_size = 1000\n"));
        assert_err(&e, 10, "target.lun.block_size", "512 or 4096");
    }

    #[test]
    fn duplicate_lun() {
        let e = err(&with_lun(
            "  lun = 0\n  backend = \"ram\"\n  size = 4096\n  [[target.lun]]\n  lun = 0\n  backend = \"null\"\n  size = 4096\n",
        ));
        assert_err(&e, 11, "target.lun.lun", "LUN 0 is defined twice");
    }

    #[test]
    fn bad_iqn() {
        let e = err("[[portal]]\naddress = \"127.0.0.1:3260\"\n[[target]]\nname = \"target0\"\n");
        assert_err(&e, 4, "target.name", "must start with iqn., eui. or naa.");
        let e = err("[[portal]]\naddress = \"127.0.0.1:3260\"\n[[target]]\nname = \"iqn.foo\"\n");
        assert_err(&e, 4, "target.name", "iqn.YYYY-MM");
        assert!(check_iscsi_name("eui.02004567A425678D").is_ok());
        assert!(check_iscsi_name("naa.52004567BA64678D").is_ok());
        assert!(check_iscsi_name("iqn.2001-04.com.example:storage:disk2.sys1.xyz").is_ok());
        assert!(check_iscsi_name("iqn.2001-04.com.example:a b").is_err());
        assert!(check_iscsi_name("eui.123").is_err());
    }

    #[test]
    fn duplicate_target() {
        let e = err(&format!("{BASE}[[target]]\nname = \"IQN.2026-11.io.shardtgt:t\"\n"));
        assert_err(&e, 7, "target.name", "defined twice");
    }

    #[test]
    fn unknown_backend() {
        let e = err(&with_lun("  lun = 0\n  backend = \"floppy\"\n  size = 4096\n"));
        assert_err(&e, 8, "target.lun.backend", "backend `floppy` is unknown (known: ram, null, file, rdwr, fault)");
        let e = err(&with_lun("  lun = 0\n  backend = \"block\"\n  size = 4096\n"));
        assert_err(&e, 8, "target.lun.backend", "block devices use backend = \"file\"");
        let e = err(&with_lun("  lun = 0\n  backend = \"rbd\"\n  size = 4096\n"));
        assert_err(&e, 8, "target.lun.backend", "not available yet");
    }

    #[test]
    fn unknown_key() {
        let e = err("[global]\nshards = 2\nqueue_dpeth = 4\n");
        assert_err(&e, 3, "global.queue_dpeth", "unknown field `queue_dpeth`");
        let e = err(&with_lun("  lun = 0\n  backend = \"ram\"\n  size = 4096\n  colour = \"red\"\n"));
        assert_err(&e, 10, "target.lun.colour", "unknown field `colour`");
        let e = err("[globl]\nshards = 2\n");
        assert_err(&e, 1, "globl", "unknown field `globl`");
    }

    #[test]
    fn wrong_types_and_syntax() {
        let e = err("[global]\nshards = \"two\"\n");
        assert_err(&e, 2, "global.shards", "invalid type");
        let e = err("[global]\nimmediate_data = yes\n");
        assert_eq!(e.line, 2, "{e}");
        assert_eq!(e.field, "global.immediate_data", "{e}");
        let e = err(&with_lun("  lun = 0\n  backend = \"ram\"\n  size = \"1 gallon\"\n"));
        assert_err(&e, 9, "target.lun.size", "unknown unit");
        let e = err(&with_lun("  lun = 0\n  backend = \"ram\"\n  size = true\n"));
        assert_err(&e, 9, "target.lun.size", "a size");
    }

    #[test]
    fn missing_field() {
        let e = err(&with_lun("  lun = 0\n  size = 4096\n"));
        assert!(e.to_string().contains("missing field `backend`"), "{e}");
        assert!(e.line >= 6, "{e}");
    }

    #[test]
    fn ranges() {
        let e = err("[global]\nshards = 0\n");
        assert_err(&e, 2, "global.shards", "out of range 1..=1024");
        let e = err("[global]\nmax_burst_len = 4096\nfirst_burst_len = 8192\n");
        assert_err(&e, 3, "global.first_burst_len", "exceeds max_burst_len");
        let e = err(&format!("{BASE}  [[target.lun]]\n  lun = 16384\n  backend = \"ram\"\n  size = 4096\n"));
        assert_err(&e, 7, "target.lun.lun", "out of range 0..=16383");
        let e = err("[[portal]]\naddress = \"127.0.0.1:3260\"\ntpgt = 0\n");
        assert_err(&e, 3, "portal.tpgt", "out of range");
        let e = err("[global]\nwrite_buffer_budget_mib = 0\n");
        assert_err(&e, 2, "global.write_buffer_budget_mib", "out of range 1..=1048576");
        let e = err("[global]\nr2t_timeout_ms = 0\n");
        assert_err(&e, 2, "global.r2t_timeout_ms", "out of range 100..=3600000");
        let e = err("[global]\nr2t_timeout_ms = 3600001\n");
        assert_err(&e, 2, "global.r2t_timeout_ms", "out of range 100..=3600000");
        let e = err("[[target]]\nname = \"iqn.2026-11.io.shardtgt:x\"\nmax_sessions = 0\n");
        assert_err(&e, 3, "target.max_sessions", "out of range 1..=65535");
    }

    #[test]
    fn write_buffer_budget() {
        assert_eq!(Config::parse(BASE, "t").unwrap().limits.write_buffer_budget, 256 << 20);
        let c = Config::parse(&format!("[global]\nwrite_buffer_budget_mib = 16\n{BASE}"), "t").unwrap();
        assert_eq!(c.limits.write_buffer_budget, 16 << 20);
        // Saved configurations keep it.
        let again = Config::parse(&crate::persist::to_toml(&c), "saved").unwrap();
        assert_eq!(again.limits.write_buffer_budget, 16 << 20);
    }

    #[test]
    fn r2t_timeout() {
        assert_eq!(Config::parse(BASE, "t").unwrap().limits.r2t_timeout_ms, 15_000);
        let c = Config::parse(&format!("[global]\nr2t_timeout_ms = 2500\n{BASE}"), "t").unwrap();
        assert_eq!(c.limits.r2t_timeout_ms, 2500);
        // Saved configurations keep it.
        let again = Config::parse(&crate::persist::to_toml(&c), "saved").unwrap();
        assert_eq!(again.limits.r2t_timeout_ms, 2500);
    }

    #[test]
    fn portals() {
        let e = err("[[portal]]\naddress = \"::1:3260\"\n");
        assert_err(&e, 2, "portal.address", "brackets");
        let e = err("[[portal]]\naddress = \"127.0.0.1:3260\"\n[[portal]]\naddress = \"127.0.0.1:3260\"\n");
        assert_err(&e, 4, "portal.address", "listed twice");
        let c = Config::parse("", "t").unwrap();
        assert!(c.portals.is_empty() && c.targets.is_empty());
        let c = Config::parse("[[portal]]\naddress = \"[::1]:3261\"\ntpgt = 7\n", "t").unwrap();
        assert_eq!(c.portals[0].tpgt, 7);
        let b = c.build().unwrap();
        assert_eq!(b.targets.portals[0].address, "[::1]:3261");
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("shardtgt-config-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn file_and_rdwr_luns() {
        let d = temp_dir("luns");
        let existing = d.join("existing.img");
        std::fs::write(&existing, vec![0u8; 1 << 20]).unwrap();
        let new = d.join("new.img");
        let src = format!(
            "[global]\nworkers = 3\n{}  [[target.lun]]\n  lun = 0\n  backend = \"file\"\n  path = \"{}\"\n  direct = true\n  [[target.lun]]\n  lun = 1\n  backend = \"rdwr\"\n  path = \"{}\"\n  size = \"2MiB\"\n  block_size = 4096\n  write_cache = false\n  [[target.lun]]\n  lun = 2\n  backend = \"rdwr\"\n  path = \"/dev/null-not-there/x\"\n",
            BASE,
            existing.display(),
            new.display()
        );
        // LUN 2's directory does not exist.
        let e = err(&src);
        assert_err(&e, 23, "target.lun.path", "does not exist and its directory /dev/null-not-there does not either");
        let src = src.replace("/dev/null-not-there/x", &d.join("third.img").display().to_string()).replace(
            "lun = 2\n  backend = \"rdwr\"\n",
            "lun = 2\n  backend = \"rdwr\"\n  workers = 7\n  size = 4096\n",
        );
        let c = Config::parse(&src, "t.toml").unwrap();
        let l = &c.targets[0].luns;
        assert_eq!(l[0].backend.kind, BackendKind::File);
        assert_eq!(l[0].backend.size_bytes, None, "from the file");
        assert!(l[0].backend.direct);
        assert_eq!(l[0].backend.path.as_deref(), Some(existing.as_path()));
        assert_eq!(
            (l[1].backend.kind, l[1].backend.workers, l[1].backend.size_bytes),
            (BackendKind::Rdwr, 3, Some(2 << 20))
        );
        assert!(!l[1].write_cache);
        assert_eq!(l[2].backend.workers, 7);
        assert!(!new.exists(), "parsing creates nothing");
        let b = c.build().unwrap();
        let lus = &b.targets.targets[0].luns;
        assert_eq!(lus[0].info.num_blocks, (1 << 20) / 512, "size of the existing file");
        assert_eq!(lus[1].info.num_blocks, (2 << 20) / 4096);
        assert_eq!(std::fs::metadata(&new).unwrap().len(), 2 << 20, "created sparse");
        assert_eq!(b.backends[0].kind(), "file");
        assert_eq!(b.backends[1].kind(), "rdwr");
        drop(b);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn file_lun_errors() {
        let d = temp_dir("errors");
        let f = d.join("f.img");
        std::fs::write(&f, vec![0u8; 4096]).unwrap();
        let fp = f.display().to_string();
        let lun = |body: &str| with_lun(&format!("  lun = 0\n{body}"));
        // Lines: 7 lun, 8 backend, 9 the next key...
        let e = err(&lun("  backend = \"file\"\n"));
        assert_err(&e, 8, "target.lun.path", "backend `file` needs a path");
        let e = err(&lun("  backend = \"file\"\n  path = \"disk.img\"\n"));
        assert_err(&e, 9, "target.lun.path", "must be an absolute path");
        let e = err(&lun(&format!("  backend = \"file\"\n  path = \"{}\"\n", d.display())));
        assert_err(&e, 9, "target.lun.path", "is a directory");
        let e = err(&lun("  backend = \"file\"\n  path = \"/dev/null\"\n"));
        assert_err(&e, 9, "target.lun.path", "neither a regular file nor a block device");
        let e = err(&lun(&format!("  backend = \"rdwr\"\n  path = \"{}/missing.img\"\n", d.display())));
        assert_err(&e, 9, "target.lun.path", "give a size to create it");
        let e = err(&lun(&format!(
            "  backend = \"rdwr\"\n  path = \"{}/missing.img\"\n  size = 4096\n  read_only = true\n",
            d.display()
        )));
        assert_err(&e, 9, "target.lun.path", "a read-only LU never creates its file");
        let e = err(&lun(&format!("  backend = \"file\"\n  path = \"{fp}\"\n  size = 1000\n")));
        assert_err(&e, 10, "target.lun.size", "not a positive multiple of the block size 512");
        let e = err(&lun("  backend = \"ram\"\n"));
        assert_err(&e, 8, "target.lun.size", "backend `ram` needs a size");
        let e = err(&lun(&format!("  backend = \"ram\"\n  size = 4096\n  path = \"{fp}\"\n")));
        assert_err(&e, 10, "target.lun.path", "path applies only to backend = \"file\" or \"rdwr\"");
        let e = err(&lun("  backend = \"null\"\n  size = 4096\n  direct = true\n"));
        assert_err(&e, 10, "target.lun.direct", "direct applies only to");
        let e = err(&lun(&format!("  backend = \"file\"\n  path = \"{fp}\"\n  workers = 2\n")));
        assert_err(&e, 10, "target.lun.workers", "workers applies only to backend = \"rdwr\"");
        let e = err(&lun(&format!("  backend = \"rdwr\"\n  path = \"{fp}\"\n  workers = 0\n")));
        assert_err(&e, 10, "target.lun.workers", "out of range 1..=256");
        let e = err(&format!("[global]\nworkers = 1000\n{BASE}"));
        assert_err(&e, 2, "global.workers", "out of range 1..=256");
        let two = lun(&format!(
            "  backend = \"file\"\n  path = \"{fp}\"\n  [[target.lun]]\n  lun = 1\n  backend = \"rdwr\"\n  path = \"{}/./f.img\"\n",
            d.display()
        ));
        let e = err(&two);
        assert_err(&e, 13, "target.lun.path", "is already the store of `iqn.2026-11.io.shardtgt:t` LUN 0");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn read_only_store_is_exported_read_only() {
        let d = temp_dir("ro");
        let f = d.join("ro.img");
        std::fs::write(&f, vec![0u8; 8192]).unwrap();
        let src =
            with_lun(&format!("  lun = 0\n  backend = \"file\"\n  path = \"{}\"\n  read_only = true\n", f.display()));
        let b = Config::parse(&src, "t").unwrap().build().unwrap();
        assert!(b.targets.targets[0].luns[0].info.read_only);
        assert!(b.backends[0].read_only());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn locating_helpers() {
        let src = "a = 1\n[global]\nshards = 2 # c\n[[target.lun]]\nsize = 3\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, src.find("2 #").unwrap()), (3, 10));
        assert_eq!(field_at(src, 0), "a");
        assert_eq!(field_at(src, src.find("2 #").unwrap()), "global.shards");
        assert_eq!(field_at(src, src.find("[[target").unwrap()), "target.lun");
        assert_eq!(field_at(src, src.find("3\n").unwrap()), "target.lun.size");
    }
}
