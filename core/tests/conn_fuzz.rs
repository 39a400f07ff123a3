//! Property tests: whatever bytes arrive, the connection never panics,
//! never hangs (every call returns), and keeps its buffers bounded.

mod harness;

use harness::*;
use proptest::prelude::*;
use shardtgt_core::conn::ConnState;
use shardtgt_core::ids::{Lun, Ttt};
use shardtgt_core::pdu::frame::encode_pdu;
use shardtgt_core::pdu::*;

/// Feed bytes, serving backends and draining output, until consumed or closed.
fn feed(h: &mut Harness, bytes: &[u8]) {
    let mut off = 0;
    let mut stalls = 0;
    while off < bytes.len() && h.conn.state() != ConnState::Closed {
        let buf = h.conn.recv_buf();
        if buf.is_empty() {
            // Backpressure, or closing: take the output and retry a bounded number of times.
            let _ = drain(h);
            stalls += 1;
            if stalls > 100 {
                break;
            }
            continue;
        }
        let n = buf.len().min(bytes.len() - off).min(h.chunk);
        buf[..n].copy_from_slice(&bytes[off..off + n]);
        h.conn.recv_done(n, h.now);
        off += n;
        h.serve_backend();
    }
    let _ = drain(h);
}

/// Take everything the target sends without decoding it (it may be mid-PDU).
fn drain(h: &mut Harness) -> usize {
    h.serve_backend();
    let mut total = 0;
    while let Some(b) = h.conn.poll_transmit() {
        let n = b.len();
        total += n;
        h.conn.transmit_done(n, h.now);
    }
    total
}

/// A valid SCSI command PDU stream to mutate.
fn valid_stream(h: &mut Harness) -> Vec<u8> {
    let mut out = Vec::new();
    let mut read = [0u8; 10];
    read[0] = 0x28;
    read[8] = 4;
    let c = h.scsi_cmd(&read, 2048, true, false);
    encode_pdu(&Pdu::ScsiCommand(c), &[], h.digests, &mut out);
    let mut write = [0u8; 10];
    write[0] = 0x2a;
    write[8] = 2;
    let mut c = h.scsi_cmd(&write, 1024, false, true);
    c.final_ = false;
    let itt = c.itt;
    encode_pdu(&Pdu::ScsiCommand(c), &[7; 512], h.digests, &mut out);
    let d = DataOut {
        final_: true,
        lun: Lun::from_index(0),
        itt,
        ttt: Ttt::RESERVED,
        expstatsn: h.statsn,
        datasn: 0,
        buffer_offset: 512,
    };
    encode_pdu(&Pdu::DataOut(d), &[8; 512], h.digests, &mut out);
    let t = h.scsi_cmd(&[0x12, 0, 0, 0, 96, 0], 96, true, false);
    encode_pdu(&Pdu::ScsiCommand(t), &[], h.digests, &mut out);
    out
}

fn logged_in() -> Harness {
    let mut h = Harness::new(Limits { initial_r2t: false, ..small_limits() });
    h.login(&[("InitialR2T", "No"), ("MaxBurstLength", "16384"), ("FirstBurstLength", "8192")]);
    h
}

use shardtgt_core::target::Limits;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_during_login(bytes in proptest::collection::vec(any::<u8>(), 0..4096), chunk in 1usize..600) {
        let mut h = Harness::new(small_limits());
        h.chunk = chunk;
        feed(&mut h, &bytes);
        h.advance(60_000);
        prop_assert_eq!(h.conn.state(), ConnState::Closed);
    }

    #[test]
    fn arbitrary_bytes_in_full_feature(bytes in proptest::collection::vec(any::<u8>(), 0..8192), chunk in 1usize..9000) {
        let mut h = logged_in();
        h.chunk = chunk;
        feed(&mut h, &bytes);
        h.advance(1_000);
        let _ = drain(&mut h);
    }

    #[test]
    fn mutated_valid_streams(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), chunk in 1usize..4000) {
        let mut h = logged_in();
        h.chunk = chunk;
        let mut s = valid_stream(&mut h);
        for (i, v) in flips {
            let at = i.index(s.len());
            s[at] = v;
        }
        feed(&mut h, &s);
        // The connection either still works or is closed; both are fine.
        if h.conn.state() == ConnState::FullFeature {
            let _ = drain(&mut h);
        }
    }

    #[test]
    fn pdus_with_arbitrary_headers(bhs in proptest::collection::vec(any::<[u8; 48]>(), 1..20), data_len in 0usize..2048) {
        let mut h = logged_in();
        h.chunk = 4096;
        let mut s = Vec::new();
        for mut b in bhs {
            // Keep the data segment length honest so framing holds.
            let dl = (data_len as u32).to_be_bytes();
            b[4] = 0;
            b[5..8].copy_from_slice(&dl[1..]);
            s.extend_from_slice(&b);
            s.extend(std::iter::repeat_n(0u8, data_len + (4 - data_len % 4) % 4));
        }
        feed(&mut h, &s);
    }
}
