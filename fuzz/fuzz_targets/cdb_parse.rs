//! SCSI emulation on arbitrary CDBs never panics and never claims more
//! Data-In than its buffer when asked for less.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardtgt_core::scsi::{execute, CmdContext, LuInfo, NexusState};

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let edtl = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) % (1 << 20);
    let buf_len = usize::from(data[4]) * 64;
    let cdb = &data[5..data.len().min(5 + 260)];
    let lu = LuInfo {
        block_size: 512,
        num_blocks: 2048,
        vendor: "FUZZ".into(),
        product: "fuzz".into(),
        revision: "1".into(),
        serial: "s".into(),
        naa_id: 1,
        read_only: data[4] & 1 == 1,
        write_cache: true,
        target_name: "iqn.2026-11.fuzz:t".into(),
        rel_port_id: 1,
        port_group: 1,
        port_groups: Vec::new(),
        thin: data[4] & 2 == 2,
        deallocate: data[4] & 4 == 4,
    };
    let ctx = CmdContext { lu: Some(&lu), luns: &[0, 1], cdb, edtl, write_bit: false, read_bit: true };
    let mut nexus = NexusState::default();
    let mut buf = vec![0u8; buf_len];
    let _ = execute(&ctx, &mut nexus, &mut buf);
    let ctx = CmdContext { lu: None, ..ctx };
    let _ = execute(&ctx, &mut nexus, &mut buf);
});
