//! The `fault` backend through a real session (issue: every errno mapping
//! of backends/src/errno.rs driven end to end): rules set with
//! `shardtgtadm fault set` make READ, WRITE and SYNCHRONIZE CACHE on one
//! LUN fail with the exact sense the mapping promises, the errno is logged,
//! a one-shot rule fires once, and after `fault clear` the same blocks read
//! and write fine — while a second session keeps verifying I/O on another
//! LUN with zero errors. Also: a file LUN's backing file unlinked and
//! truncated (through /proc/PID/fd) under load fails that LUN precisely
//! while the other LUN's verifying session sees no error.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use shardtgt_tests::initiator::{cdb, RawConn, ScsiResult};
use shardtgt_tests::{daemon_binary, free_port, DaemonProcess, ScratchDir};

const TARGET: &str = "iqn.2026-11.io.shardtgt:fault";

fn start(dir: &ScratchDir, luns: &str) -> DaemonProcess {
    for _ in 0..5 {
        let port = free_port();
        let cfg = dir.path().join("shardtgt.toml");
        let text = format!(
            "[global]\nshards = 2\n[[portal]]\naddress = \"127.0.0.1:{port}\"\n[[target]]\nname = \"{TARGET}\"\n{luns}"
        );
        fs::write(&cfg, text).expect("write config");
        if let Ok(d) = DaemonProcess::try_start(&cfg, &dir.path().join("daemon.log"), port) {
            return d;
        }
    }
    panic!("shardtgtd did not start");
}

fn adm(dir: &ScratchDir, args: &[&str]) {
    let bin = daemon_binary().with_file_name("shardtgtadm");
    let sock = dir.path().join("shardtgt.sock");
    let o = Command::new(&bin).arg("--socket").arg(&sock).args(args).output().expect("run shardtgtadm");
    assert!(o.status.success(), "shardtgtadm {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

fn logged_in(port: u16, name: &str) -> RawConn {
    let mut c = RawConn::connect(port).expect("connect");
    c.login(name, Some(TARGET)).expect("login");
    for lun in [0, 1] {
        c.clear_unit_attention(lun);
    }
    c
}

fn sense(r: &ScsiResult) -> (u8, u8, u16) {
    (r.status, r.sense_key(), r.asc_ascq())
}

fn block(seed: u8, lba: u32) -> Vec<u8> {
    (0..512u32).map(|i| (i as u8) ^ seed ^ (lba as u8)).collect()
}

/// A second session writing and verifying LUN 1 until `stop`; returns
/// (operations, failures with what went wrong).
fn verifier(port: u16, stop: Arc<AtomicBool>) -> thread::JoinHandle<(u64, Vec<String>)> {
    thread::spawn(move || {
        let mut c = logged_in(port, "iqn.2026-11.test:fault-verifier");
        let (mut ops, mut bad) = (0u64, Vec::new());
        let mut round = 0u8;
        while !stop.load(Ordering::Relaxed) {
            round = round.wrapping_add(1);
            for lba in 0..16u32 {
                let data = block(round, lba);
                match c.try_scsi_write(1, &cdb::write10(lba, 1), &data) {
                    Ok(r) if r.status == 0 => {}
                    other => bad.push(format!("write {lba}: {other:?}")),
                }
                match c.try_scsi_read(1, &cdb::read10(lba, 1), 512) {
                    Ok(r) if r.status == 0 && r.data == data => {}
                    other => bad.push(format!("read {lba}: {:?}", other.map(|r| (r.status, r.sense)))),
                }
                ops += 2;
            }
        }
        (ops, bad)
    })
}

#[test]
fn every_errno_mapping_through_a_session_and_the_other_lun_keeps_serving() {
    let dir = ScratchDir::new("fault");
    let luns = format!(
        "  [[target.lun]]\n  lun = 0\n  backend = \"fault\"\n  inner = \"ram\"\n  size = \"16MiB\"\n  \
         faults = [\"read:900-999:EIO\"]\n  [[target.lun]]\n  lun = 1\n  backend = \"ram\"\n  size = \"16MiB\"\n  \
         [[target.lun]]\n  lun = 2\n  backend = \"fault\"\n  inner = \"file\"\n  path = \"{}\"\n  size = \"8MiB\"\n",
        dir.path().join("thin.img").display()
    );
    let mut d = start(&dir, &luns);
    let stop = Arc::new(AtomicBool::new(false));
    let load = verifier(d.port(), stop.clone());
    let mut c = logged_in(d.port(), "iqn.2026-11.test:fault");
    let data = block(7, 100);
    let read = |c: &mut RawConn| c.scsi_read(0, &cdb::read10(100, 1), 512);
    let write = |c: &mut RawConn| c.scsi_write(0, &cdb::write10(100, 1), &data);

    // The rule from the config file is live at start.
    assert_eq!(sense(&c.scsi_read(0, &cdb::read10(950, 1), 512)), (2, 3, 0x1100));
    assert_eq!(write(&mut c).status, 0, "block 100 is outside the configured rule");

    let cases: [(&str, bool, (u8, u8, u16)); 6] = [
        ("read:100:EIO", true, (2, 3, 0x1100)),   // MEDIUM ERROR, UNRECOVERED READ ERROR
        ("write:100:EIO", false, (2, 3, 0x0c00)), // MEDIUM ERROR, WRITE ERROR
        ("write:90-110:ENOSPC", false, (2, 7, 0x2707)), // DATA PROTECT, SPACE ALLOCATION FAILED WRITE PROTECT
        ("write:*:EROFS", false, (2, 7, 0x2700)), // DATA PROTECT, WRITE PROTECTED
        ("read:100:ENODEV", true, (2, 4, 0x4400)), // HARDWARE ERROR, INTERNAL TARGET FAILURE
        ("any:100:ETIMEDOUT", false, (2, 4, 0x4400)), // same for any other errno
    ];
    for (rule, is_read, want) in cases {
        adm(&dir, &["fault", "set", TARGET, "0", rule]);
        let r = if is_read { read(&mut c) } else { write(&mut c) };
        assert_eq!(sense(&r), want, "{rule}: {r:?}");
        let r = if is_read { read(&mut c) } else { write(&mut c) };
        assert_eq!(sense(&r), want, "{rule} stays until cleared");
    }
    // SYNCHRONIZE CACHE whose flush fails.
    adm(&dir, &["fault", "set", TARGET, "0", "flush:*:EIO"]);
    let r = c.scsi_read(0, &cdb::synchronize_cache10(0, 0), 0);
    assert_eq!(sense(&r), (2, 3, 0x0c00), "flush EIO: {r:?}");
    assert_eq!(read(&mut c).status, 0, "a flush rule leaves reads alone");
    // UNMAP on a fault LUN over a file (which really deallocates): the
    // deallocation fails as a write would.
    let mut unmap = vec![0, 22, 0, 16, 0, 0, 0, 0];
    unmap.extend_from_slice(&64u64.to_be_bytes());
    unmap.extend_from_slice(&16u32.to_be_bytes());
    unmap.extend_from_slice(&[0; 4]);
    let unmap_cdb = [0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0];
    c.clear_unit_attention(2);
    adm(&dir, &["fault", "set", TARGET, "2", "unmap:70:EIO"]);
    assert_eq!(sense(&c.scsi_write(2, &unmap_cdb, &unmap)), (2, 3, 0x0c00), "unmap EIO");
    adm(&dir, &["fault", "set", TARGET, "2", "unmap:0-1:EIO"]);
    assert_eq!(c.scsi_write(2, &unmap_cdb, &unmap).status, 0, "a rule for other blocks leaves it alone");
    // A one-shot rule fires once.
    adm(&dir, &["fault", "set", TARGET, "0", "write:100:EIO:once"]);
    assert_eq!(sense(&write(&mut c)), (2, 3, 0x0c00));
    assert_eq!(write(&mut c).status, 0, "one-shot rule used up");
    // Cleared: the same block writes and reads back.
    adm(&dir, &["fault", "set", TARGET, "0", "write:100:EIO", "read:100:EIO"]);
    adm(&dir, &["fault", "clear", TARGET, "0"]);
    let other = block(9, 100);
    assert_eq!(c.scsi_write(0, &cdb::write10(100, 1), &other).status, 0);
    let r = read(&mut c);
    assert_eq!((r.status, r.data), (0, other));
    assert_eq!(c.scsi_read(0, &cdb::read10(950, 1), 512).status, 0, "the config rule is gone too");
    let cfg = fs::read_to_string(dir.path().join("shardtgt.toml")).unwrap();
    assert!(cfg.contains("faults = []"), "cleared rules are persisted: {cfg}");

    stop.store(true, Ordering::Relaxed);
    let (ops, bad) = load.join().expect("verifier");
    assert!(bad.is_empty(), "LUN 1 saw errors: {bad:?}");
    assert!(ops > 50, "the verifier ran ({ops} operations)");
    let log = d.log();
    for errno in ["errno 5)", "errno 28)", "errno 30)", "errno 19)", "errno 110)"] {
        assert!(log.contains(errno), "{errno} not logged:\n{log}");
    }
    c.logout();
    d.assert_running("end of test");
}

/// The daemon's open descriptor of `path` (its per-shard handles).
fn daemon_fds(pid: u32, path: &Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for e in fs::read_dir(format!("/proc/{pid}/fd")).expect("/proc/PID/fd").flatten() {
        if fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with(&*path.to_string_lossy())) {
            v.push(e.path());
        }
    }
    v
}

#[test]
fn a_file_removed_under_load_fails_its_lun_only() {
    let dir = ScratchDir::new("fault-unlink");
    let a = dir.path().join("a.img");
    let luns = format!(
        "  [[target.lun]]\n  lun = 0\n  backend = \"file\"\n  path = \"{}\"\n  size = \"8MiB\"\n  \
         [[target.lun]]\n  lun = 1\n  backend = \"ram\"\n  size = \"16MiB\"\n",
        a.display()
    );
    let mut d = start(&dir, &luns);
    let stop = Arc::new(AtomicBool::new(false));
    let load = verifier(d.port(), stop.clone());
    let mut c = logged_in(d.port(), "iqn.2026-11.test:fault-unlink");
    for lba in 0..64u32 {
        assert_eq!(c.scsi_write(0, &cdb::write10(lba * 8, 8), &[0x5a; 4096]).status, 0);
    }
    // Load on LUN 0 from a second thread while the file goes away.
    let port = d.port();
    let stop0 = Arc::new(AtomicBool::new(false));
    let s0 = stop0.clone();
    let load0 = thread::spawn(move || {
        let mut c = logged_in(port, "iqn.2026-11.test:fault-unlink-load");
        let mut seen = Vec::new();
        let mut lba = 0u32;
        while !s0.load(Ordering::Relaxed) {
            lba = (lba + 8) % 512;
            let r = c.try_scsi_read(0, &cdb::read10(lba, 8), 4096).expect("LUN 0 answers (no hang, no drop)");
            seen.push(sense(&r));
        }
        seen
    });
    thread::sleep(Duration::from_millis(200));
    let pid = d.pid().expect("pid");
    let fds = daemon_fds(pid, &a);
    assert!(!fds.is_empty(), "the daemon holds {} open", a.display());
    fs::remove_file(&a).expect("unlink");
    // The file is gone from the namespace; cut it to nothing through the
    // daemon's own descriptor.
    fs::OpenOptions::new().write(true).open(&fds[0]).expect("open /proc/PID/fd/N").set_len(0).expect("truncate");
    thread::sleep(Duration::from_millis(500));
    stop0.store(true, Ordering::Relaxed);
    let seen = load0.join().expect("LUN 0 load thread");
    let after: Vec<_> = seen.iter().skip_while(|s| s.0 == 0).collect();
    assert!(!after.is_empty(), "LUN 0 kept answering after the truncation");
    assert!(after.iter().all(|s| **s == (2, 3, 0x1100)), "every read after: MEDIUM ERROR 11/00, got {after:?}");
    // A new command on the other session: the same precise error.
    let r = c.scsi_read(0, &cdb::read10(64, 8), 4096);
    assert_eq!(sense(&r), (2, 3, 0x1100));

    stop.store(true, Ordering::Relaxed);
    let (ops, bad) = load.join().expect("verifier");
    assert!(bad.is_empty(), "LUN 1 saw errors: {bad:?}");
    assert!(ops > 50, "the verifier ran ({ops} operations)");
    d.assert_running("after the file went away");
    assert!(d.log().contains("end of file inside the LU"), "{}", d.log());
}
