//! Running the target: build backends and the configuration snapshot, bind
//! every portal (before anything else starts, so a busy port fails fast and
//! clearly), start the shards and the acceptor, then wait for SIGTERM or
//! SIGINT and shut down gracefully: stop accepting, ask every connection to
//! log out, wait for the shards to drain. It never handles a connection.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use shardtgt_core::session::Registry;
use shardtgt_shard::{Acceptor, Clock, CoreConns, Listener, PoolConfig, ShardConfig, ShardContext, ShardPool};
use shardtgt_transport_tcp::addr::format_portal;
use shardtgt_transport_tcp::listen;
use tracing::{error, info};

use crate::config::Config;
use crate::signals::Signals;

/// Why the daemon stopped with an error.
#[derive(Debug)]
pub struct RunError(pub String);

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RunError {}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Serve `cfg` until a termination signal; `signals` must have been
/// installed before any thread was spawned.
pub fn run(cfg: &Config, signals: &Signals) -> Result<(), RunError> {
    let built = cfg.build().map_err(|e| RunError(format!("backend: {e}")))?;

    let mut listeners = Vec::with_capacity(cfg.portals.len());
    for p in &cfg.portals {
        let l = listen::bind(p.addr).map_err(|e| RunError(e.to_string()))?;
        listeners.push(Listener { listener: l, tpgt: p.tpgt });
    }

    let ctx = ShardContext { targets: built.targets.clone(), backends: built.backends, clock: Clock::new() };
    let conns = CoreConns { registry: Arc::new(Registry::new(cfg.max_sessions)) };
    let pool_cfg = PoolConfig { shards: cfg.shards, pin: true, shard: ShardConfig::default() };
    let pool = ShardPool::start(&pool_cfg, &ctx, conns).map_err(|e| RunError(e.to_string()))?;
    let acceptor = match Acceptor::start(listeners, pool.dispatcher()) {
        Ok(a) => a,
        Err(e) => {
            pool.shutdown();
            let _ = pool.join(Duration::from_secs(5));
            return Err(RunError(format!("acceptor: {e}")));
        }
    };
    let portals: Vec<String> = cfg.portals.iter().map(|p| format_portal(&p.addr)).collect();
    info!(
        "listening on {}, {}, {}, {}",
        portals.join(", "),
        plural(pool.len(), "shard"),
        plural(cfg.targets.len(), "target"),
        plural(cfg.lun_count(), "LUN")
    );

    let mut failure = None;
    loop {
        match signals.wait(Duration::from_millis(200)) {
            Ok(Some(sig)) => {
                info!(signal = sig, "termination signal: shutting down");
                break;
            }
            Ok(None) => {}
            Err(e) => {
                failure = Some(RunError(format!("waiting for signals: {e}")));
                break;
            }
        }
        if let Some(id) = pool.dead_shard() {
            failure = Some(RunError(format!("shard {id} stopped unexpectedly")));
            break;
        }
    }

    acceptor.stop();
    let stats = pool.stats();
    let live: u64 = stats.iter().map(|s| s.conns_live).sum();
    if live > 0 {
        info!(connections = live, "asking initiators to log out");
    }
    pool.shutdown();
    let grace = Duration::from_millis(cfg.limits.logout_timeout_ms + 5_000);
    if let Err(e) = pool.join(grace) {
        error!("{e}");
        return Err(failure.unwrap_or(RunError(e.to_string())));
    }
    if let Some(f) = failure {
        return Err(f);
    }
    info!("stopped");
    Ok(())
}
