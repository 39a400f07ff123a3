//! Human-readable output of `shardtgtadm`: the configuration as a
//! targetcli-like tree, session and stats tables. Input is the JSON the
//! daemon answered; secrets never reach it (the daemon sends `<set>`).

use std::fmt::Write as _;

use serde_json::Value;

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Bytes as a short size (`1.0GiB`).
pub fn human_size(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut f = n as f64;
    let mut i = 0;
    while f >= 1024.0 && i + 1 < U.len() {
        f /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{f:.1}{}", U[i])
    }
}

fn chap_line(c: &Value) -> String {
    if c.is_null() {
        return "none".into();
    }
    let mut parts: Vec<String> = c["incoming"]
        .as_array()
        .map(|a| a.iter().map(|x| format!("in {} (secret <set>)", s(&x["user"]))).collect())
        .unwrap_or_default();
    if !c["outgoing"].is_null() {
        parts.push(format!("out {} (secret <set>)", s(&c["outgoing"]["user"])));
    }
    parts.join(", ")
}

/// `target show` as a tree.
pub fn tree(v: &Value) -> String {
    let mut o = String::from("o- /\n");
    let portals = v["portals"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(o, "  o- portals [{}]", portals.len());
    for p in &portals {
        let _ = writeln!(o, "  | o- {} [tpgt {}]", s(&p["address"]), s(&p["tpgt"]));
    }
    let accounts = v["accounts"].as_array().cloned().unwrap_or_default();
    let names: Vec<String> = accounts.iter().map(s).collect();
    let _ = writeln!(
        o,
        "  o- chap accounts [{}]{}",
        names.len(),
        if names.is_empty() { String::new() } else { format!(": {}", names.join(", ")) }
    );
    let _ = writeln!(o, "  o- discovery chap: {}", chap_line(&v["discovery_chap"]));
    let targets = v["targets"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(o, "  o- targets [{}]", targets.len());
    for t in &targets {
        let alias = if t["alias"].is_null() { String::new() } else { format!(" alias {}", s(&t["alias"])) };
        let _ = writeln!(o, "    o- {} [tid {}{alias}]", s(&t["name"]), s(&t["tid"]));
        let acl: Vec<String> = t["acl"].as_array().map(|a| a.iter().map(s).collect()).unwrap_or_default();
        let _ = writeln!(o, "      o- acl: {}", if acl.is_empty() { "ALL".into() } else { acl.join(", ") });
        let alua: Vec<String> = t["alua"]
            .as_array()
            .map(|a| a.iter().map(|g| format!("tpg {} {}", s(&g["tpgt"]), s(&g["state"]))).collect())
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "      o- alua: {}",
            if alua.is_empty() { "every port group active-optimized".into() } else { alua.join(", ") }
        );
        let _ = writeln!(o, "      o- chap: {}", chap_line(&t["chap"]));
        let luns = t["luns"].as_array().cloned().unwrap_or_default();
        let _ = writeln!(o, "      o- luns [{}]", luns.len());
        for l in &luns {
            let size = l["size"].as_u64().map_or("file size".into(), human_size);
            let store = if l["path"].is_null() { String::new() } else { format!(" {}", s(&l["path"])) };
            let _ = writeln!(
                o,
                "        o- lun{} [{}{store} {size} bs {} {}{}{}]",
                s(&l["lun"]),
                s(&l["backend"]),
                s(&l["block_size"]),
                if l["read_only"].as_bool() == Some(true) { "ro" } else { "rw" },
                if l["write_cache"].as_bool() == Some(true) { " wc" } else { " wt" },
                if l["direct"].as_bool() == Some(true) { " direct" } else { "" },
            );
        }
    }
    o
}

/// `session list` as a table.
pub fn sessions(v: &Value) -> String {
    let mut o = String::from(
        "TSIH  INITIATOR                                  TARGET                                     ADDRESS                SHARD  BYTES_IN     BYTES_OUT    IOS\n",
    );
    for x in v.as_array().cloned().unwrap_or_default() {
        let conns = x["connections"].as_array().cloned().unwrap_or_default();
        let (peer, shard, bin, bout, ios) = match conns.first() {
            Some(c) => (s(&c["peer"]), s(&c["shard"]), s(&c["bytes_in"]), s(&c["bytes_out"]), s(&c["backend_ops"])),
            None => ("-".into(), "-".into(), "-".into(), "-".into(), "-".into()),
        };
        let _ = writeln!(
            o,
            "{:<5} {:<42} {:<42} {:<22} {:<6} {:<12} {:<12} {}",
            s(&x["tsih"]),
            s(&x["initiator"]),
            s(&x["target"]),
            peer,
            shard,
            bin,
            bout,
            ios
        );
    }
    o
}

/// `stats` as text.
pub fn stats(v: &Value) -> String {
    let mut o = format!(
        "targets {}  LUNs {}  portals {}  sessions {}\n",
        s(&v["targets"]),
        s(&v["luns"]),
        s(&v["portals"]),
        s(&v["sessions"])
    );
    o.push_str("SHARD  CONNS  TOTAL  BYTES_IN      BYTES_OUT     BACKEND_OPS  WBUF_HELD   WBUF_PEAK   WBUF_WAITS  R2T_TIMEOUTS\n");
    for x in v["shards"].as_array().cloned().unwrap_or_default() {
        let _ = writeln!(
            o,
            "{:<6} {:<6} {:<6} {:<13} {:<13} {:<12} {:<11} {:<11} {:<11} {}",
            s(&x["shard"]),
            s(&x["conns_live"]),
            s(&x["conns_total"]),
            s(&x["bytes_in"]),
            s(&x["bytes_out"]),
            s(&x["backend_ops"]),
            s(&x["write_buffer_held"]),
            s(&x["write_buffer_peak"]),
            s(&x["write_buffer_waits"]),
            s(&x["r2t_timeouts"])
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tree_hides_nothing_secret_and_reads_well() {
        let v = json!({
            "portals": [{"address": "127.0.0.1:3260", "tpgt": 1}],
            "accounts": ["alice"],
            "discovery_chap": null,
            "targets": [{"name": "iqn.2026-11.a:b", "tid": 1, "alias": null, "acl": [],
                "chap": {"incoming": [{"user": "alice", "secret": "<set>"}], "outgoing": null},
                "luns": [{"lun": 0, "backend": "ram", "path": null, "size": 1073741824u64, "block_size": 512,
                          "read_only": false, "write_cache": true, "direct": false}]}],
        });
        let t = tree(&v);
        assert!(t.contains("o- iqn.2026-11.a:b [tid 1]"), "{t}");
        assert!(t.contains("o- lun0 [ram 1.0GiB bs 512 rw wc]"), "{t}");
        assert!(t.contains("in alice (secret <set>)"), "{t}");
        assert!(t.contains("acl: ALL"));
        assert_eq!(human_size(512), "512B");
    }
}
