//! `shardtgtadm import-tgt targets.conf`: convert a tgt configuration
//! (the `<target NAME> … </target>` format of tgt-admin) into our TOML.
//!
//! Mapped: `backing-store PATH` (and `<backing-store PATH> … </backing-store>`
//! blocks), `bs-type` (rdwr→rdwr, aio→file, null→null), `lun`,
//! `write-cache on|off`, `readonly`, `vendor_id`, `product_id`, `scsi_sn`,
//! `bsoflags direct`, `initiator-address`, `initiator-name`,
//! `incominguser U P`, `outgoinguser U P`, `direct-store` (as rdwr, with a
//! note). LUNs number from 1 in file order unless `lun` says otherwise (tgt
//! keeps LUN 0 for its controller). Everything else is reported in
//! [`Import::notes`], never silently dropped. Secrets tgt accepts but we do
//! not (shorter than 12 bytes) are reported and the account left out.
//! It never reads the backing stores.

use std::path::PathBuf;

use shardtgt_backends::{BackendKind, BackendSpec, DEFAULT_WORKERS};
use shardtgt_core::target::Limits;

use crate::config::{check_acl_rule, check_secret, lu_id, AccountDef, ChapDef, Config, LunDef, TargetDef};
use crate::persist::to_toml;

/// The result of a conversion.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Import {
    /// The converted configuration (no portal: add one).
    pub config: Config,
    /// What could not be mapped, one line each (`file:line: …`).
    pub notes: Vec<String>,
}

impl Import {
    /// The configuration as TOML, with a portal line to adapt.
    pub fn toml(&self) -> String {
        let mut t = to_toml(&self.config);
        t.push_str("\n# tgt listens on 0.0.0.0:3260 by default; adapt:\n[[portal]]\naddress = \"0.0.0.0:3260\"\n");
        t
    }
}

#[derive(Default)]
struct LunBuild {
    path: String,
    kind: Option<BackendKind>,
    lun: Option<u16>,
    write_cache: Option<bool>,
    read_only: Option<bool>,
    direct: bool,
    /// Unsupported store type: the LUN is left out (reported).
    skip: bool,
    serial: Option<String>,
    vendor: Option<String>,
    product: Option<String>,
}

fn bs_type(v: &str) -> Result<BackendKind, String> {
    match v {
        "rdwr" => Ok(BackendKind::Rdwr),
        "aio" => Ok(BackendKind::File),
        "null" => Ok(BackendKind::Null),
        "rbd" => Err("bs-type rbd is not supported yet".into()),
        o => Err(format!("bs-type `{o}` is not supported")),
    }
}

fn on_off(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "on" | "yes" | "1" => Some(true),
        "off" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// Convert `src` (the text of `file`).
pub fn convert(src: &str, file: &str) -> Import {
    let mut notes = Vec::new();
    let mut targets: Vec<TargetDef> = Vec::new();
    let mut accounts: Vec<AccountDef> = Vec::new();
    let mut cur: Option<(TargetDef, Vec<LunBuild>, LunBuild)> = None; // target, luns, target-level defaults
    let mut in_lun: Option<LunBuild> = None;
    for (n, raw) in src.lines().enumerate() {
        let line_no = n + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut note = |m: String| notes.push(format!("{file}:{line_no}: {m}"));
        if let Some(rest) = line.strip_prefix("<target").and_then(|r| r.strip_suffix('>')) {
            let name = rest.trim().to_string();
            if cur.is_some() {
                note("nested <target>: ignored".into());
                continue;
            }
            let t = TargetDef {
                name,
                tid: 0,
                alias: None,
                luns: Vec::new(),
                acl: Vec::new(),
                chap: None,
                alua: Vec::new(),
                max_sessions: None,
            };
            cur = Some((t, Vec::new(), LunBuild::default()));
            continue;
        }
        if line == "</target>" {
            if let Some((mut t, luns, defaults)) = cur.take() {
                let mut next_lun = 1u16;
                for l in luns {
                    let lun = l.lun.unwrap_or(next_lun);
                    next_lun = lun.saturating_add(1);
                    if l.skip || defaults.skip {
                        continue;
                    }
                    if t.luns.iter().any(|x| x.lun == lun) {
                        notes.push(format!("{file}: target {}: LUN {lun} used twice: second one left out", t.name));
                        continue;
                    }
                    let kind = l.kind.or(defaults.kind).unwrap_or(BackendKind::Rdwr);
                    let read_only = l.read_only.or(defaults.read_only).unwrap_or(false);
                    let path = (kind != BackendKind::Null).then(|| PathBuf::from(&l.path));
                    t.luns.push(LunDef {
                        lun,
                        backend: BackendSpec {
                            kind,
                            size_bytes: (kind == BackendKind::Null).then_some(1 << 40),
                            block_size: 512,
                            path,
                            read_only,
                            direct: l.direct || defaults.direct,
                            workers: DEFAULT_WORKERS,
                            fault: false,
                        },
                        read_only,
                        write_cache: l.write_cache.or(defaults.write_cache).unwrap_or(true),
                        serial: l
                            .serial
                            .or(defaults.serial.clone())
                            .unwrap_or_else(|| format!("{:016x}", lu_id(&t.name, lun))),
                        vendor: l.vendor.or(defaults.vendor.clone()).unwrap_or_else(|| "SHARDTGT".into()),
                        product: l.product.or(defaults.product.clone()).unwrap_or_else(|| "shardtgt disk".into()),
                        faults: Vec::new(),
                    });
                }
                t.luns.sort_by_key(|l| l.lun);
                t.tid = crate::config::next_tid(&targets);
                targets.push(t);
            } else {
                note("</target> without <target>".into());
            }
            continue;
        }
        let Some((t, luns, defaults)) = cur.as_mut() else {
            match line.split_whitespace().next() {
                Some("default-driver") | Some("include") | Some("ignore-errors") | Some("control-port") => {
                    note(format!("`{line}` has no equivalent: ignored"));
                }
                _ => note(format!("`{line}` outside a <target>: ignored")),
            }
            continue;
        };
        if let Some(rest) = line.strip_prefix("<backing-store").or_else(|| line.strip_prefix("<direct-store")) {
            if line.starts_with("<direct-store") {
                note("direct-store (SCSI passthrough of INQUIRY data) is served as a plain rdwr LUN".into());
            }
            in_lun = Some(LunBuild { path: rest.trim_end_matches('>').trim().to_string(), ..Default::default() });
            continue;
        }
        if line == "</backing-store>" || line == "</direct-store>" {
            match in_lun.take() {
                Some(l) => luns.push(l),
                None => note(format!("{line} without its opening tag")),
            }
            continue;
        }
        let (key, val) = line.split_once(char::is_whitespace).map_or((line, ""), |(k, v)| (k, v.trim()));
        let target_level = in_lun.is_none();
        let lb: &mut LunBuild = match in_lun.as_mut() {
            Some(l) => l,
            None => defaults,
        };
        match key {
            "backing-store" | "direct-store" if target_level => {
                if key == "direct-store" {
                    note("direct-store (SCSI passthrough of INQUIRY data) is served as a plain rdwr LUN".into());
                }
                luns.push(LunBuild { path: val.to_string(), ..Default::default() });
            }
            "bs-type" => match bs_type(val) {
                Ok(k) => lb.kind = Some(k),
                Err(e) if target_level => {
                    note(format!("{e}: the target's LUNs are left out"));
                    lb.skip = true;
                }
                Err(e) => {
                    note(format!("{e}: LUN `{}` left out", lb.path));
                    lb.skip = true;
                }
            },
            "lun" if !target_level => match val.parse::<u16>() {
                Ok(v) if v <= 16_383 => lb.lun = Some(v),
                _ => note(format!("lun `{val}` is not 0..=16383: numbered automatically")),
            },
            "write-cache" => match on_off(val) {
                Some(b) => lb.write_cache = Some(b),
                None => note(format!("write-cache `{val}` is not on/off: ignored")),
            },
            "readonly" => lb.read_only = on_off(val).or(Some(true)),
            "bsoflags" => {
                if val.split(':').any(|f| f == "direct") {
                    lb.direct = true;
                }
                if val.split(':').any(|f| f != "direct") {
                    note(format!("bsoflags `{val}`: only direct is mapped"));
                }
            }
            "scsi_sn" => lb.serial = Some(val.trim_matches('"').to_string()),
            "vendor_id" => lb.vendor = Some(val.trim_matches('"').chars().take(8).collect()),
            "product_id" => lb.product = Some(val.trim_matches('"').chars().take(16).collect()),
            "initiator-address" | "initiator-name" => {
                for r in val.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                    match check_acl_rule(r) {
                        Ok(r) if !t.acl.contains(&r) => t.acl.push(r),
                        Ok(_) => {}
                        Err(e) => note(format!("{key} {r}: {e}: left out")),
                    }
                }
            }
            "incominguser" | "outgoinguser" => {
                let mut it = val.split_whitespace();
                let (Some(user), Some(secret)) = (it.next(), it.next()) else {
                    note(format!("{key} needs a user and a password: left out"));
                    continue;
                };
                if let Err(e) = check_secret(user, secret) {
                    note(format!("{key} {user}: {e}: left out (set a longer one with `shardtgtadm chap account new`)"));
                    continue;
                }
                let acc = AccountDef { user: user.to_string(), secret: secret.to_string() };
                if !accounts.iter().any(|a| a.user == acc.user) {
                    accounts.push(acc.clone());
                }
                let chap = t.chap.get_or_insert_with(ChapDef::default);
                if key == "incominguser" {
                    chap.incoming.push(acc);
                } else {
                    if chap.outgoing.is_some() {
                        note("a second outgoinguser: tgt uses one; left out".into());
                        continue;
                    }
                    chap.outgoing = Some(acc);
                }
            }
            other => note(format!("`{other}` is not mapped: ignored")),
        }
    }
    if cur.is_some() {
        notes.push(format!("{file}: the last <target> is not closed: left out"));
    }
    let config = Config {
        shards: crate::config::allowed_cpus(),
        max_sessions: 1024,
        limits: Limits::default(),
        portals: Vec::new(),
        targets,
        discovery_chap: None,
        accounts,
        state_dir: None,
        sanitize_rate: crate::config::DEFAULT_SANITIZE_RATE_MIB * crate::config::MIB,
    };
    Import { config, notes }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../tests/data/targets.conf");

    #[test]
    fn sample_converts() {
        let imp = convert(SAMPLE, "targets.conf");
        let c = &imp.config;
        assert_eq!(c.targets.len(), 2, "{:?}", imp.notes);
        let t = &c.targets[0];
        assert_eq!(t.name, "iqn.2001-04.com.example:storage.disk1");
        assert_eq!(t.luns.len(), 2);
        assert_eq!(t.luns[0].lun, 1);
        assert_eq!(t.luns[0].backend.kind, BackendKind::File);
        assert!(!t.luns[0].write_cache);
        assert_eq!(t.luns[1].lun, 5);
        assert_eq!(t.luns[1].serial, "sn-five");
        assert_eq!(t.luns[1].vendor, "ACME");
        assert_eq!(t.acl, vec!["192.168.1.0/24".to_string(), "iqn.1994-05.com.redhat:client1".to_string()]);
        let chap = t.chap.as_ref().unwrap();
        assert_eq!(chap.incoming[0].user, "alice");
        assert_eq!(chap.outgoing.as_ref().unwrap().user, "target1");
        assert_eq!(c.targets[1].luns[0].backend.kind, BackendKind::Null);
        let notes = imp.notes.join("\n");
        assert!(notes.contains("bob: the secret of `bob` is 5 bytes"), "{notes}");
        assert!(notes.contains("rbd is not supported yet"), "{notes}");
        assert!(notes.contains("`MaxRecvDataSegmentLength` is not mapped"), "{notes}");
        assert!(!notes.contains("short"), "a secret leaked into the notes: {notes}");
        // The TOML parses back once the backing files exist (null LUNs do not need one).
        let text = imp.toml();
        assert!(text.contains("incoming"));
        let without_files = Config { targets: vec![c.targets[1].clone()], ..c.clone() };
        let back = Config::parse(&to_toml(&without_files), "imported").unwrap();
        assert_eq!(back.targets[0].luns.len(), 1);
    }
}
