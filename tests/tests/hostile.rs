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
//!
//! After each case the daemon's open fds must be back exactly to the
//! baseline taken after a warm-up session, and its RSS within
//! [`RSS_TOLERANCE_KIB`] of it (`shardtgt_tests::resources`): one leaked
//! connection is an fd, and one leaked receive buffer alone is 256 KiB.

use shardtgt_core::pdu::bhs::{Bhs, Opcode, BHS_LEN};
use shardtgt_core::pdu::{LoginStatus, RejectReason};
use shardtgt_tests::initiator::{cdb, LoginError, RawConn, ReadOutcome, RecvPdu};
use shardtgt_tests::resources::{self, Usage};
use shardtgt_tests::{assert_iscsi_inq_works, Target, TargetSpec};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const INITIATOR: &str = "iqn.2026-11.test:hostile";
/// Login timeout configured for these tests; connections that never finish a
/// login must be gone within this plus [`GRACE`].
const LOGIN_TIMEOUT_MS: u64 = 3_000;
const GRACE: Duration = Duration::from_secs(7);

/// RSS a hostile case may leave behind (allocator slack; see the module docs).
const RSS_TOLERANCE_KIB: u64 = 2 * 1024;

/// Resource baselines of the daemons started here, by pid.
static BASELINES: Mutex<Vec<(u32, Usage)>> = Mutex::new(Vec::new());

fn start() -> Target {
    start_spec(TargetSpec { login_timeout_ms: LOGIN_TIMEOUT_MS, ..TargetSpec::standard() })
}

/// Start a daemon, run one well-behaved session through it (so buffers and
/// pools reach their working size) and record its RSS and fd baseline.
fn start_spec(spec: TargetSpec) -> Target {
    let mut t = Target::start(&spec);
    serves_a_good_session(&mut t, "start-up");
    if let Some(pid) = t.pid() {
        let u = resources::settle(pid, resources::usage(pid), 0, Duration::from_millis(500));
        BASELINES.lock().unwrap_or_else(|e| e.into_inner()).push((pid, u));
    }
    t
}

fn baseline(t: &Target) -> Option<(u32, Usage)> {
    let pid = t.pid()?;
    BASELINES.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|(p, _)| *p == pid).copied()
}

fn drop_deadline() -> Duration {
    Duration::from_millis(LOGIN_TIMEOUT_MS) + GRACE
}

/// The daemon is alive, serves a well-behaved session, and is back to its
/// fd and RSS baseline.
fn assert_healthy(t: &mut Target, context: &str) {
    serves_a_good_session(t, context);
    if let Some((pid, base)) = baseline(t) {
        resources::assert_back_to_baseline(pid, base, RSS_TOLERANCE_KIB, context);
    }
}

fn serves_a_good_session(t: &mut Target, context: &str) {
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
        drop(c);
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
    drop(c);
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

#[test]
fn bhs_sent_one_byte_at_a_time_then_stalled_is_dropped_at_the_login_timeout() {
    let mut t = start();
    let opened = Instant::now();
    let mut c = RawConn::connect(t.port).expect("connect");
    let b = c.login_bhs(0, 1, true, 0);
    // 47 of the 48 header bytes, one per send, 20 ms apart; then silence.
    for byte in &b.0[..BHS_LEN - 1] {
        if c.send_bytes(std::slice::from_ref(byte)).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_dropped(&mut c, "a login header sent a byte at a time, then stalled");
    let after = opened.elapsed();
    assert!(
        after >= Duration::from_millis(LOGIN_TIMEOUT_MS - 200),
        "dropped after {after:?}, before the {LOGIN_TIMEOUT_MS} ms login timeout: trickling bytes is allowed"
    );
    assert_healthy(&mut t, "a trickled and stalled login header");
}

/// A daemon that pings idle connections every second and drops one whose
/// ping goes unanswered for two: a PDU whose lengths promise bytes that
/// never come leaves the connection silent, and this is how it ends.
fn start_with_short_nop_timeout() -> Target {
    start_spec(TargetSpec {
        login_timeout_ms: LOGIN_TIMEOUT_MS,
        nop_interval_ms: 1_000,
        extra_global: "nop_timeout_ms = 2000\n".into(),
        ..TargetSpec::standard()
    })
}

#[test]
fn lengths_that_promise_more_than_is_sent_end_at_the_nop_timeout() {
    let mut t = start_with_short_nop_timeout();
    // DataSegmentLength 4096 with 100 bytes sent; TotalAHSLength 1020 bytes
    // with none sent. The target waits for the rest of the PDU, pings, and
    // drops the connection when the ping goes unanswered.
    for (what, ahs_words, dsl, sent) in [
        ("DataSegmentLength 4096, 100 bytes sent", 0u8, 4096usize, 100usize),
        ("TotalAHSLength 1020, no AHS", 255, 0, 0),
    ] {
        let mut c = logged_in(&t);
        let itt = c.itt();
        let mut b = c.nop_out_bhs(itt, 0xffff_ffff, dsl);
        b.0[4] = ahs_words;
        let mut bytes = b.0.to_vec();
        bytes.extend(noise(5, sent));
        c.send_bytes(&bytes).expect("send");
        let opened = Instant::now();
        match c.expect_close(Duration::from_secs(10)) {
            Ok(seen) => {
                for p in &seen {
                    let ping = p.opcode() == Opcode::NOP_IN && p.bhs.itt() == 0xffff_ffff;
                    assert!(ping || p.opcode() == Opcode::REJECT, "{what}: the target answered {p:?}");
                }
            }
            Err(seen) => panic!("{what}: still open after 10 s; target sent {seen:?}"),
        }
        assert!(opened.elapsed() >= Duration::from_millis(1_500), "{what}: dropped before the NOP timeout");
        assert_healthy(&mut t, what);
    }
}

#[test]
fn lengths_that_promise_less_than_is_sent_are_refused() {
    let mut t = start();
    // DataSegmentLength 0 followed by 100 bytes: those bytes are read as the
    // next header (noise), which must be refused, not obeyed.
    let mut c = logged_in(&t);
    let itt = c.itt();
    let b = c.nop_out_bhs(itt, 0xffff_ffff, 0);
    let mut bytes = b.0.to_vec();
    bytes.extend(noise(11, 100));
    c.send_bytes(&bytes).expect("send");
    let mut seen = Vec::new();
    loop {
        match c.recv_outcome(drop_deadline()) {
            ReadOutcome::Pdu(p) => seen.push(p),
            ReadOutcome::Closed => break,
            // Noise whose first 48 bytes announce more data than follows
            // waits like any partial PDU.
            ReadOutcome::Timeout => break,
        }
    }
    // At most the honest NOP-Out is answered (the answer may be lost when
    // the noise makes the target drop the connection at once); the noise is
    // only ever refused.
    let rest = match seen.first() {
        Some(p) if p.opcode() == Opcode::NOP_IN && p.bhs.itt() == itt => &seen[1..],
        _ => &seen[..],
    };
    assert_refusals(rest, "noise after a NOP-Out with DataSegmentLength 0");
    drop(c);
    // An AHS whose own length overruns TotalAHSLength: Reject (invalid PDU field).
    let mut c = logged_in(&t);
    let mut b = c.scsi_cmd_bhs(0, &cdb::test_unit_ready(), false, false, 0, 0);
    b.0[4] = 2; // 8 bytes of AHS
    let mut bytes = b.0.to_vec();
    bytes.extend([0x03, 0xff, 0x01, 0x00, 0, 0, 0, 0]); // AHSLength 0x03ff, type 1 (extended CDB)
    c.send_bytes(&bytes).expect("send");
    match c.recv_outcome(drop_deadline()) {
        ReadOutcome::Pdu(p) => {
            assert_eq!(p.opcode(), Opcode::REJECT, "{p:?}");
            assert_eq!(RejectReason(p.reject_reason()), RejectReason::INVALID_PDU_FIELD, "{p:?}");
            c.ping(b"after an AHS that lies");
        }
        ReadOutcome::Closed => {}
        ReadOutcome::Timeout => panic!("an AHS longer than TotalAHSLength: neither rejected nor dropped"),
    }
    drop(c);
    assert_healthy(&mut t, "PDU lengths that claim less than is sent");
}

/// Log in with CRC32C header and data digests.
fn logged_in_with_digests(t: &Target, extra: &[(&str, &str)]) -> RawConn {
    let mut c = RawConn::connect(t.port).expect("connect");
    let mut keys = vec![("HeaderDigest", "CRC32C"), ("DataDigest", "CRC32C")];
    keys.extend_from_slice(extra);
    c.login_with(INITIATOR, Some(&t.iqn), &keys).unwrap_or_else(|e| panic!("login with digests: {e:?}"));
    assert!(c.header_digest && c.data_digest, "digests not negotiated: {:?}", c.target_keys);
    c
}

/// A Data-Out header for one R2T sequence of task `(lun, itt, ttt)`.
fn data_out(c: &RawConn, (lun, itt, ttt): (u16, u32, u32), datasn: u32, offset: u32, len: usize, last: bool) -> Bhs {
    let mut d = Bhs::default();
    d.0[0] = Opcode::DATA_OUT.0;
    d.0[1] = if last { 0x80 } else { 0 };
    d.set_data_len(len as u32);
    d.put_u64(8, shardtgt_core::ids::Lun::from_index(lun).0);
    d.put_u32(16, itt);
    d.put_u32(20, ttt);
    d.put_u32(28, c.exp_statsn);
    d.put_u32(36, datasn);
    d.put_u32(40, offset);
    d
}

#[test]
fn wrong_header_digest_drops_the_connection() {
    let mut t = start();
    let mut c = logged_in_with_digests(&t, &[]);
    let r = c.clear_unit_attention(t.lun(0).lun);
    assert_eq!(r.status, 0, "digests on: {r:?}");
    let itt = c.itt();
    let b = c.nop_out_bhs(itt, 0xffff_ffff, 0);
    let mut bytes = c.frame_pdu(&b, &[]);
    bytes[BHS_LEN] ^= 0x01; // the header digest
    c.send_bytes(&bytes).expect("send");
    // RFC 7143 §7.8 (a): the framing is in doubt; we close the connection.
    assert_dropped(&mut c, "a header digest error");
    assert_healthy(&mut t, "a header digest error");
}

#[test]
fn wrong_data_digests_are_rejected_and_fail_only_their_task() {
    let mut t = start();
    let lun = t.lun(0).lun;
    let mut c = logged_in_with_digests(&t, &[("InitialR2T", "Yes"), ("ImmediateData", "No")]);
    let r = c.clear_unit_attention(lun);
    assert_eq!(r.status, 0);
    let old = noise(21, 8192);
    let w = c.scsi_write(lun, &cdb::write10(64, 16), &old);
    assert_eq!(w.status, 0, "write with digests: {w:?}");
    let back = c.scsi_read(lun, &cdb::read10(64, 16), 8192);
    assert!(back.status == 0 && back.data == old, "read back with digests");

    // A NOP-Out whose data digest is wrong: Reject (data digest error), and
    // the session goes on (RFC 7143 §7.8 (b), non-data PDU).
    let itt = c.itt();
    let b = c.nop_out_bhs(itt, 0xffff_ffff, 8);
    let mut bytes = c.frame_pdu(&b, b"corrupt!");
    let n = bytes.len();
    bytes[n - 1] ^= 0x80;
    c.send_bytes(&bytes).expect("send");
    let p = c.recv();
    assert_eq!(p.opcode(), Opcode::REJECT, "{p:?}");
    assert_eq!(RejectReason(p.reject_reason()), RejectReason::DATA_DIGEST_ERROR);
    assert_eq!(p.data.get(..BHS_LEN), Some(&b.0[..]), "the Reject carries the NOP-Out's BHS");
    c.ping(b"after a data digest error");

    // A WRITE whose first Data-Out has a wrong data digest: Reject, then —
    // once the rest of the data is in — CHECK CONDITION, ABORTED COMMAND,
    // PROTOCOL SERVICE CRC ERROR (47/05); nothing reaches the medium.
    let b = c.scsi_cmd_bhs(lun, &cdb::write10(64, 16), false, true, 8192, 0);
    let itt = b.itt();
    c.send_pdu(&b, &[]).expect("send WRITE");
    let r2t = c.recv();
    assert_eq!(r2t.opcode(), Opcode::R2T, "{r2t:?}");
    let ttt = r2t.bhs.u32_at(20);
    let new = noise(22, 8192);
    let d0 = data_out(&c, (lun, itt, ttt), 0, 0, 4096, false);
    let mut bytes = c.frame_pdu(&d0, &new[..4096]);
    let n = bytes.len();
    bytes[n - 3] ^= 0x10;
    c.send_bytes(&bytes).expect("send Data-Out");
    let p = c.recv();
    assert_eq!(p.opcode(), Opcode::REJECT, "{p:?}");
    assert_eq!(RejectReason(p.reject_reason()), RejectReason::DATA_DIGEST_ERROR);
    let d1 = data_out(&c, (lun, itt, ttt), 1, 4096, 4096, true);
    c.send_pdu(&d1, &new[4096..]).expect("send Data-Out");
    let p = c.recv();
    assert_eq!(p.opcode(), Opcode::SCSI_RESPONSE, "{p:?}");
    assert_eq!(p.bhs.itt(), itt);
    assert_eq!(p.bhs.0[3], 0x02, "CHECK CONDITION: {p:?}");
    let sense = &p.data[2..];
    assert_eq!(sense[2] & 0x0f, 0x0b, "ABORTED COMMAND: {sense:02x?}");
    assert_eq!((sense[12], sense[13]), (0x47, 0x05), "PROTOCOL SERVICE CRC ERROR: {sense:02x?}");
    c.exp_statsn = p.statsn().wrapping_add(1);
    let back = c.scsi_read(lun, &cdb::read10(64, 16), 8192);
    assert!(back.status == 0 && back.data == old, "a write with a corrupt Data-Out changed the medium");
    c.logout();
    drop(c);

    // Immediate data with a wrong digest: Reject, then the connection goes
    // (a discarded command would leave a CmdSN hole that ERL 0 cannot fill).
    let mut c = logged_in_with_digests(&t, &[]);
    let _ = c.clear_unit_attention(lun);
    let b = c.scsi_cmd_bhs(lun, &cdb::write10(64, 1), false, true, 512, 512);
    let mut bytes = c.frame_pdu(&b, &[0x5a; 512]);
    let n = bytes.len();
    bytes[n - 2] ^= 0x01;
    c.send_bytes(&bytes).expect("send");
    match c.expect_close(drop_deadline()) {
        Ok(seen) => assert!(
            seen.iter()
                .any(|p| p.opcode() == Opcode::REJECT
                    && RejectReason(p.reject_reason()) == RejectReason::DATA_DIGEST_ERROR),
            "no data-digest Reject before the close: {seen:?}"
        ),
        Err(seen) => panic!("corrupt immediate data: connection still open; target sent {seen:?}"),
    }
    assert_healthy(&mut t, "data digest errors");
}

/// Open `sessions` sessions with InitialR2T=Yes and ImmediateData=No and
/// send `per_session` WRITE(10)s of `blocks` 512-byte blocks on each, never
/// answering an R2T. Returns the connections and how many R2Ts came.
fn write_flood(t: &Target, sessions: usize, per_session: usize, blocks: u16) -> (Vec<RawConn>, usize) {
    let lun = t.lun(0).lun;
    let span = (t.lun(0).blocks() - u64::from(blocks)) as u32;
    let mut conns = Vec::with_capacity(sessions);
    for s in 0..sessions {
        let mut c = RawConn::connect(t.port).expect("connect");
        c.login_with(&format!("{INITIATOR}-flood{s}"), Some(&t.iqn), &[("InitialR2T", "Yes"), ("ImmediateData", "No")])
            .unwrap_or_else(|e| panic!("flood login {s}: {e:?}"));
        let r = c.clear_unit_attention(lun);
        assert_eq!(r.status, 0);
        let mut bytes = Vec::new();
        for i in 0..per_session {
            let lba = ((s * per_session + i) as u32 * u32::from(blocks)) % span;
            let b = c.scsi_cmd_bhs(lun, &cdb::write10(lba, blocks), false, true, u32::from(blocks) * 512, 0);
            bytes.extend(c.frame_pdu(&b, &[]));
        }
        c.send_bytes(&bytes).expect("send the flood");
        conns.push(c);
    }
    let mut r2ts = 0;
    for c in &mut conns {
        loop {
            match c.read_pdu(Duration::from_millis(300)) {
                ReadOutcome::Pdu(p) if p.opcode() == Opcode::R2T => r2ts += 1,
                ReadOutcome::Pdu(p) => panic!("flooding session got {p:?}"),
                ReadOutcome::Timeout => break,
                ReadOutcome::Closed => panic!("the target dropped a flooding session"),
            }
        }
    }
    (conns, r2ts)
}

/// A well-behaved session beside a flood: commands, reads, and a write whose
/// data goes as immediate data (4 KiB, no R2T needed) all work.
fn good_session_beside(t: &Target, context: &str) {
    let lun = t.lun(0).lun;
    let mut c = RawConn::connect(t.port).expect("connect");
    c.login("iqn.2026-11.test:beside", Some(&t.iqn)).unwrap_or_else(|e| panic!("login beside {context}: {e:?}"));
    let r = c.clear_unit_attention(lun);
    assert_eq!(r.status, 0, "TEST UNIT READY beside {context}");
    let data = noise(31, 4096);
    let w = c.scsi_write(lun, &cdb::write10(100_000, 8), &data);
    assert_eq!(w.status, 0, "4 KiB write beside {context}: {w:?}");
    let r = c.scsi_read(lun, &cdb::read10(100_000, 8), 4096);
    assert!(r.status == 0 && r.data == data, "read back beside {context}");
    let r = c.scsi_read(lun, &cdb::read10(0, 256), 128 * 1024);
    assert_eq!(r.status, 0, "128 KiB read beside {context}");
    c.ping(b"beside");
    c.logout();
}

/// 10,000 WRITEs waiting for R2Ts the initiator never answers (79 sessions
/// × a full CmdSN window of 128, InitialR2T=Yes): the write budget (16 MiB
/// per shard here) caps what they hold — exactly 256 of the 64 KiB writes
/// per shard get an R2T, the rest wait without a buffer — a well-behaved
/// session keeps working beside them, and once they close RSS and fds come
/// back to the baseline.
#[test]
fn ten_thousand_writes_waiting_for_r2t() {
    const WRITES: usize = 10_000;
    const QUEUE_DEPTH: usize = 128; // TargetSpec's queue_depth
    const BUDGET_MIB: usize = 16;
    const SHARDS: usize = 2;
    let mut t = start_spec(TargetSpec {
        login_timeout_ms: LOGIN_TIMEOUT_MS,
        nop_interval_ms: 0,
        shards: SHARDS as u32,
        // Reading 79 sessions' R2Ts takes longer than the default 15 s
        // solicited-data timeout, which would drop the first sessions.
        extra_global: format!("write_buffer_budget_mib = {BUDGET_MIB}\nr2t_timeout_ms = 600000\n"),
        ..TargetSpec::standard()
    });
    let base = baseline(&t).map(|(_, u)| u);
    let sessions = WRITES.div_ceil(QUEUE_DEPTH);
    let (conns, r2ts) = write_flood(&t, sessions, QUEUE_DEPTH, 128);
    let outstanding = sessions * QUEUE_DEPTH;
    let during = t.pid().map(resources::usage);
    eprintln!("{outstanding} writes outstanding on {sessions} sessions: {r2ts} R2Ts; resources {base:?} -> {during:?}");
    assert!(outstanding >= WRITES);
    assert_eq!(r2ts, SHARDS * (BUDGET_MIB << 20) / (64 << 10), "R2Ts beyond the write budget");
    if let (Some(b), Some(d)) = (base, during) {
        // Without the budget these writes would hold 625 MiB of buffers.
        // With it: 32 MiB of grants plus the sessions' own state.
        let grown = d.rss_kib.saturating_sub(b.rss_kib);
        assert!(grown < 96 * 1024, "RSS grew by {grown} KiB with {outstanding} writes outstanding");
        assert_eq!(d.fds, b.fds + sessions, "one fd per session");
    }
    good_session_beside(&t, "10,000 writes waiting for R2T");
    drop(conns);
    assert_healthy(&mut t, "10,000 writes waiting for R2T, then closed");
}

/// The write budget over TCP, on one shard of 8 MiB: a flood of 256 writes of
/// 1 MiB gets exactly 8 R2Ts and RSS stays near the budget; a well-behaved
/// write that needs an R2T waits (backpressure, not an error) and completes
/// as soon as the flood's connections go.
#[test]
fn write_budget_bounds_memory_and_applies_backpressure() {
    const BUDGET_MIB: usize = 8;
    let mut t = start_spec(TargetSpec {
        login_timeout_ms: LOGIN_TIMEOUT_MS,
        nop_interval_ms: 0,
        shards: 1,
        extra_global: format!("write_buffer_budget_mib = {BUDGET_MIB}\n"),
        ..TargetSpec::standard()
    });
    let base = baseline(&t).map(|(_, u)| u);
    let (conns, r2ts) = write_flood(&t, 4, 64, 2048);
    let during = t.pid().map(resources::usage);
    eprintln!("256 x 1 MiB writes outstanding: {r2ts} R2Ts; resources {base:?} -> {during:?}");
    assert_eq!(r2ts, BUDGET_MIB, "one 1 MiB grant per MiB of budget");
    if let (Some(b), Some(d)) = (base, during) {
        let grown = d.rss_kib.saturating_sub(b.rss_kib);
        // 256 MiB without the budget.
        assert!(grown < (BUDGET_MIB as u64 + 16) * 1024, "RSS grew by {grown} KiB");
    }
    // A 256 KiB write beside it: 64 KiB immediate, the rest needs an R2T,
    // which must wait for the budget.
    let port = t.port;
    let iqn = t.iqn.clone();
    let lun = t.lun(0).lun;
    let data = noise(41, 256 * 1024);
    let expect = data.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let writer = std::thread::spawn(move || {
        let mut c = RawConn::connect(port).expect("connect");
        c.login("iqn.2026-11.test:waits", Some(&iqn)).expect("login");
        let _ = c.clear_unit_attention(lun);
        tx.send(Instant::now()).expect("signal");
        let w = c.scsi_write(lun, &cdb::write10(120_000, 512), &data);
        let done = Instant::now();
        let r = c.scsi_read(lun, &cdb::read10(120_000, 512), data.len() as u32);
        c.logout();
        (w, done, r)
    });
    let started = rx.recv().expect("writer started");
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(!writer.is_finished(), "a write needing an R2T finished while the budget was spent");
    let released = Instant::now();
    drop(conns);
    let (w, done, r) = writer.join().expect("writer");
    assert_eq!(w.status, 0, "the waiting write: {w:?}");
    assert!(r.status == 0 && r.data == expect, "read back of the waiting write");
    eprintln!(
        "waiting write: issued, waited {:?}, completed {:?} after the flood closed",
        released - started,
        done.saturating_duration_since(released)
    );
    assert!(done.saturating_duration_since(released) < Duration::from_secs(5));
    assert_healthy(&mut t, "a write flood against an 8 MiB budget");
}

/// A 256 KiB WRITE (64 KiB immediate, the rest by R2T) on a fresh session;
/// returns its status and how long it took from login.
fn timed_256k_write(t: &Target, lba: u32, seed: u64) -> (u8, Duration) {
    let lun = t.lun(0).lun;
    let mut c = RawConn::connect(t.port).expect("connect");
    c.login("iqn.2026-11.test:good-writer", Some(&t.iqn)).expect("login");
    let _ = c.clear_unit_attention(lun);
    let data = noise(seed, 256 * 1024);
    let started = Instant::now();
    let w = c.scsi_write(lun, &cdb::write10(lba, 512), &data);
    let took = started.elapsed();
    let r = c.scsi_read(lun, &cdb::read10(lba, 512), data.len() as u32);
    assert!(r.status == 0 && r.data == data, "read back of the good write");
    c.logout();
    (w.status, took)
}

/// Sessions that are granted write buffers and never send the data: with an
/// 8 MiB budget on one shard, one such session holds at most its share (4
/// MiB), so a well-behaved 256 KiB write beside it gets its R2T at once; two
/// of them fill the budget, and the well-behaved write waits until the
/// solicited-data timeout (`r2t_timeout_ms`, 2 s here) drops them. Every
/// hostile connection is closed at the timeout, and RSS and fds come back
/// to the baseline.
#[test]
fn r2t_holders_are_bounded_by_their_share_and_dropped_at_the_timeout() {
    const BUDGET_MIB: usize = 8;
    const TIMEOUT: Duration = Duration::from_millis(2_000);
    let mut t = start_spec(TargetSpec {
        login_timeout_ms: LOGIN_TIMEOUT_MS,
        nop_interval_ms: 0,
        shards: 1,
        extra_global: format!("write_buffer_budget_mib = {BUDGET_MIB}\nr2t_timeout_ms = {}\n", TIMEOUT.as_millis()),
        ..TargetSpec::standard()
    });

    // One hostile session: 64 writes of 1 MiB, R2Ts never answered.
    let flood_at = Instant::now();
    let (mut conns, r2ts) = write_flood(&t, 1, 64, 2048);
    assert_eq!(r2ts, BUDGET_MIB / 2, "one session gets its share of the budget, no more");
    let (status, took) = timed_256k_write(&t, 120_000, 51);
    let held_for = flood_at.elapsed();
    eprintln!("beside one R2T holder: 256 KiB write took {took:?} ({held_for:?} after the holder's R2Ts)");
    assert_eq!(status, 0);
    assert!(held_for < TIMEOUT, "the holder must still hold its share when the good write completes");
    assert!(took < Duration::from_millis(500), "the good write waited {took:?} beside one holder");
    let c = &mut conns[0];
    match c.expect_close(TIMEOUT + GRACE) {
        Ok(seen) => assert!(seen.is_empty(), "the holder was sent {seen:?} before the close"),
        Err(seen) => panic!("the R2T holder is still connected; target sent {seen:?}"),
    }
    let closed_after = flood_at.elapsed();
    eprintln!("the holder was dropped {closed_after:?} after its R2Ts (timeout {TIMEOUT:?})");
    assert!(closed_after >= TIMEOUT && closed_after < TIMEOUT + Duration::from_millis(1_500), "{closed_after:?}");
    drop(conns);

    // Two hostile sessions take the whole budget: the good write waits for
    // the timeout, then completes.
    let flood_at = Instant::now();
    let (mut conns, r2ts) = write_flood(&t, 2, 64, 2048);
    assert_eq!(r2ts, BUDGET_MIB, "two sessions take the whole budget");
    let (status, took) = timed_256k_write(&t, 121_000, 53);
    let done_after = flood_at.elapsed();
    eprintln!("beside two R2T holders: 256 KiB write took {took:?}, done {done_after:?} after their R2Ts");
    assert_eq!(status, 0);
    assert!(done_after >= TIMEOUT, "the good write completed while the budget was held ({done_after:?})");
    assert!(done_after < TIMEOUT + Duration::from_millis(1_500), "the good write took {done_after:?}");
    for (i, c) in conns.iter_mut().enumerate() {
        if let Err(seen) = c.expect_close(GRACE) {
            panic!("R2T holder {i} is still connected; target sent {seen:?}");
        }
    }
    drop(conns);
    // The admin socket's stats count the three drops and show the budget
    // used at its peak and given back.
    if let Some(stats) = t.admin(r#"{"op":"stats"}"#) {
        let field = |name: &str| -> u64 {
            stats
                .split(&format!("\"{name}\":"))
                .skip(1)
                .map(|v| v.split([',', '}']).next().and_then(|n| n.trim().parse::<u64>().ok()).unwrap_or(0))
                .sum()
        };
        assert_eq!(field("r2t_timeouts"), 3, "stats: {stats}");
        // The peak is the budget, plus the good write's immediate data
        // (at most FirstBurstLength, charged on arrival).
        let budget = (BUDGET_MIB as u64) << 20;
        assert!((budget..=budget + 65536).contains(&field("write_buffer_peak")), "stats: {stats}");
        assert!(field("write_buffer_waits") > 0, "stats: {stats}");
        assert_eq!(field("write_buffer_held"), 0, "every grant given back: {stats}");
    }
    assert_healthy(&mut t, "R2T holders dropped at the solicited-data timeout");
}
