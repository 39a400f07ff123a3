//! PERSISTENT RESERVE OUT PREEMPT AND ABORT over TCP against the daemon
//! (SPC-4 §5.13.11.2.5), with two sessions on a two-shard target: the
//! preempted session's outstanding commands — writes waiting for their
//! R2T'd data and a command held behind a CmdSN gap — end with TASK
//! ABORTED (TAS = 1), its next command reports REGISTRATIONS PREEMPTED, and
//! the preempting session is undisturbed.

use std::time::{Duration, Instant};

use shardtgt_core::pdu::{Bhs, Opcode};
use shardtgt_tests::initiator::{cdb, RawConn, ReadOutcome};
use shardtgt_tests::{Target, TargetSpec};

fn prout(c: &mut RawConn, sa: u8, rtype: u8, key: u64, sa_key: u64) -> u8 {
    let cdb = [0x5f, sa, rtype, 0, 0, 0, 0, 0, 24, 0];
    let mut p = [0u8; 24];
    p[..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    c.scsi_write(0, &cdb, &p).status
}

fn logged_in(t: &Target, name: &str) -> RawConn {
    let mut c = RawConn::connect(t.port).expect("connect");
    c.login(name, Some(&t.iqn)).expect("login");
    c.clear_unit_attention(0);
    c
}

/// Send a SCSI command without waiting; returns its ITT.
fn send_cmd(c: &mut RawConn, bhs: &Bhs) -> u32 {
    c.send_pdu(bhs, &[]).expect("send");
    bhs.itt()
}

/// Read PDUs until every ITT in `want` has its SCSI Response; returns
/// (ITT, status, sense) in arrival order. R2Ts are noted and ignored.
fn responses(c: &mut RawConn, want: &[u32], within: Duration) -> Vec<(u32, u8, Vec<u8>)> {
    let end = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < want.len() {
        let left = end.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "responses for {want:x?} not all in within {within:?}; got {got:x?}");
        match c.read_pdu(left) {
            ReadOutcome::Pdu(p) => match p.opcode() {
                Opcode::SCSI_RESPONSE => {
                    c.exp_statsn = p.statsn().wrapping_add(1);
                    let sense = if p.data.len() >= 2 { p.data[2..].to_vec() } else { Vec::new() };
                    assert!(want.contains(&p.bhs.itt()), "response for an unexpected task: {p:?}");
                    got.push((p.bhs.itt(), p.bhs.0[3], sense));
                }
                Opcode::R2T | Opcode::NOP_IN => {}
                other => panic!("unexpected {other:?}: {p:?}"),
            },
            ReadOutcome::Timeout => {}
            other => panic!("connection ended: {other:?}"),
        }
    }
    got
}

#[test]
fn preempt_and_abort_aborts_the_other_sessions_outstanding_commands() {
    let t = Target::start(&TargetSpec::standard());
    let mut a = logged_in(&t, "iqn.2026-11.test:pr-a");
    let mut b = logged_in(&t, "iqn.2026-11.test:pr-b");
    assert_eq!(prout(&mut a, 0, 0, 0, 0xa), 0, "A registers");
    assert_eq!(prout(&mut b, 0, 0, 0, 0xb), 0, "B registers");
    assert_eq!(prout(&mut b, 1, 1, 0xb, 0), 0, "B reserves WRITE EXCLUSIVE");

    // B: four writes whose data it never sends (each waits for its R2T'd
    // Data-Out) and a READ held behind a CmdSN gap.
    let mut outstanding = Vec::new();
    for i in 0..4u32 {
        let bhs = b.scsi_cmd_bhs(0, &cdb::write10(100 + i, 1), false, true, 512, 0);
        outstanding.push(send_cmd(&mut b, &bhs));
    }
    let gap = b.scsi_cmd_bhs(0, &cdb::test_unit_ready(), false, false, 0, 0);
    let held = b.scsi_cmd_bhs(0, &cdb::read10(5, 1), true, false, 512, 0);
    let held_itt = send_cmd(&mut b, &held);
    // Every write has its R2T (so the target has them all) before the preemption.
    let mut r2ts = Vec::new();
    while r2ts.len() < outstanding.len() {
        match b.read_pdu(Duration::from_secs(5)) {
            ReadOutcome::Pdu(p) if p.opcode() == Opcode::R2T => r2ts.push(p.bhs.itt()),
            other => panic!("waiting for R2Ts ({r2ts:x?} so far): {other:?}"),
        }
    }
    // An immediate NOP-Out answered means the held READ, sent before it, was taken too.
    b.ping(b"sync");

    assert_eq!(prout(&mut a, 5, 1, 0xa, 0xb), 0, "A: PREEMPT AND ABORT of B");

    // The writes end with TASK ABORTED within B's connection tick.
    let got = responses(&mut b, &outstanding, Duration::from_secs(5));
    for (itt, status, _) in &got {
        assert_eq!(*status, 0x40, "write {itt:#x}: TASK ABORTED; all: {got:x?}");
    }
    // The gap fills: that new command reports the preemption, and the held
    // READ (accepted before it) ends aborted without running.
    let gap_itt = send_cmd(&mut b, &gap);
    let got = responses(&mut b, &[gap_itt, held_itt], Duration::from_secs(5));
    let gap_r = got.iter().find(|x| x.0 == gap_itt).expect("gap response");
    assert_eq!((gap_r.1, gap_r.2[2] & 0x0f, gap_r.2[12], gap_r.2[13]), (2, 6, 0x2a, 0x05), "REGISTRATIONS PREEMPTED");
    assert_eq!(got.iter().find(|x| x.0 == held_itt).map(|x| x.1), Some(0x40), "held READ: TASK ABORTED");

    // Both sessions keep working: B may read (A holds WRITE EXCLUSIVE) but
    // no longer write; A writes.
    assert_eq!(b.scsi_read(0, &cdb::read10(5, 1), 512).status, 0);
    assert_eq!(b.scsi_write(0, &cdb::write10(5, 1), &[1; 512]).status, 0x18, "B: RESERVATION CONFLICT");
    assert_eq!(a.scsi_write(0, &cdb::write10(100, 1), &[2; 512]).status, 0);
    let r = a.scsi_read(0, &cdb::read10(100, 1), 512);
    assert_eq!((r.status, r.data), (0, vec![2; 512]));
    assert_eq!(prout(&mut a, 3, 0, 0xa, 0), 0, "CLEAR");
    a.logout();
    b.logout();
}
