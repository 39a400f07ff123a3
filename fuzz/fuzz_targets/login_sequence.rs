//! A sequence of arbitrary Login Requests against a fresh connection: the
//! connection answers or closes, never panics.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use shardtgt_core::conn::{ConnInfo, ConnState, Connection};
use shardtgt_core::pdu::frame::{encode_pdu, DigestMode};
use shardtgt_core::pdu::{Bhs, LoginRequest, Pdu};
use shardtgt_core::session::Registry;
use shardtgt_core::target::TargetSet;

fuzz_target!(|data: &[u8]| {
    let set = Arc::new(TargetSet::default());
    let mut conn = Connection::new(set, Arc::new(Registry::new(0)), ConnInfo { peer: "fuzz".into(), tpgt: 1 }, 0);
    // Each chunk: 48 bytes of header fields, then up to 200 bytes of keys.
    for chunk in data.chunks(248) {
        if chunk.len() < 48 {
            break;
        }
        let mut bhs = Bhs::from_slice(&chunk[..48]).expect("48 bytes");
        bhs.0[0] = 0x43; // Login Request, immediate
        let Ok(Pdu::LoginRequest(req)) = Pdu::decode(&bhs, &[]) else { continue };
        let req: LoginRequest = req;
        let mut bytes = Vec::new();
        encode_pdu(&Pdu::LoginRequest(req), &chunk[48..], DigestMode { header: false, data: false }, &mut bytes);
        let mut off = 0;
        while off < bytes.len() && conn.state() != ConnState::Closed {
            let buf = conn.recv_buf();
            if buf.is_empty() {
                break;
            }
            let n = buf.len().min(bytes.len() - off);
            buf[..n].copy_from_slice(&bytes[off..off + n]);
            conn.recv_done(n, 0);
            off += n;
        }
        while let Some(b) = conn.poll_transmit() {
            let n = b.len();
            conn.transmit_done(n, 0);
        }
    }
    conn.handle_timeout(u64::MAX / 2);
});
