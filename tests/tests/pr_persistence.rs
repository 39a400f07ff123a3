//! Persistent reservations with APTPL survive a daemon crash (SPC-4
//! §5.14.2, "Activate Persist Through Power Loss"): register and reserve
//! through the raw initiator, SIGKILL the daemon, restart it on the same
//! config, and read the keys and the reservation back.

use std::fs;

use shardtgt_tests::initiator::RawConn;
use shardtgt_tests::{DaemonProcess, ScratchDir};

const TARGET: &str = "iqn.2026-11.io.shardtgt:pr";
const KEY: u64 = 0x1122_3344_5566_7788;

fn config(port: u16, state_dir: &std::path::Path) -> String {
    format!(
        "[global]\nshards = 2\nstate_dir = \"{}\"\n[[portal]]\naddress = \"127.0.0.1:{port}\"\n\
         [[target]]\nname = \"{TARGET}\"\n  [[target.lun]]\n  lun = 0\n  backend = \"ram\"\n  size = \"16MiB\"\n",
        state_dir.display()
    )
}

/// PERSISTENT RESERVE OUT with a 24-byte basic parameter list (SPC-4 §6.16.3).
fn prout(c: &mut RawConn, service_action: u8, pr_type: u8, key: u64, sa_key: u64, aptpl: bool) -> u8 {
    let mut cdb = [0u8; 10];
    cdb[0] = 0x5f;
    cdb[1] = service_action;
    cdb[2] = pr_type; // scope 0 (LU) in the high nibble
    cdb[8] = 24;
    let mut p = [0u8; 24];
    p[..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p[20] = u8::from(aptpl);
    c.scsi_write(0, &cdb, &p).status
}

/// PERSISTENT RESERVE IN (SPC-4 §6.15): returns the parameter data.
fn prin(c: &mut RawConn, service_action: u8) -> Vec<u8> {
    let mut cdb = [0u8; 10];
    cdb[0] = 0x5e;
    cdb[1] = service_action;
    cdb[7..9].copy_from_slice(&256u16.to_be_bytes());
    let r = c.scsi_read(0, &cdb, 256);
    assert_eq!(r.status, 0, "PR IN sense {:?}", r.sense);
    r.data
}

fn logged_in(port: u16) -> RawConn {
    let mut c = RawConn::connect(port).expect("connect");
    c.login("iqn.2026-11.test:pr", Some(TARGET)).expect("login");
    c.clear_unit_attention(0);
    c
}

#[test]
fn aptpl_reservation_survives_sigkill() {
    let dir = ScratchDir::new("pr-aptpl");
    let state = dir.path().join("state");
    let mut d = DaemonProcess::start_in(dir.path(), |port| config(port, &state));
    let mut c = logged_in(d.port());
    // REGISTER (APTPL) then RESERVE, type 5: Write Exclusive, Registrants Only.
    assert_eq!(prout(&mut c, 0x00, 0, 0, KEY, true), 0);
    assert_eq!(prout(&mut c, 0x01, 5, KEY, 0, false), 0);
    drop(c);
    assert!(fs::read_dir(&state).expect("state dir").next().is_some(), "no state file written");

    d.kill();
    d.restart();

    let mut c = logged_in(d.port());
    let keys = prin(&mut c, 0x00);
    let len = u32::from_be_bytes(keys[4..8].try_into().unwrap()) as usize;
    assert_eq!(len, 8, "one registered key after restart: {keys:?}");
    assert_eq!(u64::from_be_bytes(keys[8..16].try_into().unwrap()), KEY);
    let res = prin(&mut c, 0x01);
    let len = u32::from_be_bytes(res[4..8].try_into().unwrap()) as usize;
    assert_eq!(len, 16, "a reservation after restart: {res:?}");
    assert_eq!(u64::from_be_bytes(res[8..16].try_into().unwrap()), KEY);
    assert_eq!(res[21] & 0x0f, 5, "reservation type");
}
