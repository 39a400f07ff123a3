//! SCSI emulation (SPC-4 / SBC-4) driven through its public entry points:
//! success paths with the key bytes checked, every error path with its exact
//! sense, and a property test that no CDB can panic it.

use proptest::prelude::*;
use shardtgt_core::scsi::sense::SenseKeySpecific;
use shardtgt_core::scsi::{
    complete_backend, complete_verify, execute, execute_with_parameter_list, max_transfer_blocks, parameter_list_len,
    Asc, BackendOp, BackendStatus, CmdContext, IoRequest, LuInfo, NexusState, Outcome, ScsiStatus, Sense, SenseKey,
    MAX_TRANSFER_BYTES,
};

const TARGET: &str = "iqn.2024-01.org.example:t1";

fn lu() -> LuInfo {
    LuInfo {
        block_size: 512,
        num_blocks: 1000,
        vendor: "SHARDTGT".into(),
        product: "disk".into(),
        revision: "0.1".into(),
        serial: "SN123".into(),
        naa_id: 0x5001_4050_0000_0001,
        read_only: false,
        write_cache: true,
        target_name: TARGET.into(),
        rel_port_id: 1,
        port_group: 0,
        port_groups: Vec::new(),
        thin: false,
        deallocate: false,
    }
}

/// Run one command with the CDB padded to 16 bytes (as it arrives in an
/// iSCSI BHS); returns the outcome and the Data-In bytes.
fn run(lu: Option<&LuInfo>, nexus: &mut NexusState, cdb: &[u8]) -> (Outcome, Vec<u8>) {
    let mut c = cdb.to_vec();
    if c.len() < 16 {
        c.resize(16, 0);
    }
    run_raw(lu, &[0, 1, 2], nexus, &c, &[])
}

fn run_raw(lu: Option<&LuInfo>, luns: &[u16], nexus: &mut NexusState, cdb: &[u8], params: &[u8]) -> (Outcome, Vec<u8>) {
    let ctx = CmdContext { lu, luns, cdb, edtl: 65536, write_bit: false, read_bit: true };
    let mut buf = vec![0xeeu8; 65536];
    let o = execute_with_parameter_list(&ctx, nexus, params, &mut buf);
    let n = match &o {
        Outcome::Done { data_len, .. } => (*data_len as usize).min(buf.len()),
        Outcome::Io(_) | Outcome::Job(_) => 0,
    };
    buf.truncate(n);
    (o, buf)
}

fn good(lu: &LuInfo, cdb: &[u8]) -> Vec<u8> {
    let (o, data) = run(Some(lu), &mut NexusState::new(1), cdb);
    assert_eq!(o.status(), Some(ScsiStatus::GOOD), "{o:?}");
    assert_eq!(o.sense(), None);
    data
}

fn check(lu: Option<&LuInfo>, cdb: &[u8]) -> Sense {
    let (o, data) = run(lu, &mut NexusState::new(1), cdb);
    assert_eq!(o.status(), Some(ScsiStatus::CHECK_CONDITION), "{o:?}");
    assert!(data.is_empty());
    o.sense().expect("sense")
}

fn io(lu: &LuInfo, cdb: &[u8]) -> IoRequest {
    match run(Some(lu), &mut NexusState::new(1), cdb).0 {
        Outcome::Io(r) => r,
        o => panic!("expected I/O, got {o:?}"),
    }
}

fn field(byte: u16, bit: Option<u8>) -> Sense {
    Sense::invalid_field_in_cdb(byte, bit)
}

fn read10(lba: u32, blocks: u16, flags: u8) -> Vec<u8> {
    let mut c = vec![0x28, flags];
    c.extend_from_slice(&lba.to_be_bytes());
    c.push(0);
    c.extend_from_slice(&blocks.to_be_bytes());
    c.push(0);
    c
}

fn rw12(op: u8, lba: u32, blocks: u32, flags: u8) -> Vec<u8> {
    let mut c = vec![op, flags];
    c.extend_from_slice(&lba.to_be_bytes());
    c.extend_from_slice(&blocks.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    c
}

fn rw16(op: u8, lba: u64, blocks: u32, flags: u8) -> Vec<u8> {
    let mut c = vec![op, flags];
    c.extend_from_slice(&lba.to_be_bytes());
    c.extend_from_slice(&blocks.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    c
}

fn with_op(mut c: Vec<u8>, op: u8) -> Vec<u8> {
    c[0] = op;
    c
}

// ---------------------------------------------------------------- INQUIRY

#[test]
fn inquiry_standard_data() {
    let d = good(&lu(), &[0x12, 0, 0, 0x01, 0x00, 0]);
    assert_eq!(d.len(), 96);
    assert_eq!(&d[..8], &[0x00, 0x00, 0x06, 0x12, 91, 0x10, 0x00, 0x02]);
    assert_eq!(&d[8..16], b"SHARDTGT");
    assert_eq!(&d[16..32], b"disk            ");
    assert_eq!(&d[32..36], b"0.1 ");
    assert!(d[36..58].iter().all(|&b| b == 0));
    assert_eq!(&d[58..74], &[0x00, 0xa0, 0x09, 0x60, 0x04, 0x60, 0x04, 0xc0, 0x06, 0x00, 0, 0, 0, 0, 0, 0]);
    assert!(d[74..].iter().all(|&b| b == 0));
}

#[test]
fn inquiry_allocation_length() {
    let full = good(&lu(), &[0x12, 0, 0, 0x01, 0x00, 0]);
    assert_eq!(good(&lu(), &[0x12, 0, 0, 0, 5, 0]), full[..5]);
    assert_eq!(good(&lu(), &[0x12, 0, 0, 0, 0, 0]), Vec::<u8>::new());
    // 16-bit allocation length: 511 and 512 give the same 96 bytes.
    assert_eq!(good(&lu(), &[0x12, 0, 0, 0x01, 0xff, 0]), full);
    assert_eq!(good(&lu(), &[0x12, 0, 0, 0x02, 0x00, 0]), full);
    // Vendor text is cleaned and cut.
    let mut l = lu();
    l.vendor = "A\u{1}verylongvendor".into();
    assert_eq!(&good(&l, &[0x12, 0, 0, 0, 96, 0])[8..16], b"A verylo");
}

#[test]
fn inquiry_errors() {
    let l = lu();
    assert_eq!(check(Some(&l), &[0x12, 0x02, 0, 0, 96, 0]), field(1, Some(1)));
    assert_eq!(check(Some(&l), &[0x12, 0x00, 0x80, 0, 96, 0]), field(2, None));
    assert_eq!(check(Some(&l), &[0x12, 0x01, 0x99, 0, 96, 0]), field(2, None));
    assert_eq!(check(Some(&l), &[0x12, 0x01, 0xb2, 0, 96, 0]), field(2, None));
}

#[test]
fn vpd_supported_pages() {
    assert_eq!(good(&lu(), &[0x12, 1, 0x00, 0, 255, 0]), [0, 0x00, 0, 5, 0x00, 0x80, 0x83, 0xb0, 0xb1]);
    let mut thin = lu();
    thin.thin = true;
    assert_eq!(good(&thin, &[0x12, 1, 0x00, 0, 255, 0]), [0, 0x00, 0, 6, 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2]);
    assert_eq!(good(&thin, &[0x12, 1, 0xb2, 0, 255, 0]), [0, 0xb2, 0, 4, 0, 0xe4, 0x02, 0]);
}

#[test]
fn vpd_serial() {
    assert_eq!(good(&lu(), &[0x12, 1, 0x80, 0, 255, 0]), b"\x00\x80\x00\x05SN123");
}

fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[test]
fn vpd_device_identification() {
    let mut n = NexusState::new(1);
    let (o, d) = run(Some(&lu()), &mut n, &[0x12, 1, 0x83, 0x01, 0x00, 0]);
    assert_eq!(o.status(), Some(ScsiStatus::GOOD));
    let mut want = vec![0x00, 0x83, 0x00, 125];
    want.extend_from_slice(&[0x01, 0x03, 0x00, 0x10]);
    want.extend_from_slice(&0x6001_4050_0000_0001u64.to_be_bytes());
    want.extend_from_slice(&fnv1a64(b"SN123").to_be_bytes());
    want.extend_from_slice(&[0x02, 0x01, 0x00, 13]);
    want.extend_from_slice(b"SHARDTGTSN123");
    want.extend_from_slice(&[0x51, 0x94, 0x00, 4, 0, 0, 0, 1]);
    want.extend_from_slice(&[0x51, 0x95, 0x00, 4, 0, 0, 0, 0]);
    want.extend_from_slice(&[0x53, 0x98, 0x00, 36]);
    want.extend_from_slice(TARGET.as_bytes());
    want.extend_from_slice(b",t,0x0001\0");
    want.extend_from_slice(&[0x53, 0xa8, 0x00, 28]);
    want.extend_from_slice(TARGET.as_bytes());
    want.extend_from_slice(&[0, 0]);
    assert_eq!(d, want);

    // The TPGT comes from the nexus.
    let mut n = NexusState::new(0x2b);
    let (_, d) = run(Some(&lu()), &mut n, &[0x12, 1, 0x83, 0x01, 0x00, 0]);
    let at = 4 + 20 + 17 + 16 + 4 + TARGET.len();
    assert_eq!(&d[at..at + 9], b",t,0x002b");
}

#[test]
fn vpd_block_limits_and_characteristics() {
    let d = good(&lu(), &[0x12, 1, 0xb0, 0, 255, 0]);
    assert_eq!(d.len(), 64);
    assert_eq!(&d[..4], &[0, 0xb0, 0, 0x3c]);
    assert_eq!(&d[6..8], &[0, 1], "OPTIMAL TRANSFER LENGTH GRANULARITY: one physical block");
    assert_eq!(&d[8..12], &16384u32.to_be_bytes());
    assert_eq!(d[5], 255, "MAXIMUM COMPARE AND WRITE LENGTH");
    assert!(d[20..32].iter().all(|&b| b == 0), "no UNMAP on a fully provisioned LU");
    assert_eq!(&d[36..44], &16384u64.to_be_bytes(), "MAXIMUM WRITE SAME LENGTH");
    assert_eq!(&d[44..48], &16384u32.to_be_bytes(), "MAXIMUM ATOMIC TRANSFER LENGTH");
    let mut thin = lu();
    thin.thin = true;
    let d = good(&thin, &[0x12, 1, 0xb0, 0, 255, 0]);
    assert_eq!(&d[20..24], &(1u32 << 20).to_be_bytes(), "MAXIMUM UNMAP LBA COUNT");
    assert_eq!(&d[24..28], &256u32.to_be_bytes(), "MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT");
    let mut big = lu();
    big.block_size = 4096;
    assert_eq!(&good(&big, &[0x12, 1, 0xb0, 0, 255, 0])[8..12], &2048u32.to_be_bytes());

    let d = good(&lu(), &[0x12, 1, 0xb1, 0, 255, 0]);
    assert_eq!(d.len(), 64);
    assert_eq!(&d[..6], &[0, 0xb1, 0, 0x3c, 0, 1]);
    assert!(d[6..].iter().all(|&b| b == 0));
}

// ------------------------------------------------------------ unknown LUN

#[test]
fn unknown_lun() {
    let d = good_none(&[0x12, 0, 0, 0, 96, 0]);
    assert_eq!(d.len(), 96);
    assert_eq!(d[0], 0x7f);
    assert_eq!(d[2], 0x06);
    assert_eq!(good_none(&[0x12, 1, 0, 0, 96, 0]), [0x7f, 0, 0, 1, 0]);
    assert_eq!(check(None, &[0x12, 1, 0x83, 0, 96, 0]), field(2, None));
    for cdb in
        [vec![0x00u8, 0, 0, 0, 0, 0], read10(0, 1, 0), vec![0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], vec![0xc7, 0, 0, 0, 0, 0]]
    {
        assert_eq!(check(None, &cdb), Sense::lun_not_supported());
    }
    // REQUEST SENSE answers GOOD with LOGICAL UNIT NOT SUPPORTED as data.
    let d = good_none(&[0x03, 0, 0, 0, 18, 0]);
    assert_eq!(Sense::decode(&d), Some(Sense::lun_not_supported()));
    // REPORT LUNS works.
    let d = good_none(&[0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(&d[..4], &[0, 0, 0, 24]);
}

fn good_none(cdb: &[u8]) -> Vec<u8> {
    let (o, d) = run(None, &mut NexusState::new(1), cdb);
    assert_eq!(o.status(), Some(ScsiStatus::GOOD), "{o:?}");
    d
}

// ----------------------------------------------------------- READ CAPACITY

#[test]
fn read_capacity() {
    assert_eq!(good(&lu(), &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]), [0, 0, 0x03, 0xe7, 0, 0, 0x02, 0]);
    let mut huge = lu();
    huge.num_blocks = 1 << 33;
    assert_eq!(&good(&huge, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0])[..4], &[0xff; 4]);
    let mut edge = lu();
    edge.num_blocks = 0xffff_ffff; // last LBA FFFFFFFEh still fits
    assert_eq!(&good(&edge, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0])[..4], &[0xff, 0xff, 0xff, 0xfe]);

    let rc16 = |alloc: u32| {
        let mut c = vec![0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0];
        c.extend_from_slice(&alloc.to_be_bytes());
        c.extend_from_slice(&[0, 0]);
        c
    };
    let d = good(&huge, &rc16(32));
    let mut want = vec![0u8; 32];
    want[..8].copy_from_slice(&((1u64 << 33) - 1).to_be_bytes());
    want[8..12].copy_from_slice(&512u32.to_be_bytes());
    assert_eq!(d, want);
    let mut big = lu();
    big.block_size = 4096;
    assert_eq!(good(&big, &rc16(32))[13], 0);
    let mut thin = lu();
    thin.thin = true;
    assert_eq!(good(&thin, &rc16(32))[14], 0xc0);
    for alloc in 0..16 {
        assert_eq!(good(&lu(), &rc16(alloc)).len(), alloc as usize);
    }
    assert_eq!(good(&lu(), &rc16(96)).len(), 32);
    // Other SERVICE ACTION IN(16) service actions: byte 1 bit 4.
    assert_eq!(check(Some(&lu()), &with_sa(rc16(32), 0x13)), field(1, Some(4)));
}

fn with_sa(mut c: Vec<u8>, sa: u8) -> Vec<u8> {
    c[1] = sa;
    c
}

// ------------------------------------------------------------- READ/WRITE

#[test]
fn reads_become_io() {
    let l = lu();
    assert_eq!(
        io(&l, &read10(10, 8, 0)),
        IoRequest { op: BackendOp::Read, offset: 5120, len: 4096, fua: false, verify: false }
    );
    assert!(io(&l, &read10(0, 1, 0x08)).fua);
    assert!(!io(&l, &read10(0, 1, 0x10)).fua, "DPO is accepted and ignored");
    let r6 = io(&l, &[0x08, 0x00, 0x01, 0x00, 0x00, 0]);
    assert_eq!((r6.offset, r6.len), (256 * 512, 256 * 512), "READ(6) length 0 = 256");
    let r6 = io(&l, &[0x08, 0x00, 0x00, 0x05, 0x03, 0]);
    assert_eq!((r6.offset, r6.len), (5 * 512, 3 * 512));
    let r12 = io(&l, &rw12(0xa8, 999, 1, 0));
    assert_eq!((r12.offset, r12.len), (999 * 512, 512));
    let r16 = io(&l, &rw16(0x88, 990, 10, 0x08));
    assert_eq!((r16.offset, r16.len, r16.fua), (990 * 512, 5120, true));
}

#[test]
fn zero_length_transfers_need_no_io() {
    let l = lu();
    assert_eq!(good(&l, &read10(0, 0, 0)), Vec::<u8>::new());
    assert_eq!(good(&l, &read10(1000, 0, 0)), Vec::<u8>::new());
    assert_eq!(good(&l, &with_op(read10(5, 0, 0), 0x2a)), Vec::<u8>::new());
    assert_eq!(good(&l, &rw16(0x88, 0, 0, 0)), Vec::<u8>::new());
    // Still range checked.
    assert_eq!(check(Some(&l), &read10(1001, 0, 0)), Sense::lba_out_of_range());
    assert_eq!(check(Some(&l), &read10(u32::MAX, 0, 0)), Sense::lba_out_of_range());
}

#[test]
fn lba_out_of_range() {
    let l = lu();
    let oob = Sense::lba_out_of_range();
    for op in [0x28u8, 0x2a] {
        assert!(matches!(run(Some(&l), &mut NexusState::new(1), &with_op(read10(999, 1, 0), op)).0, Outcome::Io(_)));
        assert_eq!(check(Some(&l), &with_op(read10(1000, 1, 0), op)), oob);
        assert_eq!(check(Some(&l), &with_op(read10(999, 2, 0), op)), oob);
        assert_eq!(check(Some(&l), &with_op(read10(0x8000_0000, 1, 0), op)), oob);
        assert_eq!(check(Some(&l), &with_op(read10(u32::MAX, 1, 0), op)), oob);
    }
    for op in [0x88u8, 0x8a] {
        assert_eq!(check(Some(&l), &rw16(op, 1000, 1, 0)), oob);
        assert_eq!(check(Some(&l), &rw16(op, 999, 2, 0)), oob);
        // lba + len wraps around 2^64.
        assert_eq!(check(Some(&l), &rw16(op, u64::MAX, 2, 0)), oob);
        assert_eq!(check(Some(&l), &rw16(op, 1 << 63, 1, 0)), oob);
        assert_eq!(check(Some(&l), &rw16(op, 1 << 55, 1, 0)), oob);
    }
    assert_eq!(check(Some(&l), &rw12(0xa8, 1000, 1, 0)), oob);
    assert_eq!(check(Some(&l), &rw12(0xaa, 999, 2, 0)), oob);
    assert_eq!(check(Some(&l), &[0x08, 0x1f, 0xff, 0xff, 1, 0]), oob);
    assert_eq!(check(Some(&l), &[0x0a, 0x00, 0x03, 0xe7, 2, 0]), oob);
}

#[test]
fn transfer_length_limit() {
    let l = lu();
    let max = max_transfer_blocks(512);
    assert_eq!(max * 512, MAX_TRANSFER_BYTES);
    let mut big = lu();
    big.num_blocks = 1 << 40;
    assert_eq!(io(&big, &rw16(0x88, 0, max, 0)).len, MAX_TRANSFER_BYTES);
    assert_eq!(check(Some(&big), &rw16(0x88, 0, max + 1, 0)), field(10, None));
    assert_eq!(check(Some(&big), &rw16(0x8a, 0, u32::MAX, 0)), field(10, None));
    assert_eq!(check(Some(&big), &rw12(0xa8, 0, max + 1, 0)), field(6, None));
    assert_eq!(check(Some(&big), &read10(0, (max + 1) as u16, 0)), field(7, None));
    // The length check comes before the range check.
    assert_eq!(check(Some(&l), &rw16(0x88, 999, max + 1, 0)), field(10, None));
}

#[test]
fn protect_fields_are_rejected() {
    let l = lu();
    for p in 1..8u8 {
        for op in [0x28u8, 0x2a, 0x2e, 0x2f] {
            assert_eq!(check(Some(&l), &with_op(read10(0, 1, p << 5), op)), field(1, Some(7)));
        }
        assert_eq!(check(Some(&l), &rw12(0xa8, 0, 1, p << 5)), field(1, Some(7)));
        assert_eq!(check(Some(&l), &rw16(0x8a, 0, 1, p << 5)), field(1, Some(7)));
    }
}

#[test]
fn writes() {
    let l = lu();
    assert_eq!(
        io(&l, &with_op(read10(1, 2, 0), 0x2a)),
        IoRequest { op: BackendOp::Write, offset: 512, len: 1024, fua: false, verify: false }
    );
    assert!(io(&l, &with_op(read10(1, 2, 0x08), 0x2a)).fua);
    assert!(!io(&l, &with_op(read10(1, 2, 0x02), 0x2a)).fua, "FUA_NV alone");
    let w6 = io(&l, &[0x0a, 0, 0, 7, 0, 0]);
    assert_eq!((w6.op, w6.offset, w6.len), (BackendOp::Write, 7 * 512, 256 * 512));
    let w16 = io(&l, &rw16(0x8a, 2, 3, 0));
    assert_eq!((w16.op, w16.offset, w16.len), (BackendOp::Write, 1024, 1536));
    // WCE off: every write is forced to the medium.
    let mut no_wc = lu();
    no_wc.write_cache = false;
    assert!(io(&no_wc, &with_op(read10(0, 1, 0), 0x2a)).fua);
    assert!(!io(&no_wc, &read10(0, 1, 0)).fua);
}

#[test]
fn write_protected_lu() {
    let mut ro = lu();
    ro.read_only = true;
    let wp = Sense::write_protected();
    assert_eq!(wp.key, SenseKey::DATA_PROTECT);
    assert_eq!(wp.asc, Asc::WRITE_PROTECTED);
    for cdb in [
        with_op(read10(0, 1, 0), 0x2a),
        with_op(read10(0, 1, 0), 0x2e),
        vec![0x0a, 0, 0, 0, 1, 0],
        rw12(0xaa, 0, 1, 0),
        rw16(0x8a, 0, 1, 0),
        rw16(0x8e, 0, 1, 0),
        with_op(read10(0, 0, 0), 0x2a),
    ] {
        assert_eq!(check(Some(&ro), &cdb), wp, "{cdb:02x?}");
    }
    assert!(matches!(run(Some(&ro), &mut NexusState::new(1), &read10(0, 1, 0)).0, Outcome::Io(_)));
    // Range errors win over write protection.
    assert_eq!(check(Some(&ro), &with_op(read10(1000, 1, 0), 0x2a)), Sense::lba_out_of_range());
    // SYNCHRONIZE CACHE has nothing to flush.
    assert_eq!(good(&ro, &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]), Vec::<u8>::new());
}

#[test]
fn write_and_verify() {
    let l = lu();
    for bytchk in [0u8, 1] {
        let r = io(&l, &with_op(read10(3, 1, bytchk << 1), 0x2e));
        assert_eq!((r.op, r.offset, r.len, r.fua), (BackendOp::Write, 1536, 512, true));
        let r = io(&l, &rw12(0xae, 3, 1, bytchk << 1));
        assert_eq!(r.op, BackendOp::Write);
        let r = io(&l, &rw16(0x8e, 3, 1, bytchk << 1));
        assert_eq!(r.op, BackendOp::Write);
    }
    for bytchk in [2u8, 3] {
        assert_eq!(check(Some(&l), &with_op(read10(0, 1, bytchk << 1), 0x2e)), field(1, Some(2)));
    }
    assert_eq!(check(Some(&l), &rw16(0x8e, 1000, 1, 0)), Sense::lba_out_of_range());
}

#[test]
fn verify() {
    let l = lu();
    // BYTCHK 0: medium verification, no I/O, no transfer length limit.
    assert_eq!(good(&l, &with_op(read10(0, 1000, 0), 0x2f)), Vec::<u8>::new());
    assert_eq!(good(&l, &rw12(0xaf, 0, 1, 0x10)), Vec::<u8>::new());
    assert_eq!(good(&l, &rw16(0x8f, 999, 1, 0)), Vec::<u8>::new());
    assert_eq!(check(Some(&l), &with_op(read10(1000, 1, 0), 0x2f)), Sense::lba_out_of_range());
    assert_eq!(check(Some(&l), &rw16(0x8f, u64::MAX, 1, 0)), Sense::lba_out_of_range());
    // BYTCHK 1: compare the Data-Out with the medium.
    let r = io(&l, &with_op(read10(4, 2, 0x02), 0x2f));
    assert_eq!(r, IoRequest { op: BackendOp::Read, offset: 2048, len: 1024, fua: false, verify: true });
    let same = vec![7u8; 1024];
    let mut other = same.clone();
    other[700] = 8;
    assert_eq!(complete_verify(&r, BackendStatus::Ok, &same, &same), Outcome::good(0));
    let s = complete_verify(&r, BackendStatus::Ok, &other, &same).sense().unwrap();
    assert_eq!(s, Sense::miscompare(700));
    assert_eq!((s.key, s.asc), (SenseKey::MISCOMPARE, Asc::MISCOMPARE_DURING_VERIFY));
    assert_eq!(check(Some(&l), &with_op(read10(0, 1, 0x04), 0x2f)), field(1, Some(2)));
    assert_eq!(check(Some(&l), &with_op(read10(0, 1, 0x06), 0x2f)), field(1, Some(2)));
}

#[test]
fn pre_fetch() {
    let l = lu();
    let pf10 = |lba: u32, n: u16| with_op(read10(lba, n, 0), 0x34);
    assert_eq!(good(&l, &pf10(0, 256)), Vec::<u8>::new());
    assert_eq!(good(&l, &pf10(744, 256)), Vec::<u8>::new());
    assert_eq!(good(&l, &with_op(read10(0, 1, 0x02), 0x34)), Vec::<u8>::new());
    assert_eq!(check(Some(&l), &pf10(745, 256)), Sense::lba_out_of_range());
    assert_eq!(check(Some(&l), &pf10(1001, 0)), Sense::lba_out_of_range());
    assert_eq!(good(&l, &rw16(0x90, 999, 1, 0)), Vec::<u8>::new());
    assert_eq!(check(Some(&l), &rw16(0x90, u64::MAX, 1, 0)), Sense::lba_out_of_range());
}

#[test]
fn synchronize_cache() {
    let l = lu();
    let whole = IoRequest { op: BackendOp::Flush, offset: 0, len: 0, fua: false, verify: false };
    assert_eq!(io(&l, &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]), whole);
    assert_eq!(io(&l, &[0x35, 0x02, 0, 0, 0, 0, 0, 0, 0, 0]), whole);
    let r = io(&l, &with_op(read10(10, 4, 0), 0x35));
    assert_eq!((r.op, r.offset, r.len), (BackendOp::Flush, 5120, 2048));
    assert_eq!(io(&l, &rw16(0x91, 0, 0, 0)), whole);
    assert_eq!(check(Some(&l), &with_op(read10(1001, 0, 0), 0x35)), Sense::lba_out_of_range());
    assert_eq!(check(Some(&l), &rw16(0x91, 999, 2, 0)), Sense::lba_out_of_range());
}

// ------------------------------------------------------------- REPORT LUNS

fn report_luns(select: u8, alloc: u32) -> Vec<u8> {
    let mut c = vec![0xa0, 0, select, 0, 0, 0];
    c.extend_from_slice(&alloc.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    c
}

#[test]
fn report_luns_lists_and_truncates() {
    let l = lu();
    let mut n = NexusState::new(1);
    let (o, d) = run_raw(Some(&l), &[0, 5, 300], &mut n, &report_luns(0, 4096), &[]);
    assert_eq!(o, Outcome::good(32));
    assert_eq!(
        d,
        [
            0, 0, 0, 24, 0, 0, 0, 0, //
            0, 0, 0, 0, 0, 0, 0, 0, //
            0, 5, 0, 0, 0, 0, 0, 0, //
            0x41, 0x2c, 0, 0, 0, 0, 0, 0,
        ]
    );
    let (o, d) = run_raw(Some(&l), &[0, 5, 300], &mut n, &report_luns(2, 16), &[]);
    assert_eq!(o, Outcome::good(16));
    assert_eq!(&d[..4], &[0, 0, 0, 24], "LUN LIST LENGTH is not cut");
    let (_, d) = run_raw(Some(&l), &[0, 5], &mut n, &report_luns(1, 64), &[]);
    assert_eq!(d, [0u8; 8]);
    let (_, d) = run_raw(Some(&l), &[], &mut n, &report_luns(0, 64), &[]);
    assert_eq!(d, [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(check(Some(&l), &report_luns(0, 15)), field(6, None));
    assert_eq!(check(Some(&l), &report_luns(3, 64)), field(2, None));
    assert_eq!(check(Some(&l), &report_luns(0x10, 64)), field(2, None));
}

// -------------------------------------------------------------- MODE SENSE

fn ms6(dbd: bool, pc: u8, page: u8, sub: u8, alloc: u8) -> Vec<u8> {
    vec![0x1a, if dbd { 0x08 } else { 0 }, (pc << 6) | page, sub, alloc, 0]
}

fn ms10(llbaa: bool, dbd: bool, pc: u8, page: u8, alloc: u16) -> Vec<u8> {
    let b1 = if llbaa { 0x10 } else { 0 } | if dbd { 0x08 } else { 0 };
    let a = alloc.to_be_bytes();
    vec![0x5a, b1, (pc << 6) | page, 0, 0, 0, 0, a[0], a[1], 0]
}

const PAGE01: [u8; 12] = [0x01, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// Control page as MODE SENSE returns it (PS set: saveable).
const PAGE0A: [u8; 12] = [0x8a, 0x0a, 0x20, 0x10, 0, 0x40, 0, 0, 0xff, 0xff, 0, 0];
const PAGE1C: [u8; 12] = [0x1c, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

fn page08(wce: bool) -> Vec<u8> {
    let mut p = vec![0u8; 20];
    p[0] = 0x88; // PS: saveable
    p[1] = 0x12;
    p[2] = if wce { 0x04 } else { 0 };
    p
}

#[test]
fn mode_sense_6_all_pages() {
    let d = good(&lu(), &ms6(false, 0, 0x3f, 0, 255));
    let mut want = vec![67, 0, 0x10, 8, 0, 0, 0x03, 0xe8, 0, 0, 0x02, 0x00];
    want.extend_from_slice(&PAGE01);
    want.extend_from_slice(&page08(true));
    want.extend_from_slice(&PAGE0A);
    want.extend_from_slice(&PAGE1C);
    assert_eq!(d, want);
    // Subpage FFh means the same here; DBD drops the block descriptor.
    assert_eq!(good(&lu(), &ms6(false, 0, 0x3f, 0xff, 255)), want);
    let d = good(&lu(), &ms6(true, 0, 0x3f, 0, 255));
    assert_eq!(&d[..4], &[59, 0, 0x10, 0]);
    assert_eq!(d[4..], want[12..]);
    // Allocation length 4: header only, MODE DATA LENGTH still the whole.
    assert_eq!(good(&lu(), &ms6(false, 0, 0x3f, 0, 4)), [67, 0, 0x10, 8]);
}

#[test]
fn mode_sense_pages_and_controls() {
    let mut ro = lu();
    ro.read_only = true;
    ro.write_cache = false;
    let d = good(&ro, &ms6(true, 0, 0x08, 0, 255));
    let mut want = vec![23, 0, 0x90, 0];
    want.extend_from_slice(&page08(false));
    assert_eq!(d, want);
    let d = good(&lu(), &ms6(true, 0, 0x0a, 0, 255));
    assert_eq!(d[4..], PAGE0A);
    // Changeable values: WCE, D_SENSE, SWP and TAS only.
    let d = good(&lu(), &ms6(true, 1, 0x3f, 0, 255));
    let mut want = vec![59, 0, 0x10, 0];
    want.extend_from_slice(&PAGE01);
    want.extend_from_slice(&page08(true));
    want.extend_from_slice(&[0x8a, 0x0a, 0x04, 0, 0x08, 0x40, 0, 0, 0, 0, 0, 0]);
    want.extend_from_slice(&PAGE1C);
    assert_eq!(d, want);
    // Default values follow the LU configuration.
    assert_eq!(good(&ro, &ms6(true, 2, 0x08, 0, 255))[6], 0);
    assert_eq!(good(&lu(), &ms6(true, 2, 0x08, 0, 255))[6], 0x04);

    let l = lu();
    // Saved values: the defaults until MODE SELECT saves some.
    assert_eq!(good(&l, &ms6(false, 3, 0x3f, 0, 255)), good(&l, &ms6(false, 2, 0x3f, 0, 255)));
    assert_eq!(Sense::saving_parameters_not_supported().asc, Asc::SAVING_PARAMETERS_NOT_SUPPORTED);
    assert_eq!(check(Some(&l), &ms6(false, 0, 0x19, 0, 255)), field(2, Some(5)));
    assert_eq!(check(Some(&l), &ms6(false, 0, 0x08, 1, 255)), field(3, None));
}

#[test]
fn mode_sense_10() {
    let mut big = lu();
    big.num_blocks = 1 << 33;
    let d = good(&big, &ms10(true, false, 0, 0x1c, 512));
    let mut want = vec![0, 34, 0, 0x10, 0x01, 0, 0, 16];
    want.extend_from_slice(&(1u64 << 33).to_be_bytes());
    want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x02, 0]);
    want.extend_from_slice(&PAGE1C);
    assert_eq!(d, want);
    // Without LLBAA: short descriptor, block count capped.
    let d = good(&big, &ms10(false, false, 0, 0x1c, 512));
    assert_eq!(&d[..8], &[0, 26, 0, 0x10, 0, 0, 0, 8]);
    assert_eq!(&d[8..16], &[0xff, 0xff, 0xff, 0xff, 0, 0, 0x02, 0]);
    let d = good(&big, &ms10(true, true, 0, 0x3f, 512));
    assert_eq!(&d[..8], &[0, 62, 0, 0x10, 0, 0, 0, 0]);
    assert_eq!(d.len(), 64);
}

// ------------------------------------------------------------- MODE SELECT

fn mode_select_6(params: &[u8]) -> Vec<u8> {
    let mut c = vec![0x15, 0x10, 0, 0, params.len() as u8, 0];
    c.resize(16, 0);
    c
}

#[test]
fn mode_select_changes_wce_and_d_sense() {
    let l = lu();
    let mut n = NexusState::new(1);
    let mut params = vec![0, 0, 0, 0];
    params.extend_from_slice(&page08(false));
    let cdb = mode_select_6(&params);
    assert_eq!(parameter_list_len(&cdb), Some(24));
    let (o, _) = run_raw(Some(&l), &[0], &mut n, &cdb, &params);
    assert_eq!(o, Outcome::good(0));
    assert_eq!(n.write_cache, Some(false));
    let (_, d) = run(Some(&l), &mut n, &ms6(true, 0, 0x08, 0, 255));
    assert_eq!(d[6], 0);
    match run(Some(&l), &mut n, &with_op(read10(0, 1, 0), 0x2a)).0 {
        Outcome::Io(r) => assert!(r.fua, "WCE off forces FUA"),
        o => panic!("{o:?}"),
    }

    // D_SENSE on, with a block descriptor that repeats the current values.
    let mut params = vec![0, 0, 0, 8, 0, 0, 0x03, 0xe8, 0, 0, 0x02, 0];
    let mut ctl = PAGE0A;
    ctl[0] |= 0x80; // PS is ignored in MODE SELECT
    ctl[2] |= 0x04;
    params.extend_from_slice(&ctl);
    let (o, _) = run_raw(Some(&l), &[0], &mut n, &mode_select_6(&params), &params);
    assert_eq!(o, Outcome::good(0));
    assert!(n.d_sense);
    let (_, d) = run(Some(&l), &mut n, &ms6(true, 0, 0x0a, 0, 255));
    assert_eq!(d[6], 0x24, "TST 001b, D_SENSE");
    let mut out = [0u8; 64];
    let len = n.encode_sense(&Sense::lba_out_of_range(), &mut out);
    assert_eq!(&out[..len], &[0x72, 0x05, 0x21, 0x00, 0, 0, 0, 0]);

    // MODE SELECT(10) turns WCE back on.
    let mut params = vec![0u8; 8];
    params.extend_from_slice(&page08(true));
    let mut cdb = vec![0x55, 0x10, 0, 0, 0, 0, 0, 0, params.len() as u8, 0];
    assert_eq!(parameter_list_len(&cdb), Some(28));
    cdb.resize(16, 0);
    let (o, _) = run_raw(Some(&l), &[0], &mut n, &cdb, &params);
    assert_eq!(o, Outcome::good(0));
    assert_eq!(n.write_cache, Some(true));
}

#[test]
fn mode_select_errors() {
    let l = lu();
    let mut n = NexusState::new(1);
    let sel = |n: &mut NexusState, cdb: &[u8], params: &[u8]| run_raw(Some(&l), &[0], n, cdb, params).0.sense();
    // QUEUE ALGORITHM MODIFIER is not changeable: byte 4 + 3, bit 4.
    let mut params = vec![0, 0, 0, 0];
    let mut ctl = PAGE0A;
    ctl[3] = 0;
    params.extend_from_slice(&ctl);
    assert_eq!(sel(&mut n, &mode_select_6(&params), &params), Some(Sense::invalid_field_in_parameter_list(7, Some(4))));
    // Unknown page: pointer to its page code.
    let params = [0, 0, 0, 0, 0x19, 0x02, 0, 0];
    assert_eq!(sel(&mut n, &mode_select_6(&params), &params), Some(Sense::invalid_field_in_parameter_list(4, Some(5))));
    // Wrong page length.
    let params = [0, 0, 0, 0, 0x08, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(sel(&mut n, &mode_select_6(&params), &params), Some(Sense::invalid_field_in_parameter_list(5, None)));
    // Wrong block length in the block descriptor.
    let params = [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0x10, 0];
    assert_eq!(sel(&mut n, &mode_select_6(&params), &params), Some(Sense::invalid_field_in_parameter_list(9, None)));
    // Cut short: the page is announced but incomplete.
    let mut params = vec![0, 0, 0, 0];
    params.extend_from_slice(&page08(false)[..10]);
    assert_eq!(sel(&mut n, &mode_select_6(&params), &params), Some(Sense::parameter_list_length_error()));
    // Less Data-Out than the CDB announces.
    assert_eq!(sel(&mut n, &mode_select_6(&[0; 24]), &[0; 4]), Some(Sense::parameter_list_length_error()));
    // `execute` alone has no parameter list.
    let ctx = CmdContext {
        lu: Some(&l),
        luns: &[0],
        cdb: &mode_select_6(&[0; 24]),
        edtl: 24,
        write_bit: true,
        read_bit: false,
    };
    let mut buf = [0u8; 64];
    assert_eq!(execute(&ctx, &mut n, &mut buf).sense(), Some(Sense::parameter_list_length_error()));
    // SP = 1 is accepted (the list is then checked as usual); PF = 0.
    let mut cdb = mode_select_6(&[0; 24]);
    cdb[1] = 0x11;
    assert_eq!(sel(&mut n, &cdb, &[0; 24]), Some(Sense::invalid_field_in_parameter_list(4, Some(5))));
    cdb[1] = 0x00;
    assert_eq!(sel(&mut n, &cdb, &[0; 24]), Some(field(1, Some(4))));
    // Nothing changed along the way; an empty list is fine.
    assert_eq!(n.write_cache, None);
    assert!(!n.d_sense);
    assert_eq!(run_raw(Some(&l), &[0], &mut n, &mode_select_6(&[]), &[]).0, Outcome::good(0));
    assert_eq!(parameter_list_len(&read10(0, 1, 0)), None);
}

// ------------------------------------------------- REQUEST SENSE, UAs

#[test]
fn request_sense_without_condition() {
    let d = good(&lu(), &[0x03, 0, 0, 0, 252, 0]);
    assert_eq!(d, [0x70, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let d = good(&lu(), &[0x03, 1, 0, 0, 252, 0]);
    assert_eq!(d, [0x72, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(good(&lu(), &[0x03, 0, 0, 0, 8, 0]).len(), 8);
}

#[test]
fn unit_attention_delivered_once() {
    let l = lu();
    let mut n = NexusState::with_power_on_ua(1);
    n.push_unit_attention(Sense::reported_luns_changed());
    assert_eq!(n.unit_attentions.len(), 2);
    // INQUIRY and REPORT LUNS do not report it...
    let (o, _) = run(Some(&l), &mut n, &[0x12, 0, 0, 0, 96, 0]);
    assert_eq!(o.status(), Some(ScsiStatus::GOOD));
    // ...but REPORT LUNS clears REPORTED LUNS DATA HAS CHANGED.
    let (o, _) = run(Some(&l), &mut n, &report_luns(0, 64));
    assert_eq!(o.status(), Some(ScsiStatus::GOOD));
    assert_eq!(n.unit_attentions, [Sense::power_on_reset()]);
    // Any other command gets it, even an invalid one, exactly once.
    let (o, _) = run(Some(&l), &mut n, &[0xc7, 0, 0, 0, 0, 0]);
    assert_eq!(o, Outcome::check_condition(Sense::power_on_reset()));
    let ua = Sense::power_on_reset();
    assert_eq!((ua.key, ua.asc), (SenseKey::UNIT_ATTENTION, Asc::POWER_ON_RESET));
    assert_eq!(run(Some(&l), &mut n, &[0; 6]).0, Outcome::good(0));
    assert_eq!(run(Some(&l), &mut n, &[0xc7, 0, 0, 0, 0, 0]).0.sense(), Some(Sense::invalid_opcode()));
}

#[test]
fn request_sense_reports_and_clears_unit_attention() {
    let l = lu();
    let mut n = NexusState::new(1);
    n.push_unit_attention(Sense::capacity_changed());
    n.push_unit_attention(Sense::mode_parameters_changed());
    let (o, d) = run(Some(&l), &mut n, &[0x03, 0, 0, 0, 18, 0]);
    assert_eq!(o, Outcome::good(18));
    assert_eq!(&d[..3], &[0x70, 0, 0x06]);
    assert_eq!(&d[12..14], &[0x2a, 0x09]);
    let (_, d) = run(Some(&l), &mut n, &[0x03, 1, 0, 0, 18, 0]);
    assert_eq!(d, [0x72, 0x06, 0x2a, 0x01, 0, 0, 0, 0]);
    let (_, d) = run(Some(&l), &mut n, &[0x03, 0, 0, 0, 18, 0]);
    assert_eq!(Sense::decode(&d), Some(Sense::no_sense()));
}

#[test]
fn unit_attention_queue_rules() {
    let mut n = NexusState::default();
    assert_eq!(n.tpgt, 0);
    assert!(n.unit_attentions.is_empty(), "no UA at login");
    n.push_unit_attention(Sense::capacity_changed());
    n.push_unit_attention(Sense::capacity_changed());
    assert_eq!(n.unit_attentions.len(), 1, "no duplicates");
    n.push_unit_attention(Sense::bus_device_reset());
    assert_eq!(n.unit_attentions, [Sense::bus_device_reset()], "reset supersedes");
    for i in 0..40u16 {
        n.push_unit_attention(Sense::unit_attention(Asc(0x3f00 | (i & 0xff))));
    }
    assert_eq!(n.unit_attentions.len(), NexusState::MAX_UNIT_ATTENTIONS);
    assert_eq!(n.take_unit_attention(), Some(Sense::bus_device_reset()));
}

#[test]
fn unit_attention_not_reported_for_unknown_lun() {
    let mut n = NexusState::with_power_on_ua(1);
    let (o, _) = run(None, &mut n, &[0; 6]);
    assert_eq!(o.sense(), Some(Sense::lun_not_supported()));
    assert_eq!(n.unit_attentions.len(), 1);
}

// ---------------------------------------------------- generic CDB checks

#[test]
fn unknown_opcodes_and_short_cdbs() {
    let l = lu();
    for op in [0x01u8, 0x04, 0x7f, 0xc0, 0xff] {
        assert_eq!(check(Some(&l), &[op, 0, 0, 0, 0, 0]), Sense::invalid_opcode(), "{op:#x}");
    }
    assert_eq!(Sense::invalid_opcode().asc, Asc::INVALID_COMMAND_OPERATION_CODE);
    // MAINTENANCE IN with a service action we lack.
    assert_eq!(check(Some(&l), &[0xa3, 0x0e, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]), field(1, Some(4)));
    let mut n = NexusState::new(1);
    let short = |n: &mut NexusState, cdb: &[u8]| run_raw(Some(&l), &[0], n, cdb, &[]).0;
    assert_eq!(short(&mut n, &[]), Outcome::check_condition(Sense::invalid_cdb()));
    assert_eq!(short(&mut n, &[0x28, 0, 0, 0]), Outcome::check_condition(Sense::invalid_cdb()));
    assert_eq!(short(&mut n, &rw16(0x88, 0, 1, 0)[..10]), Outcome::check_condition(Sense::invalid_cdb()));
    assert_eq!(short(&mut n, &[0x12]), Outcome::check_condition(Sense::invalid_cdb()));
    // Exactly the group length is enough.
    assert!(matches!(short(&mut n, &read10(0, 1, 0)), Outcome::Io(_)));
    assert_eq!(short(&mut n, &[0, 0, 0, 0, 0, 0]), Outcome::good(0));
}

#[test]
fn naca_bit_is_rejected() {
    let l = lu();
    assert_eq!(check(Some(&l), &[0x00, 0, 0, 0, 0, 0x04]), field(5, Some(2)));
    let mut c = read10(0, 1, 0);
    c[9] = 0x04;
    assert_eq!(check(Some(&l), &c), field(9, Some(2)));
    let mut c = rw16(0x88, 0, 1, 0);
    c[15] = 0x04;
    assert_eq!(check(Some(&l), &c), field(15, Some(2)));
    assert_eq!(check(Some(&l), &[0x12, 0, 0, 0, 96, 0x04]), field(5, Some(2)));
    // Other CONTROL bits (vendor specific, LINK) are ignored.
    assert_eq!(good(&l, &[0x00, 0, 0, 0, 0, 0xc0]), Vec::<u8>::new());
}

#[test]
fn start_stop_and_prevent_allow() {
    let l = lu();
    for b4 in [0u8, 1, 2, 3, 0x11, 0xf0] {
        assert_eq!(good(&l, &[0x1b, 1, 0, 0, b4, 0]), Vec::<u8>::new());
    }
    assert_eq!(good(&l, &[0x1e, 0, 0, 0, 0, 0]), Vec::<u8>::new());
    assert_eq!(good(&l, &[0x1e, 0, 0, 0, 1, 0]), Vec::<u8>::new());
    assert_eq!(check(Some(&l), &[0x1e, 0, 0, 0, 2, 0]), field(4, Some(1)));
    assert_eq!(check(Some(&l), &[0x1e, 0, 0, 0, 3, 0]), field(4, Some(1)));
}

// ---------------------------------------- REPORT SUPPORTED OPERATION CODES

fn rsoc(rctd: bool, options: u8, op: u8, sa: u16, alloc: u32) -> Vec<u8> {
    let mut c = vec![0xa3, 0x0c, if rctd { 0x80 } else { 0 } | options, op];
    c.extend_from_slice(&sa.to_be_bytes());
    c.extend_from_slice(&alloc.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    c
}

#[test]
fn report_supported_operation_codes() {
    let l = lu();
    let d = good(&l, &rsoc(false, 0, 0, 0, 65535));
    let len = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize;
    assert_eq!(len + 4, d.len());
    assert_eq!(len % 8, 0);
    let descs: Vec<&[u8]> = d[4..].chunks(8).collect();
    let read10_desc = descs.iter().find(|x| x[0] == 0x28).unwrap();
    assert_eq!(read10_desc, &[0x28, 0, 0, 0, 0, 0, 0, 10]);
    let rc16_desc = descs.iter().find(|x| x[0] == 0x9e).unwrap();
    assert_eq!(rc16_desc, &[0x9e, 0, 0, 0x10, 0, 0x01, 0, 16]);
    assert!(descs.iter().all(|x| x[5] & 0x01 != 0 || x[2..4] == [0, 0]));

    let d = good(&l, &rsoc(true, 0, 0, 0, 65535));
    let len = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize;
    assert_eq!(len % 20, 0);
    for x in d[4..].chunks(20) {
        assert_eq!(x[5] & 0x02, 0x02, "CTDP");
        assert_eq!(&x[8..10], &[0, 0x0a]);
    }

    let d = good(&l, &rsoc(false, 1, 0x28, 0, 65535));
    assert_eq!(d, [0, 0x03, 0, 10, 0x28, 0x18, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0]);
    let d = good(&l, &rsoc(true, 1, 0x28, 0, 65535));
    assert_eq!(d.len(), 4 + 10 + 12);
    assert_eq!(d[1], 0x83);
    let d = good(&l, &rsoc(false, 2, 0x9e, 0x10, 65535));
    assert_eq!(&d[..6], &[0, 0x03, 0, 16, 0x9e, 0x10]);
    assert_eq!(good(&l, &rsoc(false, 2, 0x9e, 0x13, 65535)), [0, 0x01, 0, 0]);
    assert_eq!(good(&l, &rsoc(false, 1, 0x42, 0, 65535))[..2], [0, 0x03]);
    assert_eq!(good(&l, &rsoc(false, 1, 0x40, 0, 65535)), [0, 0x01, 0, 0]);
    assert_eq!(check(Some(&l), &rsoc(false, 1, 0x9e, 0, 65535)), field(3, None));
    assert_eq!(check(Some(&l), &rsoc(false, 2, 0x28, 0, 65535)), field(3, None));
    assert_eq!(check(Some(&l), &rsoc(false, 5, 0x28, 0, 65535)), field(2, Some(2)));
    assert_eq!(good(&l, &rsoc(false, 0, 0, 0, 3)).len(), 3);
}

#[test]
fn report_target_port_groups() {
    let mut l = lu();
    l.port_group = 7;
    l.rel_port_id = 3;
    let rtpg = |fmt: u8| {
        let mut c = vec![0xa3, (fmt << 5) | 0x0a, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0];
        c.resize(16, 0);
        c
    };
    assert_eq!(good(&l, &rtpg(0)), [0, 0, 0, 12, 0x00, 0x8f, 0, 7, 0, 0, 0, 1, 0, 0, 0, 3]);
    assert_eq!(good(&l, &rtpg(1)), [0, 0, 0, 16, 0x10, 0, 0, 0, 0x00, 0x8f, 0, 7, 0, 0, 0, 1, 0, 0, 0, 3]);
    assert_eq!(check(Some(&l), &rtpg(2)), field(1, Some(7)));
}

// ----------------------------------------------------- backend, sense data

#[test]
fn backend_results_map_to_sense() {
    let req = |op| IoRequest { op, offset: 0, len: 4096, fua: false, verify: false };
    let r = req(BackendOp::Read);
    let w = req(BackendOp::Write);
    let f = req(BackendOp::Flush);
    assert_eq!(complete_backend(&r, BackendStatus::Ok), Outcome::good(4096));
    assert_eq!(complete_backend(&w, BackendStatus::Ok), Outcome::good(0));
    assert_eq!(complete_backend(&f, BackendStatus::Ok), Outcome::good(0));
    let sense = |io: &IoRequest, st| {
        let s = complete_backend(io, st).sense().unwrap();
        (s.key.0, s.asc.asc(), s.asc.ascq())
    };
    assert_eq!(sense(&r, BackendStatus::MediumError), (0x03, 0x11, 0x00));
    assert_eq!(sense(&w, BackendStatus::MediumError), (0x03, 0x0c, 0x00));
    assert_eq!(sense(&f, BackendStatus::MediumError), (0x03, 0x0c, 0x00));
    assert_eq!(sense(&w, BackendStatus::NoSpace), (0x07, 0x27, 0x07));
    assert_eq!(sense(&w, BackendStatus::ReadOnly), (0x07, 0x27, 0x00));
    assert_eq!(sense(&r, BackendStatus::Other(5)), (0x04, 0x44, 0x00));
    assert_eq!(complete_backend(&w, BackendStatus::NoSpace).status(), Some(ScsiStatus::CHECK_CONDITION));
}

#[test]
fn sense_encodings_are_byte_exact() {
    let mut out = [0u8; 64];
    let n = Sense::lba_out_of_range().encode_fixed(&mut out);
    assert_eq!(&out[..n], &[0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x21, 0x00, 0, 0, 0, 0]);
    let n = Sense::lba_out_of_range().encode_descriptor(&mut out);
    assert_eq!(&out[..n], &[0x72, 0x05, 0x21, 0x00, 0, 0, 0, 0]);

    let s = Sense::invalid_field_in_cdb(10, None);
    let n = s.encode_fixed(&mut out);
    assert_eq!(&out[..n], &[0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0x00, 0, 0xc0, 0, 10]);
    let n = s.encode_descriptor(&mut out);
    assert_eq!(&out[..n], &[0x72, 0x05, 0x24, 0x00, 0, 0, 0, 8, 0x02, 0x06, 0, 0, 0xc0, 0, 10, 0]);
    let s = Sense::invalid_field_in_cdb(1, Some(7));
    s.encode_fixed(&mut out);
    assert_eq!(&out[15..18], &[0xcf, 0, 1]);
    assert_eq!(s.sks, Some(SenseKeySpecific::FieldPointer { cdb: true, bit: Some(7), field: 1 }));

    let m = Sense::miscompare(0x0102_0304);
    let n = m.encode_fixed(&mut out);
    assert_eq!(&out[..n], &[0xf0, 0, 0x0e, 0x01, 0x02, 0x03, 0x04, 10, 0, 0, 0, 0, 0x1d, 0x00, 0, 0, 0, 0]);
    let n = m.encode_descriptor(&mut out);
    assert_eq!(
        &out[..n],
        &[
            0x72, 0x0e, 0x1d, 0x00, 0, 0, 0, 12, //
            0x00, 0x0a, 0x80, 0, 0, 0, 0, 0, 0x01, 0x02, 0x03, 0x04,
        ]
    );
    // The nexus picks the format from D_SENSE.
    let mut nexus = NexusState::new(1);
    assert_eq!(nexus.encode_sense(&Sense::write_protected(), &mut out), 18);
    nexus.d_sense = true;
    assert_eq!(nexus.encode_sense(&Sense::write_protected(), &mut out), 8);
}

#[test]
fn small_buffers_get_a_prefix() {
    let l = lu();
    let ctx = CmdContext {
        lu: Some(&l),
        luns: &[0],
        cdb: &[0x12, 0, 0, 0, 96, 0],
        edtl: 10,
        write_bit: false,
        read_bit: true,
    };
    let mut buf = [0u8; 10];
    let o = execute(&ctx, &mut NexusState::new(1), &mut buf);
    assert_eq!(o, Outcome::good(96), "data_len is what the command transfers");
    assert_eq!(&buf[..8], &[0x00, 0x00, 0x06, 0x12, 91, 0x10, 0x00, 0x02]);
    assert_eq!(&buf[8..10], b"SH");
}

// ------------------------------------------------------------ properties

fn arb_lu() -> impl Strategy<Value = Option<LuInfo>> {
    (prop::option::of((
        prop_oneof![Just(512u32), Just(4096), Just(0), Just(1), any::<u32>()],
        prop_oneof![Just(0u64), Just(1), Just(1000), Just(u64::MAX), any::<u64>()],
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        ".{0,300}",
    )),)
        .prop_map(|(o,)| {
            o.map(|(block_size, num_blocks, read_only, write_cache, thin, name)| {
                let mut l = lu();
                l.block_size = block_size;
                l.num_blocks = num_blocks;
                l.read_only = read_only;
                l.write_cache = write_cache;
                l.thin = thin;
                l.serial = name.clone();
                l.vendor = name.clone();
                l.target_name = name;
                l
            })
        })
}

fn arb_cdb() -> impl Strategy<Value = Vec<u8>> {
    let interesting = prop_oneof![
        Just(0x00u8),
        Just(0x03),
        Just(0x08),
        Just(0x0a),
        Just(0x12),
        Just(0x15),
        Just(0x1a),
        Just(0x1b),
        Just(0x1e),
        Just(0x25),
        Just(0x28),
        Just(0x2a),
        Just(0x2e),
        Just(0x2f),
        Just(0x34),
        Just(0x35),
        Just(0x55),
        Just(0x5a),
        Just(0x88),
        Just(0x8a),
        Just(0x8e),
        Just(0x8f),
        Just(0x90),
        Just(0x91),
        Just(0x9e),
        Just(0xa0),
        Just(0xa3),
        Just(0xa8),
        Just(0xaa),
        Just(0xae),
        Just(0xaf),
        any::<u8>(),
    ];
    (interesting, prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(op, mut rest)| {
        if !rest.is_empty() {
            rest[0] = op;
        }
        rest
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn execute_never_panics(
        lu in arb_lu(),
        cdb in arb_cdb(),
        params in prop::collection::vec(any::<u8>(), 0..80),
        buf_len in 0usize..600,
        luns in prop::collection::vec(any::<u16>(), 0..20),
        ua in any::<bool>(),
        d_sense in any::<bool>(),
        tpgt in any::<u16>(),
    ) {
        let mut nexus = if ua { NexusState::with_power_on_ua(tpgt) } else { NexusState::new(tpgt) };
        nexus.d_sense = d_sense;
        let ctx = CmdContext {
            lu: lu.as_ref(),
            luns: &luns,
            cdb: &cdb,
            edtl: buf_len as u32,
            write_bit: false,
            read_bit: true,
        };
        let mut buf = vec![0u8; buf_len];
        let o = execute_with_parameter_list(&ctx, &mut nexus, &params, &mut buf);
        match o {
            Outcome::Done { status, sense, .. } => {
                prop_assert_eq!(status == ScsiStatus::CHECK_CONDITION, sense.is_some());
                if let Some(s) = sense {
                    let mut out = [0u8; 64];
                    prop_assert_eq!(s.encode_fixed(&mut out), 18);
                    prop_assert_eq!(Sense::decode(&out[..18]).map(|d| (d.key, d.asc)), Some((s.key, s.asc)));
                    let n = s.encode_descriptor(&mut out);
                    prop_assert_eq!(Sense::decode(&out[..n]), Some(s));
                }
            }
            Outcome::Io(r) => {
                let l = lu.as_ref().expect("I/O needs an LU");
                if r.op != BackendOp::Flush {
                    prop_assert!(r.len <= MAX_TRANSFER_BYTES);
                }
                let bytes = u128::from(l.num_blocks) * u128::from(l.block_size);
                prop_assert!(u128::from(r.offset) + u128::from(r.len) <= bytes);
                if r.op != BackendOp::Flush {
                    prop_assert!(r.len > 0);
                    prop_assert_eq!(r.len % l.block_size, 0);
                }
                if r.op == BackendOp::Write {
                    prop_assert!(!l.read_only);
                }
            }
            Outcome::Job(j) => {
                let l = lu.as_ref().expect("a job needs an LU");
                prop_assert!(!l.read_only);
                prop_assert!(j.data_out_len() <= MAX_TRANSFER_BYTES);
            }
        }
    }

    #[test]
    fn allocation_length_bounds_data(alloc in 0u16..300, page in prop_oneof![Just(0u8), Just(0x80), Just(0x83), Just(0xb0), Just(0xb1)]) {
        let l = lu();
        let a = alloc.to_be_bytes();
        let evpd = u8::from(page != 0);
        let (o, d) = run(Some(&l), &mut NexusState::new(1), &[0x12, evpd, page, a[0], a[1], 0]);
        let full = good(&l, &[0x12, evpd, page, 0x10, 0, 0]);
        prop_assert_eq!(o.status(), Some(ScsiStatus::GOOD));
        prop_assert_eq!(d.len(), full.len().min(usize::from(alloc)));
        prop_assert_eq!(&d[..], &full[..d.len()]);
    }
}
