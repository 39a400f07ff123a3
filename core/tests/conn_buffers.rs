//! Task buffers are reused without being zeroed (`PageBuf`): no byte an
//! earlier task left in a buffer may reach the initiator, whether a read
//! fails after the backend filled part of the buffer, or an emulated
//! command builds its Data-In in it; and the buffers handed to the backend
//! are page aligned (so O_DIRECT file LUNs need no bounce copy).

mod harness;

use harness::*;
use shardtgt_core::pdu::*;
use shardtgt_core::scsi::{BackendOp, BackendStatus};

const SECRET: u8 = 0x5A;

/// Fill the slot buffers the next tasks will reuse with SECRET: writes of
/// 1, 8 and 64 blocks (the disk then holds SECRET too, so reads that do
/// return disk data return SECRET; the tests read elsewhere).
fn dirty_buffers(h: &mut Harness) {
    for blocks in [64usize, 8, 1] {
        let (status, _) = h.write10(1024, &vec![SECRET; blocks * BLOCK as usize], 8192, 0);
        assert_eq!(status, 0);
    }
}

fn read_cmd(h: &mut Harness, lba: u32, blocks: u16) -> Pdu {
    let mut cdb = [0u8; 10];
    cdb[0] = 0x28;
    cdb[2..6].copy_from_slice(&lba.to_be_bytes());
    cdb[7..9].copy_from_slice(&blocks.to_be_bytes());
    Pdu::ScsiCommand(h.scsi_cmd(&cdb, u32::from(blocks) * BLOCK, true, false))
}

#[test]
fn failed_and_short_reads_send_no_stale_bytes() {
    let mut h = Harness::new(small_limits());
    h.login(&[]);
    for (blocks, filled, fail) in [
        (1u16, 0usize, BackendStatus::MediumError),
        (8, 4096 / 2, BackendStatus::MediumError),
        (64, 512, BackendStatus::Other(5)),
        (8, 4096 - 512, BackendStatus::NoSpace),
    ] {
        dirty_buffers(&mut h);
        h.hold_backend = true;
        let cmd = read_cmd(&mut h, 0, blocks);
        h.send(&cmd, &[]);
        let held = h.take_held();
        assert_eq!(held.len(), 1);
        let req = held[0];
        assert_eq!((req.op, req.len), (BackendOp::Read, u32::from(blocks) * BLOCK));
        let buf = h.conn.backend_buffer(req.tag);
        assert!(buf.contains(&SECRET), "the buffer was reused unzeroed (else this test proves nothing)");
        // A short read: part of the data arrived, then the store failed.
        buf[..filled].fill(0x11);
        h.conn.handle_backend(req.tag, fail, h.now);
        h.hold_backend = false;
        let pdus = h.recv();
        assert!(!pdus.iter().any(|(p, _)| matches!(p, Pdu::DataIn(_))), "no Data-In for a failed read: {pdus:?}");
        assert!(pdus.iter().all(|(_, d)| !d.contains(&SECRET)), "{pdus:?}");
        let r = pdus.iter().find_map(|(p, _)| if let Pdu::ScsiResponse(r) = p { Some(r) } else { None });
        assert_eq!(r.expect("a response").status, 0x02, "CHECK CONDITION");
        // The next read of the same slot, served in full, returns the disk.
        let (data, status, _) = h.read10(0, blocks);
        assert_eq!(status, 0);
        assert_eq!(data, h.disk[..usize::from(blocks) * BLOCK as usize]);
    }
}

#[test]
fn emulated_data_in_is_the_same_in_a_dirty_buffer() {
    // INQUIRY (standard, VPD 0x83), MODE SENSE(10) all pages, READ
    // CAPACITY(16), REPORT LUNS, REPORT SUPPORTED OPCODES: all with a large
    // allocation length; the answer on a connection whose buffers hold
    // SECRET must equal the answer on a fresh one.
    let cdbs: [(&[u8], u32); 6] = [
        (&[0x12, 0, 0, 0x10, 0, 0], 4096),
        (&[0x12, 1, 0x83, 0x10, 0, 0], 4096),
        (&[0x5A, 0, 0x3F, 0, 0, 0, 0, 0x40, 0, 0], 0x4000),
        (&[0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0], 0x1000),
        (&[0xA0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0], 0x1000),
        (&[0xA3, 0x0C, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0], 0x4000),
    ];
    let answer = |h: &mut Harness, cdb: &[u8], edtl: u32| {
        let cmd = h.scsi_cmd(cdb, edtl, true, false);
        h.send(&Pdu::ScsiCommand(cmd), &[]);
        let pdus = h.recv();
        let mut data = Vec::new();
        let mut status = None;
        for (p, d) in &pdus {
            match p {
                Pdu::DataIn(di) => {
                    data.extend_from_slice(d);
                    if di.has_status {
                        status = Some(di.status);
                    }
                }
                Pdu::ScsiResponse(r) => status = Some(r.status),
                _ => {}
            }
        }
        (status, data)
    };
    let mut fresh = Harness::new(small_limits());
    fresh.login(&[]);
    let mut dirty = Harness::new(small_limits());
    dirty.login(&[]);
    for &(cdb, edtl) in &cdbs {
        let clean = answer(&mut fresh, cdb, edtl);
        assert_eq!(clean.0, Some(0), "{cdb:02x?}");
        assert!(!clean.1.is_empty());
        dirty_buffers(&mut dirty);
        let got = answer(&mut dirty, cdb, edtl);
        assert_eq!(got, clean, "{cdb:02x?}");
    }
}

#[test]
fn backend_buffers_are_page_aligned() {
    let mut h = Harness::new(small_limits());
    h.login(&[]);
    for blocks in [8u16, 256, 1] {
        // READ: the buffer the backend reads into.
        h.hold_backend = true;
        let cmd = read_cmd(&mut h, 0, blocks);
        h.send(&cmd, &[]);
        let req = h.take_held()[0];
        let buf = h.conn.backend_buffer(req.tag);
        assert_eq!((buf.as_ptr() as usize % 4096, buf.len()), (0, usize::from(blocks) * BLOCK as usize));
        h.conn.handle_backend(req.tag, BackendStatus::MediumError, h.now);
        h.hold_backend = false;
        h.recv();
    }
    // WRITE: the buffer the backend writes from (collected over R2Ts).
    h.hold_backend = true;
    let data = vec![7u8; 128 << 10];
    let mut cdb = [0u8; 10];
    cdb[0] = 0x2a;
    cdb[7..9].copy_from_slice(&256u16.to_be_bytes());
    let mut cmd = h.scsi_cmd(&cdb, data.len() as u32, false, true);
    cmd.final_ = true;
    let itt = cmd.itt;
    h.send(&Pdu::ScsiCommand(cmd), &data[..8192]);
    let mut sent = 8192;
    while sent < data.len() {
        let pdus = h.recv();
        for (p, _) in &pdus {
            if let Pdu::R2t(r) = p {
                let mut off = r.buffer_offset as usize;
                let end = off + r.desired_len as usize;
                let mut sn = 0;
                while off < end {
                    let n = (end - off).min(8192);
                    let d = DataOut {
                        final_: off + n == end,
                        lun: shardtgt_core::ids::Lun::from_index(0),
                        itt,
                        ttt: r.ttt,
                        expstatsn: h.statsn,
                        datasn: sn,
                        buffer_offset: off as u32,
                    };
                    h.send(&Pdu::DataOut(d), &data[off..off + n]);
                    sn += 1;
                    off += n;
                    sent += n;
                }
            }
        }
    }
    let req = h.take_held()[0];
    assert_eq!(req.op, BackendOp::Write);
    let buf = h.conn.backend_buffer(req.tag);
    assert_eq!((buf.as_ptr() as usize % 4096, buf.len()), (0, 128 << 10));
    assert!(buf.iter().all(|&b| b == 7));
}
