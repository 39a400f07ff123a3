//! Configuration changes as pure functions: a request and the running
//! [`Config`] give the next `Config` (or a one-line error), which is then
//! validated by the same parser the file goes through (rendered with
//! [`to_toml`] and parsed back), so a runtime change can never produce a
//! file the daemon would refuse at its next start. Also the JSON views
//! (`show`) and the difference between two configurations (`reload`).
//!
//! It never touches a backend, a socket or a shard.

use serde_json::{json, Value};
use shardtgt_backends::BackendKind;
use shardtgt_transport_tcp::addr::{format_portal, parse_portal};

use crate::admin::protocol::Request;
use crate::config::{
    check_acl_rule, check_iscsi_name, check_secret, next_tid, parse_size, AccountDef, ChapDef, Config, LunDef,
    PortalDef, TargetDef,
};
use crate::persist::{kind_name, to_toml};

/// Index of the target `id` names: its iSCSI name (case-insensitive) or its tid.
pub fn find_target(cfg: &Config, id: &str) -> Result<usize, String> {
    let id = id.trim();
    let found = match id.parse::<u32>() {
        Ok(tid) => cfg.targets.iter().position(|t| t.tid == tid),
        Err(_) => cfg.targets.iter().position(|t| t.name.eq_ignore_ascii_case(id)),
    };
    found.ok_or_else(|| match id.parse::<u32>() {
        Ok(tid) => format!("no target with tid {tid}"),
        Err(_) => format!("no target named `{id}`"),
    })
}

fn lun_index(t: &TargetDef, lun: u16) -> Result<usize, String> {
    t.luns.iter().position(|l| l.lun == lun).ok_or_else(|| format!("target `{}` has no LUN {lun}", t.name))
}

fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Build a LUN from request arguments through the file parser (same
/// defaults and checks as a `[[target.lun]]` table).
#[allow(clippy::too_many_arguments, reason = "mirrors the request's fields")]
fn lun_from_args(
    target: &str,
    lun: u16,
    backend: &str,
    size: Option<&str>,
    path: Option<&str>,
    block_size: Option<u32>,
    read_only: Option<bool>,
    write_cache: Option<bool>,
    direct: Option<bool>,
    workers: Option<u32>,
    serial: Option<&str>,
    vendor: Option<&str>,
    product: Option<&str>,
) -> Result<LunDef, String> {
    let mut src = format!("[[target]]\nname = {}\n[[target.lun]]\nlun = {lun}\nbackend = {}\n", q(target), q(backend));
    if let Some(s) = size {
        match s.trim().parse::<u64>() {
            Ok(n) => src += &format!("size = {n}\n"),
            Err(_) => src += &format!("size = {}\n", q(s)),
        }
    }
    let opt = |src: &mut String, k: &str, v: Option<String>| {
        if let Some(v) = v {
            src.push_str(&format!("{k} = {v}\n"));
        }
    };
    opt(&mut src, "path", path.map(q));
    opt(&mut src, "block_size", block_size.map(|b| b.to_string()));
    opt(&mut src, "read_only", read_only.map(|b| b.to_string()));
    opt(&mut src, "write_cache", write_cache.map(|b| b.to_string()));
    opt(&mut src, "direct", direct.map(|b| b.to_string()));
    opt(&mut src, "workers", workers.map(|b| b.to_string()));
    opt(&mut src, "serial", serial.map(q));
    opt(&mut src, "vendor", vendor.map(q));
    opt(&mut src, "product", product.map(q));
    let c = Config::parse(&src, "request").map_err(|e| {
        let field = e.field.rsplit('.').next().unwrap_or("").to_string();
        if field.is_empty() {
            e.message
        } else {
            format!("{field}: {}", e.message)
        }
    })?;
    c.targets.into_iter().next().and_then(|t| t.luns.into_iter().next()).ok_or_else(|| "no LUN".to_string())
}

fn chap_slot<'a>(cfg: &'a mut Config, target: Option<&str>) -> Result<&'a mut Option<ChapDef>, String> {
    match target {
        None => Ok(&mut cfg.discovery_chap),
        Some(id) => {
            let i = find_target(cfg, id)?;
            Ok(&mut cfg.targets[i].chap)
        }
    }
}

/// Apply a change request to `cfg`. Read-only requests are an error here.
pub fn mutate(cfg: &Config, req: &Request) -> Result<Config, String> {
    let mut c = cfg.clone();
    match req {
        Request::TargetNew { name, tid, alias } => {
            let name = name.trim();
            check_iscsi_name(name)?;
            if c.targets.iter().any(|t| t.name.eq_ignore_ascii_case(name)) {
                return Err(format!("target `{name}` already exists"));
            }
            let tid = match tid {
                Some(t) if !(1..=65_535).contains(t) => return Err(format!("tid {t} is out of range 1..=65535")),
                Some(t) if c.targets.iter().any(|o| o.tid == *t) => return Err(format!("tid {t} is in use")),
                Some(t) => *t,
                None => next_tid(&c.targets),
            };
            c.targets.push(TargetDef {
                name: name.to_string(),
                tid,
                alias: alias.clone(),
                luns: Vec::new(),
                acl: Vec::new(),
                chap: None,
                alua: Vec::new(),
                max_sessions: None,
            });
        }
        Request::TargetDelete { target, .. } => {
            let i = find_target(&c, target)?;
            c.targets.remove(i);
        }
        Request::LunNew {
            target,
            lun,
            backend,
            size,
            path,
            block_size,
            read_only,
            write_cache,
            direct,
            workers,
            serial,
            vendor,
            product,
        } => {
            let i = find_target(&c, target)?;
            let name = c.targets[i].name.clone();
            if c.targets[i].luns.iter().any(|l| l.lun == *lun) {
                return Err(format!("target `{name}` already has LUN {lun}"));
            }
            let l = lun_from_args(
                &name,
                *lun,
                backend,
                size.as_deref(),
                path.as_deref(),
                *block_size,
                *read_only,
                *write_cache,
                *direct,
                *workers,
                serial.as_deref(),
                vendor.as_deref(),
                product.as_deref(),
            )?;
            let t = &mut c.targets[i];
            t.luns.push(l);
            t.luns.sort_by_key(|l| l.lun);
        }
        Request::LunDelete { target, lun } => {
            let i = find_target(&c, target)?;
            let j = lun_index(&c.targets[i], *lun)?;
            c.targets[i].luns.remove(j);
        }
        Request::LunUpdate { target, lun, read_only, write_cache } => {
            let i = find_target(&c, target)?;
            let j = lun_index(&c.targets[i], *lun)?;
            if read_only.is_none() && write_cache.is_none() {
                return Err("nothing to update: give read_only and/or write_cache".into());
            }
            let l = &mut c.targets[i].luns[j];
            if let Some(ro) = read_only {
                l.read_only = *ro;
                l.backend.read_only = *ro;
            }
            if let Some(wc) = write_cache {
                l.write_cache = *wc;
            }
        }
        Request::LunResize { target, lun, size } => {
            let i = find_target(&c, target)?;
            let j = lun_index(&c.targets[i], *lun)?;
            let new = parse_size(size)?;
            let l = &mut c.targets[i].luns[j];
            let bs = u64::from(l.backend.block_size);
            if new == 0 || new % bs != 0 {
                return Err(format!("size {new} is not a positive multiple of the block size {bs}"));
            }
            // The store itself decides whether it can shrink (nothing in use
            // past the new end) or grow (a device's own size): the control
            // thread resizes it before the new configuration is kept.
            if l.backend.kind == BackendKind::Ram && l.backend.size_bytes != Some(new) {
                return Err("a ram LUN cannot be resized online (its memory region has a fixed size); \
                            delete the LUN and create it again"
                    .into());
            }
            l.backend.size_bytes = Some(new);
        }
        Request::PortalAdd { address, tpgt } => {
            let addr = parse_portal(address).map_err(|e| e.0)?;
            if c.portals.iter().any(|p| p.addr == addr) {
                return Err(format!("portal {} already exists", format_portal(&addr)));
            }
            let tpgt = tpgt.unwrap_or(1);
            if tpgt == 0 {
                return Err("tpgt 0 is out of range 1..=65535".into());
            }
            c.portals.push(PortalDef { addr, tpgt });
        }
        Request::PortalRemove { address } => {
            let addr = parse_portal(address).map_err(|e| e.0)?;
            let i = c
                .portals
                .iter()
                .position(|p| p.addr == addr)
                .ok_or_else(|| format!("no portal {}", format_portal(&addr)))?;
            c.portals.remove(i);
        }
        Request::FaultSet { target, lun, rules } => {
            let i = find_target(&c, target)?;
            let j = lun_index(&c.targets[i], *lun)?;
            let l = &mut c.targets[i].luns[j];
            if !l.backend.fault {
                return Err(format!("LUN {lun} is not a fault LUN (backend = \"fault\")"));
            }
            if rules.len() > shardtgt_backends::fault::RULES_MAX {
                return Err(format!("{} rules; at most {}", rules.len(), shardtgt_backends::fault::RULES_MAX));
            }
            l.faults = rules.iter().map(|r| shardtgt_backends::fault::FaultRule::parse(r)).collect::<Result<_, _>>()?;
        }
        Request::AluaSet { target, tpgt, state } => {
            let i = find_target(&c, target)?;
            if *tpgt == 0 {
                return Err("tpgt 0 is out of range 1..=65535".into());
            }
            let st = shardtgt_core::scsi::AluaState::from_name(state)
                .ok_or_else(|| format!("unknown ALUA state `{state}` (one of {})", crate::config::alua_names()))?;
            let t = &mut c.targets[i];
            t.alua.retain(|(g, _)| g != tpgt);
            if st != shardtgt_core::scsi::AluaState::ACTIVE_OPTIMIZED {
                t.alua.push((*tpgt, st));
                t.alua.sort();
            }
        }
        Request::AclBind { target, rule } => {
            let i = find_target(&c, target)?;
            let r = check_acl_rule(rule)?;
            let t = &mut c.targets[i];
            if t.acl.contains(&r) {
                return Err(format!("`{r}` is already bound to `{}`", t.name));
            }
            t.acl.push(r);
        }
        Request::AclUnbind { target, rule } => {
            let i = find_target(&c, target)?;
            let r = check_acl_rule(rule).unwrap_or_else(|_| rule.trim().to_string());
            let t = &mut c.targets[i];
            let j = t.acl.iter().position(|x| *x == r).ok_or_else(|| format!("`{r}` is not bound to `{}`", t.name))?;
            t.acl.remove(j);
        }
        Request::AccountNew { user, secret } => {
            check_secret(user, secret)?;
            if c.accounts.iter().any(|a| a.user == *user) {
                return Err(format!("account `{user}` already exists"));
            }
            c.accounts.push(AccountDef { user: user.clone(), secret: secret.clone() });
        }
        Request::AccountDelete { user } => {
            let i = c.accounts.iter().position(|a| a.user == *user).ok_or_else(|| format!("no account `{user}`"))?;
            c.accounts.remove(i);
            let unbind = |ch: &mut Option<ChapDef>| {
                if let Some(d) = ch.as_mut() {
                    d.incoming.retain(|a| a.user != *user);
                    if d.outgoing.as_ref().is_some_and(|a| a.user == *user) {
                        d.outgoing = None;
                    }
                    if d.is_empty() {
                        *ch = None;
                    }
                }
            };
            unbind(&mut c.discovery_chap);
            for t in &mut c.targets {
                unbind(&mut t.chap);
            }
        }
        Request::ChapBind { target, user, outgoing } => {
            let acc = c
                .accounts
                .iter()
                .find(|a| a.user == *user)
                .cloned()
                .ok_or_else(|| format!("no account `{user}` (create it with `chap account new`)"))?;
            let slot = chap_slot(&mut c, target.as_deref())?;
            let d = slot.get_or_insert_with(ChapDef::default);
            if *outgoing {
                if let Some(o) = &d.outgoing {
                    return Err(format!("outgoing account `{}` is already bound; unbind it first", o.user));
                }
                d.outgoing = Some(acc);
            } else {
                if d.incoming.iter().any(|a| a.user == *user) {
                    return Err(format!("`{user}` is already bound"));
                }
                d.incoming.push(acc);
            }
        }
        Request::ChapUnbind { target, user, outgoing } => {
            let slot = chap_slot(&mut c, target.as_deref())?;
            let d = slot.as_mut().ok_or_else(|| format!("`{user}` is not bound"))?;
            if *outgoing {
                if d.outgoing.as_ref().is_none_or(|a| a.user != *user) {
                    return Err(format!("`{user}` is not the outgoing account"));
                }
                d.outgoing = None;
            } else {
                let n = d.incoming.len();
                d.incoming.retain(|a| a.user != *user);
                if d.incoming.len() == n {
                    return Err(format!("`{user}` is not bound"));
                }
            }
            if d.is_empty() {
                *slot = None;
            }
        }
        other => return Err(format!("{other:?} does not change the configuration")),
    }
    let text = to_toml(&c);
    Config::parse(&text, "new configuration").map_err(|e| {
        if e.field.is_empty() {
            e.message
        } else {
            format!("{}: {}", e.field, e.message)
        }
    })
}

fn chap_json(c: &Option<ChapDef>) -> Value {
    match c {
        None => Value::Null,
        Some(d) => json!({
            "incoming": d.incoming.iter().map(|a| json!({"user": a.user, "secret": "<set>"})).collect::<Vec<_>>(),
            "outgoing": d.outgoing.as_ref().map(|a| json!({"user": a.user, "secret": "<set>"})),
        }),
    }
}

/// One target as JSON (secrets shown as `<set>`).
pub fn target_json(t: &TargetDef) -> Value {
    json!({
        "name": t.name,
        "tid": t.tid,
        "alias": t.alias,
        "acl": t.acl,
        "alua": t.alua.iter().map(|(g, s)| json!({"tpgt": g, "state": s.name()})).collect::<Vec<_>>(),
        "chap": chap_json(&t.chap),
        "luns": t.luns.iter().map(|l| json!({
            "lun": l.lun,
            "backend": if l.backend.fault { "fault" } else { kind_name(l.backend.kind) },
            "inner": l.backend.fault.then(|| kind_name(l.backend.kind)),
            "faults": l.faults.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            "path": l.backend.path.as_ref().map(|p| p.display().to_string()),
            "size": l.backend.size_bytes,
            "block_size": l.backend.block_size,
            "read_only": l.read_only,
            "write_cache": l.write_cache,
            "direct": l.backend.direct,
            "serial": l.serial,
            "vendor": l.vendor,
            "product": l.product,
        })).collect::<Vec<_>>(),
    })
}

/// The whole configuration (or one target) as JSON.
pub fn show_json(cfg: &Config, target: Option<&str>) -> Result<Value, String> {
    let targets: Vec<Value> = match target {
        Some(id) => vec![target_json(&cfg.targets[find_target(cfg, id)?])],
        None => cfg.targets.iter().map(target_json).collect(),
    };
    Ok(json!({
        "portals": cfg.portals.iter().map(|p| json!({"address": format_portal(&p.addr), "tpgt": p.tpgt})).collect::<Vec<_>>(),
        "accounts": cfg.accounts.iter().map(|a| a.user.clone()).collect::<Vec<_>>(),
        "discovery_chap": chap_json(&cfg.discovery_chap),
        "targets": targets,
    }))
}

/// The configuration as TOML with every secret replaced by `<set>`.
pub fn redacted_toml(cfg: &Config) -> String {
    let mut c = cfg.clone();
    let hide = |a: &mut AccountDef| a.secret = "<set>".into();
    c.accounts.iter_mut().for_each(hide);
    for ch in std::iter::once(&mut c.discovery_chap).chain(c.targets.iter_mut().map(|t| &mut t.chap)) {
        if let Some(d) = ch.as_mut() {
            d.incoming.iter_mut().for_each(hide);
            d.outgoing.iter_mut().for_each(hide);
        }
    }
    to_toml(&c)
}

/// What differs between two configurations, one line per change, in
/// words (no secret appears: a changed secret reads "CHAP accounts changed").
pub fn diff(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for p in &new.portals {
        if !old.portals.contains(p) {
            out.push(format!("portal {} added", format_portal(&p.addr)));
        }
    }
    for p in &old.portals {
        if !new.portals.contains(p) {
            out.push(format!("portal {} removed", format_portal(&p.addr)));
        }
    }
    if old.limits != new.limits || old.max_sessions != new.max_sessions {
        out.push("global limits changed (they apply to new sessions)".into());
    }
    if old.shards != new.shards {
        out.push(format!("global.shards {} -> {} (takes effect at restart)", old.shards, new.shards));
    }
    if old.accounts != new.accounts {
        out.push("CHAP account store changed".into());
    }
    if old.discovery_chap != new.discovery_chap {
        out.push("discovery CHAP accounts changed".into());
    }
    let find = |c: &Config, n: &str| c.targets.iter().find(|t| t.name.eq_ignore_ascii_case(n)).cloned();
    for t in &new.targets {
        let Some(o) = find(old, &t.name) else {
            out.push(format!("target {} added ({} LUNs)", t.name, t.luns.len()));
            continue;
        };
        if o.alias != t.alias || o.tid != t.tid {
            out.push(format!("target {}: alias/tid changed", t.name));
        }
        if o.acl != t.acl {
            out.push(format!("target {}: ACL changed", t.name));
        }
        if o.chap != t.chap {
            out.push(format!("target {}: CHAP accounts changed", t.name));
        }
        for l in &t.luns {
            match o.luns.iter().find(|x| x.lun == l.lun) {
                None => out.push(format!("target {}: LUN {} added", t.name, l.lun)),
                Some(x) if x != l => out.push(format!("target {}: LUN {} changed", t.name, l.lun)),
                Some(_) => {}
            }
        }
        for l in &o.luns {
            if !t.luns.iter().any(|x| x.lun == l.lun) {
                out.push(format!("target {}: LUN {} removed", t.name, l.lun));
            }
        }
    }
    for t in &old.targets {
        if find(new, &t.name).is_none() {
            out.push(format!("target {} removed", t.name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::protocol::parse_request;

    fn empty() -> Config {
        Config::parse("", "t").unwrap()
    }

    fn run(c: &Config, line: &str) -> Result<Config, String> {
        mutate(c, &parse_request(line).unwrap())
    }

    const T: &str = "iqn.2026-11.io.shardtgt:x";

    fn with_target() -> Config {
        run(&empty(), &format!(r#"{{"op":"target_new","name":"{T}"}}"#)).unwrap()
    }

    #[test]
    fn targets() {
        let c = with_target();
        assert_eq!(c.targets[0].tid, 1);
        let e = run(&c, &format!(r#"{{"op":"target_new","name":"{}"}}"#, T.to_uppercase())).unwrap_err();
        assert!(e.contains("already exists"), "{e}");
        assert!(run(&c, r#"{"op":"target_new","name":"bogus"}"#).unwrap_err().contains("iqn."));
        let c2 = run(&c, r#"{"op":"target_new","name":"iqn.2026-11.io.shardtgt:y","tid":5}"#).unwrap();
        assert_eq!(c2.targets[1].tid, 5);
        assert!(run(&c2, r#"{"op":"target_new","name":"iqn.2026-11.io.shardtgt:z","tid":5}"#)
            .unwrap_err()
            .contains("in use"));
        let c3 = run(&c2, r#"{"op":"target_delete","target":"5"}"#).unwrap();
        assert_eq!(c3.targets.len(), 1);
        assert_eq!(run(&c3, r#"{"op":"target_delete","target":"9"}"#).unwrap_err(), "no target with tid 9");
        assert!(run(&c3, r#"{"op":"target_delete","target":"iqn.nope"}"#).unwrap_err().contains("no target named"));
        assert!(run(&c3, r#"{"op":"stats"}"#).is_err());
    }

    #[test]
    fn luns() {
        let c = with_target();
        let c = run(&c, r#"{"op":"lun_new","target":"1","lun":1,"backend":"ram","size":"1MiB"}"#).unwrap();
        let l = &c.targets[0].luns[0];
        assert_eq!(l.backend.size_bytes, Some(1 << 20));
        let e = run(&c, r#"{"op":"lun_new","target":"1","lun":1,"backend":"ram","size":"1MiB"}"#).unwrap_err();
        assert!(e.contains("already has LUN 1"), "{e}");
        let e = run(&c, r#"{"op":"lun_new","target":"1","lun":2,"backend":"file","path":"/nonexistent/dir/x.img"}"#)
            .unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
        let e = run(&c, r#"{"op":"lun_new","target":"1","lun":2,"backend":"rbd","size":"1G"}"#).unwrap_err();
        assert!(e.contains("rbd"), "{e}");
        let e = run(&c, r#"{"op":"lun_new","target":"1","lun":2,"backend":"ram","size":"1x"}"#).unwrap_err();
        assert!(e.starts_with("size:"), "{e}");
        let c = run(&c, r#"{"op":"lun_update","target":"1","lun":1,"read_only":true,"write_cache":false}"#).unwrap();
        assert!(c.targets[0].luns[0].read_only && !c.targets[0].luns[0].write_cache);
        assert!(run(&c, r#"{"op":"lun_update","target":"1","lun":1}"#).unwrap_err().contains("nothing"));
        assert!(run(&c, r#"{"op":"lun_update","target":"1","lun":9,"read_only":true}"#)
            .unwrap_err()
            .contains("no LUN 9"));
        let e = run(&c, r#"{"op":"lun_resize","target":"1","lun":1,"size":"512K"}"#).unwrap_err();
        assert!(e.contains("ram LUN cannot be resized"), "{e}");
        let e = run(&c, r#"{"op":"lun_resize","target":"1","lun":1,"size":"1000"}"#).unwrap_err();
        assert!(e.contains("multiple of the block size"), "{e}");
        let e = run(&c, r#"{"op":"lun_resize","target":"1","lun":1,"size":"2M"}"#).unwrap_err();
        assert!(e.contains("ram"), "{e}");
        let c = run(&c, r#"{"op":"lun_new","target":"1","lun":2,"backend":"null","size":"1M"}"#).unwrap();
        let c = run(&c, r#"{"op":"lun_resize","target":"1","lun":2,"size":"4M"}"#).unwrap();
        assert_eq!(c.targets[0].luns[1].backend.size_bytes, Some(4 << 20));
        let c = run(&c, r#"{"op":"lun_delete","target":"1","lun":1}"#).unwrap();
        assert_eq!(c.targets[0].luns.len(), 1);
        assert!(run(&c, r#"{"op":"lun_delete","target":"1","lun":1}"#).is_err());
    }

    #[test]
    fn fault_luns_parse_persist_and_take_rules() {
        let base = to_toml(&with_target());
        let lun = |extra: &str| format!("{base}  [[target.lun]]\n  lun = 0\n  size = \"1MiB\"\n{extra}");
        let c = Config::parse(&lun("  backend = \"fault\"\n  inner = \"ram\"\n  faults = [\"read:1-2:EIO\"]\n"), "x")
            .unwrap();
        let l = &c.targets[0].luns[0];
        assert!(l.backend.fault && l.backend.kind == BackendKind::Ram);
        assert_eq!(l.faults.iter().map(|r| r.to_string()).collect::<Vec<_>>(), ["read:1-2:EIO"]);
        let text = to_toml(&c);
        assert!(text.contains("backend = \"fault\"\n  inner = \"ram\"\n  faults = [\"read:1-2:EIO\"]"), "{text}");
        assert_eq!(Config::parse(&text, "x").unwrap(), c);
        let c = run(&c, r#"{"op":"fault_set","target":"1","lun":0,"rules":["write:*:ENOSPC:once","flush:*:EIO"]}"#)
            .unwrap();
        assert_eq!(c.targets[0].luns[0].faults.len(), 2);
        let c = run(&c, r#"{"op":"fault_set","target":"1","lun":0,"rules":[]}"#).unwrap();
        assert!(c.targets[0].luns[0].faults.is_empty());
        let e = run(&c, r#"{"op":"fault_set","target":"1","lun":0,"rules":["read:*:EWHAT"]}"#).unwrap_err();
        assert!(e.contains("`EWHAT` is not an errno"), "{e}");
        for (extra, field) in [
            ("  backend = \"fault\"\n", "target.lun.inner"),
            ("  backend = \"fault\"\n  inner = \"tape\"\n", "target.lun.inner"),
            ("  backend = \"ram\"\n  inner = \"ram\"\n", "target.lun.inner"),
            ("  backend = \"ram\"\n  faults = []\n", "target.lun.faults"),
            ("  backend = \"fault\"\n  inner = \"ram\"\n  faults = [\"read\"]\n", "target.lun.faults"),
        ] {
            assert_eq!(Config::parse(&lun(extra), "x").unwrap_err().field, field, "{extra}");
        }
        let c = run(&with_target(), r#"{"op":"lun_new","target":"1","lun":0,"backend":"ram","size":"1M"}"#).unwrap();
        let e = run(&c, r#"{"op":"fault_set","target":"1","lun":0,"rules":["read:*:EIO"]}"#).unwrap_err();
        assert!(e.contains("not a fault LUN"), "{e}");
    }

    #[test]
    fn alua_states_set_persist_and_refuse_bad_input() {
        use shardtgt_core::scsi::AluaState;
        let c = with_target();
        let c = run(&c, r#"{"op":"alua_set","target":"1","tpgt":1,"state":"standby"}"#).unwrap();
        let c = run(&c, r#"{"op":"alua_set","target":"1","tpgt":7,"state":"Active/Non-Optimized"}"#).unwrap();
        assert_eq!(c.targets[0].alua, vec![(1, AluaState::STANDBY), (7, AluaState::ACTIVE_NON_OPTIMIZED)]);
        let text = to_toml(&c);
        assert!(text.contains(r#"alua = { 1 = "standby", 7 = "active-non-optimized" }"#), "{text}");
        assert_eq!(Config::parse(&text, "x").unwrap().targets[0].alua, c.targets[0].alua);
        assert_eq!(target_json(&c.targets[0])["alua"][0]["state"], "standby");
        let c = run(&c, r#"{"op":"alua_set","target":"1","tpgt":1,"state":"active-optimized"}"#).unwrap();
        assert_eq!(c.targets[0].alua, vec![(7, AluaState::ACTIVE_NON_OPTIMIZED)], "the default is not stored");
        let e = run(&c, r#"{"op":"alua_set","target":"1","tpgt":1,"state":"offline"}"#).unwrap_err();
        assert!(e.contains("unknown ALUA state `offline`") && e.contains("standby"), "{e}");
        assert!(run(&c, r#"{"op":"alua_set","target":"1","tpgt":0,"state":"standby"}"#).is_err());
        assert!(run(&c, r#"{"op":"alua_set","target":"9","tpgt":1,"state":"standby"}"#).unwrap_err().contains("tid 9"));
        let bad = format!("{}alua = {{ 1 = \"sleepy\" }}\n", to_toml(&with_target()));
        assert_eq!(Config::parse(&bad, "x").unwrap_err().field, "target.alua");
    }

    #[test]
    fn portals_acls_chap() {
        let c = with_target();
        let c = run(&c, r#"{"op":"portal_add","address":"[::1]:3270","tpgt":2}"#).unwrap();
        assert!(run(&c, r#"{"op":"portal_add","address":"[::1]:3270"}"#).unwrap_err().contains("already"));
        assert!(run(&c, r#"{"op":"portal_add","address":"::1:3270"}"#).is_err());
        let c = run(&c, r#"{"op":"portal_add","address":"127.0.0.1"}"#).unwrap();
        let c2 = run(&c, r#"{"op":"portal_remove","address":"[::1]:3270"}"#).unwrap();
        assert_eq!(c2.portals.len(), 1);
        assert!(run(&c2, r#"{"op":"portal_remove","address":"[::1]:3270"}"#).unwrap_err().contains("no portal"));

        let c = run(&c, r#"{"op":"acl_bind","target":"1","rule":"10.0.0.0/8"}"#).unwrap();
        let c = run(&c, r#"{"op":"acl_bind","target":"1","rule":"IQN.2026-11.test:Init"}"#).unwrap();
        assert_eq!(c.targets[0].acl, vec!["10.0.0.0/8".to_string(), "iqn.2026-11.test:init".to_string()]);
        assert!(run(&c, r#"{"op":"acl_bind","target":"1","rule":"10.0.0.0/8"}"#).unwrap_err().contains("already"));
        assert!(run(&c, r#"{"op":"acl_bind","target":"1","rule":"300.1.1.1"}"#).is_err());
        let c = run(&c, r#"{"op":"acl_unbind","target":"1","rule":"10.0.0.0/8"}"#).unwrap();
        assert!(run(&c, r#"{"op":"acl_unbind","target":"1","rule":"10.0.0.0/8"}"#).unwrap_err().contains("not bound"));

        assert!(run(&c, r#"{"op":"account_new","user":"u","secret":"short"}"#).unwrap_err().contains("12 to 256"));
        let c = run(&c, r#"{"op":"account_new","user":"u","secret":"0123456789abc"}"#).unwrap();
        let c = run(&c, r#"{"op":"account_new","user":"t","secret":"0123456789abd"}"#).unwrap();
        assert!(run(&c, r#"{"op":"chap_bind","target":"1","user":"nobody"}"#).unwrap_err().contains("no account"));
        let c = run(&c, r#"{"op":"chap_bind","target":"1","user":"u"}"#).unwrap();
        let c = run(&c, r#"{"op":"chap_bind","target":"1","user":"t","outgoing":true}"#).unwrap();
        let c = run(&c, r#"{"op":"chap_bind","user":"u"}"#).unwrap();
        assert!(run(&c, r#"{"op":"chap_bind","target":"1","user":"u"}"#).unwrap_err().contains("already"));
        assert_eq!(c.targets[0].chap.as_ref().unwrap().incoming.len(), 1);
        assert!(c.discovery_chap.is_some());
        let shown = show_json(&c, None).unwrap().to_string();
        assert!(!shown.contains("0123456789ab") && shown.contains("<set>"), "{shown}");
        assert!(!redacted_toml(&c).contains("0123456789ab"));
        let c2 = run(&c, r#"{"op":"chap_unbind","target":"1","user":"t","outgoing":true}"#).unwrap();
        assert!(c2.targets[0].chap.as_ref().unwrap().outgoing.is_none());
        let c3 = run(&c, r#"{"op":"account_delete","user":"u"}"#).unwrap();
        assert!(c3.discovery_chap.is_none());
        assert!(c3.targets[0].chap.as_ref().unwrap().incoming.is_empty());
        assert!(run(&c3, r#"{"op":"chap_unbind","user":"u"}"#).unwrap_err().contains("not bound"));
    }

    #[test]
    fn diffs() {
        let a = with_target();
        let b = run(&a, r#"{"op":"lun_new","target":"1","lun":0,"backend":"null","size":"1M"}"#).unwrap();
        let b = run(&b, r#"{"op":"portal_add","address":"127.0.0.1:3299"}"#).unwrap();
        let d = diff(&a, &b);
        assert_eq!(d, vec!["portal 127.0.0.1:3299 added".to_string(), format!("target {T}: LUN 0 added")]);
        assert!(diff(&b, &b).is_empty());
        let d = diff(&b, &empty());
        assert!(d.contains(&format!("target {T} removed")), "{d:?}");
    }
}
