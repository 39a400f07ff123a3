//! Hostile initiators over raw TCP: garbage, protocol violations and abrupt
//! disconnects. After each one the daemon must still be running and a
//! well-behaved session (our raw initiator, and libiscsi's `iscsi-inq`) must
//! still work; at the end SIGTERM must still give exit status 0.
//!
//! Where RFC 7143 allows either a Reject or dropping the connection, either
//! is accepted; what is never accepted is a crash, a hang past the login
//! timeout, or treating the bad PDU as a good one.
//!
//! PDUs are laid out byte by byte (see `shardtgt_tests::initiator`), not with
//! the core's codec, so the codec is tested rather than trusted.

use shardtgt_core::pdu::bhs::{Bhs, Opcode, BHS_LEN};
use shardtgt_core::pdu::{LoginStatus, RejectReason};
use shardtgt_tests::initiator::{cdb, LoginError, RawConn, ReadOutcome, RecvPdu};
use shardtgt_tests::{assert_iscsi_inq_works, Target, TargetSpec};
use std::time::Duration;

const INITIATOR: &str = "iqn.2026-11.test:hostile";
/// Login timeout configured for these tests; connections that never finish a
/// login must be gone within this plus [`GRACE`].
const LOGIN_TIMEOUT_MS: u64 = 3_000;
const GRACE: Duration = Duration::from_secs(7);

fn start() -> Target {
    let spec = TargetSpec { login_timeout_ms: LOGIN_TIMEOUT_MS, ..TargetSpec::standard() };
    Target::start(&spec)
}

fn drop_deadline() -> Duration {
    Duration::from_millis(LOGIN_TIMEOUT_MS) + GRACE
}

/// The daemon is alive and serves a well-behaved session.
fn assert_healthy(t: &mut Target, context: &str) {
    t.assert_alive(context);
    let mut c = RawConn::connect(t.port).unwrap_or_else(|e| panic!("connect after {context}: {e}"));
    if let Err(e) = c.login("iqn.2026-11.test:healthy-raw", Some(&t.iqn.clone())) {
        panic!("well-behaved login failed after {context}: {e:?}\ndaemon log:\n{}", t.log());
    }
    let r = c.clear_unit_attention(t.lun(0).lun);
    assert_eq!(r.status, 0, "TEST UNIT READY after {context}: {r:?}");
    c.ping(b"healthy");
    c.logout();
    assert_iscsi_inq_works(t, context);
}

/// Everything the target sent before closing must be a refusal.
fn assert_refusals(seen: &[RecvPdu], context: &str) {
    for p in seen {
        let ok = p.opcode() == Opcode::REJECT
            || (p.opcode() == Opcode::LOGIN_RESPONSE && p.login_status() != LoginStatus::SUCCESS.0);
        assert!(ok, "{context}: the target answered with {p:?} instead of refusing");
    }
}

/// The target closes the connection within the deadline (after refusals, if any).
fn assert_dropped(c: &mut RawConn, context: &str) {
    match c.expect_close(drop_deadline()) {
        Ok(seen) => assert_refusals(&seen, context),
        Err(seen) => panic!("{context}: connection still open after {:?}; target sent {seen:?}", drop_deadline()),
    }
}

fn logged_in(t: &Target) -> RawConn {
    let mut c = RawConn::connect(t.port).expect("connect");
    c.login(INITIATOR, Some(&t.iqn)).unwrap_or_else(|e| panic!("login: {e:?}\ndaemon log:\n{}", t.log()));
    let r = c.clear_unit_attention(t.lun(0).lun);
    assert_eq!(r.status, 0, "TEST UNIT READY after login: {r:?}");
    c
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

#[test]
fn garbage_before_login_is_dropped() {
    let mut t = start();
    let all_ff = vec![0xffu8; BHS_LEN]; // opcode 0x3f (Reject, a target opcode), DSL 16 MiB - 1
    let mut random_scsi = noise(7, 4096); // a "SCSI command" before login, then noise
    random_scsi[0] = Opcode::SCSI_COMMAND.0;
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("48 bytes of 0xff", all_ff, false),
        ("an HTTP request, then EOF", b"GET / HTTP/1.1\r\nHost: shardtgt\r\n\r\n".to_vec(), true),
        ("4 KiB of noise starting with a SCSI opcode", random_scsi, false),
        ("16 KiB of noise", noise(99, 16384), false),
        ("48 zero bytes (a NOP-Out before login)", vec![0u8; BHS_LEN], false),
    ];
    for (what, bytes, eof) in cases {
        let mut c = RawConn::connect(t.port).expect("connect");
        let _ = c.send_bytes(&bytes); // the target may close before reading it all
        if eof {
            c.shutdown_write();
        }
        assert_dropped(&mut c, what);
        assert_healthy(&mut t, what);
    }
}

#[test]
fn idle_and_half_sent_logins_are_dropped_after_the_login_timeout() {
    let mut t = start();
    let mut idle = RawConn::connect(t.port).expect("connect");
    let mut half = RawConn::connect(t.port).expect("connect");
    let b = half.login_bhs(0, 1, true, 0);
    half.send_bytes(&b.0[..20]).expect("send half a BHS");
    assert_dropped(&mut idle, "a connection that never sends anything");
    assert_dropped(&mut half, "a connection that sends half a login header");
    assert_healthy(&mut t, "idle connections");
}

#[test]
fn many_connections_dropped_mid_login() {
    let mut t = start();
    let mut conns = Vec::new();
    for i in 0..64u64 {
        let mut c = RawConn::connect(t.port).expect("connect");
        let b = c.login_bhs(0, 1, true, 100);
        let mut bytes = b.0.to_vec();
        bytes.extend(noise(i, 30)); // 30 of the promised 100 data bytes
        let _ = c.send_bytes(&bytes);
        conns.push(c);
    }
    drop(conns);
    assert_healthy(&mut t, "64 connections closed in the middle of a login PDU");
}

#[test]
fn login_without_initiator_name_gets_missing_parameter() {
    let mut t = start();
    let mut c = RawConn::connect(t.port).expect("connect");
    let iqn = t.iqn.clone();
    let r = c.login_exchange(0, 1, true, &[("SessionType", "Normal"), ("TargetName", &iqn), ("AuthMethod", "None")]);
    match r {
        ReadOutcome::Pdu(p) => {
            assert_eq!(p.opcode(), Opcode::LOGIN_RESPONSE, "{p:?}");
            assert_eq!(
                LoginStatus(p.login_status()),
                LoginStatus::MISSING_PARAMETER,
                "RFC 7143 §11.13.5: InitiatorName is required in the first login request"
            );
        }
        other => panic!("expected a Login Response with status 0x0207, got {other:?}"),
    }
    assert_dropped(&mut c, "after a failed login");
    assert_healthy(&mut t, "a login without InitiatorName");
}

#[test]
fn login_to_an_unknown_target_gets_not_found() {
    let mut t = start();
    let mut c = RawConn::connect(t.port).expect("connect");
    match c.login(INITIATOR, Some("iqn.2026-11.io.shardtgt:no-such-target")) {
        Err(LoginError::Status(s, _)) => assert_eq!(LoginStatus(s), LoginStatus::NOT_FOUND),
        other => panic!("expected login status 0x0203, got {other:?}"),
    }
    assert_dropped(&mut c, "after a login to an unknown target");
    assert_healthy(&mut t, "a login to an unknown target");
}

#[test]
fn unknown_opcodes_after_login_are_rejected() {
    let mut t = start();
    for op in [0x0fu8, 0x1c, 0x1e] {
        let mut c = logged_in(&t);
        let mut b = Bhs::default();
        b.0[0] = 0x40 | op; // immediate, so CmdSN is not consumed
        b.0[1] = 0x80;
        b.put_u32(16, c.itt());
        b.put_u32(24, c.cmdsn);
        b.put_u32(28, c.exp_statsn);
        c.send_pdu(&b, &[]).expect("send");
        match c.recv_outcome(Duration::from_secs(10)) {
            ReadOutcome::Pdu(p) => {
                assert_eq!(p.opcode(), Opcode::REJECT, "opcode {op:#04x}: {p:?}");
                let reason = RejectReason(p.reject_reason());
                assert!(
                    reason == RejectReason::PROTOCOL_ERROR || reason == RejectReason::COMMAND_NOT_SUPPORTED,
                    "opcode {op:#04x}: reject reason {reason:?}, want 0x04 or 0x05 (RFC 7143 §11.17.1)"
                );
                assert_eq!(p.data.get(..BHS_LEN), Some(&b.0[..]), "the Reject carries the rejected BHS");
                // the session goes on
                c.ping(b"after reject");
                c.logout();
            }
            ReadOutcome::Closed => {
                panic!("opcode {op:#04x}: connection dropped; RFC 7143 §11.17.1 wants a Reject")
            }
            ReadOutcome::Timeout => panic!("opcode {op:#04x}: no answer in 10 s"),
        }
        assert_healthy(&mut t, &format!("unknown opcode {op:#04x}"));
    }
}

#[test]
fn target_opcodes_sent_by_an_initiator_are_refused() {
    let mut t = start();
    for op in [Opcode::SCSI_RESPONSE, Opcode::LOGIN_RESPONSE, Opcode::R2T] {
        let mut c = logged_in(&t);
        let mut b = Bhs::default();
        b.0[0] = op.0;
        b.0[1] = 0x80;
        b.put_u32(16, c.itt());
        c.send_pdu(&b, &[]).expect("send");
        match c.recv_outcome(drop_deadline()) {
            ReadOutcome::Pdu(p) => {
                assert_eq!(p.opcode(), Opcode::REJECT, "{op:?} from an initiator: {p:?}");
                c.ping(b"after reject");
            }
            ReadOutcome::Closed => {}
            ReadOutcome::Timeout => panic!("{op:?} from an initiator: neither rejected nor dropped"),
        }
        assert_healthy(&mut t, &format!("{op:?} sent by an initiator"));
    }
}

#[test]
fn data_segment_longer_than_negotiated_is_dropped() {
    let mut t = start();
    let mut c = logged_in(&t);
    let mrdsl = c.target_mrdsl();
    let len = (mrdsl + 4096) as usize;
    let itt = c.itt();
    let b = c.nop_out_bhs(itt, 0xffff_ffff, len);
    let _ = c.send_pdu(&b, &vec![0x5a; len]); // the target may stop reading
    match c.expect_close(drop_deadline()) {
        Ok(seen) => {
            for p in &seen {
                assert_eq!(p.opcode(), Opcode::REJECT, "before dropping, only a Reject: {p:?}");
            }
        }
        Err(seen) => panic!(
            "a {len}-byte data segment (MaxRecvDataSegmentLength {mrdsl}) must drop the connection; \
             got {seen:?}"
        ),
    }
    assert_healthy(&mut t, "an oversized data segment");
}

#[test]
fn scsi_command_in_a_discovery_session_is_refused() {
    let mut t = start();
    let mut c = RawConn::connect(t.port).expect("connect");
    c.login(INITIATOR, None).expect("discovery login");
    let b = c.scsi_cmd_bhs(0, &cdb::inquiry(false, 0, 96), true, false, 96, 0);
    c.send_pdu(&b, &[]).expect("send");
    match c.recv_outcome(drop_deadline()) {
        ReadOutcome::Pdu(p) => {
            assert_eq!(p.opcode(), Opcode::REJECT, "SCSI command in a discovery session: {p:?}");
            // the discovery session itself goes on
            let keys = c.send_targets();
            assert!(keys.iter().any(|(k, _)| k == "TargetName"), "{keys:?}");
        }
        ReadOutcome::Closed => {}
        ReadOutcome::Timeout => panic!("SCSI command in a discovery session: neither rejected nor dropped"),
    }
    assert_healthy(&mut t, "a SCSI command in a discovery session");
}

#[test]
fn connection_dropped_in_the_middle_of_a_write() {
    let mut t = start();
    let lun = t.lun(0).lun;
    {
        let mut c = logged_in(&t);
        // 256 KiB write: immediate data up to FirstBurstLength, then an R2T we never answer
        let data = noise(3, 256 * 1024);
        let b = c.scsi_cmd_bhs(lun, &cdb::write10(4096, 512), false, true, data.len() as u32, 0);
        c.send_pdu(&b, &[]).expect("send");
        match c.recv_outcome(Duration::from_secs(10)) {
            ReadOutcome::Pdu(p) => assert_eq!(p.opcode(), Opcode::R2T, "{p:?}"),
            other => panic!("expected an R2T, got {other:?}"),
        }
        // and vanish
    }
    assert_healthy(&mut t, "a connection dropped while the target waited for Data-Out");
    // the same blocks can still be written and read back
    let mut c = logged_in(&t);
    let data = noise(4, 256 * 1024);
    let w = c.scsi_write(lun, &cdb::write10(4096, 512), &data);
    assert_eq!(w.status, 0, "{w:?}");
    let r = c.scsi_read(lun, &cdb::read10(4096, 512), data.len() as u32);
    assert_eq!(r.status, 0, "{r:?}");
    assert!(r.data == data, "read-back differs after an aborted write to the same blocks");
    c.logout();
}
