//! End to end through the management socket: `shardtgtd` starts on a config
//! file that does not exist yet, `shardtgtadm` builds a portal, a target and
//! a LUN, libiscsi's `iscsi-inq` logs in, a restart serves the same
//! configuration, a session is listed and forced out, a LUN is deleted under
//! a live session, a bad request and a bad reload leave the daemon as it was.

mod common;
use common::*;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use shardtgt_tests::initiator::{cdb, RawConn};

const IQN: &str = "iqn.2026-11.io.shardtgt:admin";

#[test]
fn build_restart_logout_delete() {
    let d = dir("admin", "e2e");
    let cfg = d.join("shardtgt.toml");
    let sock = d.join("run").join("adm.sock");
    let port = free_port();
    let portal = format!("127.0.0.1:{port}");

    let daemon = Daemon::start(&cfg, &sock);
    assert_eq!(std::fs::metadata(&sock).unwrap().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(sock.parent().unwrap()).unwrap().mode() & 0o777, 0o700);
    assert!(cfg.exists(), "the config file is created at start");

    ok(&sock, &["portal", "add", &portal]);
    assert!(ok(&sock, &["target", "new", IQN]).contains("tid 1"));
    ok(&sock, &["lun", "new", "1", "0", "--backend", "ram", "--size", "16MiB"]);
    ok(&sock, &["lun", "new", IQN, "1", "--backend", "null", "--size", "1GiB", "--write-cache", "off"]);
    ok(&sock, &["chap", "account", "new", "alice", "alice-secret-1234"]);
    ok(&sock, &["acl", "bind", "1", "ALL"]);

    // Errors: one line, exit 1; usage errors exit 2; the daemon unaffected.
    fails(&sock, &["lun", "new", "1", "0", "--backend", "ram", "--size", "1M"], 1, "already has LUN 0");
    fails(&sock, &["target", "delete", "42"], 1, "no target with tid 42");
    fails(&sock, &["lun", "new", "1", "9", "--backend", "file", "--path", "/nonexistent/x.img"], 1, "does not exist");
    fails(&sock, &["lun", "resize", "1", "0", "32MiB"], 1, "ram LUN cannot be resized");
    fails(&sock, &["chap", "account", "new", "bob", "short"], 1, "12 to 256");
    fails(&sock, &["frobnicate"], 2, "unknown command");
    let mut raw = UnixStream::connect(&sock).unwrap();
    raw.write_all(b"this is not json\n").unwrap();
    let mut line = String::new();
    BufReader::new(raw.try_clone().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("{\"ok\":false") && line.contains("bad request"), "{line}");

    let out = Command::new("iscsi-inq").arg(format!("iscsi://{portal}/{IQN}/0")).output().unwrap();
    assert!(out.status.success(), "iscsi-inq: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("SHARDTGT"));

    let before = ok(&sock, &["--json", "target", "show"]);
    assert!(!before.contains("alice-secret"), "secret printed");
    let tree = ok(&sock, &["target", "show"]);
    assert!(tree.contains("o- lun0 [ram 16.0MiB bs 512 rw wc]"), "{tree}");
    assert_eq!(std::fs::metadata(&cfg).unwrap().mode() & 0o777, 0o600);

    // Crash: SIGKILL, restart, same configuration.
    daemon.kill9();
    let daemon = Daemon::start(&cfg, &sock);
    assert_eq!(ok(&sock, &["--json", "target", "show"]), before);

    // A live session: listed, then LUN 1 deleted under it, then forced out.
    let mut conn = RawConn::connect(port).unwrap();
    conn.login("iqn.2026-11.test:admin-init", Some(IQN)).unwrap();
    let _ = conn.clear_unit_attention(1);
    assert_eq!(conn.scsi_read(1, &cdb::read_capacity10(), 8).status, 0);
    let list = ok(&sock, &["--json", "session", "list"]);
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    let s = &v[0];
    assert_eq!(s["initiator"], "iqn.2026-11.test:admin-init");
    assert_eq!(s["target"].as_str().unwrap().to_ascii_lowercase(), IQN);
    assert!(s["connections"][0]["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(s["connections"][0]["bytes_in"].as_u64().unwrap() > 48, "{s}");
    assert!(s["connections"][0]["backend_ops"].as_u64().is_some(), "{s}");
    let tsih = s["tsih"].as_u64().unwrap().to_string();
    assert!(ok(&sock, &["session", "list"]).contains("iqn.2026-11.test:admin-init"));

    ok(&sock, &["lun", "delete", "1", "1"]);
    let r = conn.scsi_read(1, &cdb::read_capacity10(), 8);
    assert_eq!(r.status, 2, "deleted LUN answers CHECK CONDITION");
    assert_eq!(r.asc_ascq(), 0x2500, "LOGICAL UNIT NOT SUPPORTED");
    assert_eq!(conn.scsi_read(0, &cdb::read_capacity10(), 8).status, 0, "LUN 0 still served");

    fails(&sock, &["target", "delete", "1"], 1, "session(s) logged in");
    ok(&sock, &["session", "logout", &tsih]);
    assert!(conn.expect_close(Duration::from_secs(5)).is_ok(), "forced out");
    fails(&sock, &["session", "logout", &tsih], 1, "no session");

    // An ACL change that denies a logged-in initiator forces it out.
    let mut conn = RawConn::connect(port).unwrap();
    conn.login("iqn.2026-11.test:admin-init", Some(IQN)).unwrap();
    ok(&sock, &["acl", "bind", "1", "10.0.0.0/8"]);
    ok(&sock, &["acl", "unbind", "1", "ALL"]);
    assert!(conn.expect_close(Duration::from_secs(5)).is_ok(), "denied session forced out");
    ok(&sock, &["acl", "bind", "1", "127.0.0.0/8"]);

    // Reload: an invalid edit is refused and nothing changes; a valid one applies.
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, good.replace("size = 16777216", "size = 100")).unwrap();
    let o = adm(&sock, &["config", "reload"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("target.lun.size"));
    std::fs::write(&cfg, format!("{good}\n[[target]]\nname = \"iqn.2026-11.io.shardtgt:second\"\n")).unwrap();
    let changes = ok(&sock, &["config", "reload"]);
    assert!(changes.contains("target iqn.2026-11.io.shardtgt:second added"), "{changes}");
    // SIGHUP applies an edit too.
    std::fs::write(&cfg, &good).unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(daemon.0.id() as i32, libc::SIGHUP) };
    let end = Instant::now() + Duration::from_secs(5);
    while ok(&sock, &["target", "show"]).contains(":second") {
        assert!(Instant::now() < end, "SIGHUP reload not applied");
        std::thread::sleep(Duration::from_millis(50));
    }

    // tgtadm form against the same daemon.
    let out = ok(&sock, &["tgtadm", "--lld", "iscsi", "--mode", "target", "--op", "show"]);
    assert!(out.contains(&format!("Target 1: {IQN}")), "{out}");
    ok(
        &sock,
        &[
            "tgtadm",
            "--lld",
            "iscsi",
            "--mode",
            "target",
            "--op",
            "new",
            "--tid",
            "3",
            "--targetname",
            "iqn.2026-11.io.shardtgt:t3",
        ],
    );
    ok(
        &sock,
        &[
            "tgtadm",
            "--lld",
            "iscsi",
            "--mode",
            "logicalunit",
            "--op",
            "new",
            "--tid",
            "3",
            "--lun",
            "1",
            "--backing-store",
            "x",
            "--bstype",
            "null",
        ],
    );
    assert!(ok(&sock, &["target", "show", "3"]).contains("lun1 [null"));
    // Invoked as `tgtadm` through a symlink (socket from SHARDTGT_SOCKET).
    let link = d.join("tgtadm");
    std::os::unix::fs::symlink(ADM, &link).unwrap();
    let o = Command::new(&link)
        .env("SHARDTGT_SOCKET", &sock)
        .args(["--lld", "iscsi", "--mode", "target", "--op", "show", "--tid", "3"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("Target 3: iqn.2026-11.io.shardtgt:t3"));
    let o = Command::new(&link)
        .env("SHARDTGT_SOCKET", &sock)
        .args(["--mode", "target", "--op", "new", "--tid", "3"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "usage error");

    // A file LUN grows at runtime (the file with it); shrinking past data
    // in use is refused, and the file keeps its size.
    let img = d.join("grow.img");
    ok(&sock, &["lun", "new", "3", "2", "--backend", "file", "--path", img.to_str().unwrap(), "--size", "1MiB"]);
    ok(&sock, &["lun", "resize", "3", "2", "4MiB"]);
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 4 << 20);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
        f.write_all_at(&[0xAB; 4096], 3 << 20).unwrap();
        f.sync_all().unwrap();
    }
    fails(&sock, &["lun", "resize", "3", "2", "2MiB"], 1, "data in use at byte 3145728");
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 4 << 20);
    let shown = ok(&sock, &["config", "show"]);
    assert!(shown.contains("secret = \"<set>\"") && !shown.contains("alice-secret"), "{shown}");
    assert!(ok(&sock, &["config", "save"]).contains("saved to"));
    let saved = std::fs::read_to_string(&cfg).unwrap();
    assert!(saved.contains("size = 4194304") && saved.contains("alice-secret-1234"));

    ok(&sock, &["portal", "remove", &portal]);
    assert!(std::net::TcpStream::connect(&portal).is_err(), "portal closed at runtime");
    daemon.stop();
    assert!(!sock.exists(), "socket removed at exit");
    let _ = std::fs::remove_dir_all(&d);
}

fn inq(url: &str, initiator: &str) -> Output {
    Command::new("iscsi-inq").args(["-i", initiator, url]).output().unwrap()
}

/// `import-tgt` on the sample targets.conf (paths pointed at temp files),
/// then the converted configuration serves logins as tgt would have:
/// CHAP with the right secret, refused with a wrong one, ACL by name.
#[test]
fn imported_tgt_config_serves_chap_and_acl() {
    let d = dir("admin", "import");
    let sample = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/targets.conf")).unwrap();
    for f in ["disk1.img", "disk5.img"] {
        std::fs::File::create(d.join(f)).unwrap().set_len(16 << 20).unwrap();
    }
    let conf = d.join("targets.conf");
    std::fs::write(&conf, sample.replace("/var/lib/tgt/", &format!("{}/", d.display()))).unwrap();
    let cfg = d.join("shardtgt.toml");
    let o = Command::new(ADM)
        .args(["import-tgt", conf.to_str().unwrap(), "--output", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let notes = String::from_utf8_lossy(&o.stderr);
    assert!(notes.contains("not mapped:") && notes.contains("bob"), "{notes}");
    let port = free_port();
    let text = std::fs::read_to_string(&cfg).unwrap().replace("0.0.0.0:3260", &format!("127.0.0.1:{port}"));
    std::fs::write(&cfg, text).unwrap();

    let sock = d.join("adm.sock");
    let daemon = Daemon::start(&cfg, &sock);
    let tgt = "iqn.2001-04.com.example:storage.disk1";
    let allowed = "iqn.1994-05.com.redhat:client1";
    let good = inq(&format!("iscsi://alice%alice-secret-123@127.0.0.1:{port}/{tgt}/1"), allowed);
    assert!(good.status.success(), "right CHAP secret: {}", String::from_utf8_lossy(&good.stderr));
    let bad = inq(&format!("iscsi://alice%wrong-secret-123@127.0.0.1:{port}/{tgt}/1"), allowed);
    assert!(!bad.status.success(), "wrong CHAP secret accepted");
    let denied = inq(&format!("iscsi://alice%alice-secret-123@127.0.0.1:{port}/{tgt}/1"), "iqn.2026-11.test:other");
    assert!(!denied.status.success(), "ACL did not deny");
    // The ACL changes at runtime: allow everyone.
    ok(&sock, &["acl", "bind", tgt, "127.0.0.1"]);
    let now = inq(&format!("iscsi://alice%alice-secret-123@127.0.0.1:{port}/{tgt}/1"), "iqn.2026-11.test:other");
    assert!(now.status.success(), "ACL bind not applied: {}", String::from_utf8_lossy(&now.stderr));
    // tgt-like account listing.
    let acc = ok(&sock, &["tgtadm", "--lld", "iscsi", "--mode", "account", "--op", "show"]);
    assert!(acc.contains("alice") && !acc.contains("alice-secret"), "{acc}");
    daemon.stop();
    let _ = std::fs::remove_dir_all(&d);
}
