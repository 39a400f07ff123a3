//! The write-buffer budget (`Limits::write_buffer_budget`, `WriteBudget`):
//! a flood of writes never holds more buffer than the budget, writes that do
//! not fit wait for their R2T instead of failing, waiting writes go on as
//! budget frees (on this connection or another one sharing the budget), a
//! write larger than the whole budget still runs alone, and aborted or
//! dropped commands give their bytes back. One connection holds at most its
//! share of a shared budget, and a connection that owes Data-Out and sends
//! none for `r2t_timeout_ms` is dropped (a trickling one is not).

mod harness;

use std::sync::Arc;

use harness::*;
use shardtgt_core::conn::{ConnState, WriteBudget};
use shardtgt_core::ids::{Itt, Lun};
use shardtgt_core::pdu::*;
use shardtgt_core::target::Limits;

const KIB: u32 = 1024;
const R2T_TIMEOUT_MS: u64 = 1_000;

fn limits(budget: u64) -> Limits {
    Limits {
        queue_depth: 64,
        max_recv_data_segment_len: 8192,
        max_burst_len: 64 * 1024,
        first_burst_len: 8192,
        nop_interval_ms: 0,
        write_buffer_budget: budget,
        r2t_timeout_ms: R2T_TIMEOUT_MS,
        ..Limits::default()
    }
}

/// Log in with InitialR2T=Yes and ImmediateData=No: every byte of write data
/// is solicited, so the budget alone decides when R2Ts go out.
fn solicited_only(budget: u64) -> Harness {
    let mut h = Harness::new(limits(budget));
    h.login(&[("InitialR2T", "Yes"), ("ImmediateData", "No"), ("MaxBurstLength", "65536")]);
    h
}

fn write10_cmd(h: &mut Harness, lba: u32, len: u32) -> ScsiCommand {
    let mut cdb = [0u8; 10];
    cdb[0] = 0x2a;
    cdb[2..6].copy_from_slice(&lba.to_be_bytes());
    cdb[7..9].copy_from_slice(&((len / BLOCK) as u16).to_be_bytes());
    h.scsi_cmd(&cdb, len, false, true)
}

fn r2ts(pdus: &Pdus) -> Vec<R2t> {
    pdus.iter()
        .filter_map(|(p, _)| match p {
            Pdu::R2t(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn statuses(pdus: &Pdus) -> Vec<(Itt, u8)> {
    pdus.iter()
        .filter_map(|(p, _)| match p {
            Pdu::ScsiResponse(r) => Some((r.itt, r.status)),
            _ => None,
        })
        .collect()
}

/// Answer one R2T with `fill` bytes, 8 KiB per Data-Out.
fn answer(h: &mut Harness, r: &R2t, fill: u8) {
    let mut sent = 0;
    let mut sn = 0;
    while sent < r.desired_len {
        let n = (r.desired_len - sent).min(8192);
        let d = DataOut {
            final_: sent + n == r.desired_len,
            lun: Lun::from_index(0),
            itt: r.itt,
            ttt: r.ttt,
            expstatsn: h.statsn,
            datasn: sn,
            buffer_offset: r.buffer_offset + sent,
        };
        h.send(&Pdu::DataOut(d), &vec![fill; n as usize]);
        sn += 1;
        sent += n;
    }
}

#[test]
fn write_flood_never_holds_more_than_the_budget() {
    let budget = 64 * u64::from(KIB);
    let mut h = solicited_only(budget);
    let b = h.conn.write_budget().clone();
    // 48 writes of 16 KiB (768 KiB) with a 64 KiB budget.
    let n = 48u32;
    let mut first = Vec::new();
    for i in 0..n {
        let cmd = write10_cmd(&mut h, i * 32, 16 * KIB);
        h.send(&Pdu::ScsiCommand(cmd), &[]);
        first.extend(r2ts(&h.recv()));
    }
    // Only as many R2Ts as the budget covers; the rest wait, nothing fails.
    assert_eq!(first.len(), 4, "{first:?}");
    assert_eq!(b.held(), budget);
    assert_eq!(b.grants(), 4);
    assert!(b.waits() > 0);
    // Time passing alone does not grant more.
    h.advance(5);
    assert!(r2ts(&h.recv()).is_empty());
    // Answer R2Ts as they come: each finished write lets the next one in.
    let mut pending: std::collections::VecDeque<R2t> = first.into();
    let mut done = Vec::new();
    let mut max_outstanding = 0;
    while let Some(r) = pending.pop_front() {
        // Fill each write with its ITT's low byte (checked on disk below).
        answer(&mut h, &r, (r.itt.0 & 0xff) as u8);
        let pdus = h.recv();
        done.extend(statuses(&pdus));
        pending.extend(r2ts(&pdus));
        max_outstanding = max_outstanding.max(pending.len());
        assert!(b.held() <= budget, "held {} > budget {budget}", b.held());
    }
    assert_eq!(done.len(), n as usize);
    assert!(done.iter().all(|&(_, s)| s == 0), "{done:?}");
    assert!(max_outstanding <= 4);
    assert_eq!(b.peak(), budget, "peak {} (budget {budget})", b.peak());
    assert_eq!((b.held(), b.grants()), (0, 0));
    // Every write landed where it should.
    for i in 0..n {
        let off = (i * 32 * BLOCK) as usize;
        let itt = 0x101 + i;
        assert!(h.disk[off..off + 16 * KIB as usize].iter().all(|&x| x == (itt & 0xff) as u8), "write {i}");
    }
}

#[test]
fn budget_shared_by_two_connections_wakes_the_other_one() {
    let budget = 32 * u64::from(KIB);
    let shared = Arc::new(WriteBudget::new());
    let mut a = Harness::new(limits(budget));
    a.conn.set_write_budget(shared.clone());
    a.login(&[("InitialR2T", "Yes"), ("ImmediateData", "No")]);
    let mut b = Harness::new(limits(budget));
    b.isid = shardtgt_core::ids::Isid(0x8000_0000_0002);
    b.conn.set_write_budget(shared.clone());
    b.login(&[("InitialR2T", "Yes"), ("ImmediateData", "No")]);

    let cmd = write10_cmd(&mut a, 0, 32 * KIB);
    a.send(&Pdu::ScsiCommand(cmd), &[]);
    let ra = r2ts(&a.recv());
    assert_eq!(ra.len(), 1);
    assert_eq!(shared.held(), budget);
    // B's write must wait: A holds the whole budget.
    let cmd = write10_cmd(&mut b, 256, 8 * KIB);
    b.send(&Pdu::ScsiCommand(cmd), &[]);
    assert!(r2ts(&b.recv()).is_empty());
    b.advance(1);
    assert!(r2ts(&b.recv()).is_empty(), "granted beyond the budget");
    // A finishes; B's next timer tick grants it.
    answer(&mut a, &ra[0], 0xaa);
    assert_eq!(statuses(&a.recv()), vec![(ra[0].itt, 0)]);
    assert_eq!(shared.held(), 0);
    b.advance(1);
    let rb = r2ts(&b.recv());
    assert_eq!(rb.len(), 1);
    answer(&mut b, &rb[0], 0xbb);
    assert_eq!(statuses(&b.recv()), vec![(rb[0].itt, 0)]);
    assert_eq!(shared.peak(), budget);
    assert_eq!(shared.held(), 0);
}

#[test]
fn a_write_larger_than_the_budget_runs_alone() {
    let budget = 8 * u64::from(KIB);
    let mut h = solicited_only(budget);
    let b = h.conn.write_budget().clone();
    let big = write10_cmd(&mut h, 0, 128 * KIB);
    h.send(&Pdu::ScsiCommand(big), &[]);
    let r = r2ts(&h.recv());
    assert_eq!(r.len(), 1, "the oversized write must get its R2T when alone");
    // A small write behind it waits while the big one holds its grant.
    let small = write10_cmd(&mut h, 1024, 4 * KIB);
    h.send(&Pdu::ScsiCommand(small), &[]);
    assert!(r2ts(&h.recv()).is_empty());
    // MaxBurstLength 64 KiB: the big write takes two R2Ts.
    answer(&mut h, &r[0], 1);
    let pdus = h.recv();
    let r2 = r2ts(&pdus);
    assert_eq!(r2.len(), 1);
    assert_eq!(r2[0].itt, r[0].itt);
    answer(&mut h, &r2[0], 1);
    let pdus = h.recv();
    assert_eq!(statuses(&pdus), vec![(r[0].itt, 0)]);
    // The big write's buffer came back, so the small one got its R2T.
    let rs = r2ts(&pdus);
    assert_eq!(rs.len(), 1);
    answer(&mut h, &rs[0], 2);
    assert_eq!(statuses(&h.recv()), vec![(rs[0].itt, 0)]);
    assert_eq!(b.peak(), 128 * u64::from(KIB));
    assert_eq!(b.held(), 0);
    assert!(h.disk[..128 * KIB as usize].iter().all(|&x| x == 1));
}

#[test]
fn aborted_and_dropped_writes_give_their_budget_back() {
    let budget = 16 * u64::from(KIB);
    let mut h = solicited_only(budget);
    let b = h.conn.write_budget().clone();
    let c1 = write10_cmd(&mut h, 0, 16 * KIB);
    let itt1 = c1.itt;
    h.send(&Pdu::ScsiCommand(c1), &[]);
    assert_eq!(r2ts(&h.recv()).len(), 1);
    let c2 = write10_cmd(&mut h, 64, 16 * KIB);
    h.send(&Pdu::ScsiCommand(c2), &[]);
    assert!(r2ts(&h.recv()).is_empty());
    assert_eq!(b.held(), budget);
    // ABORT TASK on the granted write: its buffer goes back and the waiting
    // write gets its R2T.
    let tmf = TmfRequest {
        immediate: true,
        function: TmfFunction::ABORT_TASK,
        lun: Lun::from_index(0),
        itt: h.next_itt(),
        rtt: itt1,
        cmdsn: h.cmdsn,
        expstatsn: h.statsn,
        refcmdsn: shardtgt_core::serial::CmdSn(1),
        expdatasn: 0,
    };
    h.send(&Pdu::TmfRequest(tmf), &[]);
    let pdus = h.recv();
    assert!(pdus.iter().any(|(p, _)| matches!(p, Pdu::TmfResponse(_))), "{pdus:?}");
    let r = r2ts(&pdus);
    assert_eq!(r.len(), 1, "{pdus:?}");
    assert_eq!(r[0].desired_len, 16 * KIB);
    assert_eq!(b.held(), budget);
    // The peer goes away with that write granted and unanswered: nothing leaks.
    h.conn.peer_closed();
    assert_eq!((b.held(), b.grants()), (0, 0));
}

#[test]
fn unsolicited_data_is_charged_and_released() {
    let budget = 64 * u64::from(KIB);
    let mut h = Harness::new(limits(budget));
    h.login(&[("InitialR2T", "No"), ("ImmediateData", "Yes"), ("FirstBurstLength", "8192")]);
    let b = h.conn.write_budget().clone();
    // A 32 KiB write with 4 KiB immediate and 4 KiB unsolicited data, the
    // rest by R2T; data verified on disk.
    let data: Vec<u8> = (0..32 * KIB).map(|i| (i % 251) as u8).collect();
    let (status, pdus) = h.write10(8, &data, 4096, 4096);
    assert_eq!(status, 0, "{pdus:?}");
    assert_eq!(&h.disk[8 * BLOCK as usize..][..data.len()], &data[..]);
    assert_eq!(b.peak(), 32 * u64::from(KIB));
    assert_eq!(b.held(), 0);
    // Immediate data only (F=1): exactly that much is charged, no grant.
    let cmd = write10_cmd(&mut h, 128, 4 * KIB);
    h.send(&Pdu::ScsiCommand(cmd), &vec![7u8; 4096]);
    let pdus = h.recv();
    assert_eq!(statuses(&pdus).len(), 1);
    assert_eq!(b.held(), 0);
    assert_eq!(b.grants(), 0);
}

/// Two connections sharing one budget, both with InitialR2T=Yes and
/// ImmediateData=No (every byte solicited), MaxBurstLength 64 KiB.
fn two_sharing(budget: u64) -> (Harness, Harness, Arc<WriteBudget>) {
    let shared = Arc::new(WriteBudget::new());
    let keys = [("InitialR2T", "Yes"), ("ImmediateData", "No"), ("MaxBurstLength", "65536")];
    let mut a = Harness::new(limits(budget));
    a.conn.set_write_budget(shared.clone());
    a.login(&keys);
    let mut b = Harness::new(limits(budget));
    b.isid = shardtgt_core::ids::Isid(0x8000_0000_0002);
    b.conn.set_write_budget(shared.clone());
    b.login(&keys);
    (a, b, shared)
}

#[test]
fn owed_data_that_never_comes_drops_the_connection() {
    let budget = 64 * u64::from(KIB);
    let mut h = solicited_only(budget);
    let b = h.conn.write_budget().clone();
    // Nothing owed: no solicited-data deadline (NOP pings are off here).
    assert_eq!(h.conn.next_deadline(), None);
    h.advance(10 * R2T_TIMEOUT_MS);
    assert_eq!(h.conn.state(), ConnState::FullFeature);
    let start = h.now;
    for i in 0..2 {
        let cmd = write10_cmd(&mut h, i * 64, 16 * KIB);
        h.send(&Pdu::ScsiCommand(cmd), &[]);
    }
    assert_eq!(r2ts(&h.recv()).len(), 2);
    assert_eq!((b.held(), b.grants()), (32 * u64::from(KIB), 2));
    assert_eq!(h.conn.next_deadline(), Some(start + R2T_TIMEOUT_MS));
    // The initiator never answers: open until the timeout, dropped at it.
    h.advance(R2T_TIMEOUT_MS - 1);
    assert_eq!(h.conn.state(), ConnState::FullFeature);
    assert_eq!(b.data_timeouts(), 0);
    h.advance(1);
    assert_eq!(h.conn.state(), ConnState::Closed);
    assert!(h.recv().is_empty(), "nothing is sent on a dropped connection");
    assert_eq!((b.held(), b.grants(), b.data_timeouts()), (0, 0, 1));
    assert_eq!(h.conn.write_buffer_held(), 0);
    assert_eq!(h.conn.next_deadline(), None);
}

#[test]
fn announced_unsolicited_data_that_never_comes_drops_the_connection() {
    let mut h = Harness::new(limits(64 * u64::from(KIB)));
    h.login(&[("InitialR2T", "No"), ("ImmediateData", "Yes"), ("FirstBurstLength", "8192")]);
    let b = h.conn.write_budget().clone();
    // F = 0: unsolicited Data-Out is announced (and charged), then never sent.
    let mut cmd = write10_cmd(&mut h, 0, 16 * KIB);
    cmd.final_ = false;
    h.send(&Pdu::ScsiCommand(cmd), &[]);
    assert!(h.recv().is_empty());
    assert_eq!(b.held(), 8 * u64::from(KIB));
    h.advance(R2T_TIMEOUT_MS - 1);
    assert_eq!(h.conn.state(), ConnState::FullFeature);
    h.advance(1);
    assert_eq!(h.conn.state(), ConnState::Closed);
    assert_eq!((b.held(), b.data_timeouts()), (0, 1));
}

#[test]
fn a_trickling_initiator_is_not_cut_off() {
    let budget = 64 * u64::from(KIB);
    let mut h = solicited_only(budget);
    let b = h.conn.write_budget().clone();
    // One 64 KiB R2T answered with one 4 KiB Data-Out every 900 ms: 16
    // PDUs over 14.4 s, fourteen timeouts' worth, each gap shorter than one.
    let cmd = write10_cmd(&mut h, 512, 64 * KIB);
    h.send(&Pdu::ScsiCommand(cmd), &[]);
    let r = r2ts(&h.recv());
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].desired_len, 64 * KIB);
    let start = h.now;
    let step = 4 * KIB;
    for (sn, off) in (0..64 * KIB).step_by(step as usize).enumerate() {
        h.advance(R2T_TIMEOUT_MS - 100);
        assert_eq!(h.conn.state(), ConnState::FullFeature, "dropped before Data-Out {sn}");
        let d = DataOut {
            final_: off + step == 64 * KIB,
            lun: Lun::from_index(0),
            itt: r[0].itt,
            ttt: r[0].ttt,
            expstatsn: h.statsn,
            datasn: sn as u32,
            buffer_offset: off,
        };
        h.send(&Pdu::DataOut(d), &vec![0x5a; step as usize]);
        // Each accepted Data-Out moves the deadline.
        if off + step < 64 * KIB {
            assert_eq!(h.conn.next_deadline(), Some(h.now + R2T_TIMEOUT_MS));
        }
    }
    assert_eq!(h.now - start, 16 * (R2T_TIMEOUT_MS - 100));
    assert_eq!(statuses(&h.recv()), vec![(r[0].itt, 0)]);
    assert_eq!((b.held(), b.data_timeouts()), (0, 0));
    assert!(h.disk[512 * BLOCK as usize..][..64 * KIB as usize].iter().all(|&x| x == 0x5a));
    // Nothing owed any more: no deadline, and idle time is harmless.
    assert_eq!(h.conn.next_deadline(), None);
    h.advance(10 * R2T_TIMEOUT_MS);
    assert_eq!(h.conn.state(), ConnState::FullFeature);
}

#[test]
fn a_write_waiting_for_budget_is_not_timed_out_and_runs_when_the_holder_is_dropped() {
    // A takes the whole (small) budget with one write and never answers; B's
    // write waits for budget (it owes nothing, so its own clock does not
    // run), and gets its R2T once A is dropped at the timeout.
    let budget = 32 * u64::from(KIB);
    let (mut a, mut b, shared) = two_sharing(budget);
    let cmd = write10_cmd(&mut a, 0, 32 * KIB);
    a.send(&Pdu::ScsiCommand(cmd), &[]);
    assert_eq!(r2ts(&a.recv()).len(), 1);
    let cmd = write10_cmd(&mut b, 256, 8 * KIB);
    b.send(&Pdu::ScsiCommand(cmd), &[]);
    assert!(r2ts(&b.recv()).is_empty());
    for _ in 0..3 {
        a.advance(R2T_TIMEOUT_MS / 3);
        b.advance(R2T_TIMEOUT_MS / 3);
        assert!(r2ts(&b.recv()).is_empty());
    }
    assert_eq!(a.conn.state(), ConnState::FullFeature);
    a.advance(R2T_TIMEOUT_MS / 3);
    assert_eq!(a.conn.state(), ConnState::Closed);
    assert_eq!((shared.held(), shared.data_timeouts()), (0, 1));
    // B waited 4/3 of the timeout without owing anything: still up.
    b.advance(R2T_TIMEOUT_MS / 3);
    assert_eq!(b.conn.state(), ConnState::FullFeature);
    let rb = r2ts(&b.recv());
    assert_eq!(rb.len(), 1);
    answer(&mut b, &rb[0], 0xbb);
    assert_eq!(statuses(&b.recv()), vec![(rb[0].itt, 0)]);
    assert_eq!((shared.held(), shared.data_timeouts()), (0, 1));
}

#[test]
fn one_connection_cannot_take_the_whole_budget() {
    // 256 KiB shared: a connection's share is 128 KiB (half; more than one
    // 64 KiB burst).
    let budget = 256 * u64::from(KIB);
    let share = budget / 2;
    let (mut a, mut b, shared) = two_sharing(budget);
    // A floods 32 writes of 32 KiB (1 MiB) and answers nothing.
    let mut ra = Vec::new();
    for i in 0..32 {
        let cmd = write10_cmd(&mut a, i * 64, 32 * KIB);
        a.send(&Pdu::ScsiCommand(cmd), &[]);
        ra.extend(r2ts(&a.recv()));
    }
    assert_eq!(ra.len(), 4, "A gets its share (128 KiB), no more: {ra:?}");
    assert_eq!((a.conn.write_buffer_held(), shared.held()), (share, share));
    // Time passing does not give A more while the budget has room.
    a.advance(5);
    assert!(r2ts(&a.recv()).is_empty());
    // B's write gets its R2T at once, while A's writes still wait.
    let cmd = write10_cmd(&mut b, 1536, 64 * KIB);
    b.send(&Pdu::ScsiCommand(cmd), &[]);
    let rb = r2ts(&b.recv());
    assert_eq!(rb.len(), 1, "B starved by A's flood");
    assert_eq!(shared.held(), share + 64 * u64::from(KIB));
    answer(&mut b, &rb[0], 0xbb);
    assert_eq!(statuses(&b.recv()), vec![(rb[0].itt, 0)]);
    assert!(b.disk[1536 * BLOCK as usize..][..64 * KIB as usize].iter().all(|&x| x == 0xbb));
    // A answering one R2T lets exactly one more of its writes in.
    answer(&mut a, &ra[0], 0xaa);
    let pdus = a.recv();
    assert_eq!(statuses(&pdus), vec![(ra[0].itt, 0)]);
    assert_eq!(r2ts(&pdus).len(), 1);
    assert_eq!(a.conn.write_buffer_held(), share);
    assert_eq!(shared.held(), share);
    assert!(shared.held() <= budget);
}

#[test]
fn a_write_larger_than_the_share_runs_when_its_connection_holds_nothing() {
    // Share 64 KiB (half of 128 KiB, and one burst): A's 96 KiB write is
    // larger, and runs because A holds no other grant; A's next write then
    // waits although the budget has 32 KiB free, which B can take.
    let budget = 128 * u64::from(KIB);
    let (mut a, mut b, shared) = two_sharing(budget);
    let big = write10_cmd(&mut a, 0, 96 * KIB);
    a.send(&Pdu::ScsiCommand(big), &[]);
    let ra = r2ts(&a.recv());
    assert_eq!(ra.len(), 1, "a write above the share must still run");
    let small = write10_cmd(&mut a, 1024, 16 * KIB);
    a.send(&Pdu::ScsiCommand(small), &[]);
    assert!(r2ts(&a.recv()).is_empty(), "A is over its share");
    let cmd = write10_cmd(&mut b, 1536, 32 * KIB);
    b.send(&Pdu::ScsiCommand(cmd), &[]);
    let rb = r2ts(&b.recv());
    assert_eq!(rb.len(), 1);
    assert_eq!(shared.held(), budget);
    answer(&mut b, &rb[0], 2);
    assert_eq!(statuses(&b.recv()), vec![(rb[0].itt, 0)]);
    // A's big write finishes (two bursts); its small one goes next.
    answer(&mut a, &ra[0], 1);
    let r2 = r2ts(&a.recv());
    assert_eq!(r2.len(), 1);
    answer(&mut a, &r2[0], 1);
    let pdus = a.recv();
    assert_eq!(statuses(&pdus), vec![(ra[0].itt, 0)]);
    let rs = r2ts(&pdus);
    assert_eq!(rs.len(), 1);
    answer(&mut a, &rs[0], 3);
    assert_eq!(statuses(&a.recv()), vec![(rs[0].itt, 0)]);
    assert_eq!((shared.held(), shared.grants()), (0, 0));
}
