//! `shardtgtadm`: manage a running `shardtgtd` (see `--help`). Invoked as
//! `tgtadm` (a symlink), it takes tgtadm's arguments directly.

use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;
use shardtgt_daemon::adm::cli::{self, Action, Usage, USAGE};
use shardtgt_daemon::adm::tgtadm::{self, TgtCall};
use shardtgt_daemon::adm::{import_tgt, render};
use shardtgt_daemon::admin::protocol::Request;
use shardtgt_daemon::admin::socket::request;

/// Exit code for an error the daemon (or the system) reported.
const EXIT_ERROR: u8 = 1;
/// Exit code for a usage error.
const EXIT_USAGE: u8 = 2;

fn send(socket: &Path, req: &Request) -> Result<Value, String> {
    let line = serde_json::to_string(req).map_err(|e| e.to_string())?;
    let resp = request(socket, &line).map_err(|e| format!("cannot talk to shardtgtd at {}: {e}", socket.display()))?;
    if resp.ok {
        Ok(resp.data.unwrap_or(Value::Null))
    } else {
        Err(resp.error.unwrap_or_else(|| "unknown error".into()))
    }
}

fn print_result(req: &Request, data: &Value, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(data).unwrap_or_default());
        return;
    }
    match req {
        Request::TargetShow { .. } => print!("{}", render::tree(data)),
        Request::SessionList => print!("{}", render::sessions(data)),
        Request::Stats => print!("{}", render::stats(data)),
        Request::ConfigShow => print!("{}", data["toml"].as_str().unwrap_or("")),
        Request::ConfigSave => println!("saved to {}", data["path"].as_str().unwrap_or("?")),
        Request::ConfigReload => {
            let changes = data["changes"].as_array().cloned().unwrap_or_default();
            if changes.is_empty() {
                println!("no changes");
            }
            for c in changes {
                println!("{}", c.as_str().unwrap_or(""));
            }
        }
        Request::TargetNew { .. } => println!("target created (tid {})", data["tid"]),
        _ => {}
    }
}

fn run_tgtadm(socket: &Path, args: &[String]) -> Result<(), (u8, String)> {
    let call = tgtadm::map(args).map_err(|Usage(u)| (EXIT_USAGE, u))?;
    let err = |e: String| (EXIT_ERROR, format!("tgtadm: {e}"));
    let all = Request::TargetShow { target: None };
    match call {
        TgtCall::Change(req) => send(socket, &req).map(|_| ()).map_err(err),
        TgtCall::ShowTargets(tid) => {
            let cfg = send(socket, &all).map_err(err)?;
            let sess = send(socket, &Request::SessionList).map_err(err)?;
            print!("{}", tgtadm::show_targets(&cfg, &sess, tid));
            Ok(())
        }
        TgtCall::ShowAccounts => {
            print!("{}", tgtadm::show_accounts(&send(socket, &all).map_err(err)?));
            Ok(())
        }
        TgtCall::ShowConns(tid) => {
            let cfg = send(socket, &all).map_err(err)?;
            let sess = send(socket, &Request::SessionList).map_err(err)?;
            print!("{}", tgtadm::show_conns(&cfg, &sess, tid));
            Ok(())
        }
        TgtCall::ShowSys => {
            print!("System:\n    State: ready\n{}", render::stats(&send(socket, &Request::Stats).map_err(err)?));
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let invoked_as = argv.first().map(|a| Path::new(a).file_name().and_then(|n| n.to_str()).unwrap_or("").to_string());
    let rest = &argv[argv.len().min(1)..];
    let result: Result<(), (u8, String)> = if invoked_as.as_deref() == Some("tgtadm") {
        let socket: std::path::PathBuf = std::env::var_os("SHARDTGT_SOCKET")
            .map(Into::into)
            .unwrap_or_else(|| shardtgt_daemon::admin::protocol::DEFAULT_SOCKET.into());
        run_tgtadm(&socket, rest)
    } else {
        match cli::parse(rest) {
            Err(Usage(u)) => Err((EXIT_USAGE, u)),
            Ok(c) => match c.action {
                Action::Help => {
                    print!("{USAGE}");
                    Ok(())
                }
                Action::Tgtadm(args) => run_tgtadm(&c.socket, &args),
                Action::ImportTgt { file, output } => match std::fs::read_to_string(&file) {
                    Err(e) => Err((EXIT_ERROR, format!("{}: {e}", file.display()))),
                    Ok(src) => {
                        let imp = import_tgt::convert(&src, &file.display().to_string());
                        for n in &imp.notes {
                            eprintln!("not mapped: {n}");
                        }
                        match output {
                            None => {
                                print!("{}", imp.toml());
                                Ok(())
                            }
                            Some(o) => shardtgt_daemon::persist::write_atomic(&o, &imp.toml())
                                .map_err(|e| (EXIT_ERROR, format!("{}: {e}", o.display()))),
                        }
                    }
                },
                Action::Send(req) => match send(&c.socket, &req) {
                    Ok(data) => {
                        print_result(&req, &data, c.json);
                        Ok(())
                    }
                    Err(e) => Err((EXIT_ERROR, e)),
                },
            },
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            eprintln!("shardtgtadm: {msg}");
            ExitCode::from(code)
        }
    }
}
