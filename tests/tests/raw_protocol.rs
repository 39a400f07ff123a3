//! Well-behaved sessions from the raw initiator (`shardtgt_tests::initiator`):
//! login stages, keys, NOP ping, SendTargets, SCSI reads and writes with
//! immediate data and R2T, logout. These need no external tools.

use shardtgt_core::pdu::bhs::Opcode;
use shardtgt_tests::initiator::{cdb, RawConn, ReadOutcome};
use shardtgt_tests::{Target, TargetSpec};
use std::time::Duration;

const INITIATOR: &str = "iqn.2026-11.test:raw";

fn start() -> Target {
    Target::start(&TargetSpec::standard())
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8).collect()
}

#[test]
fn login_negotiates_and_reaches_full_feature_phase() {
    let mut t = start();
    let mut c = RawConn::connect(t.port).expect("connect");
    c.login(INITIATOR, Some(&t.iqn.clone())).expect("login");
    let last = c.login_responses.last().expect("a login response").clone();
    assert_ne!(c.tsih, 0, "the final login response assigns a TSIH");
    assert_eq!(last.bhs.0[3], 0, "version-active 0");
    assert_eq!(c.target_key("HeaderDigest"), Some("None"), "keys: {:?}", c.target_keys);
    assert_eq!(c.target_key("DataDigest"), Some("None"), "keys: {:?}", c.target_keys);
    assert!(c.target_mrdsl() >= 512, "MaxRecvDataSegmentLength {}", c.target_mrdsl());
    if !t.is_external() {
        assert_eq!(c.target_key("TargetPortalGroupTag"), Some("1"), "keys: {:?}", c.target_keys);
    }
    c.ping(b"");
    c.ping(&pattern(1, 1000));
    c.logout();
    t.assert_alive("a raw login");
}

#[test]
fn inquiry_and_read_capacity() {
    let mut t = start();
    let mut c = RawConn::connect(t.port).expect("connect");
    c.login(INITIATOR, Some(&t.iqn.clone())).expect("login");
    for i in 0..t.luns.len() {
        let l = t.lun(i).clone();
        c.clear_unit_attention(l.lun);
        let r = c.scsi_read(l.lun, &cdb::inquiry(false, 0, 96), 96);
        assert_eq!(r.status, 0, "INQUIRY LUN {}: {r:?}", l.lun);
        assert!(r.data.len() >= 36, "standard INQUIRY data is at least 36 bytes: {r:?}");
        assert_eq!(r.data[0] & 0x1f, 0, "peripheral device type 0 (disk)");
        let r = c.scsi_read(l.lun, &cdb::read_capacity10(), 8);
        assert_eq!(r.status, 0, "READ CAPACITY(10) LUN {}: {r:?}", l.lun);
        let last_lba = u32::from_be_bytes(r.data[0..4].try_into().expect("4 bytes"));
        let bs = u32::from_be_bytes(r.data[4..8].try_into().expect("4 bytes"));
        assert_eq!(u64::from(last_lba), l.blocks() - 1, "LUN {} last LBA", l.lun);
        assert_eq!(bs, l.block_size, "LUN {} block size", l.lun);
    }
    c.logout();
    t.assert_alive("INQUIRY / READ CAPACITY");
}

#[test]
fn writes_with_immediate_data_and_r2t_read_back() {
    let mut t = start();
    let lun = t.lun(0).lun;
    let mut c = RawConn::connect(t.port).expect("connect");
    c.login(INITIATOR, Some(&t.iqn.clone())).expect("login");
    c.clear_unit_attention(lun);
    // (lba, blocks): 1 block (immediate data only), 64 KiB (FirstBurstLength),
    // 256 KiB (immediate + R2T), 1 MiB (several R2Ts)
    let cases = [(10u32, 1u16), (100, 128), (1000, 512), (5000, 2048)];
    for (k, (lba, n)) in cases.iter().enumerate() {
        let data = pattern(k as u8 + 1, usize::from(*n) * 512);
        let w = c.scsi_write(lun, &cdb::write10(*lba, *n), &data);
        assert_eq!(w.status, 0, "WRITE(10) lba {lba} blocks {n}: {w:?}");
    }
    for (k, (lba, n)) in cases.iter().enumerate() {
        let data = pattern(k as u8 + 1, usize::from(*n) * 512);
        let r = c.scsi_read(lun, &cdb::read10(*lba, *n), data.len() as u32);
        assert_eq!(r.status, 0, "READ(10) lba {lba}: {r:?}");
        assert!(r.data == data, "read-back of lba {lba} blocks {n} differs");
    }
    c.logout();
    t.assert_alive("raw writes and reads");
}

#[test]
fn read_past_the_end_is_lba_out_of_range() {
    let mut t = start();
    let l = t.lun(0).clone();
    let mut c = RawConn::connect(t.port).expect("connect");
    c.login(INITIATOR, Some(&t.iqn.clone())).expect("login");
    let lba = u32::try_from(l.blocks()).expect("small LUN");
    c.clear_unit_attention(l.lun);
    let r = c.scsi_read(l.lun, &cdb::read10(lba, 1), l.block_size);
    assert_eq!(r.status, 2, "CHECK CONDITION: {r:?}");
    assert_eq!(r.sense_key(), 5, "ILLEGAL REQUEST: {r:?}");
    assert_eq!(r.asc_ascq(), 0x2100, "LOGICAL BLOCK ADDRESS OUT OF RANGE (SBC-4): {r:?}");
    c.logout();
    t.assert_alive("a read past the end");
}

#[test]
fn discovery_session_send_targets_then_logout() {
    let mut t = start();
    let mut c = RawConn::connect(t.port).expect("connect");
    c.login(INITIATOR, None).expect("discovery login");
    let keys = c.send_targets();
    let names: Vec<&str> = keys.iter().filter(|(k, _)| k == "TargetName").map(|(_, v)| v.as_str()).collect();
    assert!(names.contains(&t.iqn.as_str()), "{keys:?}");
    c.logout();
    t.assert_alive("a discovery session");
}

#[test]
fn logout_then_the_target_closes() {
    let mut t = start();
    let mut c = RawConn::connect(t.port).expect("connect");
    c.login(INITIATOR, Some(&t.iqn.clone())).expect("login");
    c.logout();
    match c.recv_outcome(Duration::from_secs(10)) {
        ReadOutcome::Closed => {}
        ReadOutcome::Pdu(p) => assert_ne!(p.opcode(), Opcode::SCSI_RESPONSE, "PDU after logout: {p:?}"),
        ReadOutcome::Timeout => {} // the initiator closes first on most stacks; both are fine
    }
    t.assert_alive("logout");
}
