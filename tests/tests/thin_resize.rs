//! Thin provisioning and online resize of a `file` LUN against the real
//! daemon over TCP (raw initiator, two sessions, two shards):
//! - WRITE, UNMAP, then GET LBA STATUS (SBC-4 §5.6) reports the unmapped
//!   blocks DEALLOCATED, they read zeros, the file really has a hole there,
//!   and READ CAPACITY(16) / VPD B2h advertise LBPME, LBPRZ, LBPU, LBPWS;
//! - growing the LUN through the admin socket (`lun_resize`, as
//!   `shardtgtadm lun resize` sends it) raises CAPACITY DATA HAS CHANGED
//!   (06h/2Ah/09h) once on each session, READ CAPACITY shows the new size,
//!   I/O past the old end works, and the size is saved in the config file;
//! - shrinking below data in use is refused with a one-line error and
//!   changes nothing; a larger size through `config_reload` grows it again.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use shardtgt_tests::initiator::{cdb, RawConn, ScsiResult};
use shardtgt_tests::{DaemonProcess, ScratchDir};

const TARGET: &str = "iqn.2026-11.io.shardtgt:thin";
const MIB: u64 = 1 << 20;

fn config(port: u16, img: &Path, size: &str) -> String {
    format!(
        "[global]\nshards = 2\n[[portal]]\naddress = \"127.0.0.1:{port}\"\n\
         [[target]]\nname = \"{TARGET}\"\n  [[target.lun]]\n  lun = 0\n  backend = \"file\"\n  \
         path = \"{}\"\n  size = \"{size}\"\n",
        img.display()
    )
}

fn session(port: u16, name: &str) -> RawConn {
    let mut c = RawConn::connect(port).expect("connect");
    c.login(name, Some(TARGET)).expect("login");
    assert_eq!(c.clear_unit_attention(0).status, 0);
    c
}

fn rc16(c: &mut RawConn) -> ScsiResult {
    c.scsi_read(0, &[0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0], 32)
}

fn last_lba(r: &ScsiResult) -> u64 {
    assert_eq!(r.status, 0, "sense {:?}", r.sense);
    u64::from_be_bytes(r.data[..8].try_into().unwrap())
}

fn get_lba_status(c: &mut RawConn, lba: u64) -> Vec<(u64, u32, u8)> {
    let mut g = vec![0x9e, 0x12];
    g.extend_from_slice(&lba.to_be_bytes());
    g.extend_from_slice(&1024u32.to_be_bytes());
    g.extend_from_slice(&[0, 0]);
    let r = c.scsi_read(0, &g, 1024);
    assert_eq!(r.status, 0, "sense {:?}", r.sense);
    let len = u32::from_be_bytes(r.data[..4].try_into().unwrap()) as usize;
    r.data[8..4 + len]
        .chunks_exact(16)
        .map(|x| {
            (u64::from_be_bytes(x[..8].try_into().unwrap()), u32::from_be_bytes(x[8..12].try_into().unwrap()), x[12])
        })
        .collect()
}

fn write16(lba: u64, blocks: u32) -> Vec<u8> {
    let mut c = vec![0x8a, 0];
    c.extend_from_slice(&lba.to_be_bytes());
    c.extend_from_slice(&blocks.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    c
}

fn read16(lba: u64, blocks: u32) -> Vec<u8> {
    let mut c = write16(lba, blocks);
    c[0] = 0x88;
    c
}

fn is_capacity_changed(r: &ScsiResult) -> bool {
    r.status == 2 && r.sense_key() == 6 && r.asc_ascq() == 0x2a09
}

#[test]
fn unmap_get_lba_status_and_online_resize() {
    let dir = ScratchDir::new("thin");
    let img = dir.path().join("lun0.img");
    let cfg = dir.path().join("shardtgt.toml");
    let d = DaemonProcess::start_in(dir.path(), |port| config(port, &img, "4MiB"));
    let mut a = session(d.port(), "iqn.2026-11.test:thin-a");
    let mut b = session(d.port(), "iqn.2026-11.test:thin-b");

    // Advertised: LBPME and LBPRZ; VPD B2h LBPU, LBPWS, LBPWS10, LBPRZ, thin.
    let r = rc16(&mut a);
    assert_eq!(last_lba(&r), 4 * MIB / 512 - 1);
    assert_eq!(r.data[14] & 0xc0, 0xc0, "LBPME and LBPRZ");
    let vpd = a.scsi_read(0, &cdb::inquiry(true, 0xb2, 64), 64);
    assert_eq!(&vpd.data[4..7], &[0, 0xe4, 0x02]);

    // Write 64 KiB, UNMAP the middle 32 KiB (whole filesystem blocks).
    let data: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8 + 1).collect();
    assert_eq!(a.scsi_write(0, &write16(0, 128), &data).status, 0);
    let blocks_before = fs::metadata(&img).unwrap().blocks();
    let mut p = vec![0, 22, 0, 16, 0, 0, 0, 0];
    p.extend_from_slice(&32u64.to_be_bytes());
    p.extend_from_slice(&64u32.to_be_bytes());
    p.extend_from_slice(&[0; 4]);
    let r = a.scsi_write(0, &[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], &p);
    assert_eq!(r.status, 0, "UNMAP sense {:?}", r.sense);
    let blocks_after = fs::metadata(&img).unwrap().blocks();
    assert!(blocks_before - blocks_after >= 64, "a hole in the file: st_blocks {blocks_before} -> {blocks_after}");
    let total = 4 * MIB / 512;
    assert_eq!(get_lba_status(&mut b, 0), vec![(0, 32, 0), (32, 64, 1), (96, 32, 0), (128, (total - 128) as u32, 1)]);
    let r = b.scsi_read(0, &read16(0, 128), 64 * 1024);
    assert_eq!(r.status, 0);
    assert_eq!(&r.data[..16 * 1024], &data[..16 * 1024]);
    assert!(r.data[16 * 1024..48 * 1024].iter().all(|&x| x == 0), "unmapped blocks read zeros");
    assert_eq!(&r.data[48 * 1024..], &data[48 * 1024..]);

    // Grow to 8 MiB through the admin socket.
    let resp = d.admin(&format!(r#"{{"op":"lun_resize","target":"{TARGET}","lun":0,"size":"8MiB"}}"#));
    assert!(resp.starts_with("{\"ok\":true"), "{resp}");
    assert_eq!(fs::metadata(&img).unwrap().len(), 8 * MIB);
    assert!(fs::read_to_string(&cfg).unwrap().contains("size = 8388608"), "the new size is saved");
    // Each session: CAPACITY DATA HAS CHANGED once, then the new capacity.
    for c in [&mut a, &mut b] {
        assert!(is_capacity_changed(&rc16(c)), "unit attention on every session");
        assert_eq!(last_lba(&rc16(c)), 8 * MIB / 512 - 1);
        assert_eq!(c.scsi_read(0, &cdb::test_unit_ready(), 0).status, 0, "reported once");
    }
    // I/O past the old end.
    let tail = vec![0x77u8; 4096];
    assert_eq!(a.scsi_write(0, &write16(12_000, 8), &tail).status, 0);
    let r = b.scsi_read(0, &read16(12_000, 8), 4096);
    assert_eq!((r.status, &r.data[..]), (0, &tail[..]));
    let r = a.scsi_read(0, &read16(8 * MIB / 512, 1), 512);
    assert_eq!((r.sense_key(), r.asc_ascq()), (5, 0x2100), "still bounded");

    // Shrinking below data in use: refused, one line, nothing changes.
    let resp = d.admin(&format!(r#"{{"op":"lun_resize","target":"{TARGET}","lun":0,"size":"4MiB"}}"#));
    assert!(resp.starts_with("{\"ok\":false") && resp.contains("data in use"), "{resp}");
    assert_eq!(resp.trim_end().lines().count(), 1);
    assert_eq!(fs::metadata(&img).unwrap().len(), 8 * MIB);
    assert_eq!(a.scsi_read(0, &cdb::test_unit_ready(), 0).status, 0, "no unit attention");
    assert_eq!(last_lba(&rc16(&mut a)), 8 * MIB / 512 - 1);

    // A larger size through config reload.
    let text = fs::read_to_string(&cfg).unwrap().replace("size = 8388608", "size = 12582912");
    fs::write(&cfg, text).unwrap();
    let resp = d.admin(r#"{"op":"config_reload"}"#);
    assert!(resp.starts_with("{\"ok\":true"), "{resp}");
    assert!(is_capacity_changed(&rc16(&mut b)));
    assert_eq!(last_lba(&rc16(&mut b)), 12 * MIB / 512 - 1);
    assert_eq!(fs::metadata(&img).unwrap().len(), 12 * MIB);
    let r = b.scsi_read(0, &read16(12_000, 8), 4096);
    assert_eq!((r.status, &r.data[..]), (0, &tail[..]), "data kept across the resizes");
    a.logout();
    b.logout();
}
