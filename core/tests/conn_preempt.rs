//! PERSISTENT RESERVE OUT PREEMPT AND ABORT through two connections of one
//! LU (SPC-4 §5.13.11.2.5): the preempted nexus's tasks end — the one
//! waiting for Data-Out, the one whose read is in the backend (its data is
//! discarded), the one held for its CmdSN — with TASK ABORTED (TAS = 1) or
//! without a response (TAS = 0); the preempting nexus's own tasks and
//! commands sent after the preemption are untouched; a plain PREEMPT
//! aborts nothing.

mod harness;

use harness::*;
use shardtgt_core::ids::{Itt, Ttt};
use shardtgt_core::pdu::*;

const ISID_A: u64 = 0x8000_0000_000a;
const ISID_B: u64 = 0x8000_0000_000b;

/// Send a PERSISTENT RESERVE OUT with its parameter list as immediate data;
/// returns (status, sense bytes after the 2-byte length).
fn pr_out(h: &mut Harness, sa: u8, rtype: u8, key: u64, sa_key: u64) -> (u8, Vec<u8>) {
    let cdb = [0x5f, sa, rtype, 0, 0, 0, 0, 0, 24, 0];
    let mut p = [0u8; 24];
    p[..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    let cmd = h.scsi_cmd(&cdb, 24, false, true);
    let itt = cmd.itt;
    h.send(&Pdu::ScsiCommand(cmd), &p);
    response(&h.recv(), itt).expect("PR OUT response")
}

/// The SCSI Response (or Data-In with status) for `itt` among `got`.
fn response(got: &Pdus, itt: Itt) -> Option<(u8, Vec<u8>)> {
    got.iter().find_map(|(p, d)| match p {
        Pdu::ScsiResponse(r) if r.itt == itt => Some((r.status, d.get(2..).unwrap_or_default().to_vec())),
        Pdu::DataIn(di) if di.itt == itt && di.has_status => Some((di.status, Vec::new())),
        _ => None,
    })
}

fn data_in_bytes(got: &Pdus, itt: Itt) -> usize {
    got.iter().map(|(p, d)| if matches!(p, Pdu::DataIn(di) if di.itt == itt) { d.len() } else { 0 }).sum()
}

/// WRITE(10) of one block at `lba` without immediate data: it waits for
/// the R2T'd data.
fn start_write(h: &mut Harness, lba: u8) -> (ScsiCommand, Ttt) {
    let cdb = [0x2a, 0, 0, 0, 0, lba, 0, 0, 1, 0];
    let cmd = h.scsi_cmd(&cdb, 512, false, true);
    h.send(&Pdu::ScsiCommand(cmd.clone()), &[]);
    let got = h.recv();
    let ttt = got.iter().find_map(|(p, _)| if let Pdu::R2t(r) = p { Some(r.ttt) } else { None }).expect("R2T");
    (cmd, ttt)
}

fn send_data(h: &mut Harness, w: &ScsiCommand, ttt: Ttt, byte: u8) {
    let d = DataOut { final_: true, lun: w.lun, itt: w.itt, ttt, expstatsn: h.statsn, datasn: 0, buffer_offset: 0 };
    h.send(&Pdu::DataOut(d), &[byte; 512]);
}

fn read_cmd(h: &mut Harness, lba: u8) -> ScsiCommand {
    h.scsi_cmd(&[0x28, 0, 0, 0, 0, lba, 0, 0, 1, 0], 512, true, false)
}

/// Two sessions of one LU: A registered with key 0xA, B registered with
/// key 0xB and holding a WRITE EXCLUSIVE reservation.
fn two_registered() -> (Harness, Harness, std::sync::Arc<shardtgt_core::target::TargetSet>) {
    let set = target_set(small_limits());
    let mut a = harness_on(&set, ISID_A);
    let mut b = harness_on(&set, ISID_B);
    a.login(&[]);
    b.login(&[]);
    assert_eq!(pr_out(&mut a, 0, 0, 0, 0xa).0, 0);
    assert_eq!(pr_out(&mut b, 0, 0, 0, 0xb).0, 0);
    assert_eq!(pr_out(&mut b, 1, 1, 0xb, 0).0, 0, "B reserves WRITE EXCLUSIVE");
    (a, b, set)
}

#[test]
fn preempt_and_abort_ends_every_task_of_the_preempted_nexus() {
    let (mut a, mut b, _set) = two_registered();
    // B: a write waiting for its data, a read in the backend, and a read
    // held behind a CmdSN gap.
    let (w, ttt) = start_write(&mut b, 9);
    b.hold_backend = true;
    let r = read_cmd(&mut b, 3);
    b.send(&Pdu::ScsiCommand(r.clone()), &[]);
    assert!(b.recv().is_empty(), "the read waits in the backend");
    let gap = b.scsi_cmd(&[0u8; 6], 0, false, false);
    let held = read_cmd(&mut b, 4);
    b.send(&Pdu::ScsiCommand(held.clone()), &[]);
    assert!(b.recv().is_empty(), "held for CmdSN");
    // A's own read, in the backend across the preemption, is untouched.
    a.disk[20 * 512..21 * 512].fill(0xaa);
    a.hold_backend = true;
    let ra = read_cmd(&mut a, 20);
    a.send(&Pdu::ScsiCommand(ra.clone()), &[]);

    assert_eq!(pr_out(&mut a, 5, 1, 0xa, 0xb).0, 0, "PREEMPT AND ABORT");

    // B's tick notices the abort: the write waiting for data ends.
    b.advance(100);
    let got = b.recv();
    assert_eq!(response(&got, w.itt).map(|x| x.0), Some(0x40), "write: TASK ABORTED; got {got:?}");
    // Its data, sent anyway, is never written (the task is gone: ignored
    // or rejected, and the connection stays).
    send_data(&mut b, &w, ttt, 0xee);
    let got = b.recv();
    assert!(got.iter().all(|(p, _)| matches!(p, Pdu::Reject(_))), "{got:?}");
    assert_eq!(&b.disk[9 * 512..10 * 512], &[0u8; 512][..]);
    // The read comes back from the backend and is discarded.
    b.disk[3 * 512..4 * 512].fill(0x33);
    b.hold_backend = false;
    let got = b.recv();
    assert_eq!(response(&got, r.itt).map(|x| x.0), Some(0x40), "read in the backend: TASK ABORTED");
    assert_eq!(data_in_bytes(&got, r.itt), 0, "no data of an aborted read");
    // The gap fills: the new command reports the preemption; the held one
    // (accepted before it) is aborted without running.
    b.send(&Pdu::ScsiCommand(gap.clone()), &[]);
    let got = b.recv();
    let (st, sense) = response(&got, gap.itt).expect("TUR response");
    assert_eq!(st, 0x02);
    assert_eq!((sense[2] & 0x0f, sense[12], sense[13]), (0x06, 0x2a, 0x05), "REGISTRATIONS PREEMPTED");
    assert_eq!(response(&got, held.itt).map(|x| x.0), Some(0x40), "held read: TASK ABORTED");
    assert_eq!(data_in_bytes(&got, held.itt), 0);
    // New commands run normally (reads are allowed under A's WRITE EXCLUSIVE).
    let (data, st, _) = b.read10(3, 1);
    assert_eq!((st, data), (0, vec![0x33; 512]));

    // A's read completes with its data.
    a.hold_backend = false;
    let got = a.recv();
    assert_eq!(response(&got, ra.itt).map(|x| x.0), Some(0));
    assert_eq!(data_in_bytes(&got, ra.itt), 512);
}

#[test]
fn with_tas_off_the_aborted_tasks_get_no_response() {
    let (mut a, mut b, set) = two_registered();
    let (w, _) = start_write(&mut b, 9);
    b.hold_backend = true;
    let r = read_cmd(&mut b, 3);
    b.send(&Pdu::ScsiCommand(r.clone()), &[]);
    // MODE SELECT(6) of the Control page with TAS = 0, from B (the
    // reservation holder; A would conflict).
    let page = [0u8, 0, 0, 0, 0x0a, 0x0a, 0x20, 0x10, 0, 0, 0, 0, 0xff, 0xff, 0, 0];
    let cmd = b.scsi_cmd(&[0x15, 0x10, 0, 0, 16, 0], 16, false, true);
    let itt = cmd.itt;
    b.send(&Pdu::ScsiCommand(cmd), &page);
    assert_eq!(response(&b.recv(), itt).map(|x| x.0), Some(0));
    assert!(!set.targets[0].luns[0].shared.tas());
    // A got MODE PARAMETERS CHANGED for B's TAS change.
    let t = a.scsi_cmd(&[0u8; 6], 0, false, false);
    a.send(&Pdu::ScsiCommand(t.clone()), &[]);
    let (st, sense) = response(&a.recv(), t.itt).expect("TUR response");
    assert_eq!((st, sense[12], sense[13]), (0x02, 0x2a, 0x01));
    assert_eq!(pr_out(&mut a, 5, 1, 0xa, 0xb).0, 0);
    b.advance(100);
    b.hold_backend = false;
    let got = b.recv();
    assert!(response(&got, w.itt).is_none() && response(&got, r.itt).is_none(), "no responses: {got:?}");
    assert_eq!(data_in_bytes(&got, r.itt), 0);
    // The aborted tasks' slots and window credits are back: B keeps working
    // (after the unit attention REGISTRATIONS PREEMPTED).
    let mut uas = Vec::new();
    for _ in 0..3 {
        let t = b.scsi_cmd(&[0u8; 6], 0, false, false);
        b.send(&Pdu::ScsiCommand(t.clone()), &[]);
        let (st, sense) = response(&b.recv(), t.itt).expect("TUR response");
        if st == 0 {
            break;
        }
        uas.push((sense[12], sense[13]));
    }
    assert_eq!(uas, vec![(0x2a, 0x05)]);
    for i in 0..20 {
        let (_, st, _) = b.read10(i, 1);
        assert_eq!(st, 0);
    }
}

#[test]
fn plain_preempt_aborts_nothing() {
    let (mut a, mut b, _set) = two_registered();
    let (w, ttt) = start_write(&mut b, 9);
    assert_eq!(pr_out(&mut a, 4, 1, 0xa, 0xb).0, 0, "PREEMPT");
    b.advance(100);
    assert!(response(&b.recv(), w.itt).is_none(), "still waiting for its data");
    send_data(&mut b, &w, ttt, 0x77);
    assert_eq!(response(&b.recv(), w.itt).map(|x| x.0), Some(0), "the running write completes");
    assert_eq!(&b.disk[9 * 512..10 * 512], &[0x77; 512][..]);
}
