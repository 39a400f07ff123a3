//! End to end: the daemon's shards and acceptor in this process (as
//! `shardtgtd` starts them), the bench's load generator against them over
//! loopback TCP for about two seconds.

use std::sync::Arc;
use std::time::Duration;

use shardtgt_bench::run::{run, RunOptions};
use shardtgt_bench::url::IscsiUrl;
use shardtgt_bench::workload::{Pattern, Workload};
use shardtgt_core::session::Registry;
use shardtgt_daemon::config::Config;
use shardtgt_shard::{Acceptor, Clock, CoreConns, Listener, PoolConfig, ShardConfig, ShardContext, ShardPool};

const CONFIG: &str = r#"
[global]
shards = 1
nop_interval_ms = 500
[[portal]]
address = "127.0.0.1:3260"
[[target]]
name = "iqn.2026-11.io.shardtgt:bench-test"
  [[target.lun]]
  lun = 0
  backend = "ram"
  size = "64MiB"
  [[target.lun]]
  lun = 1
  backend = "null"
  size = "1GiB"
  [[target.lun]]
  lun = 2
  backend = "ram"
  size = "16MiB"
  read_only = true
"#;

struct Daemon {
    pool: Option<ShardPool>,
    acceptor: Option<Acceptor>,
    port: u16,
}

impl Daemon {
    fn start() -> Daemon {
        let cfg = Config::parse(CONFIG, "test.toml").expect("config");
        let built = cfg.build().expect("backends");
        let listener = shardtgt_transport_tcp::listen::bind("127.0.0.1:0".parse().unwrap()).expect("bind");
        let port = listener.local_addr().unwrap().port();
        let ctx = ShardContext { targets: built.targets.clone(), backends: built.backends, clock: Clock::new() };
        let conns = CoreConns::new(Arc::new(Registry::new(cfg.max_sessions)));
        let pool_cfg = PoolConfig { shards: 1, pin: false, shard: ShardConfig::default() };
        let pool = ShardPool::start(&pool_cfg, &ctx, conns).expect("shards");
        let acceptor = Acceptor::start(vec![Listener { listener, tpgt: 1 }], pool.dispatcher()).expect("acceptor");
        Daemon { pool: Some(pool), acceptor: Some(acceptor), port }
    }

    fn url(&self, lun: u16) -> IscsiUrl {
        IscsiUrl::parse(&format!("iscsi://127.0.0.1:{}/iqn.2026-11.io.shardtgt:bench-test/{lun}", self.port)).unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(a) = self.acceptor.take() {
            a.stop();
        }
        if let Some(p) = self.pool.take() {
            p.shutdown();
            let _ = p.join(Duration::from_secs(10));
        }
    }
}

#[test]
fn two_second_verified_mixed_run_against_the_daemon() {
    let d = Daemon::start();
    let wl = Workload {
        pattern: Pattern::RandRw,
        mix: 50,
        bs: 8192,
        qd: 8,
        sessions: 2,
        duration: Duration::from_millis(1500),
        ramp: Duration::from_millis(500),
        verify: true,
        progress: false,
        ..Workload::default()
    };
    let pid = std::process::id();
    let r = run(&RunOptions { url: d.url(0), wl, target_pid: Some(pid), seed: 7 }).expect("run");
    assert!(r.ios > 100, "{}", r.human());
    assert!(r.reads > 0 && r.writes > 0, "{}", r.human());
    assert_eq!((r.errors, r.verify_errors, r.failed_sessions), (0, 0, 0), "{}", r.human());
    assert!(r.iops > 0.0 && r.lat.p50_us > 0.0 && r.lat.max_us >= r.lat.p99_us, "{}", r.human());
    assert!(r.target_cpu_us_per_io.is_some(), "{}", r.human());
}

#[test]
fn large_writes_through_r2t_and_reads_by_count() {
    let d = Daemon::start();
    // 1 MiB writes exceed FirstBurstLength (64 KiB): the rest comes by R2T.
    let base = Workload {
        bs: 1 << 20,
        qd: 4,
        sessions: 1,
        ios: Some(200),
        progress: false,
        ramp: Duration::ZERO,
        ..Workload::default()
    };
    for pattern in [Pattern::Write, Pattern::Read] {
        let wl = Workload { pattern, ..base.clone() };
        let r = run(&RunOptions { url: d.url(1), wl, target_pid: None, seed: 1 }).expect("run");
        assert_eq!(r.ios, 200, "{}", r.human());
        assert_eq!((r.errors, r.failed_sessions), (0, 0), "{}", r.human());
        assert_eq!(r.bytes, 200 << 20);
    }
}

#[test]
fn a_bad_url_fails_cleanly() {
    let d = Daemon::start();
    let mut url = d.url(0);
    url.target = "iqn.2026-11.io.shardtgt:nope".into();
    let e =
        run(&RunOptions { url, wl: Workload { progress: false, ..Workload::default() }, target_pid: None, seed: 1 });
    assert!(e.is_err());
}

#[test]
fn verify_catches_a_lun_that_drops_writes() {
    let d = Daemon::start();
    // The null LUN reads zeros: every read of a region written in this run must fail verification.
    let wl = Workload {
        pattern: Pattern::RandRw,
        mix: 50,
        qd: 4,
        ios: Some(4000),
        span_bytes: 256 << 10,
        verify: true,
        progress: false,
        ramp: Duration::ZERO,
        ..Workload::default()
    };
    let r = run(&RunOptions { url: d.url(1), wl, target_pid: None, seed: 3 }).expect("run");
    assert!(r.verify_errors > 0, "{}", r.human());
    assert!(r.messages.iter().any(|m| m.contains("checksum")), "{:?}", r.messages);
}

#[test]
fn check_condition_is_counted_not_fatal() {
    let d = Daemon::start();
    // Writes to a read-only LUN end in CHECK CONDITION, DATA PROTECT (sense key 7).
    let wl = Workload {
        pattern: Pattern::RandWrite,
        qd: 4,
        ios: Some(100),
        progress: false,
        ramp: Duration::ZERO,
        ..Workload::default()
    };
    let r = run(&RunOptions { url: d.url(2), wl, target_pid: None, seed: 5 }).expect("run");
    assert_eq!((r.errors, r.ios, r.failed_sessions), (100, 0, 0), "{}", r.human());
    assert!(r.messages.iter().any(|m| m.contains("sense key 0x7")), "{:?}", r.messages);
}
