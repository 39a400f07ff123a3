//! Runs the built `shardtgtd` binary: listening, busy port, bad config,
//! `--check`, and SIGTERM. Each test uses its own free loopback port.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_shardtgtd");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn write_config(name: &str, body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shardtgtd-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn config(port: u16) -> String {
    format!(
        "[global]\nshards = 2\n\n[[portal]]\naddress = \"127.0.0.1:{port}\"\n\n[[target]]\nname = \"iqn.2026-11.io.shardtgt:test\"\n  [[target.lun]]\n  lun = 0\n  backend = \"ram\"\n  size = \"64MiB\"\n"
    )
}

/// A running daemon whose stderr lines arrive on a channel.
struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Daemon {
    fn start(args: &[&str]) -> Daemon {
        let mut child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Daemon { child, lines, seen: Vec::new() }
    }

    /// Wait for a stderr line containing `what`.
    fn wait_line(&mut self, what: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let hit = l.contains(what);
                    self.seen.push(l);
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    fn stderr(&mut self) -> String {
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(l);
        }
        self.seen.join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn listens_on_its_portal() {
    let port = free_port();
    let cfg = write_config("listen.toml", &config(port));
    let mut d = Daemon::start(&["--config", cfg.to_str().unwrap()]);
    assert!(
        d.wait_line(&format!("listening on 127.0.0.1:{port}, 2 shards, 1 target, 1 LUN"), Duration::from_secs(10)),
        "no listening line; stderr:\n{}",
        d.stderr()
    );
    let c = TcpStream::connect(("127.0.0.1", port));
    assert!(c.is_ok(), "connect: {c:?}");
}

#[test]
fn busy_port_is_a_clear_error_with_exit_1() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let cfg = write_config("busy.toml", &config(port));
    let mut d = Daemon::start(&["--config", cfg.to_str().unwrap()]);
    let st = d.wait_exit(Duration::from_secs(10)).expect("daemon should exit");
    let err = d.stderr();
    assert_eq!(st.code(), Some(1), "stderr:\n{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}: address already in use")), "stderr:\n{err}");
    drop(busy);
}

#[test]
fn bad_config_exits_2_with_file_line_and_field() {
    let port = free_port();
    let body = config(port).replace("size = \"64MiB\"", "size = \"64MiB\"\n  block_size = 1000");
    let line = body.lines().position(|l| l.contains("block_size")).unwrap() + 1;
    let cfg = write_config("bad.toml", &body);
    let mut d = Daemon::start(&["--config", cfg.to_str().unwrap()]);
    let st = d.wait_exit(Duration::from_secs(10)).expect("daemon should exit");
    let err = d.stderr();
    assert_eq!(st.code(), Some(2), "stderr:\n{err}");
    assert!(err.contains(&format!("{}:{line}:", cfg.display())), "stderr:\n{err}");
    assert!(err.contains("target.lun.block_size"), "stderr:\n{err}");

    // A syntax error and an unknown key too.
    let cfg = write_config("bad2.toml", "[global]\nshards = 2\nshardz = 3\n");
    let mut d = Daemon::start(&["--config", cfg.to_str().unwrap()]);
    let st = d.wait_exit(Duration::from_secs(10)).expect("daemon should exit");
    let err = d.stderr();
    assert_eq!(st.code(), Some(2), "stderr:\n{err}");
    assert!(err.contains(&format!("{}:3:", cfg.display())) && err.contains("global.shardz"), "stderr:\n{err}");

    // A missing file is a config error as well.
    let mut d = Daemon::start(&["--config", "/nonexistent/shardtgt.toml"]);
    assert_eq!(d.wait_exit(Duration::from_secs(10)).and_then(|s| s.code()), Some(2), "{}", d.stderr());
}

#[test]
fn sigterm_exits_0_promptly() {
    let port = free_port();
    let cfg = write_config("term.toml", &config(port));
    let mut d = Daemon::start(&["--config", cfg.to_str().unwrap(), "--shards", "2"]);
    assert!(d.wait_line("listening on", Duration::from_secs(10)), "stderr:\n{}", d.stderr());
    let t0 = Instant::now();
    d.signal(libc::SIGTERM);
    let st = d.wait_exit(Duration::from_secs(5)).expect("daemon should exit after SIGTERM");
    assert_eq!(st.code(), Some(0), "stderr:\n{}", d.stderr());
    assert!(t0.elapsed() < Duration::from_secs(3), "took {:?}", t0.elapsed());
}

#[test]
fn sigint_exits_0() {
    let port = free_port();
    let cfg = write_config("int.toml", &config(port));
    let mut d = Daemon::start(&["--config", cfg.to_str().unwrap()]);
    assert!(d.wait_line("listening on", Duration::from_secs(10)), "stderr:\n{}", d.stderr());
    d.signal(libc::SIGINT);
    let st = d.wait_exit(Duration::from_secs(5)).expect("daemon should exit after SIGINT");
    assert_eq!(st.code(), Some(0), "stderr:\n{}", d.stderr());
}

#[test]
fn check_reports_counts() {
    let port = free_port();
    let cfg = write_config("check.toml", &config(port));
    let out = Command::new(BIN).args(["--check", "--config", cfg.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "config OK: 1 targets, 1 LUNs, 1 portals");
    // Without --config and without /etc/shardtgt/shardtgt.toml: the embedded default.
    if !std::path::Path::new("/etc/shardtgt/shardtgt.toml").exists() {
        let out = Command::new(BIN).arg("--check").output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "config OK: 1 targets, 1 LUNs, 1 portals");
    }
}

#[test]
fn help_version_and_bad_args() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--config PATH"));
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("shardtgtd "));
    let out = Command::new(BIN).arg("--nope").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN).args(["--shards", "0", "--check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
