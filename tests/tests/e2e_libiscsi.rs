//! End to end with libiscsi: the real `shardtgtd` on a free loopback port,
//! driven by libiscsi's command-line tools (Debian `libiscsi-bin`) and by
//! libiscsi's C API through `tools/libiscsi_rw.py` for the data path.
//!
//! Every test starts its own daemon with [`TargetSpec::standard`] (LUN 0:
//! 64 MiB RAM, 512-byte blocks; LUN 1: 16 MiB RAM, 4096-byte blocks,
//! read-only), checks after each step that it is still alive, and stops it
//! with SIGTERM, which must give exit status 0.
//!
//! Without the libiscsi tools the tests print SKIPPED and pass, except under
//! CI (`CI` set), where a missing tool is a failure.

use shardtgt_tests::initiator::RawConn;
use shardtgt_tests::{libiscsi_rw, require_libiscsi, run_tool, Target, TargetSpec};
use std::thread;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);
const INITIATOR: &str = "iqn.2026-11.test:e2e";

fn start() -> Target {
    Target::start(&TargetSpec::standard())
}

#[test]
fn ls_with_luns_lists_the_target_and_every_lun() {
    require_libiscsi!();
    let mut t = start();
    let out = run_tool("iscsi-ls", &["-i", INITIATOR, "-s", &t.base_url()], T);
    let s = out.expect_ok();
    assert!(s.contains(&format!("Target:{} Portal:127.0.0.1:{},1", t.iqn, t.port)), "{out}");
    let lun_lines: Vec<&str> = s.lines().filter(|l| l.starts_with("Lun:")).collect();
    for l in &t.luns {
        let line = lun_lines
            .iter()
            .find(|x| x.split_whitespace().next() == Some(&format!("Lun:{}", l.lun)))
            .unwrap_or_else(|| panic!("LUN {} not listed: {out}", l.lun));
        assert!(line.contains("Type:DIRECT_ACCESS"), "LUN {} type: {line}", l.lun);
    }
    if !t.is_external() {
        assert_eq!(lun_lines.len(), t.luns.len(), "exactly the configured LUNs: {out}");
    }
    t.assert_alive("iscsi-ls -s");
}

#[test]
fn discovery_session_returns_the_target_and_portal() {
    require_libiscsi!();
    let mut t = start();
    let out = run_tool("iscsi-ls", &["-i", INITIATOR, &t.base_url()], T);
    let s = out.expect_ok();
    assert!(s.contains(&format!("Target:{} Portal:127.0.0.1:{},1", t.iqn, t.port)), "{out}");
    // the raw initiator's view of the same SendTargets answer
    let mut c = RawConn::connect(t.port).expect("connect");
    c.login(INITIATOR, None).expect("discovery login");
    let keys = c.send_targets();
    assert!(keys.contains(&("TargetName".into(), t.iqn.clone())), "SendTargets=All: {keys:?}");
    assert!(
        keys.iter().any(|(k, v)| k == "TargetAddress" && v == &format!("127.0.0.1:{},1", t.port)),
        "TargetAddress: {keys:?}"
    );
    c.logout();
    t.assert_alive("discovery sessions");
}

#[test]
fn inquiry_standard_and_vpd_pages() {
    require_libiscsi!();
    let mut t = start();
    let url = t.url(0);
    let out = run_tool("iscsi-inq", &["-i", INITIATOR, &url], T);
    let s = out.expect_ok();
    assert!(s.contains("Peripheral Qualifier:CONNECTED"), "{out}");
    assert!(s.contains("Peripheral Device Type:DIRECT_ACCESS"), "{out}");
    assert!(s.contains("Vendor:") && s.contains("Product:"), "{out}");

    // supported VPD pages must include 0x80 and 0x83
    // (iscsi-inq wants decimal page codes: `-c 0x80` is read as 0)
    let out = run_tool("iscsi-inq", &["-i", INITIATOR, "-e", "1", "-c", "0", &url], T);
    let s = out.expect_ok();
    assert!(s.contains("Page:0x80 UNIT_SERIAL_NUMBER"), "{out}");
    assert!(s.contains("Page:0x83 DEVICE_IDENTIFICATION"), "{out}");

    let out = run_tool("iscsi-inq", &["-i", INITIATOR, "-e", "1", "-c", "131", &url], T);
    let s = out.expect_ok();
    assert!(s.contains("Page Code:(0x83) DEVICE_IDENTIFICATION"), "{out}");
    assert!(s.contains("DEVICE DESIGNATOR #0"), "at least one designator: {out}");
    assert!(s.contains("Association:(0) LOGICAL_UNIT"), "a logical-unit designator: {out}");

    // the two LUNs must not share a serial number
    let serial0 = serial_number(&url);
    let serial1 = serial_number(&t.url(1));
    assert_ne!(serial0, serial1, "LUN 0 and LUN 1 report the same unit serial number");
    t.assert_alive("INQUIRY");
}

fn serial_number(url: &str) -> String {
    let out = run_tool("iscsi-inq", &["-i", INITIATOR, "-e", "1", "-c", "128", url], T);
    let s = out.expect_ok();
    let line = s.lines().find_map(|l| l.strip_prefix("Unit Serial Number:[")).unwrap_or_else(|| panic!("{out}"));
    let serial = line.trim_end_matches(']').trim().to_string();
    assert!(!serial.is_empty(), "empty unit serial number: {out}");
    serial
}

#[test]
fn readcapacity16_reports_the_configured_size_and_block_size() {
    require_libiscsi!();
    let mut t = start();
    for i in 0..t.luns.len() {
        let l = t.lun(i).clone();
        let url = t.url(i);
        let out = run_tool("iscsi-readcapacity16", &["-i", INITIATOR, "-s", &url], T);
        assert_eq!(out.expect_ok().trim(), l.size_bytes.to_string(), "size of LUN {}: {out}", l.lun);
        let out = run_tool("iscsi-readcapacity16", &["-i", INITIATOR, &url], T);
        let s = out.expect_ok();
        assert!(s.contains(&format!("LOGICAL BLOCK LENGTH IN BYTES:{}", l.block_size)), "{out}");
        assert!(s.contains(&format!("RETURNED LOGICAL BLOCK ADDRESS:{}", l.blocks() - 1)), "{out}");
    }
    t.assert_alive("READ CAPACITY(16)");
}

#[test]
fn data_written_through_libiscsi_reads_back_identical() {
    require_libiscsi!();
    let mut t = start();
    let l = t.lun(0).clone();
    let url = t.url(0);
    let bs = l.block_size.to_string();
    let last = (l.blocks() - 8).to_string();
    // (lba, blocks, blocks per command): one block; 2 MiB in 128 KiB commands
    // (more than FirstBurstLength, so R2T and Data-Out are used); one 1 MiB
    // command; the last 8 blocks of the LUN
    let regions: [(&str, &str, &str); 4] =
        [("0", "1", "1"), ("1000", "4096", "256"), ("9000", "2048", "2048"), (last.as_str(), "8", "8")];
    for (lba, n, per) in regions {
        let w = libiscsi_rw(&["write", &url, lba, n, &bs, "seed-1", "--chunk-blocks", per], T);
        assert!(w.success(), "write lba {lba}: {w}\ndaemon log:\n{}", t.log());
    }
    for (lba, n, per) in regions {
        let r = libiscsi_rw(&["verify", &url, lba, n, &bs, "seed-1", "--chunk-blocks", per], T);
        assert!(r.success(), "read-back lba {lba}: {r}\ndaemon log:\n{}", t.log());
    }
    // negative control: the checker does notice other data
    let r = libiscsi_rw(&["verify", &url, "1000", "16", &bs, "another-seed"], T);
    assert_eq!(r.code, Some(1), "verify must fail on data that was not written: {r}");
    assert!(r.stderr.contains("data mismatch"), "{r}");
    t.assert_alive("writes and reads");
}

#[test]
fn write_past_the_end_is_an_illegal_request() {
    require_libiscsi!();
    let mut t = start();
    let l = t.lun(0).clone();
    let out = libiscsi_rw(&["write-fails", &t.url(0), &l.blocks().to_string(), &l.block_size.to_string(), "5"], T);
    assert!(out.success(), "WRITE(10) at LBA = capacity must fail with ILLEGAL REQUEST: {out}");
    t.assert_alive("a write past the end");
}

#[test]
fn read_only_lun_refuses_writes_with_data_protect() {
    require_libiscsi!();
    let mut t = start();
    let l = t.lun(1).clone();
    assert!(l.read_only);
    let out = libiscsi_rw(&["write-fails", &t.url(1), "0", &l.block_size.to_string(), "7"], T);
    assert!(out.success(), "a write to a read-only LUN must fail with DATA PROTECT: {out}");
    t.assert_alive("a write to a read-only LUN");
}

#[test]
fn two_sessions_at_once_see_each_others_writes() {
    require_libiscsi!();
    let mut t = start();
    let url = t.url(0);
    let bs = t.lun(0).block_size.to_string();
    // a third session reads in the background the whole time
    let perf_url = url.clone();
    let perf = thread::spawn(move || {
        run_tool("iscsi-perf", &["-i", "iqn.2026-11.test:perf", "-t", "3", "-m", "8", "-b", "64", &perf_url], T)
    });
    let out = libiscsi_rw(&["cross", &url, "20000", "1024", &bs, "cross-seed", "--chunk-blocks", "128"], T);
    assert!(out.success(), "two sessions: {out}\ndaemon log:\n{}", t.log());
    let p = perf.join().expect("iscsi-perf thread");
    assert!(p.success() && p.stdout.contains("finished."), "iscsi-perf alongside: {p}");
    t.assert_alive("three concurrent sessions");
}

#[test]
fn login_to_an_unknown_target_fails_clearly_and_the_daemon_keeps_serving() {
    require_libiscsi!();
    let mut t = start();
    let bad = format!("iscsi://127.0.0.1:{}/iqn.2026-11.io.shardtgt:no-such-target/0", t.port);
    let out = run_tool("iscsi-inq", &["-i", INITIATOR, &bad], T);
    assert!(!out.success() && !out.timed_out, "login to an unknown target must fail: {out}");
    assert!(out.all_output().contains("Target not found"), "libiscsi reports status 0x0203: {out}");
    t.assert_alive("a failed login");
    let out = run_tool("iscsi-inq", &["-i", INITIATOR, &t.url(0)], T);
    assert!(out.expect_ok().contains("DIRECT_ACCESS"), "{out}");
    t.assert_alive("a good login after a failed one");
}

#[test]
fn sigterm_with_a_session_logged_in_exits_cleanly() {
    require_libiscsi!();
    let mut t = start();
    let mut c = RawConn::connect(t.port).expect("connect");
    c.login(INITIATOR, Some(&t.iqn.clone())).expect("login");
    c.ping(b"still here");
    let out = run_tool("iscsi-inq", &["-i", INITIATOR, &t.url(0)], T);
    out.expect_ok();
    t.assert_alive("sessions");
    if t.is_external() {
        return;
    }
    // Target::stop asserts exit status 0 after SIGTERM with the session open
    t.stop();
    drop(c);
}

#[test]
fn header_digest_crc32c_data_path() {
    require_libiscsi!();
    let mut t = start();
    let url = t.url(0);
    let bs = t.lun(0).block_size.to_string();
    let hd = "--header-digest-crc32c";
    let w = libiscsi_rw(&["write", &url, "30000", "1024", &bs, "digest", "--chunk-blocks", "512", hd], T);
    assert!(w.success(), "write with HeaderDigest=CRC32C: {w}\ndaemon log:\n{}", t.log());
    let r = libiscsi_rw(&["verify", &url, "30000", "1024", &bs, "digest", "--chunk-blocks", "512", hd], T);
    assert!(r.success(), "read-back with HeaderDigest=CRC32C: {r}\ndaemon log:\n{}", t.log());
    // and the same blocks through a session without digests
    let r = libiscsi_rw(&["verify", &url, "30000", "1024", &bs, "digest"], T);
    assert!(r.success(), "read-back without digests: {r}");
    t.assert_alive("header digests");
}
