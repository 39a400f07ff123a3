//! ALUA through the management socket (SPC-4 §5.16): `shardtgtadm alua set`
//! changes one target port group's state; every session of the target's
//! LUs gets ASYMMETRIC ACCESS STATE CHANGED, REPORT TARGET PORT GROUPS
//! shows the new state, and the commands the state forbids answer NOT
//! READY — on the sessions of that portal group only. The state is written
//! to the config file and survives a restart.

mod common;
use common::*;

use shardtgt_tests::initiator::{cdb, RawConn, ScsiResult};

const IQN: &str = "iqn.2026-11.io.shardtgt:alua";

fn session(port: u16, name: &str) -> RawConn {
    let mut c = RawConn::connect(port).expect("connect");
    c.login(name, Some(IQN)).expect("login");
    c.clear_unit_attention(0);
    c
}

fn sense(r: &ScsiResult) -> (u8, u8, u16) {
    (r.status, r.sense_key(), r.asc_ascq())
}

/// (target port group, state) of every descriptor of REPORT TARGET PORT GROUPS.
fn rtpg(c: &mut RawConn) -> Vec<(u16, u8)> {
    let r = c.scsi_read(0, &[0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], 256);
    assert_eq!(r.status, 0, "RTPG: {r:?}");
    r.data[4..].chunks(12).map(|d| (u16::from_be_bytes([d[2], d[3]]), d[0] & 0x0f)).collect()
}

fn read(c: &mut RawConn) -> ScsiResult {
    c.scsi_read(0, &cdb::read10(0, 1), 512)
}

#[test]
fn alua_state_set_by_admin_is_reported_enforced_and_persisted() {
    let d = dir("alua", "e2e");
    let cfg = d.join("shardtgt.toml");
    let sock = d.join("adm.sock");
    let (p1, p2) = (free_port(), free_port());
    let daemon = Daemon::start(&cfg, &sock);
    ok(&sock, &["portal", "add", &format!("127.0.0.1:{p1}")]);
    ok(&sock, &["portal", "add", &format!("127.0.0.1:{p2}"), "--tpgt", "2"]);
    ok(&sock, &["target", "new", IQN]);
    ok(&sock, &["lun", "new", "1", "0", "--backend", "ram", "--size", "16MiB"]);
    let mut a = session(p1, "iqn.2026-11.test:alua-a");
    let mut b = session(p2, "iqn.2026-11.test:alua-b");
    assert_eq!(rtpg(&mut a), vec![(1, 0), (2, 0)], "both groups active/optimized");

    let cases = [("standby", 2u8, 0x040b_u16), ("unavailable", 3, 0x040c), ("transitioning", 0xf, 0x040a)];
    for (name, code, asc) in cases {
        ok(&sock, &["alua", "set", IQN, "1", name]);
        // Every nexus of the LU learns of the change first.
        for c in [&mut a, &mut b] {
            let r = c.scsi_read(0, &cdb::test_unit_ready(), 0);
            assert_eq!(sense(&r), (2, 6, 0x2a06), "{name}: ASYMMETRIC ACCESS STATE CHANGED");
        }
        assert_eq!(rtpg(&mut a), vec![(1, code), (2, 0)], "{name}");
        assert_eq!(sense(&read(&mut a)), (2, 2, asc), "{name}: READ through group 1 is NOT READY");
        let inq = a.scsi_read(0, &cdb::inquiry(false, 0, 96), 96);
        assert_eq!(inq.status, 0, "{name}: INQUIRY still served");
        assert_eq!(read(&mut b).status, 0, "{name}: group 2 unaffected");
    }
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains(r#"alua = { 1 = "transitioning" }"#), "persisted: {text}");

    // A bad state: one line, exit 1, nothing changed.
    let o = adm(&sock, &["alua", "set", IQN, "1", "sleepy"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("unknown ALUA state `sleepy`") && err.trim().lines().count() == 1, "{err}");
    assert!(ok(&sock, &["target", "show"]).contains("tpg 1 transitioning"));

    // Restart: the state is back from the file.
    drop(a);
    drop(b);
    drop(daemon);
    let _daemon = Daemon::start(&cfg, &sock);
    let mut a = session(p1, "iqn.2026-11.test:alua-a");
    assert_eq!(rtpg(&mut a), vec![(1, 0xf), (2, 0)]);
    assert_eq!(sense(&read(&mut a)), (2, 2, 0x040a));
    ok(&sock, &["alua", "set", "1", "1", "active-optimized"]);
    assert_eq!(sense(&a.scsi_read(0, &cdb::test_unit_ready(), 0)), (2, 6, 0x2a06));
    assert_eq!(read(&mut a).status, 0);
    assert!(!std::fs::read_to_string(&cfg).unwrap().contains("alua = "), "the default is not written");
    let _ = std::fs::remove_dir_all(&d);
}
