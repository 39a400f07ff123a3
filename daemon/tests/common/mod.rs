//! Helpers shared by the daemon's end-to-end tests: start and stop
//! `shardtgtd` on a config and admin socket, run `shardtgtadm`, scratch
//! directories. Each test file uses a part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const DAEMON: &str = env!("CARGO_BIN_EXE_shardtgtd");
pub const ADM: &str = env!("CARGO_BIN_EXE_shardtgtadm");

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct Daemon(pub Child);

impl Daemon {
    pub fn start(cfg: &Path, sock: &Path) -> Daemon {
        let child = Command::new(DAEMON)
            .args(["--config", cfg.to_str().unwrap(), "--admin-socket", sock.to_str().unwrap(), "--shards", "2"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(sock).is_err() {
            assert!(Instant::now() < end, "admin socket never appeared");
            std::thread::sleep(Duration::from_millis(50));
        }
        Daemon(child)
    }

    pub fn stop(mut self) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(15);
        while self.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < end, "daemon did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill9(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn adm(sock: &Path, args: &[&str]) -> Output {
    Command::new(ADM).arg("--socket").arg(sock).args(args).output().unwrap()
}

pub fn ok(sock: &Path, args: &[&str]) -> String {
    let o = adm(sock, args);
    assert!(o.status.success(), "shardtgtadm {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

pub fn fails(sock: &Path, args: &[&str], code: i32, want: &str) {
    let o = adm(sock, args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "shardtgtadm {args:?}: {err}");
    assert!(err.contains(want), "shardtgtadm {args:?}: want {want:?} in {err:?}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

pub fn dir(prefix: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shardtgt-{prefix}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
