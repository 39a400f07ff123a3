//! COMPARE AND WRITE (SBC-4 §5.3) is atomic against the other shard: two
//! initiators, whose sessions the daemon placed on its two different
//! shards, race a CAW on the same block every round with the same verify
//! data and different write data. Exactly one may win (GOOD); the other
//! must get MISCOMPARE, and the block must then hold the winner's data.

use std::sync::{Arc, Barrier};
use std::thread;

use shardtgt_tests::initiator::{cdb, RawConn};
use shardtgt_tests::{DaemonProcess, ScratchDir};

const TARGET: &str = "iqn.2026-11.io.shardtgt:caw";
const ROUNDS: usize = 1000;
const LBA: u32 = 7;

fn config(port: u16) -> String {
    format!(
        "[global]\nshards = 2\n[[portal]]\naddress = \"127.0.0.1:{port}\"\n\
         [[target]]\nname = \"{TARGET}\"\n  [[target.lun]]\n  lun = 0\n  backend = \"ram\"\n  size = \"1MiB\"\n"
    )
}

fn caw16(lba: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x89;
    c[6..10].copy_from_slice(&lba.to_be_bytes());
    c[13] = 1; // NUMBER OF LOGICAL BLOCKS
    c
}

/// Block contents of round `r` before the race, and what initiator `who` writes.
/// Byte 8 tells them apart: 0 before, 1 + `who` after.
fn before(r: usize) -> Vec<u8> {
    let mut b = vec![(r % 251) as u8; 512];
    b[..8].copy_from_slice(&(r as u64).to_be_bytes());
    b[8] = 0;
    b
}
fn written(r: usize, who: u8) -> Vec<u8> {
    let mut b = before(r);
    b[8] = 1 + who;
    b
}

#[test]
fn caw_race_across_two_shards_has_exactly_one_winner_every_round() {
    let dir = ScratchDir::new("caw-race");
    let d = DaemonProcess::start_in(dir.path(), config);
    let login = |name: &str| {
        let mut c = RawConn::connect(d.port()).expect("connect");
        c.login(name, Some(TARGET)).expect("login");
        c.clear_unit_attention(0);
        c
    };
    let racer_conns = [login("iqn.2026-11.test:caw0"), login("iqn.2026-11.test:caw1")];
    // The two racers must be on different shards for this to test anything.
    let list = d.admin(r#"{"op":"session_list"}"#);
    let shards: Vec<&str> =
        list.split("\"shard\":").skip(1).map(|s| s.split([',', '}']).next().unwrap_or("")).collect();
    assert_eq!(shards.len(), 2, "two sessions: {list}");
    assert_ne!(shards[0], shards[1], "the acceptor put both sessions on one shard: {list}");
    let mut setup = login("iqn.2026-11.test:caw-setup");

    let barrier = Arc::new(Barrier::new(3));
    let racers: Vec<_> = racer_conns
        .into_iter()
        .enumerate()
        .map(|(who, mut c)| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                (0..ROUNDS)
                    .map(|r| {
                        barrier.wait(); // the block holds before(r)
                        let mut data = before(r);
                        data.extend_from_slice(&written(r, who as u8));
                        let res = c.scsi_write(0, &caw16(LBA), &data);
                        barrier.wait(); // both answered
                        match (res.status, res.sense_key()) {
                            (0, _) => true,
                            (2, 0x0e) => false,
                            other => panic!("round {r}: initiator {who} got {other:?} {:?}", res.sense),
                        }
                    })
                    .collect::<Vec<bool>>()
            })
        })
        .collect();
    for r in 0..ROUNDS {
        assert_eq!(setup.scsi_write(0, &cdb::write10(LBA, 1), &before(r)).status, 0);
        barrier.wait();
        barrier.wait();
        let now = setup.scsi_read(0, &cdb::read10(LBA, 1), 512);
        assert!(now.data == written(r, 0) || now.data == written(r, 1), "round {r}: block holds neither write");
    }
    let results: Vec<Vec<bool>> = racers.into_iter().map(|h| h.join().expect("racer")).collect();
    for (r, (a, b)) in results[0].iter().zip(&results[1]).enumerate() {
        assert!(a ^ b, "round {r}: wins {a} / {b}");
    }
    assert_eq!(results[0].len(), ROUNDS);
    let wins0 = results[0].iter().filter(|&&w| w).count();
    eprintln!("{ROUNDS} rounds: initiator 0 won {wins0}, initiator 1 won {}", ROUNDS - wins0);
}
