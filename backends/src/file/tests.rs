//! `file` and `rdwr` backends on real files in /tmp (ext4 here) and
//! /dev/shm (tmpfs), on a loop block device, and on a 1 MiB tmpfs in a
//! private mount namespace (ENOSPC, and EIO through a loop device on it).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::aligned::AlignedBuf;
use crate::testutil::{Req, TestRing};
use crate::{create, BackendKind};

/// A path that is removed when dropped.
struct TempPath(PathBuf);

impl TempPath {
    fn new(dir: &str, name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        TempPath(Path::new(dir).join(format!("shardtgt-{}-{n}-{name}", std::process::id())))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).output();
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn spec(kind: BackendKind, p: &Path, size: Option<u64>) -> BackendSpec {
    BackendSpec::at_path(kind, p, size, 512)
}

fn rd(offset: u64, len: u32) -> IoRequest {
    IoRequest { op: BackendOp::Read, offset, len, fua: false }
}

fn wr(offset: u64, len: u32, fua: bool) -> IoRequest {
    IoRequest { op: BackendOp::Write, offset, len, fua }
}

const FLUSH: IoRequest = IoRequest { op: BackendOp::Flush, offset: 0, len: 0, fua: false };

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn file_bytes(p: &Path, offset: usize, len: usize) -> Vec<u8> {
    std::fs::read(p).unwrap()[offset..offset + len].to_vec()
}

/// Write, read back, FUA, flush through a shard handle on `kind`.
fn roundtrip(kind: BackendKind, dir: &str, direct: bool) {
    let p = TempPath::new(dir, "rt.img");
    let s = BackendSpec { direct, ..spec(kind, &p.0, Some(4 << 20)) };
    let b = create(&s).unwrap();
    assert_eq!(b.kind(), if kind == BackendKind::File { "file" } else { "rdwr" });
    assert_eq!(b.size_bytes(), 4 << 20);
    let mut h = b.open_shard().unwrap();
    let mut ring = TestRing::new();
    let data = pattern(1, 64 << 10);
    let mut w = data.clone();
    assert_eq!(ring.one(&mut *h, wr(8192, w.len() as u32, false), &mut w), BackendStatus::Ok);
    let mut r = vec![0u8; 64 << 10];
    assert_eq!(ring.one(&mut *h, rd(8192, r.len() as u32), &mut r), BackendStatus::Ok);
    assert_eq!(r, data);
    let mut f = pattern(2, 4096);
    assert_eq!(ring.one(&mut *h, wr(0, 4096, true), &mut f), BackendStatus::Ok);
    assert_eq!(ring.one(&mut *h, FLUSH, &mut []), BackendStatus::Ok);
    assert_eq!(file_bytes(&p.0, 8192, data.len()), data, "data reached the file");
    assert_eq!(file_bytes(&p.0, 0, 4096), pattern(2, 4096));
    // Out of bounds: an error, not a panic and not a short success.
    let mut x = vec![0u8; 1024];
    assert_eq!(ring.one(&mut *h, rd((4 << 20) - 512, 1024), &mut x), BackendStatus::Other(libc::EINVAL));
    // The synchronous path sees the same bytes.
    let mut sync = vec![0u8; 4096];
    b.read(0, &mut sync).unwrap();
    assert_eq!(sync, pattern(2, 4096));
    b.write(4096, &pattern(3, 512), true).unwrap();
    b.flush().unwrap();
    let mut back = vec![0u8; 512];
    assert_eq!(ring.one(&mut *h, rd(4096, 512), &mut back), BackendStatus::Ok);
    assert_eq!(back, pattern(3, 512));
}

#[test]
fn file_roundtrip_tmp_and_shm() {
    roundtrip(BackendKind::File, "/tmp", false);
    roundtrip(BackendKind::File, "/dev/shm", false);
}

#[test]
fn file_roundtrip_direct() {
    // tmpfs accepts O_DIRECT without alignment; ext4 needs 512-byte aligned
    // memory, so the (16-byte aligned) Vec buffers bounce.
    roundtrip(BackendKind::File, "/dev/shm", true);
    roundtrip(BackendKind::File, "/tmp", true);
}

#[test]
fn rdwr_roundtrip() {
    roundtrip(BackendKind::Rdwr, "/tmp", false);
    roundtrip(BackendKind::Rdwr, "/dev/shm", true);
    roundtrip(BackendKind::Rdwr, "/tmp", true);
}

#[test]
fn direct_is_detected_per_filesystem() {
    let shm = TempPath::new("/dev/shm", "d.img");
    let b = FileBackend::open(&BackendSpec { direct: true, ..spec(BackendKind::File, &shm.0, Some(1 << 20)) }).unwrap();
    assert!(b.direct(), "tmpfs takes O_DIRECT");
    assert_eq!(b.store.dio, Some(crate::store::DioAlign { mem: 1, offset: 1 }));
    let tmp = TempPath::new("/tmp", "d.img");
    let b = FileBackend::open(&BackendSpec { direct: true, ..spec(BackendKind::File, &tmp.0, Some(1 << 20)) }).unwrap();
    assert!(b.direct());
    let a = b.store.dio.unwrap();
    assert!(a.mem > 16, "ext4 needs aligned memory: {a:?}");
    let off = b.store.fd.as_raw_fd();
    // SAFETY: fcntl F_GETFL on our own descriptor.
    assert_eq!(unsafe { libc::fcntl(off, libc::F_GETFL) } & libc::O_DIRECT, 0, "control fd is buffered");
    let h = FileShard::new(b.store.clone()).unwrap();
    // SAFETY: as above.
    assert_ne!(unsafe { libc::fcntl(h.fd.as_raw_fd(), libc::F_GETFL) } & libc::O_DIRECT, 0, "shard fd is direct");
    let off = BackendSpec { direct: false, ..spec(BackendKind::File, &tmp.0, None) };
    assert!(!FileBackend::open(&off).unwrap().direct());
}

#[test]
fn direct_bounce_large_unaligned_and_aligned_requests() {
    let p = TempPath::new("/tmp", "bounce.img");
    let b = FileBackend::open(&BackendSpec { direct: true, ..spec(BackendKind::File, &p.0, Some(8 << 20)) }).unwrap();
    let mut h = FileShard::new(b.store.clone()).unwrap();
    let mut ring = TestRing::new();
    // 1 MiB + 512 at an odd address: four full bounce pieces and a tail.
    let len = (1 << 20) + 512;
    let mut raw = vec![0u8; len + 1];
    let data = pattern(7, len);
    raw[1..].copy_from_slice(&data);
    assert_eq!(ring.one(&mut h, wr(512, len as u32, true), &mut raw[1..]), BackendStatus::Ok);
    let mut back = vec![0u8; len + 3];
    assert_eq!(ring.one(&mut h, rd(512, len as u32), &mut back[3..]), BackendStatus::Ok);
    assert_eq!(&back[3..], &data[..]);
    assert_eq!(file_bytes(&p.0, 512, len), data);
    assert_eq!(h.bounce.as_ref().unwrap().in_use(), 0, "bounce buffers returned");
    // An aligned buffer goes straight to the device (no bounce buffer taken).
    let mut al = AlignedBuf::new(8192, 4096).unwrap();
    al.as_mut_slice().copy_from_slice(&pattern(9, 8192));
    let before = h.bounce.as_ref().unwrap().in_use();
    assert_eq!(ring.one(&mut h, wr(1 << 20, 8192, false), al.as_mut_slice()), BackendStatus::Ok);
    assert_eq!(h.bounce.as_ref().unwrap().in_use(), before);
    assert_eq!(file_bytes(&p.0, 1 << 20, 8192), pattern(9, 8192));
}

#[test]
fn direct_task_buffers_need_no_bounce_copy() {
    // The core's task buffers (PageBuf) at the sizes of the 4K random and
    // 128K sequential workloads, READ and WRITE: straight to the device.
    use shardtgt_core::buf::PageBuf;
    let p = TempPath::new("/tmp", "nobounce.img");
    let b = FileBackend::open(&BackendSpec { direct: true, ..spec(BackendKind::File, &p.0, Some(8 << 20)) }).unwrap();
    assert!(b.store.dio.is_some_and(|a| a.mem > 1), "this filesystem needs aligned O_DIRECT buffers");
    let mut h = FileShard::new(b.store.clone()).unwrap();
    let mut ring = TestRing::new();
    let mut wbuf = PageBuf::new();
    let mut rbuf = PageBuf::new();
    for (i, len) in [4096usize, 128 << 10, 4096, 128 << 10].into_iter().enumerate() {
        let off = (i as u64) << 20;
        wbuf.clear();
        wbuf.resize_for_overwrite(len);
        wbuf.copy_from_slice(&pattern(i as u8, len));
        assert_eq!(ring.one(&mut h, wr(off, len as u32, false), &mut wbuf), BackendStatus::Ok);
        rbuf.clear();
        rbuf.resize_for_overwrite(len);
        assert_eq!(ring.one(&mut h, rd(off, len as u32), &mut rbuf), BackendStatus::Ok);
        assert_eq!(&rbuf[..], &pattern(i as u8, len)[..]);
    }
    assert_eq!(b.bounce_copies(), 0, "no bounce copy");
    assert_eq!(h.bounce.as_ref().unwrap().in_use(), 0);
    // The counter counts: the same read into a buffer one byte off.
    let mut odd = vec![0u8; 4097];
    assert_eq!(ring.one(&mut h, rd(0, 4096), &mut odd[1..]), BackendStatus::Ok);
    assert_eq!(&odd[1..], &pattern(0, 4096)[..]);
    assert_eq!(b.bounce_copies(), 1);
}

#[test]
fn many_concurrent_requests_with_backpressure() {
    // More unaligned O_DIRECT writes than bounce buffers: some are refused
    // with Busy and retried; all land.
    let p = TempPath::new("/tmp", "many.img");
    let b = FileBackend::open(&BackendSpec { direct: true, ..spec(BackendKind::File, &p.0, Some(16 << 20)) }).unwrap();
    let mut h = FileShard::new(b.store.clone()).unwrap();
    let mut ring = TestRing::new();
    let n = BOUNCE_BUFFERS * 2;
    let mut bufs: Vec<Vec<u8>> = (0..n).map(|i| pattern(i as u8, 8192)).collect();
    let reqs = bufs
        .iter_mut()
        .enumerate()
        .map(|(i, buf)| Req { handle: 0, req: wr(i as u64 * 8192, 8192, false), buf: buf.as_mut_slice() })
        .collect();
    let st = ring.run(&mut [&mut h], reqs);
    assert!(st.iter().all(|s| *s == BackendStatus::Ok), "{st:?}");
    assert!(ring.busy > 0, "the bounce pool pushed back");
    let all = std::fs::read(&p.0).unwrap();
    for i in 0..n {
        assert_eq!(&all[i * 8192..(i + 1) * 8192], &pattern(i as u8, 8192)[..], "request {i}");
    }
}

#[test]
fn two_shards_share_one_file() {
    for kind in [BackendKind::File, BackendKind::Rdwr] {
        let p = TempPath::new("/dev/shm", "two.img");
        let b = create(&spec(kind, &p.0, Some(1 << 20))).unwrap();
        let mut h0 = b.open_shard().unwrap();
        let mut h1 = b.open_shard().unwrap();
        let mut ring = TestRing::new();
        let mut a = pattern(1, 4096);
        let mut c = pattern(2, 4096);
        let st = ring.run(
            &mut [&mut *h0, &mut *h1],
            vec![
                Req { handle: 0, req: wr(0, 4096, false), buf: &mut a },
                Req { handle: 1, req: wr(4096, 4096, true), buf: &mut c },
            ],
        );
        assert_eq!(st, vec![BackendStatus::Ok; 2]);
        let mut r = vec![0u8; 8192];
        let st = ring.run(&mut [&mut *h0, &mut *h1], vec![Req { handle: 1, req: rd(0, 8192), buf: &mut r }]);
        assert_eq!(st, vec![BackendStatus::Ok]);
        assert_eq!(&r[..4096], &pattern(1, 4096)[..]);
        assert_eq!(&r[4096..], &pattern(2, 4096)[..]);
    }
}

#[test]
fn sparse_creation_and_sizes() {
    let p = TempPath::new("/tmp", "sparse.img");
    let b = create(&spec(BackendKind::File, &p.0, Some(1 << 30))).unwrap();
    let m = std::fs::metadata(&p.0).unwrap();
    assert_eq!(m.len(), 1 << 30);
    assert!(m.blocks() < 64, "sparse: {} blocks allocated", m.blocks());
    assert_eq!(m.mode() & 0o777, 0o600);
    let mut buf = vec![1u8; 4096];
    b.read((1 << 30) - 4096, &mut buf).unwrap();
    assert!(buf.iter().all(|&x| x == 0), "holes read as zeros");
    drop(b);
    // Existing: no size → its size; a larger size extends it; a smaller one
    // exports the start.
    assert_eq!(create(&spec(BackendKind::File, &p.0, None)).unwrap().size_bytes(), 1 << 30);
    assert_eq!(create(&spec(BackendKind::File, &p.0, Some(1 << 20))).unwrap().size_bytes(), 1 << 20);
    assert_eq!(std::fs::metadata(&p.0).unwrap().len(), 1 << 30, "never shrunk");
    assert_eq!(create(&spec(BackendKind::Rdwr, &p.0, Some(2 << 30))).unwrap().size_bytes(), 2 << 30);
    assert_eq!(std::fs::metadata(&p.0).unwrap().len(), 2 << 30, "extended");
    // Not a multiple of the block size, no size given: rounded down.
    let q = TempPath::new("/tmp", "odd.img");
    std::fs::write(&q.0, vec![5u8; 1000]).unwrap();
    assert_eq!(create(&spec(BackendKind::File, &q.0, None)).unwrap().size_bytes(), 512);
}

#[test]
fn open_errors_are_clear() {
    let e = |s: &BackendSpec| create(s).unwrap_err().to_string();
    let dir = TempPath::new("/tmp", "dir");
    std::fs::create_dir(&dir.0).unwrap();
    assert!(e(&spec(BackendKind::File, &dir.0, None)).ends_with("is a directory"));
    assert!(
        e(&spec(BackendKind::File, Path::new("/dev/null"), None)).contains("neither a regular file nor a block device")
    );
    let missing = TempPath::new("/tmp", "missing.img");
    assert!(e(&spec(BackendKind::File, &missing.0, None)).contains("does not exist and no size"));
    let ro = BackendSpec { read_only: true, ..spec(BackendKind::File, &missing.0, Some(4096)) };
    assert!(e(&ro).contains("read-only LU never creates"));
    assert!(!missing.0.exists());
    let no_parent = Path::new("/tmp/shardtgt-no-such-dir/x.img");
    assert!(e(&spec(BackendKind::File, no_parent, Some(4096))).contains("cannot create"));
    let empty = TempPath::new("/tmp", "empty.img");
    std::fs::write(&empty.0, b"").unwrap();
    assert!(e(&spec(BackendKind::File, &empty.0, None)).contains("is empty"));
    let small = TempPath::new("/tmp", "small.img");
    std::fs::write(&small.0, vec![0u8; 4096]).unwrap();
    let ro = BackendSpec { read_only: true, ..spec(BackendKind::File, &small.0, Some(8192)) };
    assert!(e(&ro).contains("fewer than the configured size"));
}

#[test]
fn read_only_lu() {
    let p = TempPath::new("/dev/shm", "ro.img");
    std::fs::write(&p.0, pattern(4, 8192)).unwrap();
    for kind in [BackendKind::File, BackendKind::Rdwr] {
        let b = create(&BackendSpec { read_only: true, ..spec(kind, &p.0, None) }).unwrap();
        assert!(b.read_only());
        let mut h = b.open_shard().unwrap();
        let mut ring = TestRing::new();
        let mut w = vec![0u8; 512];
        assert_eq!(ring.one(&mut *h, wr(0, 512, false), &mut w), BackendStatus::ReadOnly);
        assert_eq!(ring.one(&mut *h, FLUSH, &mut []), BackendStatus::Ok);
        let mut r = vec![0u8; 8192];
        assert_eq!(ring.one(&mut *h, rd(0, 8192), &mut r), BackendStatus::Ok);
        assert_eq!(r, pattern(4, 8192));
        assert_eq!(b.write(0, &w, false), Err(BackendStatus::ReadOnly));
    }
    assert_eq!(std::fs::read(&p.0).unwrap(), pattern(4, 8192), "untouched");
}

#[test]
fn immutable_file_falls_back_to_read_only() {
    // EPERM on open for writing (even for root): served read-only, as tgt does.
    let p = TempPath::new("/tmp", "immutable.img");
    std::fs::write(&p.0, vec![0u8; 4096]).unwrap();
    let ok = Command::new("chattr").arg("+i").arg(&p.0).status().is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: chattr +i not possible here");
        return;
    }
    let b = create(&spec(BackendKind::File, &p.0, None)).unwrap();
    assert!(b.read_only(), "opened read-only");
    assert_eq!(b.write(0, &[0u8; 512], false), Err(BackendStatus::ReadOnly));
}

#[test]
fn truncated_file_read_is_a_medium_error() {
    for kind in [BackendKind::File, BackendKind::Rdwr] {
        let p = TempPath::new("/tmp", "trunc.img");
        let b = create(&spec(kind, &p.0, Some(1 << 20))).unwrap();
        let mut h = b.open_shard().unwrap();
        let mut ring = TestRing::new();
        let mut w = pattern(1, 8192);
        assert_eq!(ring.one(&mut *h, wr(0, 8192, false), &mut w), BackendStatus::Ok);
        // Someone truncates the file behind the target's back.
        std::fs::OpenOptions::new().write(true).open(&p.0).unwrap().set_len(4096).unwrap();
        let mut r = vec![0u8; 8192];
        // The first 4 KiB come back, then end of file: a medium error.
        assert_eq!(ring.one(&mut *h, rd(0, 8192), &mut r), BackendStatus::MediumError);
        assert_eq!(&r[..4096], &pattern(1, 4096)[..]);
        assert_eq!(ring.one(&mut *h, rd(1 << 19, 512), &mut r[..512]), BackendStatus::MediumError);
        assert_eq!(b.read(8192, &mut r[..512]), Err(BackendStatus::MediumError));
        // A write past the new end grows the file again (sparse) and succeeds.
        assert_eq!(ring.one(&mut *h, wr(1 << 19, 512, true), &mut w[..512]), BackendStatus::Ok);
        assert_eq!(ring.one(&mut *h, rd(1 << 19, 512), &mut r[..512]), BackendStatus::Ok);
    }
}

#[test]
fn unlinked_file_keeps_serving_its_inode() {
    let p = TempPath::new("/dev/shm", "gone.img");
    let b = create(&spec(BackendKind::File, &p.0, Some(1 << 20))).unwrap();
    let mut h = b.open_shard().unwrap();
    std::fs::remove_file(&p.0).unwrap();
    let mut ring = TestRing::new();
    let mut w = pattern(3, 4096);
    assert_eq!(ring.one(&mut *h, wr(0, 4096, true), &mut w), BackendStatus::Ok);
    // A shard opened after the unlink still reaches the same inode.
    let mut h2 = b.open_shard().unwrap();
    let mut r = vec![0u8; 4096];
    assert_eq!(ring.one(&mut *h2, rd(0, 4096), &mut r), BackendStatus::Ok);
    assert_eq!(r, pattern(3, 4096));
}

/// A loop device over a file, detached when dropped.
struct Loop(String);

impl Loop {
    fn new(file: &Path, direct: bool) -> Option<Loop> {
        let mut c = Command::new("losetup");
        if direct {
            c.arg("--direct-io=on");
        }
        let o = c.args(["-f", "--show"]).arg(file).output().ok()?;
        if !o.status.success() {
            eprintln!("losetup: {}", String::from_utf8_lossy(&o.stderr));
            return None;
        }
        Some(Loop(String::from_utf8_lossy(&o.stdout).trim().to_string()))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

#[test]
fn block_device() {
    let img = TempPath::new("/tmp", "blk.img");
    std::fs::File::create(&img.0).unwrap().set_len(8 << 20).unwrap();
    let Some(dev) = Loop::new(&img.0, false) else {
        eprintln!("skipped: no loop device");
        return;
    };
    let dp = Path::new(&dev.0);
    for (kind, direct) in [(BackendKind::File, false), (BackendKind::File, true), (BackendKind::Rdwr, true)] {
        let b = create(&BackendSpec { direct, ..spec(kind, dp, None) }).unwrap();
        assert_eq!(b.size_bytes(), 8 << 20, "BLKGETSIZE64");
        let mut h = b.open_shard().unwrap();
        let mut ring = TestRing::new();
        let mut w = pattern(direct as u8 + 5, 65536);
        assert_eq!(ring.one(&mut *h, wr(1 << 20, 65536, true), &mut w), BackendStatus::Ok);
        assert_eq!(ring.one(&mut *h, FLUSH, &mut []), BackendStatus::Ok);
        let mut r = vec![0u8; 65536];
        assert_eq!(ring.one(&mut *h, rd(1 << 20, 65536), &mut r), BackendStatus::Ok);
        assert_eq!(r, w);
    }
    assert_eq!(create(&spec(BackendKind::File, dp, Some(4 << 20))).unwrap().size_bytes(), 4 << 20);
    let e = create(&spec(BackendKind::File, dp, Some(16 << 20))).unwrap_err().to_string();
    assert!(e.contains("larger than the block device"), "{e}");
    drop(dev);
    assert_eq!(file_bytes(&img.0, 1 << 20, 65536), pattern(6, 65536), "data reached the loop's file");
}

/// Runs `body` inside a private mount namespace with a 1 MiB tmpfs at the
/// path it gets, by re-running this test binary under `unshare -m`.
fn in_tiny_tmpfs(test_name: &str, body: impl FnOnce(&Path)) {
    if let Ok(dir) = std::env::var("SHARDTGT_TINY_TMPFS") {
        body(Path::new(&dir));
        return;
    }
    let dir = TempPath::new("/tmp", "tiny");
    std::fs::create_dir(&dir.0).unwrap();
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        "mount -t tmpfs -o size=1M shardtgt-tiny '{d}' && SHARDTGT_TINY_TMPFS='{d}' exec '{exe}' --exact {test_name} --nocapture --test-threads=1",
        d = dir.0.display(),
        exe = exe.display()
    );
    let out = Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &script]).output();
    match out {
        Ok(o) if o.status.success() => {
            let so = String::from_utf8_lossy(&o.stdout);
            assert!(so.contains("1 passed"), "child did not run the test:\n{so}");
            if so.contains("skipped") {
                eprintln!("{so}");
            }
        }
        Ok(o) if String::from_utf8_lossy(&o.stderr).contains("unshare failed") || o.status.code() == Some(32) => {
            eprintln!("skipped: no private mount namespace ({})", String::from_utf8_lossy(&o.stderr));
        }
        Ok(o) => panic!(
            "child failed: {}\n{}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => eprintln!("skipped: unshare: {e}"),
    }
}

#[test]
fn enospc_is_no_space() {
    in_tiny_tmpfs("file::tests::enospc_is_no_space", |dir| {
        for kind in [BackendKind::File, BackendKind::Rdwr] {
            let p = dir.join(format!("full-{kind:?}.img"));
            // 8 MiB LU on a 1 MiB filesystem: creation is fine (sparse).
            let b = create(&spec(kind, &p, Some(8 << 20))).unwrap();
            let mut h = b.open_shard().unwrap();
            let mut ring = TestRing::new();
            let mut w = pattern(1, 256 << 10);
            let mut last = BackendStatus::Ok;
            for i in 0..8u64 {
                last = ring.one(&mut *h, wr(i * (256 << 10), 256 << 10, false), &mut w);
                if last != BackendStatus::Ok {
                    break;
                }
            }
            assert_eq!(last, BackendStatus::NoSpace, "{kind:?}");
            assert_eq!(b.write(6 << 20, &w, false), Err(BackendStatus::NoSpace));
            drop(h);
            drop(b);
            std::fs::remove_file(&p).unwrap();
        }
    });
}

#[test]
fn eio_is_medium_error() {
    // ext4 on a loop device whose capacity then shrinks under the file: the
    // file's blocks lie beyond the device's end, and O_DIRECT reads and
    // writes of them fail with EIO (bio_check_eod).
    in_tiny_tmpfs("file::tests::eio_is_medium_error", |dir| {
        let img = TempPath::new("/tmp", "ext4.img");
        std::fs::File::create(&img.0).unwrap().set_len(32 << 20).unwrap();
        let sh = |cmd: &str| Command::new("sh").args(["-c", cmd]).status().is_ok_and(|s| s.success());
        if !sh(&format!("mkfs.ext4 -q -F '{}'", img.0.display())) {
            eprintln!("skipped: no mkfs.ext4");
            return;
        }
        let Some(dev) = Loop::new(&img.0, false) else {
            eprintln!("skipped: no loop device");
            return;
        };
        let mnt = dir.join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        assert!(sh(&format!("mount '{}' '{}'", dev.0, mnt.display())));
        let p = mnt.join("lu.img");
        for kind in [BackendKind::File, BackendKind::Rdwr] {
            let b = create(&BackendSpec { direct: true, ..spec(kind, &p, Some(8 << 20)) }).unwrap();
            let mut h = b.open_shard().unwrap();
            let mut ring = TestRing::new();
            let mut w = pattern(1, 1 << 20);
            if kind == BackendKind::File {
                for i in 0..8u64 {
                    assert_eq!(ring.one(&mut *h, wr(i << 20, 1 << 20, true), &mut w), BackendStatus::Ok);
                }
                // Shrink the device to 1 MiB: the data blocks are now past its end.
                assert!(sh(&format!("truncate -s 1M '{}' && losetup -c '{}'", img.0.display(), dev.0)));
            }
            let mut r = vec![0u8; 1 << 20];
            assert_eq!(ring.one(&mut *h, rd(7 << 20, 1 << 20), &mut r), BackendStatus::MediumError, "{kind:?}");
            assert_eq!(ring.one(&mut *h, wr(7 << 20, 1 << 20, false), &mut w), BackendStatus::MediumError, "{kind:?}");
            drop(h);
            drop(b);
        }
        assert!(sh(&format!("umount '{}'", mnt.display())));
    });
}

fn dealloc(offset: u64, len: u32) -> IoRequest {
    IoRequest { op: BackendOp::Deallocate, offset, len, fua: false }
}

/// Provisioning runs from `offset`, through a shard handle.
fn runs(ring: &mut TestRing, h: &mut dyn ShardBackend, offset: u64) -> Vec<(u64, u64)> {
    let mut buf = vec![0xeeu8; 64 * 16];
    let req = IoRequest { op: BackendOp::MapStatus, offset, len: buf.len() as u32, fua: false };
    assert_eq!(ring.one(h, req, &mut buf), BackendStatus::Ok);
    shardtgt_core::scsi::lba_status::records(&buf).collect()
}

fn st_blocks(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().blocks()
}

const M: u64 = shardtgt_core::scsi::lba_status::MAPPED;
const D: u64 = shardtgt_core::scsi::lba_status::DEALLOCATED;

/// Deallocation punches a hole (the file's blocks go down, the range reads
/// zeros), SEEK_DATA/SEEK_HOLE report it, and partial filesystem blocks at
/// unaligned edges are zeroed, not left stale.
fn punch_and_status(kind: BackendKind, dir: &str, direct: bool) {
    let p = TempPath::new(dir, "thin.img");
    let b = create(&BackendSpec { direct, ..spec(kind, &p.0, Some(4 << 20)) }).unwrap();
    assert_eq!(b.provisioning(), crate::Provisioning { thin: true, deallocate: true }, "{dir}");
    let mut h = b.open_shard().unwrap();
    let mut ring = TestRing::new();
    assert_eq!(runs(&mut ring, &mut *h, 0), vec![(4 << 20, D)], "a new sparse file is all hole");
    let mut w = pattern(3, 1 << 20);
    assert_eq!(ring.one(&mut *h, wr(0, 1 << 20, false), &mut w), BackendStatus::Ok);
    assert_eq!(ring.one(&mut *h, FLUSH, &mut []), BackendStatus::Ok);
    assert_eq!(runs(&mut ring, &mut *h, 0), vec![(1 << 20, M), (3 << 20, D)]);
    assert_eq!(runs(&mut ring, &mut *h, 512 << 10), vec![(512 << 10, M), (3 << 20, D)], "from an offset");
    let before = st_blocks(&p.0);
    // A whole aligned range: the blocks go back to the filesystem.
    assert_eq!(ring.one(&mut *h, dealloc(256 << 10, 512 << 10), &mut []), BackendStatus::Ok);
    let after = st_blocks(&p.0);
    assert!(before - after >= (512 << 10) / 512, "st_blocks {before} -> {after}");
    assert_eq!(runs(&mut ring, &mut *h, 0), vec![(256 << 10, M), (512 << 10, D), (256 << 10, M), (3 << 20, D)]);
    let mut r = vec![0xffu8; 1 << 20];
    assert_eq!(ring.one(&mut *h, rd(0, 1 << 20), &mut r), BackendStatus::Ok);
    assert_eq!(&r[..256 << 10], &w[..256 << 10]);
    assert!(r[256 << 10..768 << 10].iter().all(|&x| x == 0));
    assert_eq!(&r[768 << 10..], &w[768 << 10..]);
    // Unaligned to the 4 KiB filesystem blocks at both ends: the partial
    // blocks are zeroed exactly over the range, the whole one freed.
    assert_eq!(ring.one(&mut *h, dealloc(8192 + 512, 8192), &mut []), BackendStatus::Ok);
    assert_eq!(ring.one(&mut *h, rd(0, 64 << 10), &mut r[..64 << 10]), BackendStatus::Ok);
    assert_eq!(&r[..8704], &w[..8704]);
    assert!(r[8704..16896].iter().all(|&x| x == 0), "edges zeroed");
    assert_eq!(&r[16896..64 << 10], &w[16896..64 << 10]);
    assert_eq!(file_bytes(&p.0, 8704, 8192), vec![0; 8192], "zeros on the file too");
    let rs = runs(&mut ring, &mut *h, 0);
    assert_eq!(rs[0], (12288, M), "data up to the freed whole block");
    assert_eq!(rs[1], (4096, D));
    // Errors: past the end, and on a read-only LU.
    assert_eq!(ring.one(&mut *h, dealloc(4 << 20, 512), &mut []), BackendStatus::Other(libc::EINVAL));
    drop(h);
    drop(b);
    let ro = create(&BackendSpec { read_only: true, ..spec(kind, &p.0, None) }).unwrap();
    assert!(!ro.provisioning().thin, "a read-only LU offers no UNMAP");
    let mut h = ro.open_shard().unwrap();
    assert_eq!(ring.one(&mut *h, dealloc(0, 512), &mut []), BackendStatus::ReadOnly);
}

#[test]
fn punch_and_status_file_tmp_and_shm() {
    punch_and_status(BackendKind::File, "/tmp", false);
    punch_and_status(BackendKind::File, "/dev/shm", false);
    punch_and_status(BackendKind::File, "/tmp", true);
}

#[test]
fn punch_and_status_rdwr() {
    punch_and_status(BackendKind::Rdwr, "/tmp", true);
    punch_and_status(BackendKind::Rdwr, "/dev/shm", false);
}

/// Online resize of a file LU: growing extends the file and the shard
/// handles accept I/O past the old end at once; shrinking is refused while
/// data lies past the new end, allowed (and the file cut) otherwise.
#[test]
fn file_resize_grows_and_shrinks_only_over_holes() {
    let p = TempPath::new("/tmp", "resize.img");
    let b = create(&spec(BackendKind::File, &p.0, Some(1 << 20))).unwrap();
    let mut h = b.open_shard().unwrap();
    let mut ring = TestRing::new();
    let mut w = pattern(7, 4096);
    assert_eq!(ring.one(&mut *h, wr(2 << 20, 4096, false), &mut w), BackendStatus::Other(libc::EINVAL));
    b.resize(4 << 20).unwrap();
    assert_eq!((b.size_bytes(), std::fs::metadata(&p.0).unwrap().len()), (4 << 20, 4 << 20));
    assert_eq!(ring.one(&mut *h, wr(2 << 20, 4096, false), &mut w), BackendStatus::Ok, "the same handle");
    let e = b.resize(1 << 20).unwrap_err().to_string();
    assert!(e.contains("data in use at byte 2097152") && e.contains("refused"), "{e}");
    assert_eq!(b.size_bytes(), 4 << 20, "unchanged");
    assert!(b.resize(1000).unwrap_err().to_string().contains("multiple of the block size"));
    // Past the data: allowed, the file follows.
    b.resize(3 << 20).unwrap();
    assert_eq!((b.size_bytes(), std::fs::metadata(&p.0).unwrap().len()), (3 << 20, 3 << 20));
    assert_eq!(ring.one(&mut *h, rd((3 << 20) - 512, 1024), &mut [0; 1024]), BackendStatus::Other(libc::EINVAL));
    // Deallocate the data, then the shrink goes through.
    assert_eq!(ring.one(&mut *h, dealloc(2 << 20, 4096), &mut []), BackendStatus::Ok);
    b.resize(1 << 20).unwrap();
    assert_eq!(std::fs::metadata(&p.0).unwrap().len(), 1 << 20);
    // The same through `rdwr`, and read-only refuses.
    let r = create(&spec(BackendKind::Rdwr, &p.0, None)).unwrap();
    r.resize(2 << 20).unwrap();
    assert_eq!(std::fs::metadata(&p.0).unwrap().len(), 2 << 20);
    let ro = create(&BackendSpec { read_only: true, ..spec(BackendKind::File, &p.0, None) }).unwrap();
    assert!(ro.resize(4 << 20).unwrap_err().to_string().contains("read-only"));
}

/// A block device: deallocation reads back zeros (unmap with zeroes, or
/// zero range), status is all mapped, it grows only up to its own size and
/// never shrinks.
#[test]
fn block_device_deallocate_and_resize() {
    let img = TempPath::new("/tmp", "blkthin.img");
    std::fs::File::create(&img.0).unwrap().set_len(8 << 20).unwrap();
    let Some(dev) = Loop::new(&img.0, false) else {
        eprintln!("skipped: no loop device");
        return;
    };
    let dp = Path::new(&dev.0);
    let b = create(&spec(BackendKind::File, dp, Some(4 << 20))).unwrap();
    assert_eq!(b.provisioning(), crate::Provisioning { thin: true, deallocate: true });
    let mut h = b.open_shard().unwrap();
    let mut ring = TestRing::new();
    let mut w = pattern(9, 65536);
    assert_eq!(ring.one(&mut *h, wr(1 << 20, 65536, true), &mut w), BackendStatus::Ok);
    assert_eq!(ring.one(&mut *h, dealloc((1 << 20) + 4096, 8192), &mut []), BackendStatus::Ok);
    let mut r = vec![0xffu8; 65536];
    assert_eq!(ring.one(&mut *h, rd(1 << 20, 65536), &mut r), BackendStatus::Ok);
    assert_eq!(&r[..4096], &w[..4096]);
    assert!(r[4096..12288].iter().all(|&x| x == 0), "zeros after deallocation");
    assert_eq!(&r[12288..], &w[12288..]);
    assert_eq!(runs(&mut ring, &mut *h, 0), vec![(4 << 20, M)], "a device does not say: mapped");
    b.resize(8 << 20).unwrap();
    assert_eq!(ring.one(&mut *h, rd(6 << 20, 512), &mut r[..512]), BackendStatus::Ok);
    let e = b.resize(16 << 20).unwrap_err().to_string();
    assert!(e.contains("fewer than"), "{e}");
    let e = b.resize(4 << 20).unwrap_err().to_string();
    assert!(e.contains("shrinking a block device"), "{e}");
}
