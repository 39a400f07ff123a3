//! `shardtgtd`: the shardtgt iSCSI target daemon. See `--help`.

use std::path::Path;
use std::process::ExitCode;

use shardtgt_daemon::admin::protocol::DEFAULT_SOCKET;
use shardtgt_daemon::args::{Args, USAGE};
use shardtgt_daemon::config::{Config, ConfigError, DEFAULT_PATH};
use shardtgt_daemon::persist::{to_toml, write_atomic};
use shardtgt_daemon::signals::Signals;
use shardtgt_daemon::{serve, EXIT_CONFIG, EXIT_RUNTIME};
use tracing::info;
use tracing_subscriber::EnvFilter;

fn init_logging(level: Option<&str>) -> Result<(), String> {
    let filter = match level {
        Some(l) => EnvFilter::try_new(l).map_err(|e| format!("--log {l}: {e}"))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .init();
    Ok(())
}

/// `--config PATH` that does not exist yet: start with no targets and
/// create the file now, so a typo in the directory fails at once.
fn create_empty(p: &Path) -> Result<Config, ConfigError> {
    let cfg = Config::parse("", &p.display().to_string())?;
    write_atomic(p, &to_toml(&cfg)).map_err(|e| ConfigError {
        file: p.display().to_string(),
        line: 0,
        col: 0,
        field: String::new(),
        message: format!("cannot create: {e}"),
    })?;
    Ok(cfg)
}

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("shardtgtd: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if args.help {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if args.version {
        println!("shardtgtd {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if let Err(e) = init_logging(args.log.as_deref()) {
        eprintln!("shardtgtd: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }

    let loaded = match &args.config {
        Some(p) if !p.exists() && args.check => {
            Config::parse("", &p.display().to_string()).map(|c| (c, p.display().to_string()))
        }
        Some(p) if !p.exists() => create_empty(p).map(|c| (c, p.display().to_string())),
        Some(p) => Config::load(p).map(|c| (c, p.display().to_string())),
        None if Path::new(DEFAULT_PATH).exists() => {
            Config::load(Path::new(DEFAULT_PATH)).map(|c| (c, DEFAULT_PATH.to_string()))
        }
        None => Ok((Config::embedded_default(), "built-in default".to_string())),
    };
    let (mut cfg, source) = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shardtgtd: config error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let file_shards = args.shards.map(|_| cfg.shards);
    if let Some(n) = args.shards {
        cfg.shards = n;
    }
    if args.check {
        println!("config OK: {} targets, {} LUNs, {} portals", cfg.targets.len(), cfg.lun_count(), cfg.portals.len());
        return ExitCode::SUCCESS;
    }
    if args.config.is_none() && source == "built-in default" {
        info!("no {DEFAULT_PATH}: serving the built-in default configuration");
    } else {
        info!(config = %source, "configuration loaded");
    }

    // Before any thread exists, so every thread inherits the blocked mask.
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("shardtgtd: error: signals: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let config_path = match &args.config {
        Some(p) => Some(p.clone()),
        None if source == DEFAULT_PATH => Some(Path::new(DEFAULT_PATH).to_path_buf()),
        None => None,
    };
    let paths = serve::Paths {
        config: config_path,
        admin_socket: args.admin_socket.clone().unwrap_or_else(|| DEFAULT_SOCKET.into()),
        admin_socket_explicit: args.admin_socket.is_some(),
        file_shards,
    };
    match serve::run(&cfg, &paths, &signals) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shardtgtd: error: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}
