//! The management protocol between `shardtgtadm` and `shardtgtd`.
//!
//! # Transport
//! A unix stream socket, by default `/run/shardtgt/shardtgtd.sock`
//! (`shardtgtd --admin-socket PATH`), created mode 0600 in a directory the
//! daemon creates mode 0700: only root (the daemon's user) may connect.
//! The client writes one request per line (a JSON object, UTF-8, at most
//! [`MAX_LINE`] bytes, ended by `\n`) and reads one response line per
//! request, in order. A connection may carry several requests; the daemon
//! closes it after [`IDLE_TIMEOUT_MS`] of silence. Requests run one at a
//! time on the daemon's control thread (never on a shard).
//!
//! # Requests
//! An object with `"op"` naming the operation and its arguments beside it.
//! `target` arguments take a target's iSCSI name or its tid (as a string,
//! `"1"`). Unknown fields are errors.
//!
//! | op | arguments | result (`data`) |
//! |---|---|---|
//! | `target_new` | `name`, `tid`?, `alias`? | `{tid}` |
//! | `target_delete` | `target`, `force`? (false: refused while sessions are logged in) | null |
//! | `target_show` | `target`? | `{portals, targets:[…], discovery_chap, accounts}` |
//! | `lun_new` | `target`, `lun`, `backend` (ram/null/file/rdwr), `size`? ("1GiB" or bytes), `path`?, `block_size`?, `read_only`?, `write_cache`?, `direct`?, `workers`?, `serial`?, `vendor`?, `product`? | null |
//! | `lun_delete` | `target`, `lun` | null |
//! | `lun_update` | `target`, `lun`, `read_only`?, `write_cache`? | null |
//! | `lun_resize` | `target`, `lun`, `size` (file/rdwr: grow; shrink only when nothing is in use past the new end; null: any; ram: refused) | null |
//! | `portal_add` | `address` (`"10.0.0.1:3260"`, `"[::]:3260"`), `tpgt`? | null |
//! | `portal_remove` | `address` | null |
//! | `fault_set` | `target`, `lun`, `rules` (list of `OP:LBA_RANGE:ERRNO[:once]`; empty clears) of a `fault` LUN | null |
//! | `alua_set` | `target`, `tpgt` (portal group tag = target port group), `state` (`active-optimized`, `active-non-optimized`, `standby`, `unavailable`, `transitioning`) | null |
//! | `acl_bind` / `acl_unbind` | `target`, `rule` (iSCSI name, address, CIDR or `ALL`) | null |
//! | `account_new` | `user`, `secret` (12..=256 bytes) | null |
//! | `account_delete` | `user` (also unbound everywhere) | null |
//! | `chap_bind` / `chap_unbind` | `target`? (absent: discovery sessions), `user`, `outgoing`? | null |
//! | `session_list` | — | `[{tsih, initiator, isid, target, peer, shard}]` |
//! | `session_logout` | `tsih` | null |
//! | `stats` | — | `{shards:[{shard, conns_live, conns_total, bytes_in, bytes_out, backend_ops, backend_waits, write_buffer_held, write_buffer_peak, write_buffer_waits, r2t_timeouts}], sessions, targets, luns, portals}` |
//! | `config_show` | — | `{path, toml}` (secrets replaced by `<set>`) |
//! | `config_save` | — | `{path}` |
//! | `config_reload` | — | `{changes:[…]}` |
//!
//! # Responses
//! `{"ok":true,"data":…}` or `{"ok":false,"error":"one line saying what is wrong"}`.
//! A line that is not a valid request (bad JSON, unknown op, missing or
//! unknown field) gets an error response; the connection stays usable.
//!
//! # Changes
//! Every successful change is written to the configuration file (atomic
//! replace) before the response, then applied by sending a new snapshot to
//! every shard: other sessions are undisturbed. Secrets are never part of a
//! response.

use serde::{Deserialize, Serialize};

/// Longest request line accepted, bytes.
pub const MAX_LINE: usize = 64 * 1024;
/// A connection silent this long is closed, ms.
pub const IDLE_TIMEOUT_MS: u64 = 5_000;
/// Default socket path.
pub const DEFAULT_SOCKET: &str = "/run/shardtgt/shardtgtd.sock";

fn no() -> bool {
    false
}

/// One request. `Debug` prints it as JSON with any secret replaced by `<set>`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Create a target.
    TargetNew {
        /// iSCSI name.
        name: String,
        /// tgt target id; the next free one when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tid: Option<u32>,
        /// TargetAlias.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        alias: Option<String>,
    },
    /// Delete a target.
    TargetDelete {
        /// Name or tid.
        target: String,
        /// Delete even with sessions logged in (they are logged out).
        #[serde(default = "no")]
        force: bool,
    },
    /// Describe targets.
    TargetShow {
        /// One target (name or tid), or all.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
    },
    /// Add a LUN.
    LunNew {
        /// Name or tid.
        target: String,
        /// LUN.
        lun: u16,
        /// ram, null, file or rdwr.
        backend: String,
        /// Size ("1GiB" or bytes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<String>,
        /// Backing file or device.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// 512 or 4096.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        block_size: Option<u32>,
        /// Read-only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        read_only: Option<bool>,
        /// Write cache.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        write_cache: Option<bool>,
        /// O_DIRECT.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        direct: Option<bool>,
        /// rdwr worker threads.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workers: Option<u32>,
        /// Unit serial number.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        serial: Option<String>,
        /// T10 vendor.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vendor: Option<String>,
        /// Product.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        product: Option<String>,
    },
    /// Remove a LUN.
    LunDelete {
        /// Name or tid.
        target: String,
        /// LUN.
        lun: u16,
    },
    /// Change a LUN's flags.
    LunUpdate {
        /// Name or tid.
        target: String,
        /// LUN.
        lun: u16,
        /// Read-only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        read_only: Option<bool>,
        /// Write cache.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        write_cache: Option<bool>,
    },
    /// Grow a LUN.
    LunResize {
        /// Name or tid.
        target: String,
        /// LUN.
        lun: u16,
        /// New size.
        size: String,
    },
    /// Listen on a new portal.
    PortalAdd {
        /// Address.
        address: String,
        /// Portal group tag (default 1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tpgt: Option<u16>,
    },
    /// Stop listening on a portal.
    PortalRemove {
        /// Address.
        address: String,
    },
    /// Replace the injection rules of a `fault` LUN (an empty list clears
    /// them); see `shardtgt_backends::fault` for the rule syntax.
    FaultSet {
        /// Name or tid.
        target: String,
        /// LUN.
        lun: u16,
        /// Rules, `OP:LBA_RANGE:ERRNO[:once]`.
        rules: Vec<String>,
    },
    /// Set the ALUA state of one target port group of a target (SPC-4
    /// §5.16); every I_T nexus of its LUs gets ASYMMETRIC ACCESS STATE
    /// CHANGED.
    AluaSet {
        /// Name or tid.
        target: String,
        /// Portal group tag (= target port group id).
        tpgt: u16,
        /// State name.
        state: String,
    },
    /// Allow an initiator.
    AclBind {
        /// Name or tid.
        target: String,
        /// Name, address, CIDR or ALL.
        rule: String,
    },
    /// Remove an ACL rule.
    AclUnbind {
        /// Name or tid.
        target: String,
        /// The rule as bound.
        rule: String,
    },
    /// Store a CHAP account.
    AccountNew {
        /// User.
        user: String,
        /// Secret.
        secret: String,
    },
    /// Delete a CHAP account (and unbind it).
    AccountDelete {
        /// User.
        user: String,
    },
    /// Bind an account to a target or to discovery.
    ChapBind {
        /// Name or tid; absent: discovery sessions.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        /// Account.
        user: String,
        /// As the target's own (mutual CHAP) account.
        #[serde(default = "no")]
        outgoing: bool,
    },
    /// Unbind an account.
    ChapUnbind {
        /// Name or tid; absent: discovery sessions.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        /// Account.
        user: String,
        /// The outgoing account.
        #[serde(default = "no")]
        outgoing: bool,
    },
    /// List sessions.
    SessionList,
    /// Force a session out.
    SessionLogout {
        /// Its TSIH.
        tsih: u16,
    },
    /// Counters.
    Stats,
    /// The configuration as TOML (secrets hidden).
    ConfigShow,
    /// Write the running configuration to the file.
    ConfigSave,
    /// Re-read the file and apply it.
    ConfigReload,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut v = serde_json::to_value(self).map_err(|_| std::fmt::Error)?;
        if let Some(s) = v.get_mut("secret") {
            *s = serde_json::Value::String("<set>".into());
        }
        write!(f, "{v}")
    }
}

impl Request {
    /// Does this request change the configuration?
    pub fn is_change(&self) -> bool {
        !matches!(
            self,
            Request::TargetShow { .. }
                | Request::SessionList
                | Request::SessionLogout { .. }
                | Request::Stats
                | Request::ConfigShow
                | Request::ConfigSave
                | Request::ConfigReload
        )
    }
}

/// One response.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct Response {
    /// Success.
    pub ok: bool,
    /// Result on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// What is wrong, on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    /// Success with data.
    pub fn ok(data: serde_json::Value) -> Response {
        Response { ok: true, data: Some(data), error: None }
    }
    /// Failure.
    pub fn err(msg: impl Into<String>) -> Response {
        let m: String = msg.into();
        Response { ok: false, data: None, error: Some(m.replace('\n', " ")) }
    }
    /// One line of JSON, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"ok":false,"error":"cannot encode response"}"#.into())
    }
}

/// Parse one request line; the error is the one-line message to send back.
pub fn parse_request(line: &str) -> Result<Request, String> {
    serde_json::from_str(line.trim()).map_err(|e| format!("bad request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_errors() {
        let r = parse_request(r#"{"op":"lun_new","target":"1","lun":0,"backend":"ram","size":"1G"}"#).unwrap();
        assert!(matches!(r, Request::LunNew { lun: 0, .. }));
        assert!(r.is_change());
        assert_eq!(parse_request(r#"{"op":"session_list"}"#).unwrap(), Request::SessionList);
        assert!(parse_request("{nope").unwrap_err().starts_with("bad request"));
        assert!(parse_request(r#"{"op":"frobnicate"}"#).unwrap_err().contains("frobnicate"));
        assert!(parse_request(r#"{"op":"target_new"}"#).unwrap_err().contains("name"));
        assert!(parse_request(r#"{"op":"target_new","name":"x","bogus":1}"#).unwrap_err().contains("bogus"));
        assert!(parse_request(r#"{"op":"lun_delete","target":"1","lun":70000}"#).is_err());
        let line = Response::err("two\nlines").to_line();
        assert!(!line.contains('\n'));
        let r: Response = serde_json::from_str(&line).unwrap();
        assert_eq!(r.error.as_deref(), Some("two lines"));
    }

    #[test]
    fn requests_round_trip() {
        let r = Request::ChapBind { target: None, user: "u".into(), outgoing: true };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(s, r#"{"op":"chap_bind","user":"u","outgoing":true}"#);
        assert_eq!(parse_request(&s).unwrap(), r);
        let a = Request::AccountNew { user: "u".into(), secret: "very-secret-1234".into() };
        assert!(!format!("{a:?}").contains("very-secret"));
    }
}
