//! Running the target: build backends and the configuration snapshot, bind
//! every portal (before anything else starts, so a busy port fails fast and
//! clearly), start the shards and the acceptor, serve the admin socket and
//! SIGHUP reloads on this control thread, then on SIGTERM or SIGINT shut
//! down gracefully: stop accepting, ask every connection to
//! log out, wait for the shards to drain. It never handles a connection.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use shardtgt_core::session::Registry;
use shardtgt_shard::{Acceptor, Clock, CoreConns, Listener, PoolConfig, ShardConfig, ShardContext, ShardPool};
use shardtgt_transport_tcp::addr::format_portal;
use shardtgt_transport_tcp::listen;
use tracing::{error, info, warn};

use crate::admin::control::{Control, Live};
use crate::admin::socket::AdminSocket;
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

/// Where the daemon keeps its configuration and management socket.
#[derive(Clone, Debug)]
pub struct Paths {
    /// The configuration file runtime changes are written to (`None`: the
    /// built-in default, changes are not persisted).
    pub config: Option<PathBuf>,
    /// The management socket.
    pub admin_socket: PathBuf,
    /// Given on the command line: failing to bind it is fatal. The default
    /// path that is busy (another daemon owns it) only costs a warning, so
    /// several daemons can run side by side (tests, benchmarks).
    pub admin_socket_explicit: bool,
    /// `global.shards` from the file when `--shards` overrode it.
    pub file_shards: Option<usize>,
}

/// Serve `cfg` until a termination signal; `signals` must have been
/// installed before any thread was spawned. SIGHUP reloads `paths.config`;
/// the admin socket is served on this (the control) thread.
pub fn run(cfg: &Config, paths: &Paths, signals: &Signals) -> Result<(), RunError> {
    let live = Live::default();
    let prepared = live.prepare(cfg).map_err(|e| RunError(format!("backend: {e}")))?;

    let mut listeners = Vec::with_capacity(cfg.portals.len());
    for p in &cfg.portals {
        let l = listen::bind(p.addr).map_err(|e| RunError(e.to_string()))?;
        listeners.push(Listener { listener: l, tpgt: p.tpgt });
    }
    let admin = match AdminSocket::bind(&paths.admin_socket) {
        Ok(a) => Some(a),
        Err(e) if !paths.admin_socket_explicit => {
            warn!("admin socket {}: {e}; running without management socket", paths.admin_socket.display());
            None
        }
        Err(e) => return Err(RunError(format!("admin socket {}: {e}", paths.admin_socket.display()))),
    };

    let backends = prepared.added.iter().map(|(_, b)| b.clone()).collect();
    let ctx = ShardContext { targets: Arc::new(prepared.set.clone()), backends, clock: Clock::new() };
    let registry = Arc::new(Registry::new(cfg.max_sessions));
    let conns = CoreConns::new(registry.clone());
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
        "listening on {}, {}, {}, {}; admin socket {}",
        if portals.is_empty() { "no portal".to_string() } else { portals.join(", ") },
        plural(pool.len(), "shard"),
        plural(cfg.targets.len(), "target"),
        plural(cfg.lun_count(), "LUN"),
        admin.as_ref().map_or("none".to_string(), |a| a.path().display().to_string())
    );
    // SBC-4 §4.11.2: a sanitize operation interrupted by the last stop
    // continues (recorded under state_dir).
    for t in &prepared.set.targets {
        for l in &t.luns {
            if l.shared.sanitize.resume(&l.shared) {
                warn!(target = %t.name, lun = l.lun, "resuming an interrupted SANITIZE: the LU answers NOT READY until it ends");
            }
        }
    }
    let mut live = live;
    live.commit(prepared);
    let bound = cfg.portals.iter().map(|p| p.addr).collect();
    let mut control = Control::new(cfg.clone(), paths.config.clone(), live, pool, acceptor, bound, registry);
    if let Some(n) = paths.file_shards {
        control.keep_file_shards(n);
    }

    let mut failure = None;
    loop {
        let mut fds = [
            libc::pollfd { fd: signals.raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: admin.as_ref().map_or(-1, |a| a.raw_fd()), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: two live pollfd structures.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, 200) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                failure = Some(RunError(format!("poll: {e}")));
                break;
            }
        }
        if let (Some(a), true) = (&admin, fds[1].revents != 0) {
            a.serve_ready(|line| control.handle_line(line));
        }
        if fds[0].revents != 0 {
            match signals.wait(Duration::ZERO) {
                Ok(Some(libc::SIGHUP)) => match control.reload() {
                    Ok(c) if c.is_empty() => info!("SIGHUP: configuration unchanged"),
                    Ok(c) => info!("SIGHUP: configuration reloaded ({} changes)", c.len()),
                    Err(e) => error!("SIGHUP: reload refused, running configuration kept: {e}"),
                },
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
        }
        if let Some(id) = control.pool().dead_shard() {
            failure = Some(RunError(format!("shard {id} stopped unexpectedly")));
            break;
        }
    }

    let logout_timeout_ms = control.config().limits.logout_timeout_ms;
    let pool = control.into_pool();
    drop(admin);
    let stats = pool.stats();
    let live: u64 = stats.iter().map(|s| s.conns_live).sum();
    if live > 0 {
        info!(connections = live, "asking initiators to log out");
    }
    pool.shutdown();
    let grace = Duration::from_millis(logout_timeout_ms + 5_000);
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
