//! Writing the configuration back: [`to_toml`] renders a [`Config`] as the
//! TOML [`Config::parse`] reads (a round trip gives an equal `Config`), and
//! [`write_atomic`] replaces the file so that a crash at any point leaves
//! either the old or the new file, never a mix: write a temporary file in
//! the same directory (mode 0600: it holds CHAP secrets), fsync it, rename
//! it over the target, fsync the directory.
//!
//! It never logs a secret.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::config::{AccountDef, ChapDef, Config, MIB};

/// Config-file name of a backend kind.
pub fn kind_name(k: shardtgt_backends::BackendKind) -> &'static str {
    use shardtgt_backends::BackendKind as K;
    match k {
        K::Ram => "ram",
        K::Null => "null",
        K::File => "file",
        K::Rdwr => "rdwr",
    }
}

fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn account(out: &mut String, header: &str, a: &AccountDef) {
    let _ = writeln!(out, "{header}\nuser = {}\nsecret = {}", q(&a.user), q(&a.secret));
}

fn chap(out: &mut String, prefix: &str, c: &ChapDef) {
    for a in &c.incoming {
        account(out, &format!("[[{prefix}.incoming]]"), a);
    }
    if let Some(a) = &c.outgoing {
        account(out, &format!("[{prefix}.outgoing]"), a);
    }
}

/// Render `cfg` as TOML (every value explicit, so a later change of a
/// default does not change a running configuration).
pub fn to_toml(cfg: &Config) -> String {
    let mut o = String::from("# shardtgt configuration, written by shardtgtd (runtime changes are saved here).\n\n");
    let l = &cfg.limits;
    let _ = writeln!(o, "[global]");
    let _ = writeln!(o, "shards = {}", cfg.shards);
    let _ = writeln!(o, "queue_depth = {}", l.queue_depth);
    let _ = writeln!(o, "max_recv_data_segment_len = {}", l.max_recv_data_segment_len);
    let _ = writeln!(o, "max_burst_len = {}", l.max_burst_len);
    let _ = writeln!(o, "first_burst_len = {}", l.first_burst_len);
    let _ = writeln!(o, "immediate_data = {}", l.immediate_data);
    let _ = writeln!(o, "initial_r2t = {}", l.initial_r2t);
    let _ = writeln!(o, "max_outstanding_r2t = {}", l.max_outstanding_r2t);
    let _ = writeln!(o, "nop_interval_ms = {}", l.nop_interval_ms);
    let _ = writeln!(o, "nop_timeout_ms = {}", l.nop_timeout_ms);
    let _ = writeln!(o, "login_timeout_ms = {}", l.login_timeout_ms);
    let _ = writeln!(o, "logout_timeout_ms = {}", l.logout_timeout_ms);
    let _ = writeln!(o, "max_sessions = {}", cfg.max_sessions);
    let _ = writeln!(o, "sanitize_rate_mib = {}", cfg.sanitize_rate / MIB);
    let _ = writeln!(o, "write_buffer_budget_mib = {}", l.write_buffer_budget >> 20);
    let _ = writeln!(o, "r2t_timeout_ms = {}", l.r2t_timeout_ms);
    if let Some(d) = &cfg.state_dir {
        let _ = writeln!(o, "state_dir = {}", q(&d.display().to_string()));
    }
    for p in &cfg.portals {
        let addr = shardtgt_transport_tcp::addr::format_portal(&p.addr);
        let _ = writeln!(o, "\n[[portal]]\naddress = {}\ntpgt = {}", q(&addr), p.tpgt);
    }
    for a in &cfg.accounts {
        o.push('\n');
        account(&mut o, "[[account]]", a);
    }
    if let Some(c) = &cfg.discovery_chap {
        o.push('\n');
        chap(&mut o, "discovery_chap", c);
    }
    for t in &cfg.targets {
        let _ = writeln!(o, "\n[[target]]\nname = {}\ntid = {}", q(&t.name), t.tid);
        if let Some(a) = &t.alias {
            let _ = writeln!(o, "alias = {}", q(a));
        }
        if !t.acl.is_empty() {
            let rules: Vec<String> = t.acl.iter().map(|r| q(r)).collect();
            let _ = writeln!(o, "acl = [{}]", rules.join(", "));
        }
        if let Some(n) = t.max_sessions {
            let _ = writeln!(o, "max_sessions = {n}");
        }
        if !t.alua.is_empty() {
            let states: Vec<String> = t.alua.iter().map(|(g, s)| format!("{g} = {}", q(s.name()))).collect();
            let _ = writeln!(o, "alua = {{ {} }}", states.join(", "));
        }
        if let Some(c) = &t.chap {
            chap(&mut o, "target.chap", c);
        }
        for lu in &t.luns {
            let b = &lu.backend;
            if b.fault {
                let _ = writeln!(o, "  [[target.lun]]\n  lun = {}\n  backend = \"fault\"", lu.lun);
                let _ = writeln!(o, "  inner = {}", q(kind_name(b.kind)));
                let rules: Vec<String> = lu.faults.iter().map(|r| q(&r.to_string())).collect();
                let _ = writeln!(o, "  faults = [{}]", rules.join(", "));
            } else {
                let _ = writeln!(o, "  [[target.lun]]\n  lun = {}\n  backend = {}", lu.lun, q(kind_name(b.kind)));
            }
            if let Some(p) = &b.path {
                let _ = writeln!(o, "  path = {}", q(&p.display().to_string()));
            }
            if let Some(s) = b.size_bytes {
                let _ = writeln!(o, "  size = {s}");
            }
            let _ = writeln!(o, "  block_size = {}", b.block_size);
            if b.kind.uses_path() {
                let _ = writeln!(o, "  direct = {}", b.direct);
            }
            if b.kind == shardtgt_backends::BackendKind::Rdwr {
                let _ = writeln!(o, "  workers = {}", b.workers);
            }
            let _ = writeln!(o, "  read_only = {}\n  write_cache = {}", lu.read_only, lu.write_cache);
            let _ = writeln!(
                o,
                "  serial = {}\n  vendor = {}\n  product = {}",
                q(&lu.serial),
                q(&lu.vendor),
                q(&lu.product)
            );
        }
    }
    o
}

/// Replace `path` with `contents` atomically and durably (mode 0600).
/// The temporary file is `.<name>.tmp` in the same directory; a crash
/// leaves at worst that file behind, and the next write replaces it.
pub fn write_atomic(path: &Path, contents: &str) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| io::Error::other("config path has no file name"))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    // An existing temp file keeps its old mode: force 0600.
    fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = r#"
[[portal]]
address = "[::1]:3261"
tpgt = 2
[[account]]
user = "alice"
secret = "alice-secret-12"
[discovery_chap]
  [[discovery_chap.incoming]]
  user = "disc"
  secret = "discovery-secret"
[[target]]
name = "iqn.2026-11.io.shardtgt:a"
alias = "a"
acl = ["iqn.2026-11.test:init", "10.0.0.0/8", "::1"]
  [[target.chap.incoming]]
  user = "alice"
  secret = "alice-secret-12"
  [target.chap.outgoing]
  user = "tgt"
  secret = "target-secret-1"
  [[target.lun]]
  lun = 3
  backend = "null"
  size = "1GiB"
  read_only = true
  write_cache = false
[[target]]
name = "iqn.2026-11.io.shardtgt:b"
tid = 7
max_sessions = 3
"#;

    #[test]
    fn round_trip() {
        let c = Config::parse(SRC, "t").unwrap();
        assert_eq!(c.targets[0].tid, 1);
        assert_eq!(c.targets[1].tid, 7);
        assert_eq!((c.targets[0].max_sessions, c.targets[1].max_sessions), (None, Some(3)));
        let text = to_toml(&c);
        let back = Config::parse(&text, "written").unwrap();
        assert_eq!(c, back, "{text}");
        assert_eq!(to_toml(&back), text);
    }

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("shardtgt-persist-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        let p = d.join("c.toml");
        fs::write(&p, "old").unwrap();
        write_atomic(&p, "new").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!d.join(".c.toml.tmp").exists());
        // A crash between the temp write and the rename: the old file is
        // intact and valid, and the next write succeeds over the leftover.
        fs::write(d.join(".c.toml.tmp"), "half-writ").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "new");
        write_atomic(&p, "newer").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "newer");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn secret_rules() {
        let bad = SRC.replacen("alice-secret-12", "short", 1);
        let e = Config::parse(&bad, "s.toml").unwrap_err();
        assert_eq!(e.field, "account.secret");
        assert_eq!(e.line, 7);
        assert!(e.message.contains("12 to 256"), "{e}");
        assert!(!e.to_string().contains("short"), "secret leaked: {e}");
        let bad = SRC.replace("10.0.0.0/8", "10.0.0.0/40");
        assert_eq!(Config::parse(&bad, "s").unwrap_err().field, "target.acl");
        let dbg = format!("{:?}", Config::parse(SRC, "t").unwrap());
        assert!(!dbg.contains("alice-secret-12"));
    }
}
