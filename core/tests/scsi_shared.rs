//! LU-wide SCSI state through the public entry points: persistent
//! reservations (conflict for every type and initiator role), SPC-2
//! RESERVE, unit attentions across nexuses, SWP, APTPL persistence, and
//! the error paths of the thin-provisioning / CAW / ORWRITE / WRITE ATOMIC
//! commands.

use std::sync::Arc;

use shardtgt_core::scsi::{
    execute_with_parameter_list, Asc, CmdContext, LuInfo, LuShared, NexusState, Outcome, ScsiStatus, Sense, SenseKey,
};

fn lu(thin: bool) -> LuInfo {
    LuInfo {
        block_size: 512,
        num_blocks: 1000,
        vendor: "SHARDTGT".into(),
        product: "disk".into(),
        revision: "0.1".into(),
        serial: "SN1".into(),
        naa_id: 1,
        read_only: false,
        write_cache: true,
        target_name: "iqn.2026-11.t:x".into(),
        rel_port_id: 1,
        port_group: 1,
        port_groups: Vec::new(),
        thin,
        deallocate: false,
    }
}

fn nexus(shared: &Arc<LuShared>, name: &str, isid: u64) -> NexusState {
    let mut n = NexusState::for_initiator(name, isid, 1);
    n.attach(shared);
    n
}

fn run(lu: &LuInfo, n: &mut NexusState, cdb: &[u8], params: &[u8]) -> Outcome {
    let mut c = cdb.to_vec();
    c.resize(c.len().max(16), 0);
    let ctx =
        CmdContext { lu: Some(lu), luns: &[0], cdb: &c, edtl: params.len() as u32, write_bit: true, read_bit: true };
    let mut buf = vec![0u8; 4096];
    execute_with_parameter_list(&ctx, n, params, &mut buf)
}

fn run_data(lu: &LuInfo, n: &mut NexusState, cdb: &[u8]) -> (Outcome, Vec<u8>) {
    let ctx = CmdContext { lu: Some(lu), luns: &[0], cdb, edtl: 4096, write_bit: false, read_bit: true };
    let mut buf = vec![0u8; 4096];
    let o = execute_with_parameter_list(&ctx, n, &[], &mut buf);
    let len = match &o {
        Outcome::Done { data_len, .. } => *data_len as usize,
        _ => 0,
    };
    buf.truncate(len);
    (o, buf)
}

fn status(o: &Outcome) -> ScsiStatus {
    o.status().unwrap_or(ScsiStatus::GOOD)
}

fn prout(sa: u8, rtype: u8, key: u64, sa_key: u64, flags: u8) -> (Vec<u8>, Vec<u8>) {
    let cdb = vec![0x5f, sa, rtype, 0, 0, 0, 0, 0, 24, 0];
    let mut p = vec![0u8; 24];
    p[..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p[20] = flags;
    (cdb, p)
}

fn pr_out(lu: &LuInfo, n: &mut NexusState, sa: u8, rtype: u8, key: u64, sa_key: u64) -> Outcome {
    let (c, p) = prout(sa, rtype, key, sa_key, 0);
    run(lu, n, &c, &p)
}

const READ10: [u8; 10] = [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0];
const WRITE10: [u8; 10] = [0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0];
const TUR: [u8; 6] = [0; 6];

fn conflict(o: &Outcome) -> bool {
    status(o) == ScsiStatus::RESERVATION_CONFLICT
}

/// For every reservation type: what a registered and an unregistered
/// second initiator may do (SPC-4 table 60 / SBC-4).
#[test]
fn reservation_conflicts_for_each_type_and_role() {
    // (type, registered can read, registered can write, unregistered can read, unregistered can write)
    let table = [
        (1u8, true, false, true, false),
        (3, false, false, false, false),
        (5, true, true, true, false),
        (6, true, true, false, false),
        (7, true, true, true, false),
        (8, true, true, false, false),
    ];
    let l = lu(false);
    for (ty, reg_r, reg_w, unreg_r, unreg_w) in table {
        let shared = Arc::new(LuShared::default());
        let mut a = nexus(&shared, "iqn.a", 1);
        let mut b = nexus(&shared, "iqn.b", 2);
        let mut c = nexus(&shared, "iqn.c", 3);
        assert_eq!(status(&pr_out(&l, &mut a, 0, 0, 0, 0xa)), ScsiStatus::GOOD);
        assert_eq!(status(&pr_out(&l, &mut b, 0, 0, 0, 0xb)), ScsiStatus::GOOD);
        assert_eq!(status(&pr_out(&l, &mut a, 1, ty, 0xa, 0)), ScsiStatus::GOOD, "reserve type {ty}");
        // The holder does everything.
        assert!(!conflict(&run(&l, &mut a, &READ10, &[])));
        assert!(!conflict(&run(&l, &mut a, &WRITE10, &[0; 512])));
        assert_eq!(!conflict(&run(&l, &mut b, &READ10, &[])), reg_r, "type {ty} registered read");
        assert_eq!(!conflict(&run(&l, &mut b, &WRITE10, &[0; 512])), reg_w, "type {ty} registered write");
        assert_eq!(!conflict(&run(&l, &mut c, &READ10, &[])), unreg_r, "type {ty} unregistered read");
        assert_eq!(!conflict(&run(&l, &mut c, &WRITE10, &[0; 512])), unreg_w, "type {ty} unregistered write");
        // TEST UNIT READY and INQUIRY never conflict.
        assert!(!conflict(&run(&l, &mut c, &TUR, &[])));
        assert!(!conflict(&run(&l, &mut c, &[0x12, 0, 0, 0, 96, 0], &[])));
        // A wrong key conflicts; RESERVE by a non-holder of another type conflicts.
        assert!(conflict(&pr_out(&l, &mut b, 1, ty, 0xdead, 0)));
        // Release by the holder frees everyone.
        assert_eq!(status(&pr_out(&l, &mut a, 2, ty, 0xa, 0)), ScsiStatus::GOOD);
        assert!(!conflict(&run(&l, &mut c, &WRITE10, &[0; 512])));
    }
}

#[test]
fn register_rules_and_read_keys() {
    let l = lu(false);
    let shared = Arc::new(LuShared::default());
    let mut a = nexus(&shared, "iqn.a", 1);
    // Registering with a non-zero reservation key while unregistered conflicts.
    assert!(conflict(&pr_out(&l, &mut a, 0, 0, 5, 6)));
    assert_eq!(status(&pr_out(&l, &mut a, 0, 0, 0, 6)), ScsiStatus::GOOD);
    // Changing the key needs the current one; REGISTER AND IGNORE does not.
    assert!(conflict(&pr_out(&l, &mut a, 0, 0, 5, 7)));
    assert_eq!(status(&pr_out(&l, &mut a, 6, 0, 0, 7)), ScsiStatus::GOOD);
    let (o, d) = run_data(&l, &mut a, &[0x5e, 0, 0, 0, 0, 0, 0, 0x10, 0, 0]);
    assert_eq!(status(&o), ScsiStatus::GOOD);
    assert_eq!(&d[0..4], &2u32.to_be_bytes(), "PRgeneration: two successful registrations");
    assert_eq!(&d[4..8], &8u32.to_be_bytes());
    assert_eq!(&d[8..16], &7u64.to_be_bytes());
    // Unknown PR IN service action: INVALID FIELD IN CDB, byte 1 bit 4.
    let (o, _) = run_data(&l, &mut a, &[0x5e, 4, 0, 0, 0, 0, 0, 0x10, 0, 0]);
    assert_eq!(o.sense(), Some(Sense::invalid_field_in_cdb(1, Some(4))));
    // Short parameter list.
    let (c, p) = prout(0, 0, 7, 8, 0);
    assert_eq!(run(&l, &mut a, &c, &p[..20]).sense(), Some(Sense::parameter_list_length_error()));
}

#[test]
fn preempt_and_clear_raise_unit_attentions_on_others() {
    let l = lu(false);
    let shared = Arc::new(LuShared::default());
    let mut a = nexus(&shared, "iqn.a", 1);
    let mut b = nexus(&shared, "iqn.b", 2);
    pr_out(&l, &mut a, 0, 0, 0, 0xa);
    pr_out(&l, &mut b, 0, 0, 0, 0xb);
    assert_eq!(status(&pr_out(&l, &mut b, 1, 3, 0xb, 0)), ScsiStatus::GOOD);
    // a preempts b's reservation and registration.
    assert_eq!(status(&pr_out(&l, &mut a, 4, 3, 0xa, 0xb)), ScsiStatus::GOOD);
    let ua = run(&l, &mut b, &TUR, &[]).sense().expect("unit attention");
    assert_eq!((ua.key, ua.asc), (SenseKey::UNIT_ATTENTION, Asc::REGISTRATIONS_PREEMPTED));
    assert!(conflict(&run(&l, &mut b, &READ10, &[])), "b is no longer registered: EA conflicts");
    assert_eq!(status(&pr_out(&l, &mut a, 3, 0, 0xa, 0)), ScsiStatus::GOOD);
    assert!(!conflict(&run(&l, &mut b, &READ10, &[])));
}

#[test]
fn spc2_reserve_release_and_nexus_loss() {
    let l = lu(false);
    let shared = Arc::new(LuShared::default());
    let mut a = nexus(&shared, "iqn.a", 1);
    let mut b = nexus(&shared, "iqn.b", 2);
    assert_eq!(status(&run(&l, &mut a, &[0x16, 0, 0, 0, 0, 0], &[])), ScsiStatus::GOOD);
    assert!(conflict(&run(&l, &mut b, &[0x16, 0, 0, 0, 0, 0], &[])));
    assert!(conflict(&run(&l, &mut b, &[0x1a, 0, 0x3f, 0, 255, 0], &[])), "MODE SENSE conflicts");
    // RELEASE by a non-holder is GOOD and changes nothing.
    assert_eq!(status(&run(&l, &mut b, &[0x17, 0, 0, 0, 0, 0], &[])), ScsiStatus::GOOD);
    assert!(conflict(&run(&l, &mut b, &READ10, &[])));
    a.detach();
    assert!(!conflict(&run(&l, &mut b, &READ10, &[])), "I_T nexus loss releases it");
}

#[test]
fn lun_reset_and_swp_reach_every_nexus() {
    let l = lu(false);
    let shared = Arc::new(LuShared::default());
    let mut a = nexus(&shared, "iqn.a", 1);
    let mut b = nexus(&shared, "iqn.b", 2);
    // MODE SELECT(6) of the Control page with SWP on, from a.
    let page = [0u8, 0, 0, 0, 0x0a, 0x0a, 0x20, 0x10, 0x08, 0x40, 0, 0, 0xff, 0xff, 0, 0];
    assert_eq!(status(&run(&l, &mut a, &[0x15, 0x10, 0, 0, 16, 0], &page)), ScsiStatus::GOOD);
    let ua = run(&l, &mut b, &TUR, &[]).sense().expect("unit attention");
    assert_eq!(ua.asc, Asc::MODE_PARAMETERS_CHANGED);
    let s = run(&l, &mut b, &WRITE10, &[0; 512]).sense().expect("write protected");
    assert_eq!((s.key, s.asc), (SenseKey::DATA_PROTECT, Asc::WRITE_PROTECTED));
    shared.lun_reset();
    assert_eq!(run(&l, &mut a, &TUR, &[]).sense(), Some(Sense::bus_device_reset()));
    assert_eq!(run(&l, &mut b, &TUR, &[]).sense(), Some(Sense::bus_device_reset()));
    assert_eq!(status(&run(&l, &mut b, &TUR, &[])), ScsiStatus::GOOD);
    assert!(!shared.swp(), "LUN reset restores the default SWP");
}

#[test]
fn aptpl_state_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("shardtgt-pr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lu0.pr");
    let _ = std::fs::remove_file(&file);
    let l = lu(false);
    {
        let shared = Arc::new(LuShared::new(Some(file.clone())));
        let mut a = nexus(&shared, "iqn.a", 1);
        let (c, p) = prout(0, 0, 0, 0x77, 0x01);
        assert_eq!(status(&run(&l, &mut a, &c, &p)), ScsiStatus::GOOD);
        assert_eq!(status(&pr_out(&l, &mut a, 1, 1, 0x77, 0)), ScsiStatus::GOOD);
    }
    let shared = Arc::new(LuShared::new(Some(file.clone())));
    assert!(shared.reserved());
    let mut b = nexus(&shared, "iqn.b", 2);
    assert!(conflict(&run(&l, &mut b, &WRITE10, &[0; 512])), "WRITE EXCLUSIVE restored");
    let (_, d) = run_data(&l, &mut b, &[0x5e, 1, 0, 0, 0, 0, 0, 0x10, 0, 0]);
    assert_eq!(&d[8..16], &0x77u64.to_be_bytes());
    assert_eq!(d[21], 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn thin_provisioning_and_caw_error_paths() {
    let l = lu(true);
    let shared = Arc::new(LuShared::default());
    let mut a = nexus(&shared, "iqn.a", 1);
    let ws16 = |lba: u64, n: u32, b1: u8| {
        let mut c = vec![0x93, b1];
        c.extend_from_slice(&lba.to_be_bytes());
        c.extend_from_slice(&n.to_be_bytes());
        c.extend_from_slice(&[0, 0]);
        c
    };
    // LBA out of range, too long, ANCHOR.
    assert_eq!(run(&l, &mut a, &ws16(999, 2, 0), &[0; 512]).sense(), Some(Sense::lba_out_of_range()));
    assert_eq!(run(&l, &mut a, &ws16(0, 16385, 0), &[0; 512]).sense(), Some(Sense::invalid_field_in_cdb(10, None)));
    assert_eq!(run(&l, &mut a, &ws16(0, 1, 0x10), &[0; 512]).sense(), Some(Sense::invalid_field_in_cdb(1, Some(4))));
    assert!(matches!(run(&l, &mut a, &ws16(0, 8, 0x08), &[0; 512]), Outcome::Job(_)));
    // The Data-Out of WRITE SAME is exactly one block.
    assert_eq!(run(&l, &mut a, &ws16(0, 8, 0), &[0; 256]).sense(), Some(Sense::invalid_field_in_cdb(10, None)));
    assert_eq!(run(&l, &mut a, &ws16(0, 8, 0), &[0; 1024]).sense(), Some(Sense::invalid_field_in_cdb(10, None)));
    // UNMAP: short list, out of range descriptor, too many descriptors.
    let unmap = |p: &[u8]| {
        let mut c = vec![0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        c[7..9].copy_from_slice(&(p.len() as u16).to_be_bytes());
        c
    };
    let short = [0u8; 6];
    assert_eq!(run(&l, &mut a, &unmap(&short), &short).sense(), Some(Sense::parameter_list_length_error()));
    let mut p = vec![0u8; 24];
    p[3] = 16;
    p[8..16].copy_from_slice(&999u64.to_be_bytes());
    p[16..20].copy_from_slice(&2u32.to_be_bytes());
    assert_eq!(run(&l, &mut a, &unmap(&p), &p).sense(), Some(Sense::lba_out_of_range()));
    let mut many = vec![0u8; 8 + 257 * 16];
    many[2..4].copy_from_slice(&((257 * 16) as u16).to_be_bytes());
    assert_eq!(run(&l, &mut a, &unmap(&many), &many).sense(), Some(Sense::invalid_field_in_parameter_list(2, None)));
    // GET LBA STATUS beyond the end; mapped from the LBA otherwise.
    let mut gls = vec![0x9e, 0x12];
    gls.extend_from_slice(&1000u64.to_be_bytes());
    gls.extend_from_slice(&[0, 0, 0, 24, 0, 0]);
    assert_eq!(run_data(&l, &mut a, &gls).0.sense(), Some(Sense::lba_out_of_range()));
    gls[2..10].copy_from_slice(&10u64.to_be_bytes());
    let (o, d) = run_data(&l, &mut a, &gls);
    assert_eq!(status(&o), ScsiStatus::GOOD);
    assert_eq!(&d[8..16], &10u64.to_be_bytes());
    assert_eq!(&d[16..20], &990u32.to_be_bytes());
    assert_eq!(d[20], 0, "mapped");
    // COMPARE AND WRITE: out of range, NUMBER OF LOGICAL BLOCKS 0 with data.
    let caw = |lba: u64, n: u8| {
        let mut c = vec![0x89, 0];
        c.extend_from_slice(&lba.to_be_bytes());
        c.extend_from_slice(&[0, 0, 0, n, 0, 0]);
        c
    };
    assert_eq!(run(&l, &mut a, &caw(1000, 1), &[0; 1024]).sense(), Some(Sense::lba_out_of_range()));
    assert_eq!(run(&l, &mut a, &caw(0, 0), &[0; 1024]).sense(), Some(Sense::invalid_field_in_cdb(13, None)));
    // Data-Out must be exactly 2 x NUMBER OF LOGICAL BLOCKS blocks.
    assert_eq!(run(&l, &mut a, &caw(5, 1), &[0; 2048]).sense(), Some(Sense::invalid_field_in_cdb(13, None)));
    assert_eq!(run(&l, &mut a, &caw(5, 3), &[0; 2048]).sense(), Some(Sense::invalid_field_in_cdb(13, None)));
    match run(&l, &mut a, &caw(5, 2), &[0; 2048]) {
        Outcome::Job(j) => assert_eq!(j.data_out_len(), 2048),
        o => panic!("{o:?}"),
    }
    // ORWRITE and WRITE ATOMIC past the end.
    let mut orw = vec![0x8b, 0];
    orw.extend_from_slice(&1000u64.to_be_bytes());
    orw.extend_from_slice(&[0, 0, 0, 1, 0, 0]);
    assert_eq!(run(&l, &mut a, &orw, &[0; 512]).sense(), Some(Sense::lba_out_of_range()));
    let mut wa = vec![0x9c, 0];
    wa.extend_from_slice(&1000u64.to_be_bytes());
    wa.extend_from_slice(&[0, 0, 0, 1, 0, 0]);
    assert_eq!(run(&l, &mut a, &wa, &[0; 512]).sense(), Some(Sense::lba_out_of_range()));
    wa[2..10].copy_from_slice(&0u64.to_be_bytes());
    wa[10] = 1;
    assert_eq!(run(&l, &mut a, &wa, &[0; 512]).sense(), Some(Sense::invalid_field_in_cdb(10, None)));
}

/// Two initiators on two threads (as on two shards) race COMPARE AND WRITE
/// on one block, 1,000 rounds: each expects the block's current contents
/// and writes its own; exactly one wins every round, the other sees
/// MISCOMPARE. The "backend" is a medium behind its own lock, touched only
/// between job steps, as a shard's backend would be.
#[test]
fn caw_race_between_two_shards_has_one_winner_per_round() {
    use shardtgt_core::scsi::{BackendOp, BackendStatus, Job, JobBuf, JobStep};
    use std::sync::{Barrier, Mutex};

    const ROUNDS: usize = 1000;
    let shared = Arc::new(LuShared::default());
    let medium = Arc::new(Mutex::new(vec![0u8; 8 * 512]));
    let barrier = Arc::new(Barrier::new(2));
    let run_caw = |shared: Arc<LuShared>, medium: Arc<Mutex<Vec<u8>>>, expect: u8, write: u8| -> bool {
        let mut job = Job::compare_and_write(3, 1, 512, shared, false);
        let mut data = vec![expect; 1024];
        data[512..].fill(write);
        let mut scratch = Vec::new();
        let mut last = None;
        loop {
            match job.step(last, &mut data, &mut scratch) {
                JobStep::Done(o) => {
                    return match o.sense() {
                        None => true,
                        Some(s) => {
                            assert_eq!(s.key, SenseKey::MISCOMPARE);
                            false
                        }
                    }
                }
                JobStep::Wait => {
                    std::thread::yield_now();
                    last = None;
                }
                JobStep::Io(io, which) => {
                    let buf: &mut [u8] = match which {
                        JobBuf::Data => &mut data,
                        JobBuf::Scratch => &mut scratch,
                    };
                    let r = io.offset as usize..(io.offset + u64::from(io.len)) as usize;
                    let mut m = medium.lock().unwrap();
                    match io.op {
                        BackendOp::Read => buf[..io.len as usize].copy_from_slice(&m[r]),
                        BackendOp::Write => m[r].copy_from_slice(&buf[..io.len as usize]),
                        BackendOp::Flush => {}
                        BackendOp::Deallocate | BackendOp::MapStatus => unreachable!("no thin LU here"),
                    }
                    drop(m);
                    std::thread::yield_now();
                    last = Some(BackendStatus::Ok);
                }
            }
        }
    };
    let wins: Vec<std::thread::JoinHandle<Vec<bool>>> = (0..2u8)
        .map(|who| {
            let (shared, medium, barrier) = (shared.clone(), medium.clone(), barrier.clone());
            std::thread::spawn(move || {
                (0..ROUNDS)
                    .map(|round| {
                        barrier.wait();
                        // Round r starts with the block full of (2r % 256); the
                        // winner writes 2r+1, then the main pattern moves on.
                        let expect = (round * 2) as u8;
                        let won = run_caw(shared.clone(), medium.clone(), expect, expect.wrapping_add(1));
                        barrier.wait();
                        if who == 0 {
                            medium.lock().unwrap()[3 * 512..4 * 512].fill(expect.wrapping_add(2));
                        }
                        barrier.wait();
                        won
                    })
                    .collect()
            })
        })
        .collect();
    // Start from round 0's pattern (zeros) — the medium is zeroed already.
    let results: Vec<Vec<bool>> = wins.into_iter().map(|h| h.join().unwrap()).collect();
    for (round, (a, b)) in results[0].iter().zip(&results[1]).enumerate() {
        assert!(a ^ b, "round {round}: exactly one winner");
    }
    assert_eq!(results[0].len(), ROUNDS);
    assert!(!shared.caw_overlaps(0, 8), "no lock left behind");
}

#[test]
fn sanitize_in_progress_holds_other_commands() {
    let l = lu(false);
    let shared = Arc::new(LuShared::default());
    let mut a = nexus(&shared, "iqn.a", 1);
    let mut b = nexus(&shared, "iqn.b", 2);
    let mut p = vec![0x01, 0, 0, 4];
    p.extend_from_slice(&[0xaa; 4]);
    let cdb = [0x48, 0x01, 0, 0, 0, 0, 0, 0, 8, 0];
    let Outcome::Job(mut job) = run(&l, &mut a, &cdb, &p) else { panic!("SANITIZE is a job") };
    assert!(shared.sanitizing());
    let s = run(&l, &mut b, &TUR, &[]).sense().expect("not ready");
    assert_eq!((s.key, s.asc), (SenseKey::NOT_READY, Asc::SANITIZE_IN_PROGRESS));
    assert_eq!(status(&run(&l, &mut b, &[0x12, 0, 0, 0, 96, 0], &[])), ScsiStatus::GOOD, "INQUIRY still works");
    job.cancel();
    assert!(!shared.sanitizing());
    assert_eq!(status(&run(&l, &mut b, &TUR, &[])), ScsiStatus::GOOD);
    // Malformed parameter lists: INVALID FIELD IN CDB, as libiscsi expects.
    let short = [0x01, 0, 0, 0];
    let cdb4 = [0x48, 0x01, 0, 0, 0, 0, 0, 0, 4, 0];
    assert_eq!(run(&l, &mut a, &cdb4, &short).sense(), Some(Sense::invalid_field_in_cdb(7, None)));
}

/// A sanitize runner that records what it was asked and lets the test end
/// the operation.
#[derive(Debug, Default)]
struct ManualSanitizer {
    started: std::sync::Mutex<Vec<shardtgt_core::scsi::SanitizeOp>>,
    refuse: std::sync::atomic::AtomicBool,
}

impl shardtgt_core::scsi::Sanitizer for ManualSanitizer {
    fn start(&self, op: shardtgt_core::scsi::SanitizeOp, _shared: Arc<LuShared>) -> Result<(), String> {
        if self.refuse.load(std::sync::atomic::Ordering::Relaxed) {
            return Err("no thread".into());
        }
        self.started.lock().unwrap().push(op);
        Ok(())
    }
}

#[test]
fn background_sanitize_outlives_its_command_and_reports_progress_and_failure() {
    use shardtgt_core::scsi::JobStep;
    let l = lu(false);
    let shared = Arc::new(LuShared::default());
    let runner = Arc::new(ManualSanitizer::default());
    shared.sanitize.set_runner(runner.clone());
    let mut a = nexus(&shared, "iqn.a", 1);
    let mut b = nexus(&shared, "iqn.b", 2);
    // OVERWRITE COUNT 3, pattern of 4 bytes, IMMED = 1: GOOD at once.
    let mut p = vec![0x03, 0, 0, 4];
    p.extend_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
    let immed = [0x48, 0x81, 0, 0, 0, 0, 0, 0, 8, 0];
    assert_eq!(status(&run(&l, &mut a, &immed, &p)), ScsiStatus::GOOD);
    {
        let ops = runner.started.lock().unwrap();
        assert_eq!(ops.len(), 1);
        assert_eq!((ops[0].passes, ops[0].blocks, ops[0].block_size), (3, 1000, 512));
        assert_eq!(ops[0].pattern, [0xaa, 0xbb, 0xcc, 0xdd]);
    }
    assert!(shared.sanitizing());
    // Other nexuses: NOT READY, SANITIZE IN PROGRESS with the progress indication.
    shared.sanitize.report_progress(1, 4);
    let s = run(&l, &mut b, &TUR, &[]).sense().expect("not ready");
    assert_eq!(s, Sense::sanitize_in_progress(0x4000));
    let (o, sense) = run_data(&l, &mut b, &[0x03, 0, 0, 0, 252, 0]);
    assert_eq!(status(&o), ScsiStatus::GOOD, "REQUEST SENSE answers while sanitizing");
    assert_eq!((sense[2] & 0x0f, sense[12], sense[13]), (0x02, 0x04, 0x1b));
    assert_eq!(&sense[15..18], &[0x80, 0x40, 0x00], "SKSV + progress 0x4000");
    // A second SANITIZE (another nexus) is refused, not started twice.
    assert_eq!(run(&l, &mut b, &immed, &p).sense().map(|s| s.asc), Some(Asc::SANITIZE_IN_PROGRESS));
    assert_eq!(runner.started.lock().unwrap().len(), 1);
    // A LUN reset does not stop it (SBC-4 §4.11.2).
    shared.lun_reset();
    assert!(shared.sanitizing());
    // It fails: medium access refused with 03/31/03; INQUIRY still fine.
    shared.sanitize.finish(&shared, false);
    while run(&l, &mut b, &TUR, &[]).sense().is_some_and(|s| s.key == SenseKey::UNIT_ATTENTION) {}
    assert_eq!(run(&l, &mut b, &READ10, &[]).sense(), Some(Sense::sanitize_failed()));
    assert_eq!(status(&run(&l, &mut b, &[0x12, 0, 0, 0, 96, 0], &[])), ScsiStatus::GOOD);
    // IMMED = 0: the command waits for the end of the (new) operation.
    let wait = [0x48, 0x01, 0, 0, 0, 0, 0, 0, 8, 0];
    while run(&l, &mut a, &TUR, &[]).sense().is_some_and(|s| s.key == SenseKey::UNIT_ATTENTION) {}
    let Outcome::Job(mut job) = run(&l, &mut a, &wait, &p) else { panic!("IMMED = 0 waits") };
    let mut scratch = Vec::new();
    assert_eq!(job.step(None, &mut [], &mut scratch), JobStep::Wait);
    assert_eq!(run(&l, &mut b, &READ10, &[]).sense().map(|s| s.asc), Some(Asc::SANITIZE_IN_PROGRESS));
    // Aborting the waiting command leaves the operation running.
    job.cancel();
    assert!(shared.sanitizing());
    shared.sanitize.finish(&shared, true);
    assert_eq!(job.step(None, &mut [], &mut scratch), JobStep::Done(Outcome::good(0)));
    assert_eq!(status(&run(&l, &mut b, &READ10, &[])), ScsiStatus::GOOD, "a successful sanitize clears the failure");
    // A runner that cannot start: HARDWARE ERROR, and nothing is left marked as running.
    runner.refuse.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(run(&l, &mut a, &immed, &p).sense(), Some(Sense::internal_target_failure()));
    assert!(!shared.sanitizing());
}

#[test]
fn block_erase_is_offered_only_where_the_backend_deallocates() {
    let shared = Arc::new(LuShared::default());
    let runner = Arc::new(ManualSanitizer::default());
    shared.sanitize.set_runner(runner.clone());
    let mut a = nexus(&shared, "iqn.a", 1);
    while run(&lu(true), &mut a, &TUR, &[]).sense().is_some_and(|s| s.key == SenseKey::UNIT_ATTENTION) {}
    let erase = [0x48, 0x02, 0, 0, 0, 0, 0, 0, 0, 0];
    // REPORT SUPPORTED OPERATION CODES, one command: 48h/02h.
    let rsoc = [0xa3, 0x0c, 0x02, 0x48, 0x00, 0x02, 0, 0, 0, 64, 0, 0];
    // VPD B1h byte 7: WABEREQ.
    let b1 = [0x12, 0x01, 0xb1, 0, 64, 0];

    // A thin LU that writes zeros (RAM): not offered.
    let plain = lu(true);
    assert_eq!(run(&plain, &mut a, &erase, &[]).sense(), Some(Sense::invalid_field_in_cdb(1, Some(4))));
    let (_, d) = run_data(&plain, &mut a, &rsoc);
    assert_eq!(d[1] & 0x07, 0x01, "SUPPORT 001b: not supported");
    let (_, d) = run_data(&plain, &mut a, &b1);
    assert_eq!(d[7] >> 6, 0, "WABEREQ 0 without BLOCK ERASE");

    // A deallocating LU (file): offered, WABEREQ 01b, runs as an erase.
    let dealloc = LuInfo { deallocate: true, ..lu(true) };
    let (_, d) = run_data(&dealloc, &mut a, &rsoc);
    assert_eq!(d[1] & 0x07, 0x03, "SUPPORT 011b");
    let (_, d) = run_data(&dealloc, &mut a, &b1);
    assert_eq!(d[7] >> 6, 1, "WABEREQ 01b: reads after a block erase succeed");
    // A parameter list is not allowed.
    let with_list = [0x48, 0x02, 0, 0, 0, 0, 0, 0, 8, 0];
    assert_eq!(run(&dealloc, &mut a, &with_list, &[0; 8]).sense(), Some(Sense::invalid_field_in_cdb(7, None)));
    assert!(!shared.sanitizing());
    let immed = [0x48, 0x82, 0, 0, 0, 0, 0, 0, 0, 0]; // IMMED | BLOCK ERASE
    assert_eq!(status(&run(&dealloc, &mut a, &immed, &[])), ScsiStatus::GOOD);
    let ops = runner.started.lock().unwrap();
    assert_eq!(ops.len(), 1);
    assert!(ops[0].erase && ops[0].blocks == 1000);
}

#[test]
fn wce_is_lu_wide_and_saved_values_survive_reset_and_restart() {
    let dir = std::env::temp_dir().join(format!("shardtgt-mode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lu0.pr");
    let l = lu(false);
    // Caching page with WCE off, MODE SELECT(6) SP = 1 from a.
    let mut page = vec![0u8, 0, 0, 0, 0x08, 0x12];
    page.resize(4 + 20, 0);
    {
        let shared = Arc::new(LuShared::new(Some(file.clone())));
        let mut a = nexus(&shared, "iqn.a", 1);
        let mut b = nexus(&shared, "iqn.b", 2);
        assert!(b.write_cache_enabled(&l));
        assert_eq!(status(&run(&l, &mut a, &[0x15, 0x11, 0, 0, 24, 0], &page)), ScsiStatus::GOOD);
        assert!(!b.write_cache_enabled(&l), "WCE is LU-wide");
        assert_eq!(run(&l, &mut b, &TUR, &[]).sense().map(|s| s.asc), Some(Asc::MODE_PARAMETERS_CHANGED));
        // Saved page (PC 11b) shows WCE off; defaults (PC 10b) still on.
        let (_, saved) = run_data(&l, &mut b, &[0x1a, 0x08, 0xc8, 0, 255, 0]);
        assert_eq!(&saved[4..7], &[0x88, 0x12, 0x00]);
        let (_, default) = run_data(&l, &mut b, &[0x1a, 0x08, 0x88, 0, 255, 0]);
        assert_eq!(default[6], 0x04);
        // Change the current value without saving, then a LUN reset restores the saved one.
        page[6] = 0x04;
        assert_eq!(status(&run(&l, &mut a, &[0x15, 0x10, 0, 0, 24, 0], &page)), ScsiStatus::GOOD);
        assert!(a.write_cache_enabled(&l));
        shared.lun_reset();
        assert!(!a.write_cache_enabled(&l));
    }
    let shared = Arc::new(LuShared::new(Some(file)));
    let c = nexus(&shared, "iqn.c", 3);
    assert!(!c.write_cache_enabled(&l), "saved WCE restored at start");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// TAS (Control page) is changeable, LU-wide, saveable; PREEMPT AND ABORT
/// moves the abort generation of exactly the preempted nexuses, PREEMPT and
/// CLEAR move none.
#[test]
fn tas_is_changeable_and_preempt_and_abort_marks_only_the_preempted() {
    let l = lu(false);
    let shared = Arc::new(LuShared::default());
    let mut a = nexus(&shared, "iqn.a", 1);
    let mut b = nexus(&shared, "iqn.b", 2);
    let mut c = nexus(&shared, "iqn.c", 3);
    assert!(shared.tas(), "TAS defaults to 1");
    let (_, changeable) = run_data(&l, &mut a, &[0x1a, 0x08, 0x4a, 0, 255, 0]);
    assert_eq!(changeable[4 + 5] & 0x40, 0x40, "TAS changeable");
    // MODE SELECT(6) SP = 1 with TAS = 0.
    let page = [0u8, 0, 0, 0, 0x0a, 0x0a, 0x20, 0x10, 0, 0, 0, 0, 0xff, 0xff, 0, 0];
    assert_eq!(status(&run(&l, &mut a, &[0x15, 0x11, 0, 0, 16, 0], &page)), ScsiStatus::GOOD);
    assert!(!shared.tas());
    assert_eq!(run(&l, &mut b, &TUR, &[]).sense().map(|s| s.asc), Some(Asc::MODE_PARAMETERS_CHANGED));
    let (_, current) = run_data(&l, &mut b, &[0x1a, 0x08, 0x0a, 0, 255, 0]);
    assert_eq!(current[4 + 5] & 0x40, 0);
    shared.lun_reset();
    assert!(!shared.tas(), "the saved TAS = 0 survives a LUN reset");
    for n in [&mut a, &mut b, &mut c] {
        assert_eq!(run(&l, n, &TUR, &[]).sense(), Some(Sense::bus_device_reset()));
    }

    pr_out(&l, &mut a, 0, 0, 0, 0xa);
    pr_out(&l, &mut b, 0, 0, 0, 0xb);
    pr_out(&l, &mut c, 0, 0, 0, 0xc);
    assert_eq!(status(&pr_out(&l, &mut b, 1, 1, 0xb, 0)), ScsiStatus::GOOD);
    let gens = |n: [&NexusState; 3]| n.map(|x| x.abort_gen());
    assert_eq!(gens([&a, &b, &c]), [0, 0, 0]);
    assert_eq!(status(&pr_out(&l, &mut a, 4, 1, 0xa, 0xc)), ScsiStatus::GOOD, "PREEMPT c");
    assert_eq!(gens([&a, &b, &c]), [0, 0, 0], "PREEMPT aborts nothing");
    assert_eq!(status(&pr_out(&l, &mut a, 5, 1, 0xa, 0xb)), ScsiStatus::GOOD, "PREEMPT AND ABORT b");
    assert_eq!(gens([&a, &b, &c]), [0, 1, 0]);
    assert_eq!(status(&pr_out(&l, &mut a, 3, 0, 0xa, 0)), ScsiStatus::GOOD, "CLEAR");
    assert_eq!(gens([&a, &b, &c]), [0, 1, 0]);
}

/// ALUA (SPC-4 §5.16): each target port group's state is what REPORT
/// TARGET PORT GROUPS reports and what a nexus on that group may do; the
/// other group is unaffected; VPD 83h names the nexus's own port and group.
#[test]
fn alua_states_are_reported_and_enforced_per_port_group() {
    use shardtgt_core::scsi::AluaState;
    let shared = Arc::new(LuShared::default());
    let mut on1 = nexus(&shared, "iqn.a", 1);
    let mut on2 = NexusState::for_initiator("iqn.a", 2, 2);
    on2.attach(&shared);
    let rtpg = [0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0];
    let cases = [
        (AluaState::ACTIVE_OPTIMIZED, None),
        (AluaState::ACTIVE_NON_OPTIMIZED, None),
        (AluaState::STANDBY, Some(Asc::LUN_NOT_ACCESSIBLE_STANDBY)),
        (AluaState::UNAVAILABLE, Some(Asc::LUN_NOT_ACCESSIBLE_UNAVAILABLE)),
        (AluaState::TRANSITIONING, Some(Asc::LUN_NOT_ACCESSIBLE_ALUA_TRANSITION)),
    ];
    for (state, refused) in cases {
        let mut l = lu(false);
        l.port_groups = vec![(1, state), (2, AluaState::ACTIVE_OPTIMIZED)];
        let (o, d) = run_data(&l, &mut on1, &rtpg);
        assert_eq!(status(&o), ScsiStatus::GOOD, "{state:?}: RTPG always served");
        assert_eq!(&d[0..4], &[0, 0, 0, 24], "two 12-byte descriptors");
        assert_eq!(&d[4..12], &[state.0, 0x8f, 0, 1, 0, 0, 0, 1]);
        assert_eq!(&d[14..16], &[0, 1], "relative target port 1");
        assert_eq!(&d[16..20], &[0, 0x8f, 0, 2]);
        assert_eq!(&d[26..28], &[0, 2]);
        let read = run(&l, &mut on1, &READ10, &[]);
        match refused {
            None => assert!(matches!(read, Outcome::Io(_)), "{state:?}: READ runs"),
            Some(asc) => assert_eq!(read.sense().map(|s| (s.key, s.asc)), Some((SenseKey::NOT_READY, asc))),
        }
        assert!(matches!(run(&l, &mut on2, &READ10, &[]), Outcome::Io(_)), "the other group serves");
        for cdb in [&[0x12u8, 0, 0, 0, 36, 0][..], &[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0], &[0x03, 0, 0, 0, 18, 0]] {
            assert_eq!(status(&run_data(&l, &mut on1, cdb).0), ScsiStatus::GOOD, "{state:?} {cdb:x?}");
        }
        let ms = status(&run_data(&l, &mut on1, &[0x1a, 0x08, 0x3f, 0, 255, 0]).0);
        let ms_ok = !matches!(state, AluaState::UNAVAILABLE | AluaState::TRANSITIONING);
        assert_eq!(ms == ScsiStatus::GOOD, ms_ok, "{state:?}: MODE SENSE");
        // VPD 83h: relative target port and target port group of each nexus's own port.
        let (_, v) = run_data(&l, &mut on2, &[0x12, 1, 0x83, 0, 255, 0]);
        let find = |ty: u8| v.windows(8).find(|w| w[1] == ty && w[3] == 4).map(|w| [w[6], w[7]]);
        assert_eq!((find(0x94), find(0x95)), (Some([0, 2]), Some([0, 2])));
    }
}

fn gls(lba: u64, alloc: u32) -> Vec<u8> {
    let mut c = vec![0x9e, 0x12];
    c.extend_from_slice(&lba.to_be_bytes());
    c.extend_from_slice(&alloc.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    c
}

/// GET LBA STATUS on a deallocating LU: the job asks the backend for as many
/// runs as the allocation length allows, then encodes the descriptors in
/// its scratch buffer, cut to the allocation length.
#[test]
fn get_lba_status_job_asks_the_backend_and_encodes_descriptors() {
    use shardtgt_core::scsi::lba_status::{put, DEALLOCATED, MAPPED};
    use shardtgt_core::scsi::{BackendOp, BackendStatus, JobBuf, JobStep};
    let mut l = lu(true);
    l.deallocate = true;
    let shared = Arc::new(LuShared::default());
    let mut a = nexus(&shared, "iqn.a", 1);
    // Allocation length 0: nothing to say, no backend call.
    assert_eq!(run_data(&l, &mut a, &gls(0, 0)).0, Outcome::good(0));
    assert_eq!(run_data(&l, &mut a, &gls(1000, 64)).0.sense(), Some(Sense::lba_out_of_range()));
    for (alloc, descs) in [(8 + 16 * 3, 3usize), (1 << 20, 64), (20, 1)] {
        let Outcome::Job(mut job) = run_data(&l, &mut a, &gls(10, alloc)).0 else { panic!("a job") };
        assert_eq!(job.data_out_len(), 0);
        let mut scratch = Vec::new();
        let JobStep::Io(io, JobBuf::Scratch) = job.step(None, &mut [], &mut scratch) else { panic!("one I/O") };
        assert_eq!((io.op, io.offset), (BackendOp::MapStatus, 10 * 512));
        assert_eq!(io.len as usize, scratch.len());
        assert_eq!(scratch.len(), 2 * descs * 16, "room for twice as many runs as descriptors");
        // The backend: 100 runs alternating 1 block mapped, 2 deallocated.
        for i in 0..scratch.len() / 16 {
            let (n, s) = if i % 2 == 0 { (512, MAPPED) } else { (1024, DEALLOCATED) };
            assert!(put(&mut scratch, i, n, s));
        }
        let JobStep::Done(o) = job.step(Some(BackendStatus::Ok), &mut [], &mut scratch) else { panic!("done") };
        let n = (8 + 16 * descs).min(alloc as usize);
        assert_eq!(o, Outcome::good(n as u32), "alloc {alloc}");
        assert_eq!(u32::from_be_bytes(scratch[..4].try_into().unwrap()) as usize, 4 + 16 * descs);
        let d = &scratch[8..];
        assert_eq!(&d[..8], &10u64.to_be_bytes(), "first descriptor at the requested LBA");
        assert_eq!((&d[8..12], d[12]), (&1u32.to_be_bytes()[..], 0));
        if descs > 1 {
            assert_eq!((&d[16..24], &d[24..28], d[28]), (&11u64.to_be_bytes()[..], &2u32.to_be_bytes()[..], 1));
        }
    }
    // A failing backend: UNRECOVERED READ ERROR, not an empty answer.
    let Outcome::Job(mut job) = run_data(&l, &mut a, &gls(0, 64)).0 else { panic!("a job") };
    let mut scratch = Vec::new();
    assert!(matches!(job.step(None, &mut [], &mut scratch), JobStep::Io(..)));
    let JobStep::Done(o) = job.step(Some(BackendStatus::MediumError), &mut [], &mut scratch) else { panic!() };
    assert_eq!(o.sense(), Some(Sense::unrecovered_read_error()));
}

/// Online resize: the LU's shared capacity changes for every nexus at once;
/// each gets CAPACITY DATA HAS CHANGED once, then READ CAPACITY and range
/// checks use the new size.
#[test]
fn resize_raises_capacity_changed_once_per_nexus() {
    let l = lu(false);
    let shared = Arc::new(LuShared::default());
    let mut a = nexus(&shared, "iqn.a", 1);
    let mut b = nexus(&shared, "iqn.b", 2);
    let rc16 = [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0];
    let read16 = |lba: u64| {
        let mut c = vec![0x88, 0];
        c.extend_from_slice(&lba.to_be_bytes());
        c.extend_from_slice(&[0, 0, 0, 1, 0, 0]);
        c
    };
    assert_eq!(run_data(&l, &mut a, &read16(1500)).0.sense(), Some(Sense::lba_out_of_range()));
    assert!(!shared.set_num_blocks(1000, 1000), "same size: no change, no unit attention");
    assert_eq!(status(&run_data(&l, &mut a, &rc16).0), ScsiStatus::GOOD);
    assert!(shared.set_num_blocks(2000, 1000));
    for n in [&mut a, &mut b] {
        assert_eq!(run_data(&l, n, &rc16).0.sense(), Some(Sense::capacity_changed()));
        let (o, d) = run_data(&l, n, &rc16);
        assert_eq!(status(&o), ScsiStatus::GOOD, "reported once");
        assert_eq!(&d[..8], &1999u64.to_be_bytes());
        assert!(matches!(run_data(&l, n, &read16(1500)).0, Outcome::Io(_)), "past the old end");
        assert_eq!(run_data(&l, n, &read16(2000)).0.sense(), Some(Sense::lba_out_of_range()));
    }
    let (_, d) = run_data(&l, &mut a, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&d[..4], &1999u32.to_be_bytes(), "READ CAPACITY(10) too");
    // A nexus that attaches after the change sees the new size, no attention.
    let mut c = nexus(&shared, "iqn.c", 3);
    let (o, d) = run_data(&l, &mut c, &rc16);
    assert_eq!((status(&o), &d[..8]), (ScsiStatus::GOOD, &1999u64.to_be_bytes()[..]));
    // Shrinking works the same way.
    assert!(shared.set_num_blocks(500, 1000));
    assert_eq!(run_data(&l, &mut a, &rc16).0.sense(), Some(Sense::capacity_changed()));
    assert_eq!(run_data(&l, &mut a, &read16(600)).0.sense(), Some(Sense::lba_out_of_range()));
}
