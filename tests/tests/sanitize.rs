//! SANITIZE OVERWRITE against the daemon (SBC-4 §4.11): the operation runs
//! in the background, outlives the connection that started it, reports
//! its progress to every nexus, resumes after a SIGKILL and restart (it is
//! recorded under `state_dir`), and leaves every block holding the pattern.

use std::fs;
use std::time::{Duration, Instant};

use shardtgt_tests::initiator::{cdb, RawConn, ScsiResult};
use shardtgt_tests::{DaemonProcess, ScratchDir};

const TARGET: &str = "iqn.2026-11.io.shardtgt:sanitize";
/// 16 MiB at 4 MiB/s: about 4 s per pass.
const SIZE_MIB: u64 = 16;
const RATE_MIB: u64 = 4;
const SANITIZING: u16 = 0x041b;

fn config(port: u16, state_dir: &std::path::Path) -> String {
    format!(
        "[global]\nshards = 2\nstate_dir = \"{}\"\nsanitize_rate_mib = {RATE_MIB}\n\
         [[portal]]\naddress = \"127.0.0.1:{port}\"\n\
         [[target]]\nname = \"{TARGET}\"\n  [[target.lun]]\n  lun = 0\n  backend = \"ram\"\n  size = \"{SIZE_MIB}MiB\"\n\
         [[target.lun]]\n  lun = 1\n  backend = \"ram\"\n  size = \"1MiB\"\n",
        state_dir.display()
    )
}

fn session(port: u16, name: &str) -> RawConn {
    let mut c = RawConn::connect(port).expect("connect");
    c.login(name, Some(TARGET)).expect("login");
    c
}

/// TEST UNIT READY, skipping unit attentions.
fn tur(c: &mut RawConn) -> ScsiResult {
    for _ in 0..8 {
        let r = c.scsi_read(0, &cdb::test_unit_ready(), 0);
        if !(r.status == 2 && r.sense_key() == 6) {
            return r;
        }
    }
    panic!("unit attentions never stop");
}

/// Progress indication of fixed-format sense (SPC-4 §4.5.2.4.4).
fn progress(r: &ScsiResult) -> u16 {
    assert_eq!(r.sense.get(15).map(|b| b & 0x80), Some(0x80), "SKSV set: {:?}", r.sense);
    u16::from_be_bytes([r.sense[16], r.sense[17]])
}

fn sanitize_cdb(immed: bool, plen: u16) -> [u8; 10] {
    let mut c = [0x48, 0x01, 0, 0, 0, 0, 0, 0, 0, 0];
    if immed {
        c[1] |= 0x80;
    }
    c[7..9].copy_from_slice(&plen.to_be_bytes());
    c
}

fn wait_until_ready(c: &mut RawConn, limit: Duration) {
    let t = Instant::now();
    loop {
        let r = tur(c);
        if r.status == 0 {
            return;
        }
        assert_eq!((r.sense_key(), r.asc_ascq()), (2, SANITIZING), "only SANITIZE IN PROGRESS while waiting");
        assert!(t.elapsed() < limit, "sanitize still running after {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn sanitize_survives_nexus_loss_and_restart_and_overwrites_everything() {
    let dir = ScratchDir::new("sanitize");
    let state = dir.path().join("state");
    let mut d = DaemonProcess::start_in(dir.path(), |port| config(port, &state));

    let mut a = session(d.port(), "iqn.2026-11.test:sanitize-a");
    a.clear_unit_attention(0);
    let mut data = vec![0x5a; 4096];
    assert_eq!(a.scsi_write(0, &cdb::write10(100, 8), &data).status, 0);

    // OVERWRITE, one pass, a 3-byte pattern, IMMED = 1: GOOD at once.
    let params = [0x01, 0, 0, 3, 0xde, 0xad, 0x01];
    let r = a.scsi_write(0, &sanitize_cdb(true, params.len() as u16), &params);
    assert_eq!(r.status, 0, "SANITIZE IMMED: {:?}", r.sense);
    assert!(
        fs::read_dir(&state)
            .expect("state dir")
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "sanitize")),
        "the operation is recorded before the command answers"
    );

    // Every command but INQUIRY etc.: NOT READY, SANITIZE IN PROGRESS, with progress.
    let r = tur(&mut a);
    assert_eq!((r.status, r.sense_key(), r.asc_ascq()), (2, 2, SANITIZING));
    let r = a.scsi_read(0, &cdb::read10(0, 1), 512);
    assert_eq!((r.sense_key(), r.asc_ascq()), (2, SANITIZING), "READ refused");
    assert_eq!(a.scsi_read(0, &cdb::inquiry(false, 0, 96), 96).status, 0, "INQUIRY allowed");
    let r = a.scsi_read(1, &cdb::read10(0, 1), 512);
    assert_eq!(r.status, 0, "another LU is not affected");

    // The connection that started it goes away; another initiator sees it continue.
    drop(a);
    std::thread::sleep(Duration::from_millis(1200));
    let mut b = session(d.port(), "iqn.2026-11.test:sanitize-b");
    let r = tur(&mut b);
    assert_eq!((r.sense_key(), r.asc_ascq()), (2, SANITIZING), "still running after nexus loss");
    let before_kill = progress(&r);
    assert!(before_kill > 0, "progress reported");
    drop(b);

    // Crash mid-way: the restarted daemon resumes it.
    d.kill();
    d.restart();
    let mut c = session(d.port(), "iqn.2026-11.test:sanitize-c");
    let r = tur(&mut c);
    assert_eq!((r.sense_key(), r.asc_ascq()), (2, SANITIZING), "resumed after restart: {:?}", r.sense);
    wait_until_ready(&mut c, Duration::from_secs(60));
    assert!(
        !fs::read_dir(&state)
            .expect("state dir")
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "sanitize")),
        "the record is removed once it succeeded"
    );

    // Every block holds the pattern, repeated from its start; the old data is gone.
    let blocks = (SIZE_MIB << 20) / 512;
    let mut want = vec![0u8; 512];
    for (i, x) in want.iter_mut().enumerate() {
        *x = params[4 + i % 3];
    }
    for lba in [0, 100, 107, blocks / 2, blocks - 1] {
        let r = c.scsi_read(0, &cdb::read10(lba as u32, 1), 512);
        assert_eq!(r.status, 0);
        assert_eq!(r.data, want, "LBA {lba}");
    }

    // IMMED = 0: the command itself ends when the operation does.
    data.fill(0);
    let t = Instant::now();
    let r = c.scsi_write(0, &sanitize_cdb(false, 5), &[0x01, 0, 0, 1, 0x00]);
    assert_eq!(r.status, 0, "{:?}", r.sense);
    assert!(t.elapsed() >= Duration::from_secs(3), "status only after the overwrite ({:?})", t.elapsed());
    assert_eq!(tur(&mut c).status, 0);
    let r = c.scsi_read(0, &cdb::read10(100, 8), 4096);
    assert_eq!(r.data, data);
}
