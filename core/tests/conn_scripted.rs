//! The connection driven by a scripted initiator: login, every
//! ImmediateData × InitialR2T combination, CmdSN ordering, Data-In
//! segmentation, task management, NOP, logout, and bad input.

mod harness;

use harness::*;
use shardtgt_core::conn::ConnState;
use shardtgt_core::ids::{Isid, Itt, Lun, Tsih, Ttt};
use shardtgt_core::pdu::*;
use shardtgt_core::scsi::{Asc, Sense, SenseKey};
use shardtgt_core::serial::CmdSn;
use shardtgt_core::target::Limits;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[test]
fn login_normal_session_declares_tpgt_and_limits() {
    let mut h = Harness::new(Limits { max_burst_len: 262_144, first_burst_len: 65_536, ..small_limits() });
    let req = h.login_request(Stage::SECURITY, Stage::OPERATIONAL, true);
    let (r, keys) = h.login_pdu(
        req,
        &[("InitiatorName", INITIATOR), ("SessionType", "Normal"), ("TargetName", TARGET), ("AuthMethod", "None")],
    );
    assert_eq!(r.status, LoginStatus::SUCCESS);
    assert_eq!(key(&keys, "AuthMethod"), Some("None"));
    // RFC 7143 §13.9: the target declares its portal group tag in the leading login.
    assert_eq!(key(&keys, "TargetPortalGroupTag"), Some("1"));
    let req = h.login_request(Stage::OPERATIONAL, Stage::FULL_FEATURE, true);
    let (r, keys) = h.login_pdu(req, &[("MaxRecvDataSegmentLength", "4096"), ("ImmediateData", "Yes")]);
    assert_eq!(r.status, LoginStatus::SUCCESS);
    assert_ne!(r.tsih, Tsih(0));
    assert_eq!(key(&keys, "MaxRecvDataSegmentLength"), Some("8192"));
    assert_eq!(h.conn.state(), ConnState::FullFeature);
}

#[test]
fn target_proposals_hold_transit_until_answered() {
    // small_limits() has MaxBurstLength 16384, below the RFC default: the
    // target proposes it and answers T=0 until the initiator agrees.
    let mut h = Harness::new(small_limits());
    let req = h.login_request(Stage::SECURITY, Stage::OPERATIONAL, true);
    let (r, _) = h.login_pdu(req, &[("InitiatorName", INITIATOR), ("TargetName", TARGET), ("AuthMethod", "None")]);
    assert!(r.transit);
    let req = h.login_request(Stage::OPERATIONAL, Stage::FULL_FEATURE, true);
    let (r, keys) = h.login_pdu(req, &[]);
    assert!(!r.transit);
    assert_eq!(key(&keys, "MaxBurstLength"), Some("16384"));
    let req = h.login_request(Stage::OPERATIONAL, Stage::FULL_FEATURE, true);
    let (r, _) = h.login_pdu(req, &[("MaxBurstLength", "16384"), ("FirstBurstLength", "8192")]);
    assert!(r.transit);
    assert_eq!(h.conn.state(), ConnState::FullFeature);
}

#[test]
fn login_failures_answer_with_status_and_close() {
    let cases: Vec<(Vec<(&str, &str)>, LoginStatus)> = vec![
        (vec![("SessionType", "Normal"), ("TargetName", TARGET)], LoginStatus::MISSING_PARAMETER),
        (vec![("InitiatorName", INITIATOR), ("SessionType", "Normal")], LoginStatus::MISSING_PARAMETER),
        (vec![("InitiatorName", INITIATOR), ("TargetName", "iqn.2026-11.nope:x")], LoginStatus::NOT_FOUND),
        (vec![("InitiatorName", INITIATOR), ("TargetName", TARGET), ("AuthMethod", "CHAP")], LoginStatus::AUTH_FAILURE),
    ];
    for (keys, want) in cases {
        let mut h = Harness::new(small_limits());
        let req = h.login_request(Stage::SECURITY, Stage::OPERATIONAL, true);
        let (r, _) = h.login_pdu(req, &keys);
        assert_eq!(r.status, want, "keys {keys:?}");
        assert_eq!(h.conn.state(), ConnState::Closed, "closed after failure for {keys:?}");
    }
}

#[test]
fn login_version_tsih_and_stage_errors() {
    let mut h = Harness::new(small_limits());
    let mut req = h.login_request(Stage::SECURITY, Stage::OPERATIONAL, true);
    req.version_min = 1;
    req.version_max = 1;
    let (r, _) = h.login_pdu(req, &[("InitiatorName", INITIATOR), ("TargetName", TARGET)]);
    assert_eq!(r.status, LoginStatus::UNSUPPORTED_VERSION);

    let mut h = Harness::new(small_limits());
    h.tsih = Tsih(77);
    let req = h.login_request(Stage::SECURITY, Stage::OPERATIONAL, true);
    let (r, _) = h.login_pdu(req, &[("InitiatorName", INITIATOR), ("TargetName", TARGET)]);
    assert_eq!(r.status, LoginStatus::SESSION_DOES_NOT_EXIST);

    // Operational stage back to security is not a valid transition.
    let mut h = Harness::new(small_limits());
    let req = h.login_request(Stage::OPERATIONAL, Stage::SECURITY, true);
    let (r, _) = h.login_pdu(req, &[("InitiatorName", INITIATOR), ("TargetName", TARGET)]);
    assert_eq!(r.status, LoginStatus::INITIATOR_ERROR);
}

#[test]
fn login_text_continued_with_c_bit() {
    let mut h = Harness::new(small_limits());
    let mut req = h.login_request(Stage::SECURITY, Stage::OPERATIONAL, false);
    req.continue_ = true;
    // Split "InitiatorName=..." across two PDUs.
    let all = format!("InitiatorName={INITIATOR}\0TargetName={TARGET}\0AuthMethod=None\0");
    let (a, b) = all.as_bytes().split_at(10);
    h.send(&Pdu::LoginRequest(req), a);
    let got = h.recv();
    assert_eq!(got.len(), 1);
    let Pdu::LoginResponse(r) = &got[0].0 else { panic!() };
    assert_eq!(r.status, LoginStatus::SUCCESS);
    assert!(!r.transit && got[0].1.is_empty());
    let req = h.login_request(Stage::SECURITY, Stage::OPERATIONAL, true);
    h.send(&Pdu::LoginRequest(req), b);
    let got = h.recv();
    let Pdu::LoginResponse(r) = &got[0].0 else { panic!() };
    assert_eq!(r.status, LoginStatus::SUCCESS);
    assert!(r.transit);
}

#[test]
fn non_login_pdu_during_login_drops_connection() {
    let mut h = Harness::new(small_limits());
    let cmd = h.scsi_cmd(&[0, 0, 0, 0, 0, 0], 0, false, false);
    h.send(&Pdu::ScsiCommand(cmd), &[]);
    assert_eq!(h.conn.state(), ConnState::Closed);
}

#[test]
fn login_timeout_closes() {
    let mut h = Harness::new(small_limits());
    h.advance(14_000);
    assert_eq!(h.conn.state(), ConnState::Login);
    h.advance(2_000);
    assert_eq!(h.conn.state(), ConnState::Closed);
}

fn write_read_roundtrip(immediate: &str, initial_r2t: &str) {
    let mut h = Harness::new(small_limits());
    h.login(&[
        ("ImmediateData", immediate),
        ("InitialR2T", initial_r2t),
        ("MaxRecvDataSegmentLength", "8192"),
        ("MaxBurstLength", "16384"),
        ("FirstBurstLength", "8192"),
    ]);
    let imm_ok = immediate == "Yes";
    let unsol_ok = initial_r2t == "No";
    let data = pattern(40 * 1024, 3);
    let imm = if imm_ok { 8192 } else { 0 };
    let unsol = if unsol_ok { 8192 - imm } else { 0 };
    let (status, pdus) = h.write10(8, &data, imm, unsol);
    assert_eq!(status, 0);
    // R2Ts cover exactly what was not sent unsolicited, in MaxBurstLength pieces.
    let r2ts: Vec<&R2t> = pdus.iter().filter_map(|(p, _)| if let Pdu::R2t(r) = p { Some(r) } else { None }).collect();
    let solicited: u32 = r2ts.iter().map(|r| r.desired_len).sum();
    assert_eq!(solicited as usize, data.len() - imm - unsol, "imm={immediate} r2t={initial_r2t}");
    assert!(r2ts.iter().all(|r| r.desired_len <= 16384));
    for (i, r) in r2ts.iter().enumerate() {
        assert_eq!(r.r2tsn, i as u32);
    }
    assert_eq!(&h.disk[8 * 512..8 * 512 + data.len()], &data[..]);
    let (back, status, _) = h.read10(8, (data.len() / 512) as u16);
    assert_eq!(status, 0);
    assert_eq!(back, data);
}

#[test]
fn immediate_data_and_initial_r2t_combinations() {
    for imm in ["Yes", "No"] {
        for r2t in ["Yes", "No"] {
            write_read_roundtrip(imm, r2t);
        }
    }
}

#[test]
fn data_in_is_segmented_by_initiator_mrdsl_with_status_in_last() {
    let mut h = Harness::new(small_limits());
    h.login(&[("MaxRecvDataSegmentLength", "4096"), ("MaxBurstLength", "16384")]);
    h.disk[..65536].copy_from_slice(&pattern(65536, 9));
    let (data, status, pdus) = h.read10(0, 128);
    assert_eq!(status, 0);
    assert_eq!(data, &h.disk[..65536]);
    let dins: Vec<&DataIn> =
        pdus.iter().filter_map(|(p, _)| if let Pdu::DataIn(d) = p { Some(d) } else { None }).collect();
    assert_eq!(dins.len(), 16);
    for (i, d) in dins.iter().enumerate() {
        assert_eq!(d.datasn, i as u32);
        assert_eq!(d.buffer_offset, i as u32 * 4096);
        assert_eq!(d.has_status, i == 15);
        // F closes every MaxBurstLength (16 KiB) sequence.
        assert_eq!(d.final_, (i + 1) % 4 == 0);
    }
    assert!(!pdus.iter().any(|(p, _)| matches!(p, Pdu::ScsiResponse(_))));
}

#[test]
fn read_residual_overflow_and_underflow() {
    let mut h = Harness::new(small_limits());
    h.login(&[]);
    // READ(10) of 2 blocks with EDTL of 1 block: overflow, one block sent.
    let mut cdb = [0u8; 10];
    cdb[0] = 0x28;
    cdb[8] = 2;
    let cmd = h.scsi_cmd(&cdb, 512, true, false);
    h.send(&Pdu::ScsiCommand(cmd), &[]);
    let pdus = h.recv();
    let din: Vec<_> =
        pdus.iter().filter_map(|(p, d)| if let Pdu::DataIn(x) = p { Some((x, d)) } else { None }).collect();
    assert_eq!(din.iter().map(|(_, d)| d.len()).sum::<usize>(), 512);
    let last = din.last().unwrap().0;
    assert!(last.has_status && last.overflow && !last.underflow);
    assert_eq!(last.residual, 512);
    // EDTL larger than the transfer: underflow.
    let cmd = h.scsi_cmd(&cdb, 4096, true, false);
    h.send(&Pdu::ScsiCommand(cmd), &[]);
    let pdus = h.recv();
    let last =
        pdus.iter().rev().find_map(|(p, _)| if let Pdu::DataIn(x) = p { Some(x.clone()) } else { None }).unwrap();
    assert!(last.underflow && last.has_status);
    assert_eq!(last.residual, 4096 - 1024);
}

#[test]
fn write_residuals_write_only_what_both_cover() {
    let mut h = Harness::new(small_limits());
    h.login(&[("ImmediateData", "Yes")]);
    let mut cdb = [0u8; 10];
    cdb[0] = 0x2a;
    cdb[8] = 2; // two blocks, EDTL one block: overflow, one block written
    let cmd = h.scsi_cmd(&cdb, 512, false, true);
    h.send(&Pdu::ScsiCommand(cmd), &[0xee; 512]);
    let pdus = h.recv();
    let Some((Pdu::ScsiResponse(r), _)) = pdus.iter().find(|(p, _)| matches!(p, Pdu::ScsiResponse(_))) else {
        panic!("{pdus:?}")
    };
    assert_eq!(r.status, 0);
    assert!(r.overflow && !r.underflow);
    assert_eq!(r.residual, 512);
    assert!(h.disk[..512].iter().all(|b| *b == 0xee));
    assert!(h.disk[512..1024].iter().all(|b| *b == 0));
    // One block with EDTL two blocks: underflow, one block written.
    cdb[8] = 1;
    let cmd = h.scsi_cmd(&cdb, 1024, false, true);
    h.send(&Pdu::ScsiCommand(cmd), &[0xdd; 1024]);
    let pdus = h.recv();
    let Some((Pdu::ScsiResponse(r), _)) = pdus.iter().find(|(p, _)| matches!(p, Pdu::ScsiResponse(_))) else {
        panic!("{pdus:?}")
    };
    assert_eq!(r.status, 0);
    assert!(r.underflow && !r.overflow);
    assert_eq!(r.residual, 512);
    assert!(h.disk[..512].iter().all(|b| *b == 0xdd));
    assert!(h.disk[512..1024].iter().all(|b| *b == 0));
    // EDTL 0: nothing written, overflow of one block.
    let cmd = h.scsi_cmd(&cdb, 0, false, true);
    h.send(&Pdu::ScsiCommand(cmd), &[]);
    let pdus = h.recv();
    let Some((Pdu::ScsiResponse(r), _)) = pdus.iter().find(|(p, _)| matches!(p, Pdu::ScsiResponse(_))) else {
        panic!("{pdus:?}")
    };
    assert_eq!((r.status, r.overflow, r.residual), (0, true, 512));
}

#[test]
fn cmdsn_gap_is_held_until_filled_and_out_of_window_ignored() {
    let mut h = Harness::new(small_limits());
    h.login(&[]);
    let tur = [0u8; 6];
    let first = h.scsi_cmd(&tur, 0, false, false);
    let second = h.scsi_cmd(&tur, 0, false, false);
    h.send(&Pdu::ScsiCommand(second.clone()), &[]);
    assert!(h.recv().is_empty(), "CmdSN ahead of ExpCmdSN must wait");
    h.send(&Pdu::ScsiCommand(first.clone()), &[]);
    let got = h.recv();
    let itts: Vec<Itt> =
        got.iter().filter_map(|(p, _)| if let Pdu::ScsiResponse(r) = p { Some(r.itt) } else { None }).collect();
    assert_eq!(itts, vec![first.itt, second.itt]);
    let Pdu::ScsiResponse(last) = &got.last().unwrap().0 else { panic!() };
    assert_eq!(last.expcmdsn, h.cmdsn);
    // Above MaxCmdSN: silently ignored (RFC 7143 §4.2.2.1).
    let mut far = h.scsi_cmd(&tur, 0, false, false);
    far.cmdsn = last.maxcmdsn.next();
    h.send(&Pdu::ScsiCommand(far), &[]);
    assert!(h.recv().is_empty());
    // Below ExpCmdSN: ignored too.
    let mut old = h.scsi_cmd(&tur, 0, false, false);
    old.cmdsn = CmdSn(1);
    h.send(&Pdu::ScsiCommand(old), &[]);
    assert!(h.recv().is_empty());
}

#[test]
fn window_is_queue_depth() {
    let mut h = Harness::new(small_limits());
    h.login(&[]);
    let tur = [0u8; 6];
    let c = h.scsi_cmd(&tur, 0, false, false);
    h.send(&Pdu::ScsiCommand(c), &[]);
    let got = h.recv();
    let Pdu::ScsiResponse(r) = &got[0].0 else { panic!() };
    assert_eq!(r.maxcmdsn.distance_from(r.expcmdsn) + 1, 8);
}

#[test]
fn nop_out_ping_is_echoed_and_target_pings_idle_connection() {
    let mut limits = small_limits();
    limits.nop_interval_ms = 1000;
    limits.nop_timeout_ms = 3000;
    let mut h = Harness::new(limits);
    h.login(&[]);
    let itt = h.next_itt();
    let nop = NopOut { immediate: true, lun: Lun(0), itt, ttt: Ttt::RESERVED, cmdsn: h.cmdsn, expstatsn: h.statsn };
    h.send(&Pdu::NopOut(nop), b"ping");
    let got = h.recv();
    let (Pdu::NopIn(n), d) = &got[0] else { panic!("{got:?}") };
    assert_eq!(n.itt, itt);
    assert_eq!(d, b"ping");
    // Idle: the target pings, we answer, it stays up.
    h.advance(1001);
    let got = h.recv();
    let (Pdu::NopIn(p), _) = &got[0] else { panic!("{got:?}") };
    assert_eq!(p.itt, Itt::RESERVED);
    assert_ne!(p.ttt, Ttt::RESERVED);
    let answer =
        NopOut { immediate: true, lun: Lun(0), itt: Itt::RESERVED, ttt: p.ttt, cmdsn: h.cmdsn, expstatsn: h.statsn };
    h.send(&Pdu::NopOut(answer), &[]);
    h.advance(2500);
    assert_ne!(h.conn.state(), ConnState::Closed);
    // Ping unanswered: dropped after the timeout.
    let _ = h.recv();
    h.advance(1000);
    let _ = h.recv();
    h.advance(3001);
    assert_eq!(h.conn.state(), ConnState::Closed);
}

#[test]
fn logout_closes_after_response() {
    let mut h = Harness::new(small_limits());
    h.login(&[]);
    let itt = h.next_itt();
    let req = LogoutRequest {
        immediate: true,
        reason: LogoutReason::CLOSE_SESSION,
        itt,
        cid: shardtgt_core::ids::Cid(1),
        cmdsn: h.cmdsn,
        expstatsn: h.statsn,
    };
    h.send(&Pdu::LogoutRequest(req), &[]);
    let got = h.recv();
    let (Pdu::LogoutResponse(r), _) = &got[0] else { panic!() };
    assert_eq!((r.itt, r.response), (itt, 0));
    assert_eq!(h.conn.state(), ConnState::Closed);
    assert!(h.registry.is_empty());
}

#[test]
fn logout_of_unknown_cid_is_refused() {
    let mut h = Harness::new(small_limits());
    h.login(&[]);
    let itt = h.next_itt();
    let req = LogoutRequest {
        immediate: true,
        reason: LogoutReason::CLOSE_CONNECTION,
        itt,
        cid: shardtgt_core::ids::Cid(9),
        cmdsn: h.cmdsn,
        expstatsn: h.statsn,
    };
    h.send(&Pdu::LogoutRequest(req), &[]);
    let got = h.recv();
    let (Pdu::LogoutResponse(r), _) = &got[0] else { panic!() };
    assert_eq!(r.response, 1);
    assert_eq!(h.conn.state(), ConnState::FullFeature);
}

fn tmf(h: &mut Harness, function: TmfFunction, rtt: Itt, refcmdsn: CmdSn) -> TmfResponse {
    let itt = h.next_itt();
    let req = TmfRequest {
        immediate: true,
        function,
        lun: Lun::from_index(0),
        itt,
        rtt,
        cmdsn: h.cmdsn,
        expstatsn: h.statsn,
        refcmdsn,
        expdatasn: 0,
    };
    h.send(&Pdu::TmfRequest(req), &[]);
    let got = h.recv();
    got.into_iter().find_map(|(p, _)| if let Pdu::TmfResponse(r) = p { Some(r) } else { None }).expect("TMF response")
}

/// Start a write that waits for R2T data, so it stays outstanding.
fn pending_write(h: &mut Harness) -> ScsiCommand {
    let mut cdb = [0u8; 10];
    cdb[0] = 0x2a;
    cdb[8] = 16;
    let cmd = h.scsi_cmd(&cdb, 16 * 512, false, true);
    h.send(&Pdu::ScsiCommand(cmd.clone()), &[]);
    let got = h.recv();
    assert!(got.iter().any(|(p, _)| matches!(p, Pdu::R2t(_))), "{got:?}");
    cmd
}

#[test]
fn tmf_abort_task_and_sets() {
    let mut h = Harness::new(small_limits());
    h.login(&[("ImmediateData", "No")]);
    let w = pending_write(&mut h);
    let r = tmf(&mut h, TmfFunction::ABORT_TASK, w.itt, w.cmdsn);
    assert_eq!(r.response, TmfResponseCode::COMPLETE);
    // The aborted task never answers, and its data is now discarded.
    let d = DataOut {
        final_: true,
        lun: Lun::from_index(0),
        itt: w.itt,
        ttt: Ttt::RESERVED,
        expstatsn: h.statsn,
        datasn: 0,
        buffer_offset: 0,
    };
    h.send(&Pdu::DataOut(d), &[0; 512]);
    assert!(h.recv().iter().all(|(p, _)| !matches!(p, Pdu::ScsiResponse(_))));
    // A task that does not exist, with RefCmdSN already past.
    let r = tmf(&mut h, TmfFunction::ABORT_TASK, Itt(0xdead), CmdSn(0));
    assert_eq!(r.response, TmfResponseCode::TASK_DOES_NOT_EXIST);
    for f in [
        TmfFunction::ABORT_TASK_SET,
        TmfFunction::CLEAR_TASK_SET,
        TmfFunction::TARGET_WARM_RESET,
        TmfFunction::LOGICAL_UNIT_RESET,
    ] {
        let _w = pending_write(&mut h);
        let r = {
            let c = h.cmdsn;
            tmf(&mut h, f, Itt::RESERVED, c)
        };
        assert_eq!(r.response, TmfResponseCode::COMPLETE, "{f:?}");
        assert_eq!(h.conn.state(), ConnState::FullFeature);
    }
    // After LU reset: unit attention 29/03 once, then GOOD.
    let tur = h.scsi_cmd(&[0u8; 6], 0, false, false);
    h.send(&Pdu::ScsiCommand(tur), &[]);
    let got = h.recv();
    let (Pdu::ScsiResponse(r), _) = &got[0] else { panic!() };
    assert_eq!(r.status, 0x02);
    let tur = h.scsi_cmd(&[0u8; 6], 0, false, false);
    h.send(&Pdu::ScsiCommand(tur), &[]);
    let got = h.recv();
    let (Pdu::ScsiResponse(r), _) = &got[0] else { panic!() };
    assert_eq!(r.status, 0x00);
    assert_eq!(
        {
            let c = h.cmdsn;
            tmf(&mut h, TmfFunction::CLEAR_ACA, Itt::RESERVED, c)
        }
        .response,
        TmfResponseCode::NOT_SUPPORTED
    );
    assert_eq!(
        {
            let c = h.cmdsn;
            tmf(&mut h, TmfFunction::TASK_REASSIGN, Itt(1), c)
        }
        .response,
        TmfResponseCode::REASSIGN_NOT_SUPPORTED
    );
    assert_eq!(
        {
            let c = h.cmdsn;
            tmf(&mut h, TmfFunction(0x33), Itt(1), c)
        }
        .response,
        TmfResponseCode::REJECTED
    );
    // Cold reset answers, then closes.
    let r = {
        let c = h.cmdsn;
        tmf(&mut h, TmfFunction::TARGET_COLD_RESET, Itt::RESERVED, c)
    };
    assert_eq!(r.response, TmfResponseCode::COMPLETE);
    assert_eq!(h.conn.state(), ConnState::Closed);
}

#[test]
fn tmf_on_unknown_lun() {
    let mut h = Harness::new(small_limits());
    h.login(&[]);
    let itt = h.next_itt();
    let req = TmfRequest {
        immediate: true,
        function: TmfFunction::LOGICAL_UNIT_RESET,
        lun: Lun::from_index(5),
        itt,
        rtt: Itt::RESERVED,
        cmdsn: h.cmdsn,
        expstatsn: h.statsn,
        refcmdsn: h.cmdsn,
        expdatasn: 0,
    };
    h.send(&Pdu::TmfRequest(req), &[]);
    let got = h.recv();
    let (Pdu::TmfResponse(r), _) = &got[0] else { panic!() };
    assert_eq!(r.response, TmfResponseCode::LUN_DOES_NOT_EXIST);
}

#[test]
fn unknown_opcode_is_rejected_and_connection_survives() {
    let mut h = Harness::new(small_limits());
    h.login(&[]);
    let mut raw = [0u8; 48];
    raw[0] = 0x1c; // not an initiator opcode
    raw[16..20].copy_from_slice(&0x55u32.to_be_bytes());
    h.send_raw(&raw);
    let got = h.recv();
    let (Pdu::Reject(r), d) = &got[0] else { panic!("{got:?}") };
    assert_eq!(r.reason, RejectReason::COMMAND_NOT_SUPPORTED);
    assert_eq!(&d[..], &raw[..]);
    let (_, status, _) = h.read10(0, 1);
    assert_eq!(status, 0);
}

#[test]
fn snack_at_erl0_is_rejected() {
    let mut h = Harness::new(small_limits());
    h.login(&[]);
    let s = Snack {
        snack_type: 1,
        lun: Lun(0),
        itt: Itt::RESERVED,
        ttt: Ttt::RESERVED,
        expstatsn: h.statsn,
        begrun: 0,
        runlength: 0,
    };
    h.send(&Pdu::Snack(s), &[]);
    let got = h.recv();
    let (Pdu::Reject(r), _) = &got[0] else { panic!("{got:?}") };
    assert_eq!(r.reason, RejectReason::PROTOCOL_ERROR);
}

#[test]
fn data_segment_longer_than_negotiated_drops() {
    let mut h = Harness::new(small_limits());
    h.login(&[]);
    let itt = h.next_itt();
    let nop = NopOut { immediate: true, lun: Lun(0), itt, ttt: Ttt::RESERVED, cmdsn: h.cmdsn, expstatsn: h.statsn };
    h.chunk = 1 << 20;
    h.send(&Pdu::NopOut(nop), &vec![0u8; 8193]);
    assert_eq!(h.conn.state(), ConnState::Closed);
}

fn expect_aborted_command(h: &mut Harness, asc: u8, ascq: u8) {
    let got = h.recv();
    let Some((Pdu::ScsiResponse(r), sense)) = got.iter().find(|(p, _)| matches!(p, Pdu::ScsiResponse(_))) else {
        panic!("{got:?}")
    };
    assert_eq!(r.status, 0x02);
    assert_eq!((sense[2 + 2] & 0xf, sense[2 + 12], sense[2 + 13]), (0x0b, asc, ascq));
    assert_eq!(h.conn.state(), ConnState::FullFeature);
}

#[test]
fn bad_datasn_fails_the_command_and_keeps_the_connection() {
    let mut h = Harness::new(small_limits());
    h.login(&[("ImmediateData", "No")]);
    let w = pending_write(&mut h);
    // Data-Out for the R2T with DataSN 27: ABORTED COMMAND / DATA PHASE ERROR.
    let d = DataOut {
        final_: true,
        lun: Lun::from_index(0),
        itt: w.itt,
        ttt: Ttt(1),
        expstatsn: h.statsn,
        datasn: 27,
        buffer_offset: 0,
    };
    h.send(&Pdu::DataOut(d.clone()), &[0; 512]);
    expect_aborted_command(&mut h, 0x4b, 0x00);
    // A wrong offset: DATA OFFSET ERROR.
    let w = pending_write(&mut h);
    let d = DataOut { itt: w.itt, ttt: Ttt(2), datasn: 0, buffer_offset: 512, ..d };
    h.send(&Pdu::DataOut(d), &[0; 512]);
    expect_aborted_command(&mut h, 0x4b, 0x05);
    let (_, status, _) = h.read10(0, 1);
    assert_eq!(status, 0);
}

#[test]
fn unsolicited_data_errors_fail_the_command() {
    let mut h = Harness::new(small_limits());
    h.login(&[
        ("ImmediateData", "No"),
        ("InitialR2T", "No"),
        ("MaxBurstLength", "16384"),
        ("FirstBurstLength", "8192"),
    ]);
    // Two unsolicited Data-Out, both DataSN 0 (libiscsi's DataSnInvalid case 1).
    let mut cdb = [0u8; 10];
    cdb[0] = 0x2a;
    cdb[8] = 2;
    let mut cmd = h.scsi_cmd(&cdb, 1024, false, true);
    cmd.final_ = false;
    let itt = cmd.itt;
    h.send(&Pdu::ScsiCommand(cmd), &[]);
    let d = DataOut {
        final_: false,
        lun: Lun::from_index(0),
        itt,
        ttt: Ttt::RESERVED,
        expstatsn: h.statsn,
        datasn: 0,
        buffer_offset: 0,
    };
    h.send(&Pdu::DataOut(d.clone()), &[1; 512]);
    h.send(&Pdu::DataOut(DataOut { final_: true, buffer_offset: 512, ..d }), &[1; 512]);
    expect_aborted_command(&mut h, 0x4b, 0x00);
    assert!(h.disk[..1024].iter().all(|b| *b == 0));
    // Unsolicited data beyond FirstBurstLength.
    let mut cdb = [0u8; 10];
    cdb[0] = 0x2a;
    cdb[8] = 32;
    let mut cmd = h.scsi_cmd(&cdb, 16384, false, true);
    cmd.final_ = false;
    let itt = cmd.itt;
    h.send(&Pdu::ScsiCommand(cmd), &[]);
    let d = DataOut {
        final_: false,
        lun: Lun::from_index(0),
        itt,
        ttt: Ttt::RESERVED,
        expstatsn: h.statsn,
        datasn: 0,
        buffer_offset: 0,
    };
    h.chunk = 1 << 20;
    h.send(&Pdu::DataOut(d.clone()), &[2; 8192]);
    assert!(h.recv().is_empty());
    h.send(&Pdu::DataOut(DataOut { final_: true, datasn: 1, buffer_offset: 8192, ..d }), &[2; 512]);
    expect_aborted_command(&mut h, 0x0c, 0x0c);
}

#[test]
fn data_out_for_unknown_ttt_is_rejected() {
    let mut h = Harness::new(small_limits());
    h.login(&[("ImmediateData", "No")]);
    let w = pending_write(&mut h);
    let d = DataOut {
        final_: true,
        lun: Lun::from_index(0),
        itt: w.itt,
        ttt: Ttt(0x7777),
        expstatsn: h.statsn,
        datasn: 0,
        buffer_offset: 0,
    };
    h.send(&Pdu::DataOut(d), &[0; 512]);
    let got = h.recv();
    assert!(matches!(&got[0].0, Pdu::Reject(r) if r.reason == RejectReason::PROTOCOL_ERROR), "{got:?}");
}

#[test]
fn header_digest_error_drops_and_digests_work() {
    let mut h = Harness::new(small_limits());
    h.login(&[("HeaderDigest", "CRC32C"), ("DataDigest", "CRC32C")]);
    h.digests = shardtgt_core::pdu::frame::DigestMode { header: true, data: true };
    h.disk[..512].copy_from_slice(&pattern(512, 1));
    let (data, status, _) = h.read10(0, 1);
    assert_eq!(status, 0);
    assert_eq!(data, &h.disk[..512]);
    let (status, _) = h.write10(4, &pattern(2048, 5), 0, 0);
    assert_eq!(status, 0);
    // Corrupt the header digest of a TEST UNIT READY.
    let cmd = h.scsi_cmd(&[0u8; 6], 0, false, false);
    let mut bytes = Vec::new();
    shardtgt_core::pdu::frame::encode_pdu(&Pdu::ScsiCommand(cmd), &[], h.digests, &mut bytes);
    bytes[48] ^= 1;
    h.send_raw(&bytes);
    assert_eq!(h.conn.state(), ConnState::Closed);
}

/// RFC 7143 §7.8 with digests on at ERL 0: a Data-Out whose data digest
/// fails is Rejected (data digest error) and discarded, and its task ends
/// with CHECK CONDITION, ABORTED COMMAND, PROTOCOL SERVICE CRC ERROR (47/05)
/// once the rest of its data is in; the connection and other tasks go on.
/// A non-data PDU with a bad data digest is only Rejected; a command whose
/// immediate data is corrupt escalates to dropping the connection.
#[test]
fn data_digest_errors_at_erl0() {
    use shardtgt_core::pdu::frame::{encode_pdu, DigestMode};
    let mut h = Harness::new(small_limits());
    h.login(&[("HeaderDigest", "CRC32C"), ("DataDigest", "CRC32C"), ("InitialR2T", "Yes"), ("ImmediateData", "No")]);
    h.digests = DigestMode { header: true, data: true };
    h.disk[..4096].fill(0x11);
    // WRITE(10) of 8 blocks: one R2T of 4 KiB, answered with two Data-Outs.
    let cmd = h.scsi_cmd(&[0x2a, 0, 0, 0, 0, 0, 0, 0, 8, 0], 4096, false, true);
    let itt = cmd.itt;
    h.send(&Pdu::ScsiCommand(cmd), &[]);
    let got = h.recv();
    let Some(Pdu::R2t(r)) = got.first().map(|(p, _)| p.clone()) else { panic!("{got:?}") };
    let expstatsn = h.statsn;
    let dout = |datasn: u32, off: u32, final_: bool| DataOut {
        final_,
        lun: Lun::from_index(0),
        itt,
        ttt: r.ttt,
        expstatsn,
        datasn,
        buffer_offset: off,
    };
    let mut bytes = Vec::new();
    encode_pdu(&Pdu::DataOut(dout(0, 0, false)), &[0x22; 2048], h.digests, &mut bytes);
    let n = bytes.len();
    bytes[n - 1] ^= 0x40; // the data digest
    h.send_raw(&bytes);
    let got = h.recv();
    assert!(
        matches!(&got[..], [(Pdu::Reject(j), d)] if j.reason == RejectReason::DATA_DIGEST_ERROR && d.len() == 48),
        "{got:?}"
    );
    assert_eq!(h.conn.state(), ConnState::FullFeature);
    // The response waits for the rest of the data (§7.8 (b)).
    h.send(&Pdu::DataOut(dout(1, 2048, true)), &[0x22; 2048]);
    let got = h.recv();
    let [(Pdu::ScsiResponse(resp), sense)] = &got[..] else { panic!("{got:?}") };
    assert_eq!(resp.itt, itt);
    assert_eq!(resp.status, 0x02, "CHECK CONDITION");
    let s = Sense::decode(&sense[2..]).expect("sense data");
    assert_eq!((s.key, s.asc), (SenseKey::ABORTED_COMMAND, Asc::PROTOCOL_SERVICE_CRC_ERROR), "{s:?}");
    assert!(h.disk[..4096].iter().all(|&b| b == 0x11), "a write with a corrupt Data-Out must not reach the medium");
    // The session goes on: the same write, clean, succeeds.
    let (status, _) = h.write10(0, &[0x33; 4096], 0, 0);
    assert_eq!(status, 0);
    assert!(h.disk[..4096].iter().all(|&b| b == 0x33));
    // A NOP-Out with a corrupt data digest: Reject, nothing else.
    let itt = h.next_itt();
    let nop = NopOut { immediate: true, lun: Lun(0), itt, ttt: Ttt::RESERVED, cmdsn: h.cmdsn, expstatsn: h.statsn };
    let mut bytes = Vec::new();
    encode_pdu(&Pdu::NopOut(nop), b"ping", h.digests, &mut bytes);
    let n = bytes.len();
    bytes[n - 2] ^= 1;
    h.send_raw(&bytes);
    let got = h.recv();
    assert!(matches!(&got[..], [(Pdu::Reject(j), _)] if j.reason == RejectReason::DATA_DIGEST_ERROR), "{got:?}");
    assert_eq!(h.conn.state(), ConnState::FullFeature);
    let (data, status, _) = h.read10(0, 1);
    assert_eq!((status, data), (0, vec![0x33; 512]));
}

#[test]
fn corrupt_immediate_data_is_rejected_then_the_connection_closes() {
    use shardtgt_core::pdu::frame::{encode_pdu, DigestMode};
    let mut h = Harness::new(small_limits());
    h.login(&[("DataDigest", "CRC32C"), ("ImmediateData", "Yes")]);
    h.digests = DigestMode { header: false, data: true };
    let cmd = h.scsi_cmd(&[0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0], 512, false, true);
    let mut bytes = Vec::new();
    encode_pdu(&Pdu::ScsiCommand(cmd), &[0x44; 512], h.digests, &mut bytes);
    let n = bytes.len();
    bytes[n - 4] ^= 1;
    h.send_raw(&bytes);
    let got = h.recv();
    assert!(matches!(&got[..], [(Pdu::Reject(j), _)] if j.reason == RejectReason::DATA_DIGEST_ERROR), "{got:?}");
    assert_eq!(h.conn.state(), ConnState::Closed);
    assert!(h.disk[..512].iter().all(|&b| b == 0));
}

#[test]
fn discovery_session_sendtargets_and_no_scsi() {
    let mut h = Harness::new(small_limits());
    let req = h.login_request(Stage::SECURITY, Stage::FULL_FEATURE, true);
    let (r, _) =
        h.login_pdu(req, &[("InitiatorName", INITIATOR), ("SessionType", "Discovery"), ("AuthMethod", "None")]);
    assert_eq!(r.status, LoginStatus::SUCCESS);
    let itt = h.next_itt();
    let t = TextRequest {
        immediate: true,
        final_: true,
        continue_: false,
        lun: Lun(0),
        itt,
        ttt: Ttt::RESERVED,
        cmdsn: h.cmdsn,
        expstatsn: h.statsn,
    };
    h.send(&Pdu::TextRequest(t), b"SendTargets=All\0");
    let got = h.recv();
    let (Pdu::TextResponse(r), d) = &got[0] else { panic!("{got:?}") };
    assert!(r.final_);
    let kv = parse_kv(d);
    assert_eq!(key(&kv, "TargetName"), Some(TARGET));
    assert_eq!(key(&kv, "TargetAddress"), Some("127.0.0.1:3260,1"));
    let cmd = h.scsi_cmd(&[0u8; 6], 0, false, false);
    h.send(&Pdu::ScsiCommand(cmd), &[]);
    let got = h.recv();
    assert!(matches!(&got[0].0, Pdu::Reject(r) if r.reason == RejectReason::PROTOCOL_ERROR), "{got:?}");
    assert_eq!(h.conn.state(), ConnState::FullFeature);
}

#[test]
fn long_text_answer_is_continued() {
    let mut limits = small_limits();
    limits.max_recv_data_segment_len = 8192;
    let mut set = (*target_set(limits)).clone();
    for i in 0..200 {
        let mut t = set.targets[0].clone();
        t.name = format!("iqn.2026-11.io.shardtgt:many-targets-{i:04}");
        set.targets.push(t);
    }
    let reg = std::sync::Arc::new(shardtgt_core::session::Registry::new(0));
    let mut h = Harness::with_registry(small_limits(), reg.clone());
    h.conn = shardtgt_core::conn::Connection::new(
        std::sync::Arc::new(set),
        reg,
        shardtgt_core::conn::ConnInfo { peer: "t".into(), tpgt: 1 },
        0,
    );
    let req = h.login_request(Stage::SECURITY, Stage::OPERATIONAL, true);
    let (r, _) =
        h.login_pdu(req, &[("InitiatorName", INITIATOR), ("SessionType", "Discovery"), ("AuthMethod", "None")]);
    assert_eq!(r.status, LoginStatus::SUCCESS);
    let req = h.login_request(Stage::OPERATIONAL, Stage::FULL_FEATURE, true);
    let (r, _) = h.login_pdu(req, &[("MaxRecvDataSegmentLength", "1024")]);
    assert_eq!(r.status, LoginStatus::SUCCESS);
    let itt = h.next_itt();
    let mut t = TextRequest {
        immediate: true,
        final_: true,
        continue_: false,
        lun: Lun(0),
        itt,
        ttt: Ttt::RESERVED,
        cmdsn: h.cmdsn,
        expstatsn: h.statsn,
    };
    h.send(&Pdu::TextRequest(t.clone()), b"SendTargets=All\0");
    let mut all = Vec::new();
    for _ in 0..100 {
        let got = h.recv();
        let (Pdu::TextResponse(r), d) = &got[0] else { panic!("{got:?}") };
        assert!(d.len() <= 1024);
        all.extend_from_slice(d);
        if r.final_ {
            break;
        }
        assert!(r.continue_);
        t.ttt = r.ttt;
        h.send(&Pdu::TextRequest(t.clone()), &[]);
    }
    let kv = parse_kv(&all);
    assert_eq!(kv.iter().filter(|(k, _)| k == "TargetName").count(), 201);
}

#[test]
fn session_reinstatement_closes_old_connection() {
    let reg = std::sync::Arc::new(shardtgt_core::session::Registry::new(0));
    let mut a = Harness::with_registry(small_limits(), reg.clone());
    a.login(&[]);
    let mut b = Harness::with_registry(small_limits(), reg.clone());
    b.login(&[]);
    assert_eq!(reg.len(), 1);
    a.advance(100);
    assert_eq!(a.conn.state(), ConnState::Closed);
    assert_eq!(b.conn.state(), ConnState::FullFeature);
    // A different ISID is a different session.
    let mut c = Harness::with_registry(small_limits(), reg.clone());
    c.isid = Isid(0x8000_0000_0002);
    c.login(&[]);
    b.advance(100);
    assert_eq!(b.conn.state(), ConnState::FullFeature);
    assert_eq!(reg.len(), 2);
}

#[test]
fn shutdown_sends_async_logout_then_closes() {
    let mut h = Harness::new(Limits { logout_timeout_ms: 500, ..small_limits() });
    h.login(&[]);
    h.conn.shutdown(h.now);
    let got = h.recv();
    let (Pdu::AsyncMessage(m), _) = &got[0] else { panic!("{got:?}") };
    assert_eq!(m.event, 1);
    h.advance(501);
    assert_eq!(h.conn.state(), ConnState::Closed);
}

#[test]
fn backend_errors_map_to_sense() {
    let mut h = Harness::new(small_limits());
    h.login(&[]);
    h.backend_fail = Some(shardtgt_core::scsi::BackendStatus::MediumError);
    let (data, status, pdus) = h.read10(0, 1);
    assert_eq!(status, 0x02);
    assert!(data.is_empty());
    let (_, sense) = pdus.iter().find(|(p, _)| matches!(p, Pdu::ScsiResponse(_))).unwrap();
    assert_eq!((sense[2 + 2] & 0xf, sense[2 + 12], sense[2 + 13]), (0x03, 0x11, 0x00));
}

#[test]
fn scsi_command_reusing_active_itt_is_rejected() {
    let mut h = Harness::new(small_limits());
    h.login(&[("ImmediateData", "No")]);
    let w = pending_write(&mut h);
    let mut dup = h.scsi_cmd(&[0u8; 6], 0, false, false);
    dup.itt = w.itt;
    h.send(&Pdu::ScsiCommand(dup), &[]);
    let got = h.recv();
    assert!(matches!(&got[0].0, Pdu::Reject(r) if r.reason == RejectReason::TASK_IN_PROGRESS), "{got:?}");
}

#[test]
fn nop_flood_without_reading_is_held_back_then_answered() {
    let mut h = Harness::new(small_limits());
    h.login(&[]);
    h.chunk = 1 << 20;
    // 3000 pings in one burst, without reading any answer.
    let mut bytes = Vec::new();
    for i in 0..3000u32 {
        let nop = NopOut {
            immediate: true,
            lun: Lun(0),
            itt: Itt(0x1000 + i),
            ttt: Ttt::RESERVED,
            cmdsn: h.cmdsn,
            expstatsn: h.statsn,
        };
        shardtgt_core::pdu::frame::encode_pdu(&Pdu::NopOut(nop), &[], h.digests, &mut bytes);
    }
    let mut off = 0;
    while off < bytes.len() {
        let buf = h.conn.recv_buf();
        if buf.is_empty() {
            break; // backpressure: the target stops reading
        }
        let n = buf.len().min(bytes.len() - off);
        buf[..n].copy_from_slice(&bytes[off..off + n]);
        h.conn.recv_done(n, 0);
        off += n;
    }
    assert!(off < bytes.len(), "the target should hold back before taking 3000 pings");
    // Reading the answers lets it continue; every ping is answered exactly once.
    let mut answered = 0;
    for _ in 0..100 {
        answered += h.recv().iter().filter(|(p, _)| matches!(p, Pdu::NopIn(_))).count();
        while off < bytes.len() {
            let buf = h.conn.recv_buf();
            if buf.is_empty() {
                break;
            }
            let n = buf.len().min(bytes.len() - off);
            buf[..n].copy_from_slice(&bytes[off..off + n]);
            h.conn.recv_done(n, 0);
            off += n;
        }
        if answered == 3000 {
            break;
        }
    }
    assert_eq!(answered, 3000);
}

fn harness_with(f: impl FnOnce(&mut shardtgt_core::target::TargetSet)) -> Harness {
    let mut set = (*target_set(small_limits())).clone();
    f(&mut set);
    let reg = std::sync::Arc::new(shardtgt_core::session::Registry::new(0));
    let mut h = Harness::with_registry(small_limits(), reg.clone());
    h.conn = shardtgt_core::conn::Connection::new(
        std::sync::Arc::new(set),
        reg,
        shardtgt_core::conn::ConnInfo { peer: "192.0.2.10:40000".into(), tpgt: 1 },
        0,
    );
    h
}

fn chap_accounts() -> shardtgt_core::login::chap::ChapAccounts {
    use shardtgt_core::login::chap::{ChapAccount, ChapAccounts};
    ChapAccounts {
        incoming: vec![ChapAccount { user: "alice".into(), secret: b"alice-secret-1".to_vec() }],
        outgoing: None,
    }
}

/// Security stage with CHAP; returns the final response.
fn chap_login(h: &mut Harness, secret: &[u8]) -> LoginResponse {
    use shardtgt_core::login::chap::{decode_binary, encode_hex, ChapAlgorithm};
    let req = h.login_request(Stage::SECURITY, Stage::OPERATIONAL, false);
    let (r, keys) =
        h.login_pdu(req, &[("InitiatorName", INITIATOR), ("TargetName", TARGET), ("AuthMethod", "CHAP,None")]);
    assert_eq!(r.status, LoginStatus::SUCCESS);
    assert_eq!(key(&keys, "AuthMethod"), Some("CHAP"));
    let req = h.login_request(Stage::SECURITY, Stage::OPERATIONAL, false);
    let (r, keys) = h.login_pdu(req, &[("CHAP_A", "5")]);
    assert_eq!(r.status, LoginStatus::SUCCESS);
    assert!(!r.transit);
    let id: u8 = key(&keys, "CHAP_I").unwrap().parse().unwrap();
    let c = decode_binary(key(&keys, "CHAP_C").unwrap()).unwrap();
    assert!(c.len() >= 16);
    let resp = encode_hex(&ChapAlgorithm::Md5.response(id, secret, &c));
    let req = h.login_request(Stage::SECURITY, Stage::OPERATIONAL, true);
    let (r, _) = h.login_pdu(req, &[("CHAP_N", "alice"), ("CHAP_R", &resp)]);
    r
}

#[test]
fn chap_required_target_accepts_the_right_secret() {
    let mut h = harness_with(|s| s.targets[0].chap = Some(chap_accounts()));
    let r = chap_login(&mut h, b"alice-secret-1");
    assert_eq!(r.status, LoginStatus::SUCCESS);
    assert!(r.transit);
    let req = h.login_request(Stage::OPERATIONAL, Stage::FULL_FEATURE, true);
    let (r, _) = h.login_pdu(req, &[("MaxBurstLength", "16384"), ("FirstBurstLength", "8192")]);
    assert_eq!(r.status, LoginStatus::SUCCESS);
    assert_eq!(h.conn.state(), ConnState::FullFeature);
}

#[test]
fn chap_wrong_secret_fails_0201_and_repeated_failures_back_off() {
    let set_up = |s: &mut shardtgt_core::target::TargetSet| s.targets[0].chap = Some(chap_accounts());
    let mut h = harness_with(set_up);
    let r = chap_login(&mut h, b"wrong-secret-xx");
    assert_eq!(r.status, LoginStatus::AUTH_FAILURE);
    assert_eq!(h.conn.state(), ConnState::Closed);
    // The same registry sees repeated failures from one address and refuses early.
    let reg = std::sync::Arc::new(shardtgt_core::session::Registry::new(0));
    let ip = "192.0.2.10".parse().unwrap();
    for _ in 0..shardtgt_core::session::AUTH_FAILURES_MAX {
        reg.note_auth_failure(ip, 0);
    }
    let mut set = (*target_set(small_limits())).clone();
    set_up(&mut set);
    let mut h = Harness::with_registry(small_limits(), reg.clone());
    h.conn = shardtgt_core::conn::Connection::new(
        std::sync::Arc::new(set),
        reg,
        shardtgt_core::conn::ConnInfo { peer: "192.0.2.10:40001".into(), tpgt: 1 },
        0,
    );
    let req = h.login_request(Stage::SECURITY, Stage::OPERATIONAL, false);
    let (r, _) = h.login_pdu(req, &[("InitiatorName", INITIATOR), ("TargetName", TARGET), ("AuthMethod", "CHAP")]);
    assert_eq!(r.status, LoginStatus::AUTH_FAILURE);
}

#[test]
fn chap_required_but_skipped_or_declined_fails() {
    // Initiator offers only None.
    let mut h = harness_with(|s| s.targets[0].chap = Some(chap_accounts()));
    let req = h.login_request(Stage::SECURITY, Stage::OPERATIONAL, true);
    let (r, _) = h.login_pdu(req, &[("InitiatorName", INITIATOR), ("TargetName", TARGET), ("AuthMethod", "None")]);
    assert_eq!(r.status, LoginStatus::AUTH_FAILURE);
    // Initiator skips the security stage.
    let mut h = harness_with(|s| s.targets[0].chap = Some(chap_accounts()));
    let req = h.login_request(Stage::OPERATIONAL, Stage::FULL_FEATURE, true);
    let (r, _) = h.login_pdu(req, &[("InitiatorName", INITIATOR), ("TargetName", TARGET)]);
    assert_eq!(r.status, LoginStatus::AUTH_FAILURE);
}

#[test]
fn acl_denies_with_0202_and_hides_the_target() {
    use shardtgt_core::acl::{Acl, AclRule};
    let deny_all_but = |s: &mut shardtgt_core::target::TargetSet| {
        s.targets[0].acl = Acl { rules: vec![AclRule::Name("iqn.2026-11.test:someone-else".into())] };
    };
    let mut h = harness_with(deny_all_but);
    let req = h.login_request(Stage::SECURITY, Stage::OPERATIONAL, true);
    let (r, _) = h.login_pdu(req, &[("InitiatorName", INITIATOR), ("TargetName", TARGET), ("AuthMethod", "None")]);
    assert_eq!(r.status, LoginStatus::AUTHORIZATION_FAILURE);
    // An address rule admits by CIDR.
    let mut h =
        harness_with(|s| s.targets[0].acl = Acl { rules: vec![AclRule::parse_address("192.0.2.0/24").unwrap()] });
    h.login(&[]);
    // Discovery does not list a target the initiator may not use.
    let mut h = harness_with(deny_all_but);
    let req = h.login_request(Stage::SECURITY, Stage::FULL_FEATURE, true);
    let (r, _) =
        h.login_pdu(req, &[("InitiatorName", INITIATOR), ("SessionType", "Discovery"), ("AuthMethod", "None")]);
    assert_eq!(r.status, LoginStatus::SUCCESS);
    let itt = h.next_itt();
    let t = TextRequest {
        immediate: true,
        final_: true,
        continue_: false,
        lun: Lun(0),
        itt,
        ttt: Ttt::RESERVED,
        cmdsn: h.cmdsn,
        expstatsn: h.statsn,
    };
    h.send(&Pdu::TextRequest(t), b"SendTargets=All\0");
    let got = h.recv();
    let (Pdu::TextResponse(_), d) = &got[0] else { panic!("{got:?}") };
    assert!(parse_kv(d).iter().all(|(k, _)| k != "TargetName"), "{:?}", parse_kv(d));
}

#[test]
fn discovery_chap_applies_to_discovery_sessions() {
    let mut h = harness_with(|s| s.discovery_chap = Some(chap_accounts()));
    let req = h.login_request(Stage::SECURITY, Stage::FULL_FEATURE, true);
    let (r, _) =
        h.login_pdu(req, &[("InitiatorName", INITIATOR), ("SessionType", "Discovery"), ("AuthMethod", "None")]);
    assert_eq!(r.status, LoginStatus::AUTH_FAILURE);
    // Normal sessions of a target without CHAP are unaffected.
    let mut h = harness_with(|s| s.discovery_chap = Some(chap_accounts()));
    h.login(&[]);
}

#[test]
fn unsolicited_data_without_a_buffer_fails_the_command_not_the_process() {
    // EDTL above the largest transfer we take: the command gets no buffer,
    // and its unsolicited Data-Out must not be copied anywhere.
    let mut h = Harness::new(small_limits());
    h.login(&[
        ("ImmediateData", "No"),
        ("InitialR2T", "No"),
        ("MaxBurstLength", "16384"),
        ("FirstBurstLength", "8192"),
    ]);
    let mut cdb = [0u8; 10];
    cdb[0] = 0x2a;
    cdb[7..9].copy_from_slice(&0xffffu16.to_be_bytes());
    let mut cmd = h.scsi_cmd(&cdb, 0xffff * 512, false, true);
    cmd.final_ = false;
    let itt = cmd.itt;
    h.send(&Pdu::ScsiCommand(cmd), &[]);
    let d = DataOut {
        final_: true,
        lun: Lun::from_index(0),
        itt,
        ttt: Ttt::RESERVED,
        expstatsn: h.statsn,
        datasn: 0,
        buffer_offset: 0,
    };
    h.send(&Pdu::DataOut(d), &[1; 512]);
    let got = h.recv();
    assert!(got.iter().any(|(p, _)| matches!(p, Pdu::ScsiResponse(r) if r.status == 0x02)), "{got:?}");
    assert_eq!(h.conn.state(), ConnState::FullFeature);
    // A READ(10) sent with the W bit and unsolicited data: its buffer is
    // sized for the read; the data must not overrun it.
    let mut cdb = [0u8; 10];
    cdb[0] = 0x28;
    cdb[8] = 1;
    let mut cmd = h.scsi_cmd(&cdb, 8192, true, true);
    cmd.final_ = false;
    let itt = cmd.itt;
    h.send(&Pdu::ScsiCommand(cmd), &[]);
    let d = DataOut {
        final_: true,
        lun: Lun::from_index(0),
        itt,
        ttt: Ttt::RESERVED,
        expstatsn: h.statsn,
        datasn: 0,
        buffer_offset: 0,
    };
    h.chunk = 1 << 20;
    h.send(&Pdu::DataOut(d), &[2; 8192]);
    let _ = h.recv();
    assert_eq!(h.conn.state(), ConnState::FullFeature);
    let (_, status, _) = h.read10(0, 1);
    assert_eq!(status, 0);
}

/// One command with its Data-Out as immediate data; returns the Data-In,
/// the status and the sense bytes (empty without CHECK CONDITION).
fn exec(h: &mut Harness, cdb: &[u8], edtl: u32, read: bool, data_out: &[u8]) -> (Vec<u8>, u8, Vec<u8>) {
    let cmd = h.scsi_cmd(cdb, edtl, read, !data_out.is_empty());
    h.send(&Pdu::ScsiCommand(cmd), data_out);
    let mut data = Vec::new();
    for (p, d) in h.recv() {
        match p {
            Pdu::DataIn(di) => {
                data.extend_from_slice(&d);
                if di.has_status {
                    return (data, di.status, Vec::new());
                }
            }
            Pdu::ScsiResponse(r) => return (data, r.status, d.get(2..).map(<[u8]>::to_vec).unwrap_or_default()),
            _ => {}
        }
    }
    panic!("no status");
}

fn get_lba_status(h: &mut Harness, lba: u64, alloc: u32) -> (Vec<u8>, u8, Vec<u8>) {
    let mut c = vec![0x9e, 0x12];
    c.extend_from_slice(&lba.to_be_bytes());
    c.extend_from_slice(&alloc.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    exec(h, &c, alloc, true, &[])
}

/// (LBA, blocks, provisioning status) of every descriptor.
fn lba_descriptors(d: &[u8]) -> Vec<(u64, u32, u8)> {
    d[8..]
        .chunks_exact(16)
        .map(|x| {
            (u64::from_be_bytes(x[..8].try_into().unwrap()), u32::from_be_bytes(x[8..12].try_into().unwrap()), x[12])
        })
        .collect()
}

#[test]
fn thin_lu_unmap_deallocates_and_get_lba_status_reports_it() {
    let mut h = Harness::thin(small_limits());
    h.login(&[("ImmediateData", "Yes")]);
    // Everything starts deallocated; write 16 blocks.
    assert_eq!(lba_descriptors(&get_lba_status(&mut h, 0, 1024).0), vec![(0, 2048, 1)]);
    let data = pattern(16 * 512, 9);
    assert_eq!(h.write10(0, &data, 8192, 0).0, 0);
    // UNMAP blocks 4..12: one descriptor.
    let mut p = vec![0, 22, 0, 16, 0, 0, 0, 0];
    p.extend_from_slice(&4u64.to_be_bytes());
    p.extend_from_slice(&8u32.to_be_bytes());
    p.extend_from_slice(&[0; 4]);
    let (_, status, sense) = exec(&mut h, &[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], 24, false, &p);
    assert_eq!((status, sense), (0, vec![]));
    assert!(h.holes[4..12].iter().all(|&x| x) && !h.holes[3] && !h.holes[12], "the backend deallocated exactly 4..12");
    let (d, status, _) = get_lba_status(&mut h, 0, 1024);
    assert_eq!(status, 0);
    assert_eq!(u32::from_be_bytes(d[..4].try_into().unwrap()), 4 + 4 * 16, "PARAMETER DATA LENGTH");
    assert_eq!(lba_descriptors(&d), vec![(0, 4, 0), (4, 8, 1), (12, 4, 0), (16, 2032, 1)]);
    // From an LBA inside the hole: the first descriptor starts there.
    assert_eq!(lba_descriptors(&get_lba_status(&mut h, 6, 1024).0)[0], (6, 6, 1));
    // The allocation length bounds the descriptors: 24 bytes hold one.
    let (d, status, _) = get_lba_status(&mut h, 0, 24);
    assert_eq!((status, d.len()), (0, 24));
    assert_eq!(u32::from_be_bytes(d[..4].try_into().unwrap()), 20);
    assert_eq!(lba_descriptors(&d), vec![(0, 4, 0)]);
    // Shorter than one descriptor: cut, not an error.
    let (d, status, _) = get_lba_status(&mut h, 0, 12);
    assert_eq!((status, d.len()), (0, 12));
    // Past the end: LOGICAL BLOCK ADDRESS OUT OF RANGE.
    let (_, status, sense) = get_lba_status(&mut h, 2048, 1024);
    assert_eq!(status, 2);
    assert_eq!((sense[2] & 0xf, sense[12], sense[13]), (0x05, 0x21, 0x00));
    // The unmapped blocks read zeros, their neighbours the data.
    let (back, status, _) = h.read10(0, 16);
    assert_eq!(status, 0);
    assert_eq!(&back[..4 * 512], &data[..4 * 512]);
    assert!(back[4 * 512..12 * 512].iter().all(|&b| b == 0));
    assert_eq!(&back[12 * 512..], &data[12 * 512..]);
}

#[test]
fn write_same_unmap_deallocates_whatever_the_data() {
    let mut h = Harness::thin(small_limits());
    h.login(&[("ImmediateData", "Yes")]);
    let ws16 = |lba: u64, blocks: u32, b1: u8| {
        let mut c = vec![0x93, b1];
        c.extend_from_slice(&lba.to_be_bytes());
        c.extend_from_slice(&blocks.to_be_bytes());
        c.extend_from_slice(&[0, 0]);
        c
    };
    // Without UNMAP: the block is written (and mapped).
    let (_, status, _) = exec(&mut h, &ws16(100, 10, 0), 512, false, &[0x5a; 512]);
    assert_eq!(status, 0);
    assert!(h.holes[100..110].iter().all(|&x| !x));
    assert!(h.disk[100 * 512..110 * 512].iter().all(|&b| b == 0x5a));
    // With UNMAP: deallocated whatever the data (SBC-4; libiscsi's
    // WriteSame10.UnmapUntilEnd sends 0xFF and wants zeros back).
    let (_, status, _) = exec(&mut h, &ws16(102, 4, 0x08), 512, false, &[0xff; 512]);
    assert_eq!(status, 0);
    assert!(h.holes[102..106].iter().all(|&x| x) && !h.holes[101] && !h.holes[106]);
    assert!(h.disk[102 * 512..106 * 512].iter().all(|&b| b == 0));
    let d = lba_descriptors(&get_lba_status(&mut h, 100, 1024).0);
    assert_eq!(&d[..3], &[(100, 2, 0), (102, 4, 1), (106, 4, 0)]);
    // NDOB with UNMAP: no Data-Out, deallocated too.
    let (_, status, _) = exec(&mut h, &ws16(106, 2, 0x09), 0, false, &[]);
    assert_eq!(status, 0);
    assert!(h.holes[106..108].iter().all(|&x| x));
    // A failing deallocation is an error, never a silent success.
    h.backend_fail = Some(shardtgt_core::scsi::BackendStatus::MediumError);
    let (_, status, sense) = exec(&mut h, &ws16(0, 4, 0x08), 512, false, &[0; 512]);
    assert_eq!(status, 2);
    assert_eq!((sense[2] & 0xf, sense[12], sense[13]), (0x03, 0x0c, 0x00));
}
