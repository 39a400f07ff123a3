//! A whole connection fed an arbitrary byte stream after a valid login,
//! with a RAM backend: never panics, never loops forever.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use shardtgt_core::conn::{ConnInfo, ConnState, Connection};
use shardtgt_core::ids::{Cid, Isid, Itt, Tsih};
use shardtgt_core::pdu::frame::{encode_pdu, DigestMode};
use shardtgt_core::pdu::{LoginRequest, Pdu, Stage};
use shardtgt_core::scsi::{BackendOp, BackendStatus, LuInfo};
use shardtgt_core::serial::{CmdSn, StatSn};
use shardtgt_core::session::Registry;
use shardtgt_core::target::{Limits, TargetSet};

const TARGET: &str = "iqn.2026-11.io.shardtgt:fuzz";

fn set() -> Arc<TargetSet> {
    let info = LuInfo {
        block_size: 512,
        num_blocks: 256,
        vendor: "FUZZ".into(),
        product: "fuzz".into(),
        revision: "1".into(),
        serial: "s".into(),
        naa_id: 1,
        read_only: false,
        write_cache: true,
        target_name: TARGET.into(),
        rel_port_id: 1,
        port_group: 1,
        port_groups: Vec::new(),
        thin: false,
        deallocate: false,
    };
    Arc::new(TargetSet::single_lu(TARGET, info, Limits { queue_depth: 16, nop_interval_ms: 0, ..Limits::default() }))
}

fn pump(conn: &mut Connection, disk: &mut [u8], bytes: &[u8]) {
    let mut off = 0;
    let mut stalls = 0;
    while off < bytes.len() && conn.state() != ConnState::Closed && stalls < 16 {
        let buf = conn.recv_buf();
        if buf.is_empty() {
            stalls += 1;
        } else {
            let n = buf.len().min(bytes.len() - off);
            buf[..n].copy_from_slice(&bytes[off..off + n]);
            conn.recv_done(n, 0);
            off += n;
        }
        while let Some(req) = conn.poll_backend() {
            let (o, l) = (req.offset as usize, req.len as usize);
            let buf = conn.backend_buffer(req.tag);
            assert_eq!(buf.len(), l);
            if o + l <= disk.len() {
                match req.op {
                    BackendOp::Read => buf.copy_from_slice(&disk[o..o + l]),
                    BackendOp::Write => disk[o..o + l].copy_from_slice(buf),
                    BackendOp::Flush => {}
                    BackendOp::Deallocate | BackendOp::MapStatus => unreachable!("no thin LU here"),
                }
                conn.handle_backend(req.tag, BackendStatus::Ok, 0);
            } else {
                conn.handle_backend(req.tag, BackendStatus::MediumError, 0);
            }
        }
        while let Some(b) = conn.poll_transmit() {
            let n = b.len();
            conn.transmit_done(n, 0);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut conn = Connection::new(set(), Arc::new(Registry::new(0)), ConnInfo { peer: "fuzz".into(), tpgt: 1 }, 0);
    let mut disk = vec![0u8; 256 * 512];
    let req = LoginRequest {
        transit: true,
        csg: Stage::OPERATIONAL,
        nsg: Stage::FULL_FEATURE,
        isid: Isid(0x8000_0000_0001),
        tsih: Tsih(0),
        itt: Itt(1),
        cid: Cid(1),
        cmdsn: CmdSn(1),
        expstatsn: StatSn(0),
        ..Default::default()
    };
    let keys = format!("InitiatorName=iqn.2026-11.fuzz:i\0TargetName={TARGET}\0InitialR2T=No\0ImmediateData=Yes\0");
    let mut login = Vec::new();
    encode_pdu(&Pdu::LoginRequest(req), keys.as_bytes(), DigestMode { header: false, data: false }, &mut login);
    pump(&mut conn, &mut disk, &login);
    pump(&mut conn, &mut disk, data);
    conn.handle_timeout(1_000_000);
});
