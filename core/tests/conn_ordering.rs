//! Task ordering and LU-wide state through the connection: task attributes
//! (SAM-5 §8.6: an ORDERED command waits for every older command and holds
//! back newer SIMPLE ones; HEAD OF QUEUE does not wait), TASK ABORTED for a
//! task that ran across another nexus's LUN reset (TAS), and a COMPARE AND
//! WRITE waiting for a range another shard holds.

mod harness;

use harness::*;
use shardtgt_core::ids::{Itt, Ttt};
use shardtgt_core::pdu::*;

/// A WRITE(10) of one block without immediate data: it waits for its R2T'd
/// data, so it stays executing until we send it.
fn start_write(h: &mut Harness) -> (ScsiCommand, Ttt) {
    let cdb = [0x2a, 0, 0, 0, 0, 9, 0, 0, 1, 0];
    let cmd = h.scsi_cmd(&cdb, 512, false, true);
    h.send(&Pdu::ScsiCommand(cmd.clone()), &[]);
    let got = h.recv();
    let ttt =
        got.iter().find_map(|(p, _)| if let Pdu::R2t(r) = p { Some(r.ttt) } else { None }).expect("R2T for the write");
    (cmd, ttt)
}

fn tur(h: &mut Harness, attr: TaskAttr) -> Itt {
    let mut cmd = h.scsi_cmd(&[0u8; 6], 0, false, false);
    cmd.attr = attr;
    h.send(&Pdu::ScsiCommand(cmd.clone()), &[]);
    cmd.itt
}

fn responses(got: &Pdus) -> Vec<Itt> {
    got.iter().filter_map(|(p, _)| if let Pdu::ScsiResponse(r) = p { Some(r.itt) } else { None }).collect()
}

fn send_data(h: &mut Harness, w: &ScsiCommand, ttt: Ttt) {
    let d = DataOut { final_: true, lun: w.lun, itt: w.itt, ttt, expstatsn: h.statsn, datasn: 0, buffer_offset: 0 };
    h.send(&Pdu::DataOut(d), &[7u8; 512]);
}

#[test]
fn ordered_waits_for_older_and_blocks_newer() {
    let mut h = Harness::new(small_limits());
    h.login(&[("ImmediateData", "No")]);
    let (w, ttt) = start_write(&mut h);
    let ordered = tur(&mut h, TaskAttr::ORDERED);
    let simple = tur(&mut h, TaskAttr::SIMPLE);
    assert!(responses(&h.recv()).is_empty(), "ORDERED waits for the write; SIMPLE waits for ORDERED");
    send_data(&mut h, &w, ttt);
    let order = responses(&h.recv());
    assert_eq!(order, vec![w.itt, ordered, simple]);
    assert_eq!(&h.disk[9 * 512..10 * 512], &[7u8; 512]);
}

#[test]
fn simple_and_head_of_queue_do_not_wait() {
    let mut h = Harness::new(small_limits());
    h.login(&[("ImmediateData", "No")]);
    let (w, ttt) = start_write(&mut h);
    let simple = tur(&mut h, TaskAttr::SIMPLE);
    assert_eq!(responses(&h.recv()), vec![simple]);
    // Behind an ORDERED task, HEAD OF QUEUE still runs at once.
    let ordered = tur(&mut h, TaskAttr::ORDERED);
    let hoq = tur(&mut h, TaskAttr::HEAD_OF_QUEUE);
    assert_eq!(responses(&h.recv()), vec![hoq]);
    send_data(&mut h, &w, ttt);
    assert_eq!(responses(&h.recv()), vec![w.itt, ordered]);
}

#[test]
fn aborting_the_older_task_releases_the_ordered_one() {
    let mut h = Harness::new(small_limits());
    h.login(&[("ImmediateData", "No")]);
    let (w, _) = start_write(&mut h);
    let ordered = tur(&mut h, TaskAttr::ORDERED);
    assert!(responses(&h.recv()).is_empty());
    let itt = h.next_itt();
    let req = TmfRequest {
        immediate: true,
        function: TmfFunction::ABORT_TASK,
        lun: w.lun,
        itt,
        rtt: w.itt,
        cmdsn: h.cmdsn,
        expstatsn: h.statsn,
        refcmdsn: w.cmdsn,
        expdatasn: 0,
    };
    h.send(&Pdu::TmfRequest(req), &[]);
    let got = h.recv();
    assert!(got.iter().any(|(p, _)| matches!(p, Pdu::TmfResponse(_))));
    assert_eq!(responses(&got), vec![ordered]);
}

/// A LUN reset from another nexus (here: straight on the LU's shared state)
/// while a command runs: the command ends with TASK ABORTED (TAS = 1), and
/// the next one reports the reset's unit attention.
#[test]
fn reset_by_another_nexus_ends_running_task_with_task_aborted() {
    use shardtgt_core::conn::{ConnInfo, Connection};
    let mut h = Harness::new(small_limits());
    let set = target_set(small_limits());
    h.conn = Connection::new(set.clone(), h.registry.clone(), ConnInfo { peer: "test".into(), tpgt: 1 }, 0);
    h.login(&[("ImmediateData", "No")]);
    let (w, ttt) = start_write(&mut h);
    set.targets[0].luns[0].shared.lun_reset();
    send_data(&mut h, &w, ttt);
    let got = h.recv();
    let r = got
        .iter()
        .find_map(|(p, _)| if let Pdu::ScsiResponse(r) = p { Some(r.clone()) } else { None })
        .expect("response");
    assert_eq!((r.itt, r.status), (w.itt, 0x40), "TASK ABORTED");
    let t = tur(&mut h, TaskAttr::SIMPLE);
    let got = h.recv();
    let (Pdu::ScsiResponse(r), sense) = &got[0] else { panic!("{got:?}") };
    assert_eq!((r.itt, r.status), (t, 0x02));
    assert_eq!(&sense[2 + 12..2 + 14], &[0x29, 0x03], "BUS DEVICE RESET FUNCTION OCCURRED");
}

/// A COMPARE AND WRITE whose range another shard's CAW holds waits (the
/// connection asks for a 1 ms timer and retries), then runs; a WRITE to the
/// range meanwhile waits too.
#[test]
fn caw_waits_for_a_range_locked_elsewhere() {
    use shardtgt_core::conn::{ConnInfo, Connection};
    let mut h = Harness::new(small_limits());
    let set = target_set(small_limits());
    h.conn = Connection::new(set.clone(), h.registry.clone(), ConnInfo { peer: "test".into(), tpgt: 1 }, 0);
    h.login(&[]);
    let shared = set.targets[0].luns[0].shared.clone();
    assert!(shared.caw_lock(4, 1, 0xfeed));
    // CAW of block 4: verify zeros, write 0x5a.
    let mut cdb = [0u8; 16];
    cdb[0] = 0x89;
    cdb[9] = 4;
    cdb[13] = 1;
    let cmd = h.scsi_cmd(&cdb, 1024, false, true);
    let mut data = vec![0u8; 1024];
    data[512..].fill(0x5a);
    h.send(&Pdu::ScsiCommand(cmd.clone()), &data);
    assert!(responses(&h.recv()).is_empty(), "waits for the lock");
    assert!(h.conn.next_deadline().is_some_and(|d| d <= h.now + 1));
    h.advance(1);
    assert!(responses(&h.recv()).is_empty(), "still locked");
    shared.caw_unlock(4, 0xfeed);
    h.advance(1);
    let got = h.recv();
    let (Pdu::ScsiResponse(r), _) = &got[0] else { panic!("{got:?}") };
    assert_eq!((r.itt, r.status), (cmd.itt, 0));
    assert_eq!(&h.disk[4 * 512..5 * 512], &[0x5a; 512]);
    assert!(!shared.caw_overlaps(0, 100));
}
