//! tgt compatibility: the `tgtadm` forms used in practice mapped onto
//! management requests ([`map`]), and tgt-like `show` output
//! ([`show_targets`], [`show_accounts`], [`show_conns`]).
//!
//! Mapping (`--lld iscsi` only; short options as in tgtadm):
//! - target new `--tid N --targetname NAME` → `target_new`; delete `--tid N
//!   [--force]`; show [`--tid N`]; bind/unbind `--tid N
//!   --initiator-address A | --initiator-name N` → ACL rule.
//! - logicalunit new `--tid N --lun L --backing-store P [--bstype
//!   rdwr|aio|null] [--bsoflags direct] [--params vendor_id=..,product_id=..,scsi_sn=..,readonly=1]`;
//!   bstype rdwr→rdwr, aio→file, null→null (1 TiB, like tgt), rbd→"not
//!   supported yet"; delete `--tid N --lun L`; update `--params
//!   readonly=0|1,write_cache=0|1` (or `--name readonly --value 1`).
//! - account new `--user U --password P`; delete `--user U`; bind/unbind
//!   `--tid N --user U [--outgoing]` (no `--tid`: discovery sessions); show.
//! - conn show `--tid N`; delete `--tid N --sid S` (force logout of the
//!   session whose TSIH is S).
//! - sys show (stats); portal new/delete `--param portal=ADDR`.
//!
//! It never connects: the caller sends the requests.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::adm::cli::Usage;
use crate::admin::protocol::Request;

/// What a tgtadm invocation asks for.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TgtCall {
    /// One change or query; print nothing but errors (tgtadm is silent on success).
    Change(Request),
    /// `--mode target --op show`.
    ShowTargets(Option<u32>),
    /// `--mode account --op show`.
    ShowAccounts,
    /// `--mode conn --op show --tid N`.
    ShowConns(u32),
    /// `--mode sys --op show`.
    ShowSys,
}

fn long_name(short: &str) -> Option<&'static str> {
    Some(match short {
        "-L" => "lld",
        "-m" => "mode",
        "-o" => "op",
        "-t" => "tid",
        "-l" => "lun",
        "-b" => "backing-store",
        "-E" => "bstype",
        "-f" => "bsoflags",
        "-I" => "initiator-address",
        "-Q" => "initiator-name",
        "-u" => "user",
        "-p" => "password",
        "-O" => "outgoing",
        "-T" => "targetname",
        "-P" => "params",
        "-s" => "sid",
        "-c" => "cid",
        "-n" => "name",
        "-v" => "value",
        "-F" => "force",
        _ => return None,
    })
}

fn parse_opts(args: &[String]) -> Result<HashMap<String, String>, Usage> {
    let mut m = HashMap::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let (name, inline) = if let Some(n) = a.strip_prefix("--") {
            match n.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (n.to_string(), None),
            }
        } else if let Some(n) = long_name(a) {
            (n.to_string(), None)
        } else {
            return Err(Usage(format!("tgtadm: unexpected argument `{a}`")));
        };
        let name = if name == "param" { "params".to_string() } else { name };
        let value = match inline {
            Some(v) => v,
            None if name == "outgoing" || name == "force" => "1".into(),
            None => {
                i += 1;
                args.get(i).cloned().ok_or_else(|| Usage(format!("tgtadm: --{name} needs a value")))?
            }
        };
        m.insert(name, value);
        i += 1;
    }
    Ok(m)
}

fn params(s: Option<&String>) -> HashMap<String, String> {
    s.map(|s| {
        s.split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    })
    .unwrap_or_default()
}

fn need<'a>(m: &'a HashMap<String, String>, k: &str) -> Result<&'a String, Usage> {
    m.get(k).ok_or_else(|| Usage(format!("tgtadm: this operation needs --{k}")))
}

fn tid(m: &HashMap<String, String>) -> Result<u32, Usage> {
    let t = need(m, "tid")?;
    t.parse().map_err(|_| Usage(format!("tgtadm: --tid `{t}` is not a number")))
}

fn flag(v: &str) -> Result<bool, Usage> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => Ok(true),
        "0" | "off" | "no" | "false" => Ok(false),
        _ => Err(Usage(format!("tgtadm: `{v}` is not 0 or 1"))),
    }
}

/// Map tgtadm arguments onto a call; usage errors name what is wrong.
pub fn map(args: &[String]) -> Result<TgtCall, Usage> {
    let m = parse_opts(args)?;
    if let Some(l) = m.get("lld") {
        if l != "iscsi" {
            return Err(Usage(format!("tgtadm: driver `{l}` is not supported (only iscsi)")));
        }
    }
    let mode = need(&m, "mode")?.as_str();
    let op = need(&m, "op")?.as_str();
    let target = || tid(&m).map(|t| t.to_string());
    let req = match (mode, op) {
        ("target", "new") => {
            Request::TargetNew { name: need(&m, "targetname")?.clone(), tid: Some(tid(&m)?), alias: None }
        }
        ("target", "delete") => Request::TargetDelete { target: target()?, force: m.contains_key("force") },
        ("target", "show") => {
            return Ok(TgtCall::ShowTargets(m.get("tid").map(|_| tid(&m)).transpose()?));
        }
        ("target", "bind") | ("target", "unbind") => {
            let rule = match (m.get("initiator-address"), m.get("initiator-name")) {
                (Some(a), None) => a.clone(),
                (None, Some(n)) => n.clone(),
                _ => return Err(Usage("tgtadm: give one of --initiator-address or --initiator-name".into())),
            };
            if op == "bind" {
                Request::AclBind { target: target()?, rule }
            } else {
                Request::AclUnbind { target: target()?, rule }
            }
        }
        ("target", "update") => {
            return Err(Usage("tgtadm: target update is not supported (use shardtgtadm)".into()));
        }
        ("logicalunit", "new") => {
            let lun: u16 = need(&m, "lun")?.parse().map_err(|_| Usage("tgtadm: --lun is not a number".into()))?;
            let store = need(&m, "backing-store")?.clone();
            let p = params(m.get("params"));
            let (backend, path, size) = match m.get("bstype").map(String::as_str).unwrap_or("rdwr") {
                "rdwr" => ("rdwr", Some(store), None),
                "aio" => ("file", Some(store), None),
                "null" => ("null", None, Some("1TiB".to_string())),
                "rbd" => return Err(Usage("tgtadm: bstype rbd is not supported yet".into())),
                other => return Err(Usage(format!("tgtadm: bstype `{other}` is not supported (rdwr, aio, null)"))),
            };
            let direct = m.get("bsoflags").map(|f| f.split(':').any(|x| x == "direct"));
            Request::LunNew {
                target: target()?,
                lun,
                backend: backend.into(),
                size,
                path,
                block_size: p.get("block_size").and_then(|b| b.parse().ok()),
                read_only: p.get("readonly").map(|v| flag(v)).transpose()?,
                write_cache: p.get("write_cache").map(|v| flag(v)).transpose()?,
                direct,
                workers: None,
                serial: p.get("scsi_sn").cloned(),
                vendor: p.get("vendor_id").cloned(),
                product: p.get("product_id").cloned(),
            }
        }
        ("logicalunit", "delete") => Request::LunDelete {
            target: target()?,
            lun: need(&m, "lun")?.parse().map_err(|_| Usage("tgtadm: --lun is not a number".into()))?,
        },
        ("logicalunit", "update") => {
            let mut p = params(m.get("params"));
            if let (Some(n), Some(v)) = (m.get("name"), m.get("value")) {
                p.insert(n.clone(), v.clone());
            }
            let mut read_only = None;
            let mut write_cache = None;
            for (k, v) in &p {
                match k.as_str() {
                    "readonly" => read_only = Some(flag(v)?),
                    "write_cache" => write_cache = Some(flag(v)?),
                    other => return Err(Usage(format!("tgtadm: logicalunit parameter `{other}` cannot be updated"))),
                }
            }
            Request::LunUpdate {
                target: target()?,
                lun: need(&m, "lun")?.parse().map_err(|_| Usage("tgtadm: --lun is not a number".into()))?,
                read_only,
                write_cache,
            }
        }
        ("account", "new") => {
            Request::AccountNew { user: need(&m, "user")?.clone(), secret: need(&m, "password")?.clone() }
        }
        ("account", "delete") => Request::AccountDelete { user: need(&m, "user")?.clone() },
        ("account", "bind") | ("account", "unbind") => {
            let target = m.get("tid").map(|_| target()).transpose()?;
            let user = need(&m, "user")?.clone();
            let outgoing = m.contains_key("outgoing");
            if op == "bind" {
                Request::ChapBind { target, user, outgoing }
            } else {
                Request::ChapUnbind { target, user, outgoing }
            }
        }
        ("account", "show") => return Ok(TgtCall::ShowAccounts),
        ("conn", "show") => return Ok(TgtCall::ShowConns(tid(&m)?)),
        ("conn", "delete") => {
            let sid = need(&m, "sid")?;
            Request::SessionLogout {
                tsih: sid.parse().map_err(|_| Usage(format!("tgtadm: --sid `{sid}` is not a number")))?,
            }
        }
        ("sys", "show") => return Ok(TgtCall::ShowSys),
        ("portal", "new") | ("portal", "delete") => {
            let p = params(m.get("params"));
            let addr = p.get("portal").cloned().ok_or_else(|| Usage("tgtadm: give --param portal=ADDRESS".into()))?;
            if op == "new" {
                Request::PortalAdd { address: addr, tpgt: None }
            } else {
                Request::PortalRemove { address: addr }
            }
        }
        (mode, op) => return Err(Usage(format!("tgtadm: mode `{mode}` with op `{op}` is not supported"))),
    };
    Ok(TgtCall::Change(req))
}

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        other => other.to_string(),
    }
}

/// tgt-like `--mode target --op show` from `target_show` and `session_list` data.
pub fn show_targets(cfg: &Value, sessions: &Value, only: Option<u32>) -> String {
    let mut o = String::new();
    let sess = sessions.as_array().cloned().unwrap_or_default();
    for t in cfg["targets"].as_array().cloned().unwrap_or_default() {
        let tid = t["tid"].as_u64().unwrap_or(0);
        if only.is_some_and(|x| u64::from(x) != tid) {
            continue;
        }
        let name = s(&t["name"]);
        let _ = writeln!(o, "Target {tid}: {name}");
        o.push_str("    System information:\n        Driver: iscsi\n        State: ready\n");
        o.push_str("    I_T nexus information:\n");
        for x in sess.iter().filter(|x| s(&x["target"]).eq_ignore_ascii_case(&name)) {
            let _ = writeln!(o, "        I_T nexus: {}", s(&x["tsih"]));
            let _ = writeln!(o, "            Initiator: {} alias: none", s(&x["initiator"]));
            for (i, c) in x["connections"].as_array().cloned().unwrap_or_default().iter().enumerate() {
                let peer = s(&c["peer"]);
                let ip = peer.rsplit_once(':').map_or(peer.clone(), |(h, _)| h.trim_matches(['[', ']']).to_string());
                let _ = writeln!(o, "            Connection: {i}\n                IP Address: {ip}");
            }
        }
        o.push_str("    LUN information:\n");
        for l in t["luns"].as_array().cloned().unwrap_or_default() {
            let size = l["size"].as_u64().unwrap_or(0);
            let yn = |b: bool| if b { "Yes" } else { "No" };
            let bst = match s(&l["backend"]).as_str() {
                "file" => "aio".to_string(),
                other => other.to_string(),
            };
            let _ = writeln!(o, "        LUN: {}", s(&l["lun"]));
            o.push_str("            Type: disk\n");
            let _ = writeln!(o, "            SCSI ID: {}", s(&l["vendor"]));
            let _ = writeln!(o, "            SCSI SN: {}", s(&l["serial"]));
            let _ = writeln!(o, "            Size: {} MB, Block size: {}", size / 1_000_000, s(&l["block_size"]));
            o.push_str("            Online: Yes\n            Removable media: No\n            Prevent removal: No\n");
            let _ = writeln!(o, "            Readonly: {}", yn(l["read_only"].as_bool() == Some(true)));
            o.push_str("            SWP: No\n            Thin-provisioning: No\n");
            let _ = writeln!(o, "            Backing store type: {bst}");
            let _ = writeln!(
                o,
                "            Backing store path: {}",
                if l["path"].is_null() { "None".into() } else { s(&l["path"]) }
            );
            let _ = writeln!(
                o,
                "            Backing store flags:{}",
                if l["direct"].as_bool() == Some(true) { " direct" } else { "" }
            );
        }
        o.push_str("    Account information:\n");
        if !t["chap"].is_null() {
            for a in t["chap"]["incoming"].as_array().cloned().unwrap_or_default() {
                let _ = writeln!(o, "        {}", s(&a["user"]));
            }
            if !t["chap"]["outgoing"].is_null() {
                let _ = writeln!(o, "        {} (outgoing)", s(&t["chap"]["outgoing"]["user"]));
            }
        }
        o.push_str("    ACL information:\n");
        let acl = t["acl"].as_array().cloned().unwrap_or_default();
        if acl.is_empty() {
            o.push_str("        ALL\n");
        }
        for r in acl {
            let _ = writeln!(o, "        {}", s(&r));
        }
    }
    o
}

/// tgt-like `--mode account --op show`.
pub fn show_accounts(cfg: &Value) -> String {
    let mut o = String::from("Account list:\n");
    for a in cfg["accounts"].as_array().cloned().unwrap_or_default() {
        let _ = writeln!(o, "    {}", s(&a));
    }
    o
}

/// tgt-like `--mode conn --op show --tid N`.
pub fn show_conns(cfg: &Value, sessions: &Value, tid: u32) -> String {
    let name = cfg["targets"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["tid"].as_u64() == Some(u64::from(tid))))
        .map(|t| s(&t["name"]))
        .unwrap_or_default();
    let mut o = String::new();
    for x in sessions.as_array().cloned().unwrap_or_default() {
        if !s(&x["target"]).eq_ignore_ascii_case(&name) {
            continue;
        }
        for (i, c) in x["connections"].as_array().cloned().unwrap_or_default().iter().enumerate() {
            let _ = writeln!(
                o,
                "Session: {}\n    Connection: {i}\n        Initiator: {}\n        IP Address: {}",
                s(&x["tsih"]),
                s(&x["initiator"]),
                s(&c["peer"])
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(s: &str) -> Result<TgtCall, Usage> {
        map(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    fn change(s: &str) -> Request {
        match m(s).unwrap() {
            TgtCall::Change(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_form() {
        assert_eq!(
            change("--lld iscsi --mode target --op new --tid 1 --targetname iqn.2001-04.com.example:t1"),
            Request::TargetNew { name: "iqn.2001-04.com.example:t1".into(), tid: Some(1), alias: None }
        );
        assert_eq!(
            change("-L iscsi -m target -o delete -t 1"),
            Request::TargetDelete { target: "1".into(), force: false }
        );
        assert_eq!(m("--mode target --op show").unwrap(), TgtCall::ShowTargets(None));
        assert_eq!(m("--mode target --op show --tid 2").unwrap(), TgtCall::ShowTargets(Some(2)));
        assert_eq!(
            change("--mode target --op bind --tid 1 --initiator-address 10.0.0.0/8"),
            Request::AclBind { target: "1".into(), rule: "10.0.0.0/8".into() }
        );
        assert_eq!(
            change("--mode target --op unbind --tid 1 --initiator-name iqn.a"),
            Request::AclUnbind { target: "1".into(), rule: "iqn.a".into() }
        );
        match change("--mode logicalunit --op new --tid 1 --lun 1 --backing-store /d.img --bstype aio --bsoflags direct --params scsi_sn=ab,vendor_id=V") {
            Request::LunNew { backend, path, direct, serial, vendor, .. } => {
                assert_eq!(backend, "file");
                assert_eq!(path.as_deref(), Some("/d.img"));
                assert_eq!(direct, Some(true));
                assert_eq!(serial.as_deref(), Some("ab"));
                assert_eq!(vendor.as_deref(), Some("V"));
            }
            r => panic!("{r:?}"),
        }
        assert!(
            matches!(change("-m logicalunit -o new -t 1 -l 2 -b /d"), Request::LunNew { ref backend, .. } if backend == "rdwr")
        );
        assert!(
            matches!(change("-m logicalunit -o new -t 1 -l 2 -b x -E null"), Request::LunNew { ref backend, .. } if backend == "null")
        );
        assert!(m("-m logicalunit -o new -t 1 -l 2 -b pool/img -E rbd").unwrap_err().0.contains("not supported yet"));
        assert_eq!(change("-m logicalunit -o delete -t 1 -l 2"), Request::LunDelete { target: "1".into(), lun: 2 });
        assert_eq!(
            change("-m logicalunit -o update -t 1 -l 2 --params readonly=1"),
            Request::LunUpdate { target: "1".into(), lun: 2, read_only: Some(true), write_cache: None }
        );
        assert!(m("-m logicalunit -o update -t 1 -l 2 --params removable=1").is_err());
        assert_eq!(
            change("--mode account --op new --user u --password secretsecret1"),
            Request::AccountNew { user: "u".into(), secret: "secretsecret1".into() }
        );
        assert_eq!(change("--mode account --op delete --user u"), Request::AccountDelete { user: "u".into() });
        assert_eq!(
            change("--mode account --op bind --tid 1 --user u --outgoing"),
            Request::ChapBind { target: Some("1".into()), user: "u".into(), outgoing: true }
        );
        assert_eq!(
            change("--mode account --op unbind --user u"),
            Request::ChapUnbind { target: None, user: "u".into(), outgoing: false }
        );
        assert_eq!(m("--mode account --op show").unwrap(), TgtCall::ShowAccounts);
        assert_eq!(m("--mode conn --op show --tid 1").unwrap(), TgtCall::ShowConns(1));
        assert_eq!(change("--mode conn --op delete --tid 1 --sid 3 --cid 0"), Request::SessionLogout { tsih: 3 });
        assert_eq!(m("--mode sys --op show").unwrap(), TgtCall::ShowSys);
        assert_eq!(
            change("--mode portal --op new --param portal=10.0.0.1:3260"),
            Request::PortalAdd { address: "10.0.0.1:3260".into(), tpgt: None }
        );
        assert!(m("--lld iser --mode target --op show").unwrap_err().0.contains("iser"));
        assert!(m("--mode target --op new --tid 1").unwrap_err().0.contains("--targetname"));
        assert!(m("--mode bogus --op show").unwrap_err().0.contains("not supported"));
    }

    #[test]
    fn show_like_tgt() {
        let cfg = json!({"targets": [{"name": "iqn.2026-11.a:b", "tid": 1, "acl": ["10.0.0.0/8"],
            "chap": {"incoming": [{"user": "u", "secret": "<set>"}], "outgoing": {"user": "t", "secret": "<set>"}},
            "luns": [{"lun": 1, "backend": "file", "path": "/d.img", "size": 1073741824u64, "block_size": 512,
                      "read_only": false, "write_cache": true, "direct": false, "serial": "s1", "vendor": "SHARDTGT"}]}],
            "accounts": ["u", "t"]});
        let sess = json!([{"tsih": 1, "initiator": "iqn.i", "target": "iqn.2026-11.a:b",
            "connections": [{"peer": "127.0.0.1:5000", "shard": 0}]}]);
        let out = show_targets(&cfg, &sess, None);
        for want in [
            "Target 1: iqn.2026-11.a:b",
            "        I_T nexus: 1",
            "            Initiator: iqn.i alias: none",
            "                IP Address: 127.0.0.1",
            "        LUN: 1",
            "            Backing store type: aio",
            "            Backing store path: /d.img",
            "            Size: 1073 MB, Block size: 512",
            "        u\n        t (outgoing)",
            "    ACL information:\n        10.0.0.0/8",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
        assert!(!out.contains("secret"));
        assert_eq!(show_targets(&cfg, &sess, Some(2)), "");
        assert_eq!(show_accounts(&cfg), "Account list:\n    u\n    t\n");
        assert!(show_conns(&cfg, &sess, 1).contains("Session: 1"));
    }
}
