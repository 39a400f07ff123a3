//! `shardtgtd` serving `file` and `rdwr` LUNs to a real initiator
//! (libiscsi): INQUIRY and READ CAPACITY through `iscsi-inq` and
//! `iscsi-readcapacity16`, writes and reads through libiscsi's C API
//! (`tests/tools/libiscsi_rw.py`, ctypes; Debian's libiscsi-bin has no tool
//! that writes), then the bytes checked in the backing files on disk. Also a
//! read-only file LUN (writes fail with DATA PROTECT) and a LUN whose file is
//! truncated under load (MEDIUM ERROR on that LUN, the other LUNs unaffected).
//! Skipped, with a message, when libiscsi or python3 is missing.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_shardtgtd");
const IQN: &str = "iqn.2026-11.io.shardtgt:files";

fn tool() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/tools/libiscsi_rw.py")
}

fn have(cmd: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {cmd}")]).output().is_ok_and(|o| o.status.success())
}

fn prerequisites() -> bool {
    let ok = have("iscsi-inq") && have("iscsi-readcapacity16") && have("python3") && tool().exists();
    if !ok {
        eprintln!("skipped: needs iscsi-inq, iscsi-readcapacity16 (libiscsi-bin), python3 and {}", tool().display());
    }
    ok
}

struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Daemon {
    fn start(config: &Path) -> Daemon {
        let mut child = Command::new(BIN)
            .args(["--config", config.to_str().unwrap()])
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

    fn wait_line(&mut self, what: &str) -> bool {
        let end = Instant::now() + Duration::from_secs(15);
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

    fn log(&mut self) -> String {
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(100)) {
            self.seen.push(l);
        }
        self.seen.join("\n")
    }

    fn stop(mut self) -> String {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let end = Instant::now() + Duration::from_secs(15);
        while Instant::now() < end {
            if let Some(st) = self.child.try_wait().unwrap() {
                let log = self.log();
                assert!(st.success(), "daemon exit {st}; log:\n{log}");
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("daemon did not stop; log:\n{}", self.log());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) -> (bool, String) {
    let o = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    (o.status.success(), text)
}

/// libiscsi_rw.py's data for [offset, offset + len) of a LUN written with `seed`.
fn expected(seed: &str, offset: u64, len: usize) -> Vec<u8> {
    let dir = tool().parent().unwrap().display().to_string();
    let script = format!(
        "import sys; sys.path.insert(0, {dir:?}); import libiscsi_rw as t; sys.stdout.buffer.write(t.pattern({seed:?}, {offset}, {len}))"
    );
    let o = Command::new("python3").args(["-c", &script]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout.len(), len);
    o.stdout
}

/// WRITE(10) with FUA, then SYNCHRONIZE CACHE(10), through libiscsi (the
/// session code of libiscsi_rw.py); prints the two SCSI statuses.
const FUA_AND_SYNC: &str = r#"
import ctypes, sys
sys.path.insert(0, sys.argv[1])
import libiscsi_rw as t
lib = t.load()
f = lib.iscsi_synchronizecache10_sync
f.restype, f.argtypes = ctypes.c_void_p, [ctypes.c_void_p] + [ctypes.c_int] * 5
url, lba, blocks, seed = t.Url(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
s = t.Session(lib, url, "iqn.2026-11.test:fua")
data = t.pattern(seed, lba * 512, blocks * 512)
w = s._result(lib.iscsi_write10_sync(s.ctx, url.lun, lba, data, len(data), 512, 0, 0, 1, 0, 0), "WRITE FUA")
c = s._result(f(s.ctx, url.lun, 0, 0, 0, 0), "SYNCHRONIZE CACHE")
s.close()
print(f"write={w[0]} sync={c[0]}")
"#;

fn file_range(p: &Path, offset: u64, len: usize) -> Vec<u8> {
    let all = std::fs::read(p).unwrap();
    all[offset as usize..offset as usize + len].to_vec()
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn setup(name: &str) -> (Dir, Dir, u16) {
    let tmp = PathBuf::from(format!("/tmp/shardtgtd-{name}-{}", std::process::id()));
    let shm = PathBuf::from(format!("/dev/shm/shardtgtd-{name}-{}", std::process::id()));
    for d in [&tmp, &shm] {
        let _ = std::fs::remove_dir_all(d);
        std::fs::create_dir_all(d).unwrap();
    }
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    (Dir(tmp), Dir(shm), port)
}

#[test]
fn file_and_rdwr_luns_with_libiscsi() {
    if !prerequisites() {
        return;
    }
    let (tmp, shm, port) = setup("files");
    let lun0 = tmp.0.join("lun0.img"); // file, O_DIRECT on ext4 (bounce buffers)
    let lun1 = shm.0.join("lun1.img"); // rdwr, write cache off
    let lun2 = tmp.0.join("lun2.img"); // file, read-only, existing
    let lun3 = shm.0.join("lun3.img"); // file, 4096-byte blocks, size from the file
    let ro_data = expected("ro", 0, 1 << 20);
    std::fs::write(&lun2, &ro_data).unwrap();
    std::fs::write(&lun3, vec![0u8; 8 << 20]).unwrap();
    let cfg = tmp.0.join("shardtgt.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[global]
shards = 2
workers = 2
[[portal]]
address = "127.0.0.1:{port}"
[[target]]
name = "{IQN}"
  [[target.lun]]
  lun = 0
  backend = "file"
  path = "{}"
  size = "64MiB"
  direct = true
  [[target.lun]]
  lun = 1
  backend = "rdwr"
  path = "{}"
  size = "16MiB"
  write_cache = false
  [[target.lun]]
  lun = 2
  backend = "file"
  path = "{}"
  read_only = true
  [[target.lun]]
  lun = 3
  backend = "file"
  path = "{}"
  block_size = 4096
"#,
            lun0.display(),
            lun1.display(),
            lun2.display(),
            lun3.display()
        ),
    )
    .unwrap();
    let check = run(Command::new(BIN).args(["--check", "--config", cfg.to_str().unwrap()]));
    assert!(check.0 && check.1.contains("4 LUNs"), "{}", check.1);
    let mut d = Daemon::start(&cfg);
    assert!(d.wait_line("listening on"), "daemon did not start:\n{}", d.log());
    assert!(std::fs::metadata(&lun0).unwrap().len() == 64 << 20, "created with its size");
    let url = |lun: u32| format!("iscsi://127.0.0.1:{port}/{IQN}/{lun}");

    let (ok, inq) = run(Command::new("iscsi-inq").arg(url(0)));
    assert!(ok && inq.contains("Vendor:SHARDTGT") && inq.contains("Peripheral Device Type:DIRECT_ACCESS"), "{inq}");
    let (ok, cap) = run(Command::new("iscsi-readcapacity16").arg(url(0)));
    assert!(ok && cap.contains("Total size:67108864") && cap.contains("LOGICAL BLOCK LENGTH IN BYTES:512"), "{cap}");
    let (ok, cap) = run(Command::new("iscsi-readcapacity16").arg(url(3)));
    assert!(ok && cap.contains("Total size:8388608") && cap.contains("LOGICAL BLOCK LENGTH IN BYTES:4096"), "{cap}");

    let py = |args: &[&str]| run(Command::new("python3").arg(tool()).args(args));
    // LUN 0 and 1: write through libiscsi (large and small transfers), read
    // back through libiscsi, then compare with the file on disk.
    for (lun, path, bs) in [(0u32, &lun0, 512u64), (1, &lun1, 512), (3, &lun3, 4096)] {
        let seed = format!("seed{lun}");
        let (lba, blocks) = (100u64, 3000u64 * 512 / bs);
        let (ok, out) = py(&["write", &url(lun), &lba.to_string(), &blocks.to_string(), &bs.to_string(), &seed]);
        assert!(ok, "write LUN {lun}: {out}\n{}", d.log());
        let (ok, out) = py(&[
            "verify",
            &url(lun),
            &lba.to_string(),
            &blocks.to_string(),
            &bs.to_string(),
            &seed,
            "--chunk-blocks",
            "7",
        ]);
        assert!(ok, "verify LUN {lun}: {out}");
        let len = (blocks * bs) as usize;
        assert!(
            file_range(path, lba * bs, len) == expected(&seed, lba * bs, len),
            "LUN {lun}: the backing file holds what was written"
        );
    }
    // FUA write and SYNCHRONIZE CACHE on the file and rdwr LUNs.
    for (lun, path) in [(0u32, &lun0), (1, &lun1)] {
        let dir = tool().parent().unwrap().display().to_string();
        let (ok, out) = run(Command::new("python3").args(["-c", FUA_AND_SYNC, &dir, &url(lun), "9000", "64", "fua"]));
        assert!(ok && out.contains("write=0 sync=0"), "LUN {lun}: {out}");
        assert!(file_range(path, 9000 * 512, 64 * 512) == expected("fua", 9000 * 512, 64 * 512), "LUN {lun}");
    }
    // Two sessions at once on the file LUN.
    let (ok, out) = py(&["cross", &url(0), "5000", "256", "512", "cross"]);
    assert!(ok, "cross: {out}");

    // LUN 2: read-only: reads give the file, writes fail with DATA PROTECT.
    let (ok, out) = py(&["verify", &url(2), "0", "2048", "512", "ro"]);
    assert!(ok, "verify read-only LUN: {out}");
    let (ok, out) = py(&["write-fails", &url(2), "10", "512", "7"]);
    assert!(ok, "write to read-only LUN: {out}");
    assert!(std::fs::read(&lun2).unwrap() == ro_data, "read-only file untouched");

    let log = d.stop();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn truncated_file_fails_its_lun_only() {
    if !prerequisites() {
        return;
    }
    let (tmp, shm, port) = setup("trunc");
    let a = shm.0.join("a.img");
    let b = shm.0.join("b.img");
    let cfg = tmp.0.join("shardtgt.toml");
    std::fs::write(
        &cfg,
        format!(
            "[global]\nshards = 2\n[[portal]]\naddress = \"127.0.0.1:{port}\"\n[[target]]\nname = \"{IQN}\"\n  [[target.lun]]\n  lun = 0\n  backend = \"file\"\n  path = \"{}\"\n  size = \"8MiB\"\n  [[target.lun]]\n  lun = 1\n  backend = \"file\"\n  path = \"{}\"\n  size = \"8MiB\"\n",
            a.display(),
            b.display()
        ),
    )
    .unwrap();
    let mut d = Daemon::start(&cfg);
    assert!(d.wait_line("listening on"), "{}", d.log());
    let url = |lun: u32| format!("iscsi://127.0.0.1:{port}/{IQN}/{lun}");
    let py = |args: &[&str]| run(Command::new("python3").arg(tool()).args(args));
    for lun in [0, 1] {
        let (ok, out) = py(&["write", &url(lun), "0", "16384", "512", "t"]);
        assert!(ok, "{out}");
    }
    // LUN 0's file loses its second half behind the target's back.
    std::fs::OpenOptions::new().write(true).open(&a).unwrap().set_len(4 << 20).unwrap();
    let (ok, out) = py(&["verify", &url(0), "8192", "16", "512", "t"]);
    // MEDIUM ERROR, UNRECOVERED READ ERROR (03h/11h/00h).
    assert!(!ok && out.contains("sense key 0x3") && out.contains("0x1100"), "read past the truncated end: {out}");
    let (ok, out) = py(&["verify", &url(0), "0", "8192", "512", "t"]);
    assert!(ok, "the part still there reads fine: {out}");
    let (ok, out) = py(&["verify", &url(1), "0", "16384", "512", "t"]);
    assert!(ok, "the other LUN is unaffected: {out}");
    let log = d.stop();
    assert!(log.contains("end of file inside the LU"), "the failure is logged once:\n{log}");
    assert_eq!(log.matches("end of file inside the LU").count(), 1, "{log}");
}
