//! The control thread's state: the running [`Config`], the live backends
//! (with the slot each has in every shard's backend table), the shard pool,
//! the acceptor and its portals. [`Control::handle`] answers one
//! management request; a change goes: validate ([`ops::mutate`]) → create
//! the new backends and bind new portals → write the file atomically →
//! hand new backends to the shards → send the new `TargetSet` snapshot to
//! every shard → restart the acceptor if the portals changed. A failure
//! before the file write leaves everything as it was.
//!
//! A LUN whose size alone changes (admin `lun resize`, or a reload with a
//! new `size`) keeps its backend: the store is resized in place
//! ([`Backend::resize`]: a file grows sparse, shrinks only when nothing is
//! in use past the new end; a RAM LUN refuses), then the LU's shared
//! capacity ([`LuShared::set_num_blocks`], read by every shard's range
//! checks and READ CAPACITY) changes and every I_T nexus gets CAPACITY
//! DATA HAS CHANGED once; the new snapshot carries the same size.
//!
//! Backend slots are never reused. A LUN deleted (or whose backend is
//! replaced) is retired after the snapshot that dropped it: every shard drops its handle once it has no backend request in
//! flight, and the backend itself is freed with the last handle (`Arc`).
//! Sessions that still address the LUN get LOGICAL UNIT NOT SUPPORTED from
//! the new snapshot. It never runs on a shard thread.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use shardtgt_backends::{Backend, BackendKind, BackendSpec};
use shardtgt_core::ids::Tsih;
use shardtgt_core::scsi::LuShared;
use shardtgt_core::session::Registry;
use shardtgt_core::target::TargetSet;
use shardtgt_shard::{Acceptor, Listener, ShardPool};
use shardtgt_transport_tcp::addr::format_portal;
use shardtgt_transport_tcp::listen;
use tracing::{info, warn};

use crate::admin::ops;
use crate::admin::protocol::{Request, Response};
use crate::config::Config;
use crate::persist::{to_toml, write_atomic};

/// How long the control thread waits for a shard's inbox.
const SHARD_SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// One LU as it runs.
#[derive(Debug, Clone)]
struct LiveLu {
    spec: BackendSpec,
    index: usize,
    backend: Arc<dyn Backend>,
    shared: Arc<LuShared>,
    /// Injection rules of a `fault` LU, applied at [`Live::commit`].
    faults: Vec<shardtgt_backends::fault::FaultRule>,
}

/// Can a running backend made from `a` serve `b`? Memory backends ignore
/// `read_only` (the SCSI layer enforces it); file stores reopen for it.
fn same_store(a: &BackendSpec, b: &BackendSpec) -> bool {
    match a.kind {
        BackendKind::Ram | BackendKind::Null => {
            a.kind == b.kind && a.size_bytes == b.size_bytes && a.block_size == b.block_size && a.fault == b.fault
        }
        _ => a == b,
    }
}

/// Can the running backend made from `a` be resized in place to serve `b`?
/// Same store, only the size differs (and is given).
fn resizable(a: &BackendSpec, b: &BackendSpec) -> bool {
    b.size_bytes.is_some() && a.kind == b.kind && BackendSpec { size_bytes: b.size_bytes, ..a.clone() } == *b
}

/// One online resize a configuration asks for.
#[derive(Debug, Clone)]
pub struct Resize {
    what: String,
    backend: Arc<dyn Backend>,
    shared: Arc<LuShared>,
    from: u64,
    to: u64,
    block_size: u32,
}

impl Resize {
    /// Resize the store; the error names the LUN.
    fn apply(&self) -> Result<(), String> {
        self.backend.resize(self.to).map_err(|e| format!("{}: {e}", self.what))
    }

    /// Put the store back (after a later step failed).
    fn revert(&self) {
        if let Err(e) = self.backend.resize(self.from) {
            warn!("{}: cannot undo the resize: {e}", self.what);
        }
    }

    /// Publish the new capacity to every shard and nexus.
    fn publish(&self) {
        let bs = u64::from(self.block_size);
        if self.shared.set_num_blocks(self.to / bs, self.from / bs) {
            info!(from = self.from, to = self.to, "{}: resized; CAPACITY DATA HAS CHANGED raised", self.what);
        }
    }
}

/// The backends that run, keyed by (lower-cased target name, LUN).
#[derive(Debug, Default)]
pub struct Live {
    lus: HashMap<(String, u16), LiveLu>,
    next_index: usize,
}

/// What [`Live::prepare`] produced for a configuration.
#[derive(Debug)]
pub struct Prepared {
    /// The snapshot to serve.
    pub set: TargetSet,
    /// Backends created for it, with their new slots (in slot order).
    pub added: Vec<(usize, Arc<dyn Backend>)>,
    /// Kept backends to resize in place before the snapshot is served.
    pub resizes: Vec<Resize>,
    lus: HashMap<(String, u16), LiveLu>,
    next_index: usize,
}

impl Live {
    /// Build the snapshot for `cfg`, reusing the backend (and always the
    /// LU's shared state) of every LU that stays, creating the others.
    pub fn prepare(&self, cfg: &Config) -> Result<Prepared, String> {
        let mut lus = HashMap::new();
        let mut added = Vec::new();
        let mut resizes = Vec::new();
        let mut next_index = self.next_index;
        let mut targets = Vec::new();
        for t in &cfg.targets {
            let mut luns = Vec::new();
            for l in &t.luns {
                let key = (t.name.to_ascii_lowercase(), l.lun);
                let old = self.lus.get(&key);
                let mut resized_to = None;
                let mut live = match old {
                    Some(o) if same_store(&o.spec, &l.backend) => o.clone(),
                    Some(o) if o.spec.kind != BackendKind::Ram && resizable(&o.spec, &l.backend) => {
                        let to = l.backend.size_bytes.unwrap_or(0);
                        resizes.push(Resize {
                            what: format!("target {} LUN {}", t.name, l.lun),
                            backend: o.backend.clone(),
                            shared: o.shared.clone(),
                            from: o.backend.size_bytes(),
                            to,
                            block_size: l.backend.block_size,
                        });
                        resized_to = Some(to);
                        LiveLu { spec: l.backend.clone(), ..o.clone() }
                    }
                    Some(o) if o.spec.kind == BackendKind::Ram => {
                        return Err(format!(
                            "target {} LUN {}: changing a ram LUN's size or block size would lose its contents; \
                             delete the LUN and create it again",
                            t.name, l.lun
                        ));
                    }
                    _ => {
                        let b = shardtgt_backends::create(&l.backend)
                            .map_err(|e| format!("target {} LUN {}: {e}", t.name, l.lun))?;
                        let index = next_index;
                        next_index += 1;
                        added.push((index, b.clone()));
                        LiveLu {
                            spec: l.backend.clone(),
                            index,
                            backend: b,
                            shared: old.map(|o| o.shared.clone()).unwrap_or_else(|| cfg.lu_shared(t, l)),
                            faults: Vec::new(),
                        }
                    }
                };
                live.faults.clone_from(&l.faults);
                let mut lc = cfg.lu_config(t, l, live.index, &live.backend, live.shared.clone());
                if let Some(to) = resized_to {
                    lc.info.num_blocks = to / u64::from(l.backend.block_size.max(1));
                }
                luns.push(lc);
                lus.insert(key, live);
            }
            let idx = luns.iter().map(|l| l.lun).collect();
            targets.push(crate::config::to_core(t, luns, idx));
        }
        Ok(Prepared { set: cfg.target_set(targets), added, resizes, lus, next_index })
    }

    /// Adopt what [`Live::prepare`] made.
    pub fn commit(&mut self, p: Prepared) {
        for lu in p.lus.values() {
            if let Some(r) = lu.backend.fault_rules() {
                r.set(&lu.faults);
            }
        }
        self.lus = p.lus;
        self.next_index = p.next_index;
    }
}

/// Everything the control thread runs.
#[derive(Debug)]
pub struct Control {
    cfg: Config,
    path: Option<PathBuf>,
    live: Live,
    pool: ShardPool,
    acceptor: Option<Acceptor>,
    bound: Vec<SocketAddr>,
    registry: Arc<Registry>,
    /// `global.shards` as the file has it, when `--shards` overrides it
    /// (the override is not written back).
    file_shards: Option<usize>,
}

impl Control {
    /// Take over a started pool and acceptor (`bound`: the acceptor's
    /// portal addresses, in its listener order).
    pub fn new(
        cfg: Config,
        path: Option<PathBuf>,
        live: Live,
        pool: ShardPool,
        acceptor: Acceptor,
        bound: Vec<SocketAddr>,
        registry: Arc<Registry>,
    ) -> Control {
        Control { cfg, path, live, pool, acceptor: Some(acceptor), bound, registry, file_shards: None }
    }

    /// Keep `n` as `global.shards` in the file (the running count came
    /// from `--shards`).
    pub fn keep_file_shards(&mut self, n: usize) {
        self.file_shards = Some(n);
    }

    fn file_text(&self, c: &Config) -> String {
        match self.file_shards {
            Some(n) => to_toml(&Config { shards: n, ..c.clone() }),
            None => to_toml(c),
        }
    }

    /// The running configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The shard pool.
    pub fn pool(&self) -> &ShardPool {
        &self.pool
    }

    /// Stop accepting and hand the pool back for shutdown.
    pub fn into_pool(mut self) -> ShardPool {
        if let Some(a) = self.acceptor.take() {
            a.stop();
        }
        self.pool
    }

    /// Answer one request line.
    pub fn handle_line(&mut self, line: &str) -> Response {
        match crate::admin::protocol::parse_request(line) {
            Ok(r) => self.handle(&r),
            Err(e) => Response::err(e),
        }
    }

    /// Answer one request.
    pub fn handle(&mut self, req: &Request) -> Response {
        match self.try_handle(req) {
            Ok(v) => Response::ok(v),
            Err(e) => Response::err(e),
        }
    }

    fn try_handle(&mut self, req: &Request) -> Result<Value, String> {
        match req {
            Request::TargetShow { target } => ops::show_json(&self.cfg, target.as_deref()),
            Request::SessionList => Ok(self.sessions()),
            Request::SessionLogout { tsih } => {
                if self.registry.kill(Tsih(*tsih)) {
                    info!(tsih, "session forced out by the administrator");
                    Ok(Value::Null)
                } else {
                    Err(format!("no session with TSIH {tsih}"))
                }
            }
            Request::Stats => Ok(self.stats()),
            Request::ConfigShow => Ok(json!({
                "path": self.path.as_ref().map(|p| p.display().to_string()),
                "toml": ops::redacted_toml(&self.cfg),
            })),
            Request::ConfigSave => {
                let p = self.path.clone().ok_or("no configuration file: start shardtgtd with --config PATH")?;
                write_atomic(&p, &self.file_text(&self.cfg)).map_err(|e| format!("writing {}: {e}", p.display()))?;
                Ok(json!({"path": p.display().to_string()}))
            }
            Request::ConfigReload => self.reload().map(|changes| json!({ "changes": changes })),
            Request::TargetDelete { target, force } => {
                let i = ops::find_target(&self.cfg, target)?;
                let name = self.cfg.targets[i].name.clone();
                let sessions: Vec<Tsih> = self
                    .registry
                    .list()
                    .into_iter()
                    .filter(|s| s.target.eq_ignore_ascii_case(&name))
                    .map(|s| s.tsih)
                    .collect();
                if !sessions.is_empty() && !force {
                    return Err(format!(
                        "target `{name}` has {} session(s) logged in; log them out first or use --force",
                        sessions.len()
                    ));
                }
                let next = ops::mutate(&self.cfg, req)?;
                self.change(next, true)?;
                for t in sessions {
                    self.registry.kill(t);
                }
                Ok(Value::Null)
            }
            Request::TargetNew { .. } => {
                let next = ops::mutate(&self.cfg, req)?;
                self.change(next, true)?;
                let tid = self.cfg.targets.last().map_or(0, |t| t.tid);
                Ok(json!({ "tid": tid }))
            }
            other => {
                let next = ops::mutate(&self.cfg, other)?;
                self.change(next, true)?;
                Ok(Value::Null)
            }
        }
    }

    /// Re-read the file; apply it if valid. Returns what changed.
    pub fn reload(&mut self) -> Result<Vec<String>, String> {
        let p = self.path.clone().ok_or("no configuration file: start shardtgtd with --config PATH")?;
        let mut next = Config::load(&p).map_err(|e| e.to_string())?;
        // The shard count is fixed at start: keep the running one, remember the file's.
        let file_n = next.shards;
        let was = self.file_shards.unwrap_or(self.cfg.shards);
        next.shards = self.cfg.shards;
        let mut changes = ops::diff(&self.cfg, &next);
        if file_n != was {
            changes.push(format!("global.shards {was} -> {file_n} (takes effect at restart)"));
        }
        if !changes.is_empty() {
            self.change(next, false)?;
        }
        self.file_shards = (file_n != self.cfg.shards).then_some(file_n);
        for c in &changes {
            info!("reload: {c}");
        }
        Ok(changes)
    }

    /// Apply `next`: the sequence in the module docs. `persist`: write the file.
    fn change(&mut self, next: Config, persist: bool) -> Result<(), String> {
        let prepared = self.live.prepare(&next)?;
        // Resize stores in place first: a refused shrink changes nothing.
        for (i, r) in prepared.resizes.iter().enumerate() {
            if let Err(e) = r.apply() {
                prepared.resizes[..i].iter().rev().for_each(Resize::revert);
                return Err(e);
            }
        }
        let undo = |p: &Prepared| p.resizes.iter().rev().for_each(Resize::revert);
        // Bind new portals before anything is written.
        let mut new_listeners = Vec::new();
        for p in &next.portals {
            if !self.bound.contains(&p.addr) {
                let l = listen::bind(p.addr).map_err(|e| {
                    undo(&prepared);
                    e.to_string()
                })?;
                new_listeners.push((p.addr, Listener { listener: l, tpgt: p.tpgt }));
            }
        }
        if persist {
            if let Some(path) = &self.path {
                write_atomic(path, &self.file_text(&next)).map_err(|e| {
                    undo(&prepared);
                    format!("writing {}: {e}", path.display())
                })?;
            }
        }
        // Every shard sees the new capacity from the LU's shared state at
        // once (before the snapshot that carries it arrives).
        prepared.resizes.iter().for_each(Resize::publish);
        for (index, b) in &prepared.added {
            let n = self.pool.add_backend(*index, b.clone(), SHARD_SEND_TIMEOUT);
            if n < self.pool.len() {
                warn!(index, "only {n} of {} shards took the new backend", self.pool.len());
            }
        }
        let set = Arc::new(prepared.set.clone());
        let acl_changed = next.targets.iter().any(|t| {
            self.cfg.targets.iter().find(|o| o.name.eq_ignore_ascii_case(&t.name)).is_some_and(|o| o.acl != t.acl)
        });
        let n = self.pool.set_targets(set.clone(), SHARD_SEND_TIMEOUT);
        if n < self.pool.len() {
            warn!("only {n} of {} shards took the new configuration", self.pool.len());
        }
        let portals_changed = next.portals != self.cfg.portals;
        // SPC-4 §5.16.2.7: an ALUA state change (or a port group appearing
        // or going) is ASYMMETRIC ACCESS STATE CHANGED on every I_T nexus of
        // the target's LUs — posted after every shard took the new states.
        for t in &next.targets {
            let old = self.cfg.targets.iter().find(|o| o.name.eq_ignore_ascii_case(&t.name));
            if old.is_some_and(|o| o.alua != t.alua) || (old.is_some() && portals_changed) {
                if let Some((_, tc)) = set.target(&t.name) {
                    for lu in &tc.luns {
                        lu.shared.alua_changed();
                    }
                }
            }
        }
        let kept: Vec<usize> = prepared.lus.values().map(|l| l.index).collect();
        let retired: Vec<usize> = self.live.lus.values().map(|l| l.index).filter(|i| !kept.contains(i)).collect();
        self.live.commit(prepared);
        // The daemon's Arc went with the old map; each shard drops its
        // handle once idle, and the last one frees the backend.
        for index in retired {
            self.pool.retire_backend(index, SHARD_SEND_TIMEOUT);
        }
        self.cfg = next;
        if portals_changed {
            self.restart_acceptor(new_listeners);
        }
        if acl_changed {
            self.drop_denied_sessions(&set);
        }
        Ok(())
    }

    /// After an ACL change, force out the sessions the new rules refuse
    /// (a denied initiator must not keep a session it could not open now).
    fn drop_denied_sessions(&self, set: &TargetSet) {
        let conns = self.pool.list_conns(SHARD_SEND_TIMEOUT);
        for s in self.registry.list() {
            let Some((_, t)) = set.target(&s.target) else { continue };
            let peer = conns
                .iter()
                .find(|c| c.tsih == Some(s.tsih.0))
                .and_then(|c| c.peer.parse::<SocketAddr>().ok())
                .map(|a| a.ip());
            if !t.acl.admits(&s.initiator, peer) {
                info!(tsih = s.tsih.0, initiator = %s.initiator, target = %t.name, "ACL now denies the session: logged out");
                self.registry.kill(s.tsih);
            }
        }
    }

    fn restart_acceptor(&mut self, added: Vec<(SocketAddr, Listener)>) {
        let old = self.acceptor.take().map(Acceptor::stop_take).unwrap_or_default();
        let mut keep: Vec<(SocketAddr, Listener)> = self.bound.iter().copied().zip(old).collect();
        keep.retain(|(a, _)| self.cfg.portals.iter().any(|p| p.addr == *a));
        for (a, l) in keep.iter_mut() {
            if let Some(p) = self.cfg.portals.iter().find(|p| p.addr == *a) {
                l.tpgt = p.tpgt;
            }
        }
        keep.extend(added);
        self.bound = keep.iter().map(|(a, _)| *a).collect();
        let listeners: Vec<Listener> = keep.into_iter().map(|(_, l)| l).collect();
        match Acceptor::start(listeners, self.pool.dispatcher()) {
            Ok(a) => self.acceptor = Some(a),
            Err(e) => warn!("acceptor restart failed: {e}; not accepting connections"),
        }
        let names: Vec<String> = self.bound.iter().map(format_portal).collect();
        info!("listening on {}", if names.is_empty() { "no portal".into() } else { names.join(", ") });
    }

    fn sessions(&self) -> Value {
        let conns = self.pool.list_conns(SHARD_SEND_TIMEOUT);
        let list: Vec<Value> = self
            .registry
            .list()
            .into_iter()
            .map(|s| {
                let c: Vec<_> = conns.iter().filter(|c| c.tsih == Some(s.tsih.0)).collect();
                json!({
                    "tsih": s.tsih.0,
                    "initiator": s.initiator,
                    "isid": format!("{:012x}", s.isid.0),
                    "target": s.target,
                    "connections": c.iter().map(|c| json!({
                        "peer": c.peer,
                        "shard": c.shard,
                        "bytes_in": c.bytes_in,
                        "bytes_out": c.bytes_out,
                        "backend_ops": c.backend_ops,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        Value::Array(list)
    }

    fn stats(&self) -> Value {
        let shards: Vec<Value> = self
            .pool
            .stats()
            .iter()
            .enumerate()
            .map(|(i, s)| {
                json!({
                    "shard": i,
                    "conns_live": s.conns_live,
                    "conns_total": s.conns_total,
                    "bytes_in": s.bytes_in,
                    "bytes_out": s.bytes_out,
                    "backend_ops": s.backend_ops,
                    "backend_waits": s.backend_waits,
                    "write_buffer_held": s.write.held,
                    "write_buffer_peak": s.write.peak,
                    "write_buffer_waits": s.write.waits,
                    "r2t_timeouts": s.write.data_timeouts,
                })
            })
            .collect();
        json!({
            "shards": shards,
            "sessions": self.registry.len(),
            "targets": self.cfg.targets.len(),
            "luns": self.cfg.lun_count(),
            "portals": self.cfg.portals.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        Config::parse(
            &format!(
                "[[target]]\nname = \"iqn.2026-11.io.shardtgt:p\"\n  [[target.lun]]\n  lun = 0\n  backend = \"ram\"\n  size = \"1MiB\"\n{extra}"
            ),
            "t",
        )
        .unwrap()
    }

    #[test]
    fn prepare_reuses_kept_backends() {
        let mut live = Live::default();
        let p = live.prepare(&cfg("")).unwrap();
        assert_eq!(p.added.len(), 1);
        let shared = p.set.targets[0].luns[0].shared.clone();
        live.commit(p);
        // Same configuration: nothing created, same shared LU state.
        let p = live.prepare(&cfg("  read_only = true\n")).unwrap();
        assert!(p.added.is_empty(), "read_only on a ram LU keeps its backend");
        assert!(Arc::ptr_eq(&p.set.targets[0].luns[0].shared, &shared));
        assert!(p.set.targets[0].luns[0].info.read_only);
        // A new LU gets the next slot; slots are never reused.
        let p = live.prepare(&cfg("  [[target.lun]]\n  lun = 1\n  backend = \"null\"\n  size = \"1MiB\"\n")).unwrap();
        assert_eq!(p.added.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![1]);
        live.commit(p);
        let p = live.prepare(&Config::parse("", "t").unwrap()).unwrap();
        assert!(p.set.targets.is_empty());
        live.commit(p);
        let p = live.prepare(&cfg("")).unwrap();
        assert_eq!(p.added[0].0, 2);
    }

    #[test]
    fn a_size_change_resizes_in_place_and_raises_capacity_changed() {
        let dir = std::env::temp_dir().join(format!("shardtgt-ctl-resize-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let img = dir.join("a.img");
        let file = |size: &str| {
            cfg(&format!(
                "  [[target.lun]]\n  lun = 1\n  backend = \"file\"\n  path = \"{}\"\n  size = \"{size}\"\n",
                img.display()
            ))
        };
        let mut live = Live::default();
        let p = live.prepare(&file("1MiB")).unwrap();
        let shared = p.set.targets[0].luns[1].shared.clone();
        let (id, _, _) = shared.attach(shardtgt_core::scsi::ItNexus::default());
        live.commit(p);
        let p = live.prepare(&file("2MiB")).unwrap();
        assert!(p.added.is_empty(), "same backend");
        assert_eq!(p.resizes.len(), 1);
        assert_eq!(p.set.targets[0].luns[1].info.num_blocks, (2 << 20) / 512, "the snapshot has the new size");
        assert!(Arc::ptr_eq(&p.set.targets[0].luns[1].shared, &shared));
        p.resizes[0].apply().unwrap();
        p.resizes[0].publish();
        assert_eq!(std::fs::metadata(&img).unwrap().len(), 2 << 20);
        assert_eq!(shared.num_blocks(0), (2 << 20) / 512);
        let (uas, _) = shared.take_unit_attentions(id);
        assert_eq!(uas, vec![shardtgt_core::scsi::Sense::capacity_changed()]);
        live.commit(p);
        // A refused shrink names the LUN and changes nothing.
        std::fs::write(&img, vec![1u8; 2 << 20]).unwrap();
        let p = live.prepare(&file("1MiB")).unwrap();
        let e = p.resizes[0].apply().unwrap_err();
        assert!(e.starts_with("target iqn.2026-11.io.shardtgt:p LUN 1: ") && e.contains("data in use"), "{e}");
        assert_eq!(shared.num_blocks(0), (2 << 20) / 512);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ram_contents_are_never_dropped_silently() {
        let mut live = Live::default();
        let p = live.prepare(&cfg("")).unwrap();
        live.commit(p);
        let bigger = cfg("").targets[0].luns[0].clone();
        let mut c = cfg("");
        c.targets[0].luns[0].backend.size_bytes = Some(2 << 20);
        assert_ne!(c.targets[0].luns[0], bigger);
        let e = live.prepare(&c).unwrap_err();
        assert!(e.contains("would lose its contents"), "{e}");
    }
}
