//! CHAP and ACLs against the real daemon, through the project's own raw
//! initiator: mutual CHAP with SHA-256, one-way CHAP with MD5 (right and
//! wrong secret), CHAP for discovery, and ACLs by name and by CIDR,
//! including SendTargets hiding (RFC 7143 §12.1.3, §11.13.5).

use shardtgt_core::login::chap::{decode_binary, encode_hex, ChapAlgorithm};
use shardtgt_core::pdu::bhs::Opcode;
use shardtgt_tests::initiator::{cdb, RawConn, ReadOutcome, RecvPdu};
use shardtgt_tests::{DaemonProcess, ScratchDir};

const INITIATOR: &str = "iqn.2026-11.test:chap";
const T_CHAP: &str = "iqn.2026-11.io.shardtgt:chap";
const T_NAME: &str = "iqn.2026-11.io.shardtgt:acl-name";
const T_CIDR: &str = "iqn.2026-11.io.shardtgt:acl-cidr";
const ALICE_SECRET: &str = "alice-secret-123";
const TARGET_SECRET: &str = "target-secret-456";
const DISCOVERY_SECRET: &str = "discovery-secret-7";

fn config(port: u16) -> String {
    format!(
        r#"[global]
shards = 2
[[portal]]
address = "127.0.0.1:{port}"

[discovery_chap]
  [[discovery_chap.incoming]]
  user = "disco"
  secret = "{DISCOVERY_SECRET}"

[[target]]
name = "{T_CHAP}"
  [[target.chap.incoming]]
  user = "alice"
  secret = "{ALICE_SECRET}"
  [target.chap.outgoing]
  user = "target1"
  secret = "{TARGET_SECRET}"
  [[target.lun]]
  lun = 0
  backend = "ram"
  size = "16MiB"

[[target]]
name = "{T_NAME}"
acl = ["{INITIATOR}"]
  [[target.lun]]
  lun = 0
  backend = "ram"
  size = "16MiB"

[[target]]
name = "{T_CIDR}"
acl = ["10.0.0.0/8"]
  [[target.lun]]
  lun = 0
  backend = "ram"
  size = "16MiB"
"#
    )
}

fn start(dir: &ScratchDir) -> DaemonProcess {
    DaemonProcess::start_in(dir.path(), config)
}

fn exchange(c: &mut RawConn, csg: u8, nsg: u8, transit: bool, keys: &[(&str, &str)]) -> RecvPdu {
    match c.login_exchange(csg, nsg, transit, keys) {
        ReadOutcome::Pdu(p) => {
            assert_eq!(p.opcode(), Opcode::LOGIN_RESPONSE, "{p:?}");
            p
        }
        other => panic!("no login response: {other:?}"),
    }
}

/// Security stage up to the challenge: returns (CHAP_I, CHAP_C).
fn start_chap(c: &mut RawConn, first: &[(&str, &str)], algorithms: &str) -> (u8, Vec<u8>) {
    let p = exchange(c, 0, 1, false, first);
    assert_eq!(p.login_status(), 0);
    assert_eq!(p.key("AuthMethod").as_deref(), Some("CHAP"));
    let p = exchange(c, 0, 1, false, &[("CHAP_A", algorithms)]);
    assert_eq!(p.login_status(), 0);
    let id = p.key("CHAP_I").expect("CHAP_I").parse().expect("CHAP_I is a number");
    let challenge = decode_binary(&p.key("CHAP_C").expect("CHAP_C")).expect("CHAP_C is binary");
    assert!(challenge.len() >= 16, "challenge of {} bytes", challenge.len());
    (id, challenge)
}

#[test]
fn mutual_chap_sha256_then_io() {
    let dir = ScratchDir::new("chap-mutual");
    let d = start(&dir);
    let mut c = RawConn::connect(d.port()).expect("connect");
    let (id, challenge) = start_chap(
        &mut c,
        &[("InitiatorName", INITIATOR), ("SessionType", "Normal"), ("TargetName", T_CHAP), ("AuthMethod", "CHAP")],
        "7,5",
    );
    let response = encode_hex(&ChapAlgorithm::Sha256.response(id, ALICE_SECRET.as_bytes(), &challenge));
    let my_challenge = [0x5au8; 32];
    let my_c = encode_hex(&my_challenge);
    let p = exchange(
        &mut c,
        0,
        1,
        true,
        &[("CHAP_N", "alice"), ("CHAP_R", &response), ("CHAP_I", "77"), ("CHAP_C", &my_c)],
    );
    assert_eq!(p.login_status(), 0, "{:?}", p.text_keys());
    // The target proves itself with its own secret.
    assert_eq!(p.key("CHAP_N").as_deref(), Some("target1"));
    let want = encode_hex(&ChapAlgorithm::Sha256.response(77, TARGET_SECRET.as_bytes(), &my_challenge));
    assert_eq!(p.key("CHAP_R"), Some(want));
    assert!(p.bhs.flags() & 0x80 != 0, "transit to the operational stage");
    let p = exchange(&mut c, 1, 3, true, &[]);
    assert_eq!(p.login_status(), 0);
    assert!(p.bhs.flags() & 0x80 != 0 && p.bhs.flags() & 3 == 3, "full feature phase");
    let r = c.scsi_read(0, &cdb::inquiry(false, 0, 96), 96);
    assert_eq!(r.status, 0);
    c.logout();
}

#[test]
fn one_way_chap_md5_right_and_wrong_secret() {
    let dir = ScratchDir::new("chap-oneway");
    let d = start(&dir);
    let first =
        [("InitiatorName", INITIATOR), ("SessionType", "Normal"), ("TargetName", T_CHAP), ("AuthMethod", "CHAP,None")];
    for (secret, ok) in [(ALICE_SECRET, true), ("not-the-secret-99", false)] {
        let mut c = RawConn::connect(d.port()).expect("connect");
        let (id, challenge) = start_chap(&mut c, &first, "5");
        let response = encode_hex(&ChapAlgorithm::Md5.response(id, secret.as_bytes(), &challenge));
        let p = exchange(&mut c, 0, 1, true, &[("CHAP_N", "alice"), ("CHAP_R", &response)]);
        if ok {
            assert_eq!(p.login_status(), 0);
        } else {
            // RFC 7143 §11.13.5: authentication failure.
            assert_eq!(p.login_status(), 0x0201);
        }
    }
    // AuthMethod=None alone is refused for a CHAP target.
    let mut c = RawConn::connect(d.port()).expect("connect");
    let p = exchange(
        &mut c,
        0,
        1,
        true,
        &[("InitiatorName", INITIATOR), ("SessionType", "Normal"), ("TargetName", T_CHAP), ("AuthMethod", "None")],
    );
    assert_eq!(p.login_status(), 0x0201);
}

#[test]
fn discovery_needs_chap_and_hides_denied_targets() {
    let dir = ScratchDir::new("chap-discovery");
    let d = start(&dir);
    // Without CHAP: refused.
    let mut c = RawConn::connect(d.port()).expect("connect");
    let p = exchange(
        &mut c,
        0,
        1,
        true,
        &[("InitiatorName", INITIATOR), ("SessionType", "Discovery"), ("AuthMethod", "None")],
    );
    assert_eq!(p.login_status(), 0x0201);
    // With the discovery account.
    let mut c = RawConn::connect(d.port()).expect("connect");
    let (id, challenge) =
        start_chap(&mut c, &[("InitiatorName", INITIATOR), ("SessionType", "Discovery"), ("AuthMethod", "CHAP")], "5");
    let response = encode_hex(&ChapAlgorithm::Md5.response(id, DISCOVERY_SECRET.as_bytes(), &challenge));
    let p = exchange(&mut c, 0, 1, true, &[("CHAP_N", "disco"), ("CHAP_R", &response)]);
    assert_eq!(p.login_status(), 0);
    let p = exchange(&mut c, 1, 3, true, &[]);
    assert_eq!(p.login_status(), 0);
    let names: Vec<String> = c.send_targets().into_iter().filter(|(k, _)| k == "TargetName").map(|(_, v)| v).collect();
    // The name rule admits us; 127.0.0.1 is outside 10.0.0.0/8.
    assert!(names.contains(&T_CHAP.to_string()), "{names:?}");
    assert!(names.contains(&T_NAME.to_string()), "{names:?}");
    assert!(!names.contains(&T_CIDR.to_string()), "{names:?}");
}

#[test]
fn acl_by_name_and_by_cidr() {
    let dir = ScratchDir::new("acl");
    let d = start(&dir);
    // Admitted by name.
    let mut c = RawConn::connect(d.port()).expect("connect");
    c.login(INITIATOR, Some(T_NAME)).expect("login admitted by name");
    c.logout();
    // Another initiator name: 0x0202.
    let mut c = RawConn::connect(d.port()).expect("connect");
    let p = exchange(
        &mut c,
        0,
        1,
        true,
        &[("InitiatorName", "iqn.2026-11.test:intruder"), ("TargetName", T_NAME), ("AuthMethod", "None")],
    );
    assert_eq!(p.login_status(), 0x0202);
    // 127.0.0.1 is outside 10.0.0.0/8: 0x0202.
    let mut c = RawConn::connect(d.port()).expect("connect");
    let p =
        exchange(&mut c, 0, 1, true, &[("InitiatorName", INITIATOR), ("TargetName", T_CIDR), ("AuthMethod", "None")]);
    assert_eq!(p.login_status(), 0x0202);
}
