//! `shardtgt-bench compare`: Linux tgt (Debian's `tgtd`) and `shardtgtd`
//! side by side on one machine, with equivalent LUNs, the same pinning and
//! the same client, interleaved point by point, repeated, reported as
//! shardtgt/tgt ratios with a chart.
//!
//! Layout on a 2-CPU machine: both targets run on CPU 0 (`taskset -c 0`),
//! every client (our `run` and libiscsi's `iscsi-perf`) on CPU 1. Only one
//! target is under load at a time. LUNs: `null` (tgt `--bstype null`, 1 TiB;
//! shardtgt `backend = "null"`, 1 TiB) and `ram` (tgt `rdwr` on a file in
//! /dev/shm written out in full first; shardtgt `backend = "ram"`), and on
//! request file LUNs on a real filesystem (`--file-dir`, default /var/tmp;
//! each target its own fully written image of `--file-size`): `file` is
//! tgt `rdwr` against shardtgt `file` (io_uring on the shard), `rdwr` is tgt
//! `rdwr` against shardtgt `rdwr` (worker threads), both buffered; and
//! `file-direct` is tgt `rdwr` with `--bsoflags direct` against shardtgt
//! `file` with `direct = true`. Each target keeps its own default
//! negotiation limits (what users get).
//! The RAM LUN runs the corners of the 4K grid (QD1 x1, QD32 x4) and the
//! 128K points, to keep a full compare near ten minutes.
//!
//! It never leaves a target running: children are stopped on every path
//! ([`Proc`]'s `Drop`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::args::{parse_secs, parse_size, Args};
use crate::machine::Machine;
use crate::stats::{ratio, MinMedMax, RunReport};
use crate::workload::fmt_bs;
use crate::{berr, chart, Result};

const HELP: &str = "\
shardtgt-bench compare: tgt and shardtgt side by side, pinned apart

OPTIONS:
  --quick               1-minute smoke: fewer points, --time 2 --ramp 0.5 --repeat 1
  --time SECS           measured seconds per point                    [5]
  --ramp SECS           warm-up per point                             [1]
  --repeat N            runs per point and target (min/median/max)    [3]
  --backends LIST       null,ram,file,rdwr,file-direct                [null,ram]
  --sessions16          add 16-session points
  --target-cpus LIST    CPUs for both targets (taskset -c)            [0]
  --client-cpus LIST    CPUs for the clients                          [1]
  --tgt-port N          tgt's portal port                             [3261]
  --port N              shardtgt's portal port                        [3262]
  --ram-size SIZE       size of the RAM LUNs                          [1GiB]
  --file-dir DIR        where file LUN images go (a real filesystem)  [/var/tmp]
  --file-size SIZE      size of the file LUNs                         [1GiB]
  --daemon PATH         shardtgtd binary (default: next to this program, then PATH)
  --no-iscsi-perf       skip libiscsi's iscsi-perf
  --out DIR             where results go                              [bench/results]
  --name NAME           file name stem                                [compare or compare-quick]
";

/// One point of the matrix.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Point {
    /// `null`, `ram`, `file`, `rdwr` or `file-direct`.
    pub backend: String,
    /// fio pattern name.
    pub rw: String,
    /// Bytes per I/O.
    pub bs: u32,
    /// Queue depth per session.
    pub qd: u32,
    /// Sessions.
    pub sessions: u32,
}

impl Point {
    /// Short label, e.g. `null randread 4k qd32 x4`.
    pub fn label(&self) -> String {
        format!("{} {} {} qd{} x{}", self.backend, self.rw, fmt_bs(self.bs), self.qd, self.sessions)
    }

    fn large(&self) -> bool {
        self.bs >= 65536
    }
}

/// The matrix: 4K random read/write at QD1/QD32 × 1/4 (and 16) sessions,
/// 128K sequential read and write; `quick` keeps the points the goals use.
pub fn matrix(backends: &[String], quick: bool, sessions16: bool) -> Vec<Point> {
    let mut pts = Vec::new();
    let p =
        |b: &str, rw: &str, bs: u32, qd: u32, s: u32| Point { backend: b.into(), rw: rw.into(), bs, qd, sessions: s };
    for b in backends {
        if quick {
            pts.push(p(b, "randread", 4096, 1, 1));
            pts.push(p(b, "randread", 4096, 32, 4));
            pts.push(p(b, "randwrite", 4096, 32, 4));
            pts.push(p(b, "read", 131072, 8, 1));
            if b == "null" {
                pts.push(p(b, "write", 131072, 8, 1));
            }
            continue;
        }
        let mut sess = vec![1, 4];
        if sessions16 {
            sess.push(16);
        }
        for rw in ["randread", "randwrite"] {
            for qd in [1, 32] {
                for &s in &sess {
                    // The RAM LUN repeats only the corners of the 4K grid (time).
                    if b != "null" && (qd, s) != (1, 1) && (qd, s) != (32, 4) {
                        continue;
                    }
                    pts.push(p(b, rw, 4096, qd, s));
                }
            }
        }
        pts.push(p(b, "read", 131072, 8, 1));
        pts.push(p(b, "write", 131072, 8, 1));
    }
    pts
}

/// Both targets' repeated results at one point.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PointResult {
    /// Where.
    pub point: Point,
    /// tgt's runs.
    pub tgt: Vec<RunReport>,
    /// shardtgt's runs.
    pub shardtgt: Vec<RunReport>,
}

/// Spread of one metric over a target's runs.
fn spread(runs: &[RunReport], f: impl Fn(&RunReport) -> Option<f64>) -> Option<MinMedMax> {
    let v: Vec<f64> = runs.iter().filter_map(f).collect();
    MinMedMax::of(&v)
}

impl PointResult {
    /// Throughput (IOPS for small blocks, MB/s for large), min/median/max.
    pub fn thr(&self, shard: bool) -> Option<MinMedMax> {
        let large = self.point.large();
        spread(if shard { &self.shardtgt } else { &self.tgt }, |r| Some(if large { r.mb_per_s } else { r.iops }))
    }

    /// Median p50 latency, us.
    pub fn p50(&self, shard: bool) -> Option<f64> {
        spread(if shard { &self.shardtgt } else { &self.tgt }, |r| Some(r.lat.p50_us)).map(|m| m.median)
    }

    /// Median p99 latency, us.
    pub fn p99(&self, shard: bool) -> Option<f64> {
        spread(if shard { &self.shardtgt } else { &self.tgt }, |r| Some(r.lat.p99_us)).map(|m| m.median)
    }

    /// Median target CPU per I/O, us.
    pub fn cpu(&self, shard: bool) -> Option<f64> {
        spread(if shard { &self.shardtgt } else { &self.tgt }, |r| r.target_cpu_us_per_io).map(|m| m.median)
    }

    /// Median client CPU use in cores (to tell whether the client limited the point).
    pub fn client_cores(&self, shard: bool) -> Option<f64> {
        spread(if shard { &self.shardtgt } else { &self.tgt }, |r| r.client_cpu_cores).map(|m| m.median)
    }

    /// Errors over all runs of both targets.
    pub fn errors(&self) -> u64 {
        self.tgt.iter().chain(&self.shardtgt).map(|r| r.errors + r.verify_errors + u64::from(r.failed_sessions)).sum()
    }

    /// shardtgt/tgt median throughput.
    pub fn thr_ratio(&self) -> Option<f64> {
        ratio(self.thr(true).map(|m| m.median), self.thr(false).map(|m| m.median))
    }
}

/// iscsi-perf's result against one target.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OutsideResult {
    /// What ran.
    pub command: String,
    /// tgt's average IOPS.
    pub tgt_iops: Option<f64>,
    /// shardtgt's average IOPS.
    pub shardtgt_iops: Option<f64>,
}

/// Everything a compare produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CompareResult {
    /// When (UTC, RFC 3339).
    pub date: String,
    /// The command line.
    pub command: String,
    /// The machine.
    pub machine: Machine,
    /// tgtd's version string.
    pub tgt_version: String,
    /// The bench's source revision (`git describe --always --dirty`), when known.
    pub shardtgt_rev: String,
    /// The shardtgtd binary that ran.
    #[serde(default)]
    pub daemon: String,
    /// CPUs the targets ran on.
    pub target_cpus: String,
    /// CPUs the clients ran on.
    pub client_cpus: String,
    /// Seconds per run, ramp, repeats.
    pub time_s: f64,
    /// Ramp seconds.
    pub ramp_s: f64,
    /// Repeats.
    pub repeat: u32,
    /// Loopback TCP stream MB/s (median of repeats), the large-block ceiling.
    pub tcp_mb_s: Option<MinMedMax>,
    /// Loopback TCP ping-pong (48-byte request, 4144-byte answer) median
    /// round trip in us: the QD1 latency floor.
    #[serde(default)]
    pub tcp_pingpong_p50_us: Option<f64>,
    /// The matrix.
    pub points: Vec<PointResult>,
    /// libiscsi's iscsi-perf, if run.
    pub iscsi_perf: Vec<OutsideResult>,
}

/// A child process stopped on drop: SIGTERM, a grace period, then SIGKILL.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    name: String,
    /// A command that asks the process to exit, tried before SIGTERM.
    stop_cmd: Option<Vec<String>>,
}

impl Proc {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fail if it exited.
    pub fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            Some(st) => Err(berr!("{} exited: {st}", self.name)),
            None => Ok(()),
        }
    }

    /// Stop it (idempotent).
    pub fn stop(&mut self) {
        let exited = |c: &mut Child, within: Duration| {
            let t0 = Instant::now();
            loop {
                if !matches!(c.try_wait(), Ok(None)) {
                    return true;
                }
                if t0.elapsed() >= within {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        if exited(&mut self.child, Duration::ZERO) {
            return;
        }
        if let Some(cmd) = self.stop_cmd.take() {
            let _ = Command::new(&cmd[0]).args(&cmd[1..]).stdout(Stdio::null()).stderr(Stdio::null()).status();
            if exited(&mut self.child, Duration::from_secs(3)) {
                return;
            }
        }
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        if !exited(&mut self.child, Duration::from_secs(8)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Find a program: `PATH`, then /usr/sbin and /sbin.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn spawn(name: &str, cpus: &str, prog: &Path, args: &[String], log: &Path) -> Result<Proc> {
    let out = std::fs::File::create(log)?;
    let err = out.try_clone()?;
    let child = Command::new("taskset")
        .arg("-c")
        .arg(cpus)
        .arg(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| berr!("starting {name}: {e}"))?;
    Ok(Proc { child, name: name.into(), stop_cmd: None })
}

fn port_free(port: u16) -> Result<()> {
    match TcpStream::connect(("127.0.0.1", port)) {
        Ok(_) => Err(berr!("port {port} is already in use on 127.0.0.1; pick another with --tgt-port/--port")),
        Err(_) => Ok(()),
    }
}

fn wait_port(port: u16, p: &mut Proc) -> Result<()> {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        p.check_alive()?;
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(berr!("{} did not open port {port}", p.name))
}

fn tgtadm(ctl: u16, args: &[&str]) -> Result<()> {
    let out = Command::new(which("tgtadm").ok_or_else(|| berr!("tgtadm not found"))?)
        .arg("-C")
        .arg(ctl.to_string())
        .arg("--lld")
        .arg("iscsi")
        .args(args)
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(berr!("tgtadm {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// IQN of a comparison target.
fn iqn(backend: &str) -> String {
    format!("iqn.2026-11.io.shardtgt:cmp-{backend}")
}

/// Start tgtd with one target per backend (LUN 1; tgt's LUN 0 is its controller).
fn start_tgt(cfg: &Cfg, dir: &Path) -> Result<Proc> {
    let tgtd = which("tgtd").ok_or_else(|| berr!("tgtd not found (apt-get install tgt)"))?;
    port_free(cfg.tgt_port)?;
    let args = vec![
        "-f".into(),
        "-C".into(),
        cfg.ctl.to_string(),
        "--iscsi".into(),
        format!("portal=127.0.0.1:{}", cfg.tgt_port),
    ];
    let mut p = spawn("tgtd", &cfg.target_cpus, &tgtd, &args, &dir.join("tgtd.log"))?;
    // tgtd ignores SIGTERM while it has targets: stop it through its management socket.
    p.stop_cmd = Some(vec![
        which("tgtadm").unwrap_or_default().to_string_lossy().to_string(),
        "-C".into(),
        cfg.ctl.to_string(),
        "--op".into(),
        "delete".into(),
        "--mode".into(),
        "system".into(),
        "--force".into(),
    ]);
    wait_port(cfg.tgt_port, &mut p)?;
    // The management socket comes up after the portal: wait for it.
    let t0 = Instant::now();
    while let Err(e) = tgtadm(cfg.ctl, &["--op", "show", "--mode", "target"]) {
        p.check_alive()?;
        if t0.elapsed() > Duration::from_secs(10) {
            return Err(e);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for (i, b) in cfg.backends.iter().enumerate() {
        let tid = (i + 1).to_string();
        tgtadm(cfg.ctl, &["--op", "new", "--mode", "target", "--tid", &tid, "-T", &iqn(b)])?;
        // null: tgt's null store; the others: rdwr on a fully written image
        // (RAM on /dev/shm, files in --file-dir), O_DIRECT for file-direct.
        let (bstype, store) = match b.as_str() {
            "null" => ("null", "/dev/null".to_string()),
            "ram" | "file" | "rdwr" | "file-direct" => {
                let (img, size) = match b.as_str() {
                    "ram" => (dir.join("tgt-ram.img"), cfg.ram_size),
                    _ => (cfg.file_dir.join(format!("tgt-{b}.img")), cfg.file_size),
                };
                write_zeros(&img, size)?;
                ("rdwr", img.to_string_lossy().to_string())
            }
            other => return Err(berr!("unknown backend {other}")),
        };
        let mut args = vec!["--op", "new", "--mode", "logicalunit", "--tid", &tid, "--lun", "1", "--bstype", bstype];
        args.extend(["--backing-store", &store]);
        if b == "file-direct" {
            args.extend(["--bsoflags", "direct"]);
        }
        tgtadm(cfg.ctl, &args)?;
        tgtadm(cfg.ctl, &["--op", "bind", "--mode", "target", "--tid", &tid, "-I", "ALL"])?;
    }
    Ok(p)
}

/// Write `len` zero bytes (so tmpfs pages exist before the run, as the RAM
/// backend's do, and file LUNs read real blocks, not holes), then fsync: the
/// writeback of gigabytes of images must not overlap the measured points.
fn write_zeros(path: &Path, len: u64) -> Result<()> {
    let mut f = std::fs::File::create(path)?;
    let buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    Ok(())
}

/// Sizes and places of the comparison LUNs.
#[derive(Clone, Debug)]
pub struct LunSizes {
    /// RAM LUN size in bytes.
    pub ram: u64,
    /// File LUN size in bytes.
    pub file: u64,
    /// Directory of the file LUN images.
    pub file_dir: PathBuf,
}

/// shardtgtd's configuration for the comparison.
pub fn shardtgt_config(port: u16, shards: usize, backends: &[String], sizes: &LunSizes) -> String {
    let mut s = format!("[global]\nshards = {shards}\n\n[[portal]]\naddress = \"127.0.0.1:{port}\"\n");
    for b in backends {
        let _ = write!(s, "\n[[target]]\nname = \"{}\"\n  [[target.lun]]\n  lun = 0\n", iqn(b));
        let _ = match b.as_str() {
            "ram" => writeln!(s, "  backend = \"ram\"\n  size = {}", sizes.ram),
            "file" | "rdwr" | "file-direct" => {
                let kind = if b == "rdwr" { "rdwr" } else { "file" };
                let path = sizes.file_dir.join(format!("shardtgt-{b}.img"));
                writeln!(
                    s,
                    "  backend = \"{kind}\"\n  path = \"{}\"\n  size = {}\n  direct = {}",
                    path.display(),
                    sizes.file,
                    b == "file-direct"
                )
            }
            _ => writeln!(s, "  backend = \"{b}\"\n  size = \"1TiB\""),
        };
    }
    s
}

fn start_shardtgt(cfg: &Cfg, dir: &Path) -> Result<Proc> {
    port_free(cfg.port)?;
    let conf = dir.join("shardtgt.toml");
    let shards = cfg.target_cpus.split(',').count();
    let sizes = LunSizes { ram: cfg.ram_size, file: cfg.file_size, file_dir: cfg.file_dir.clone() };
    for b in cfg.backends.iter().filter(|b| matches!(b.as_str(), "file" | "rdwr" | "file-direct")) {
        // Written out in full, like tgt's: reads must not be served from holes.
        write_zeros(&cfg.file_dir.join(format!("shardtgt-{b}.img")), cfg.file_size)?;
    }
    std::fs::write(&conf, shardtgt_config(cfg.port, shards, &cfg.backends, &sizes))?;
    let args = vec!["--config".into(), conf.to_string_lossy().to_string()];
    let mut p = spawn("shardtgtd", &cfg.target_cpus, &cfg.daemon, &args, &dir.join("shardtgtd.log"))?;
    wait_port(cfg.port, &mut p)?;
    Ok(p)
}

#[derive(Clone, Debug)]
struct Cfg {
    quick: bool,
    time: Duration,
    ramp: Duration,
    repeat: u32,
    backends: Vec<String>,
    sessions16: bool,
    target_cpus: String,
    client_cpus: String,
    tgt_port: u16,
    port: u16,
    ctl: u16,
    ram_size: u64,
    file_size: u64,
    file_dir: PathBuf,
    daemon: PathBuf,
    iscsi_perf: bool,
    out: PathBuf,
    name: String,
}

fn default_daemon() -> Option<PathBuf> {
    let beside = std::env::current_exe().ok()?.parent()?.join("shardtgtd");
    if beside.is_file() {
        return Some(beside);
    }
    which("shardtgtd")
}

/// Entry point of `shardtgt-bench compare`.
pub fn main(mut a: Args) -> Result<()> {
    if a.flag("--help") {
        print!("{HELP}");
        return Ok(());
    }
    let quick = a.flag("--quick");
    let cfg = Cfg {
        quick,
        time: a.parse_or("--time", Duration::from_secs(if quick { 2 } else { 5 }), parse_secs)?,
        ramp: a.parse_or("--ramp", Duration::from_millis(if quick { 500 } else { 1000 }), parse_secs)?,
        repeat: a.num("--repeat", if quick { 1 } else { 3 })?.max(1),
        backends: a.value("--backends")?.unwrap_or_else(|| "null,ram".into()).split(',').map(str::to_string).collect(),
        sessions16: a.flag("--sessions16"),
        target_cpus: a.value("--target-cpus")?.unwrap_or_else(|| "0".into()),
        client_cpus: a.value("--client-cpus")?.unwrap_or_else(|| "1".into()),
        tgt_port: a.num("--tgt-port", 3261)?,
        port: a.num("--port", 3262)?,
        ctl: 0,
        ram_size: a.parse_or("--ram-size", 1 << 30, parse_size)?,
        file_size: a.parse_or("--file-size", 1 << 30, parse_size)?,
        file_dir: a.value("--file-dir")?.map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from),
        daemon: match a.value("--daemon")? {
            Some(p) => PathBuf::from(p),
            None => default_daemon().ok_or_else(|| berr!("shardtgtd not found; pass --daemon PATH"))?,
        },
        iscsi_perf: !a.flag("--no-iscsi-perf"),
        out: a
            .value("--out")?
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("results")),
        name: a.value("--name")?.unwrap_or_else(|| if quick { "compare-quick".into() } else { "compare".into() }),
    };
    a.finish()?;
    let cfg = Cfg { ctl: cfg.tgt_port, ..cfg };
    for b in &cfg.backends {
        if !matches!(b.as_str(), "null" | "ram" | "file" | "rdwr" | "file-direct") {
            return Err(berr!("--backends: {b:?} (null, ram, file, rdwr, file-direct)"));
        }
    }
    let res = compare(&cfg)?;
    std::fs::create_dir_all(&cfg.out)?;
    let stem = cfg.out.join(&cfg.name);
    let md = markdown(&res);
    std::fs::write(stem.with_extension("md"), &md)?;
    std::fs::write(stem.with_extension("json"), serde_json::to_string_pretty(&res).map_err(|e| berr!("json: {e}"))?)?;
    chart::write_svg(&res, &stem.with_extension("svg"))?;
    println!("{md}");
    eprintln!("wrote {}.{{md,json,svg}}", stem.display());
    Ok(())
}

fn client_run(cfg: &Cfg, url: &str, pt: &Point, pid: u32) -> Result<RunReport> {
    let me = std::env::current_exe()?;
    let out = Command::new("taskset")
        .arg("-c")
        .arg(&cfg.client_cpus)
        .arg(me)
        .args(["run", "--json", "--quiet", "--url", url, "--rw", &pt.rw])
        .args(["--bs", &pt.bs.to_string(), "--qd", &pt.qd.to_string(), "--sessions", &pt.sessions.to_string()])
        .args(["--time", &cfg.time.as_secs_f64().to_string(), "--ramp", &cfg.ramp.as_secs_f64().to_string()])
        .args(["--target-pid", &pid.to_string()])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text).map_err(|e| {
        berr!("client run {} against {url} failed ({e}): {}", pt.label(), String::from_utf8_lossy(&out.stderr).trim())
    })
}

/// Average IOPS from iscsi-perf's output (`iops average N`, last one).
pub fn parse_iscsi_perf(out: &str) -> Option<f64> {
    out.rsplit("iops average ")
        .next()
        .filter(|_| out.contains("iops average "))
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse().ok()))
}

fn iscsi_perf(cfg: &Cfg, url: &str, args: &[&str]) -> Result<Option<f64>> {
    let Some(prog) = which("iscsi-perf") else {
        return Ok(None);
    };
    let mut child = Command::new("taskset")
        .arg("-c")
        .arg(&cfg.client_cpus)
        .arg(prog)
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    std::thread::sleep(cfg.time + cfg.ramp);
    let _ = Command::new("kill").arg("-INT").arg(child.id().to_string()).status();
    let t0 = Instant::now();
    while child.try_wait()?.is_none() {
        if t0.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output()?;
    Ok(parse_iscsi_perf(&String::from_utf8_lossy(&out.stdout)))
}

fn compare(cfg: &Cfg) -> Result<CompareResult> {
    for t in ["taskset", "tgtd", "tgtadm"] {
        which(t).ok_or_else(|| berr!("{t} not found"))?;
    }
    let machine = Machine::detect();
    let dir = Path::new("/dev/shm").join(format!("shardtgt-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let _cleanup = DirGuard(dir.clone());
    // File LUN images: a directory of this run on the chosen filesystem, removed at the end.
    let file_dir = cfg.file_dir.join(format!("shardtgt-bench-{}", std::process::id()));
    let _cleanup_files = if cfg.backends.iter().any(|b| matches!(b.as_str(), "file" | "rdwr" | "file-direct")) {
        std::fs::create_dir_all(&file_dir)?;
        Some(DirGuard(file_dir.clone()))
    } else {
        None
    };
    let cfg = &Cfg { file_dir, ..cfg.clone() };
    let points = matrix(&cfg.backends, cfg.quick, cfg.sessions16);
    let runs = points.len() as u32 * 2 * cfg.repeat;
    eprintln!(
        "compare: {} points x 2 targets x {} repeats = {runs} runs of {:.1}+{:.1} s (about {:.0} s); targets on CPU {}, clients on CPU {}",
        points.len(),
        cfg.repeat,
        cfg.ramp.as_secs_f64(),
        cfg.time.as_secs_f64(),
        f64::from(runs) * (cfg.time + cfg.ramp).as_secs_f64() * 1.15 + 30.0,
        cfg.target_cpus,
        cfg.client_cpus
    );
    let mut tgt = start_tgt(cfg, &dir)?;
    let mut shard = start_shardtgt(cfg, &dir)?;

    // The raw TCP ceiling, pinned like the targets and clients.
    let first = |l: &str| l.split(',').next().and_then(|c| c.parse().ok());
    let mut tcp = Vec::new();
    for _ in 0..cfg.repeat {
        tcp.push(crate::tcpstream::measure(
            cfg.time.min(Duration::from_secs(3)),
            first(&cfg.target_cpus),
            first(&cfg.client_cpus),
        )?);
    }
    let tcp_mb_s = MinMedMax::of(&tcp);
    let pingpong = crate::tcpstream::ping_pong(
        cfg.time.min(Duration::from_secs(2)),
        first(&cfg.target_cpus),
        first(&cfg.client_cpus),
    )?;
    let tcp_pingpong_p50_us = Some(pingpong);
    eprintln!("tcp loopback stream: {:.0} MB/s; ping-pong p50 {:.1} us", tcp_mb_s.map_or(0.0, |m| m.median), pingpong);

    let mut results = Vec::new();
    for pt in &points {
        let tgt_url = format!("iscsi://127.0.0.1:{}/{}/1", cfg.tgt_port, iqn(&pt.backend));
        let sh_url = format!("iscsi://127.0.0.1:{}/{}/0", cfg.port, iqn(&pt.backend));
        let mut pr = PointResult { point: pt.clone(), tgt: Vec::new(), shardtgt: Vec::new() };
        for _ in 0..cfg.repeat {
            tgt.check_alive()?;
            pr.tgt.push(client_run(cfg, &tgt_url, pt, tgt.pid())?);
            shard.check_alive()?;
            pr.shardtgt.push(client_run(cfg, &sh_url, pt, shard.pid())?);
        }
        let f = |m: Option<MinMedMax>| m.map_or("-".into(), |m| format!("{:.0}", m.median));
        eprintln!(
            "{:<28} tgt {:>9}  shardtgt {:>9}  ratio {}",
            pt.label(),
            f(pr.thr(false)),
            f(pr.thr(true)),
            pr.thr_ratio().map_or("-".into(), |r| format!("{r:.2}"))
        );
        results.push(pr);
    }

    let mut outside = Vec::new();
    if cfg.iscsi_perf && which("iscsi-perf").is_some() {
        let b = if cfg.backends.iter().any(|b| b == "null") { "null" } else { &cfg.backends[0] };
        let args = ["-m", "32", "-b", "8", "-r"];
        let tgt_iops = iscsi_perf(cfg, &format!("iscsi://127.0.0.1:{}/{}/1", cfg.tgt_port, iqn(b)), &args)?;
        let shardtgt_iops = iscsi_perf(cfg, &format!("iscsi://127.0.0.1:{}/{}/0", cfg.port, iqn(b)), &args)?;
        eprintln!("iscsi-perf {b} 4k random read qd32: tgt {tgt_iops:?} shardtgt {shardtgt_iops:?}");
        outside.push(OutsideResult {
            command: format!("iscsi-perf -m 32 -b 8 -r ({b} LUN, 4k random read, QD32, 1 session)"),
            tgt_iops,
            shardtgt_iops,
        });
    }
    shard.stop();
    tgt.stop();

    let tgt_version = Command::new(which("tgtd").unwrap_or_default())
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let shardtgt_rev = Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    Ok(CompareResult {
        date: utc_now(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine,
        tgt_version,
        shardtgt_rev,
        daemon: cfg.daemon.display().to_string(),
        target_cpus: cfg.target_cpus.clone(),
        client_cpus: cfg.client_cpus.clone(),
        time_s: cfg.time.as_secs_f64(),
        ramp_s: cfg.ramp.as_secs_f64(),
        repeat: cfg.repeat,
        tcp_mb_s,
        tcp_pingpong_p50_us,
        points: results,
        iscsi_perf: outside,
    })
}

/// Removes the scratch directory on drop.
struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// UTC date and time without a date crate (civil-from-days, H. Hinnant).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    utc_from_unix(secs)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time.
pub fn utc_from_unix(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

fn f1(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| if x >= 100.0 { format!("{x:.0}") } else { format!("{x:.1}") })
}

fn f2(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{x:.2}"))
}

fn mmm(m: Option<MinMedMax>) -> String {
    m.map_or("-".into(), |m| format!("{:.0} ({:.0}–{:.0})", m.median, m.min, m.max))
}

/// Find a point.
fn find<'a>(r: &'a CompareResult, backend: &str, rw: &str, bs: u32, qd: u32, s: u32) -> Option<&'a PointResult> {
    r.points.iter().find(|p| {
        let q = &p.point;
        q.backend == backend && q.rw == rw && q.bs == bs && q.qd == qd && q.sessions == s
    })
}

/// The goals of issue 6, evaluated on a result: (goal, measured, met).
pub fn goals(r: &CompareResult) -> Vec<(String, String, Option<bool>)> {
    let mut g = Vec::new();
    let p = find(r, "null", "randread", 4096, 32, 4);
    let cpu = p.and_then(|p| ratio(p.cpu(true), p.cpu(false)));
    g.push((
        "null 4K randread 4x QD32: target CPU/IO <= 1/3 of tgt's".into(),
        cpu.map_or("-".into(), |c| format!("{c:.2}x tgt's")),
        cpu.map(|c| c <= 1.0 / 3.0),
    ));
    let iops = p.and_then(PointResult::thr_ratio);
    g.push((
        "null 4K randread 4x QD32: IOPS >= 2.5x tgt's".into(),
        iops.map_or("-".into(), |c| format!("{c:.2}x")),
        iops.map(|c| c >= 2.5),
    ));
    let qd1 = find(r, "null", "randread", 4096, 1, 1);
    let lat = qd1.and_then(|p| ratio(p.p50(true), p.p50(false)));
    let floor = match (qd1.and_then(|p| p.p50(true)), r.tcp_pingpong_p50_us) {
        (Some(s), Some(f)) => format!(" (shardtgt {s:.1} us, TCP floor {f:.1} us)"),
        _ => String::new(),
    };
    g.push((
        "QD1 4K read p50 latency <= 0.6x tgt's".into(),
        lat.map_or("-".into(), |c| format!("{c:.2}x{floor}")),
        lat.map(|c| c <= 0.6),
    ));
    let seq = find(r, "null", "read", 131072, 8, 1)
        .and_then(|p| ratio(p.thr(true).map(|m| m.median), r.tcp_mb_s.map(|m| m.median)));
    g.push((
        "128K sequential read >= 90% of the raw loopback TCP stream".into(),
        seq.map_or("-".into(), |c| format!("{:.0}%", c * 100.0)),
        seq.map(|c| c >= 0.9),
    ));
    g
}

/// The report as Markdown.
pub fn markdown(r: &CompareResult) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# shardtgt vs tgt — {}\n", r.date);
    let _ = writeln!(s, "- command: `{}`", r.command);
    let _ = writeln!(s, "- machine: {}", r.machine.line());
    let _ = writeln!(
        s,
        "- targets pinned to CPU {}, clients to CPU {} (taskset); one target under load at a time",
        r.target_cpus, r.client_cpus
    );
    let _ = writeln!(
        s,
        "- tgt: {} (defaults; LUN 1; null = `--bstype null`, ram = `rdwr` on a file in /dev/shm, \
         file / rdwr = `rdwr` on a fully written file in --file-dir, file-direct = the same with `--bsoflags direct`)",
        r.tgt_version
    );
    let _ = writeln!(
        s,
        "- shardtgt: `{}` (defaults; LUN 0; `null` / `ram` backends; file = `file` (io_uring), rdwr = `rdwr` \
         (worker threads), both buffered, file-direct = `file` with `direct = true`, each on its own fully \
         written file in --file-dir); bench source {}",
        r.daemon, r.shardtgt_rev
    );
    let _ = writeln!(
        s,
        "- {:.1} s measured after {:.1} s ramp, {} repeat(s) per target, interleaved; cells are the median (min–max)",
        r.time_s, r.ramp_s, r.repeat
    );
    let _ = writeln!(s, "- raw loopback TCP stream (target CPU → client CPU): {} MB/s", mmm(r.tcp_mb_s));
    let _ = writeln!(
        s,
        "- raw loopback TCP ping-pong, 48-byte request / 4144-byte answer (the QD1 4K read floor): p50 {} us\n",
        f1(r.tcp_pingpong_p50_us)
    );
    let _ = writeln!(s, "Throughput is IOPS for 4K points and MB/s for 128K points. Ratios are shardtgt/tgt (CPU and latency: lower is better).\n");
    let _ = writeln!(
        s,
        "| point | tgt | shardtgt | thr ratio | p50 us tgt / shardtgt | p50 ratio | p99 us tgt / shardtgt | CPU us/IO tgt / shardtgt | CPU ratio | client cores tgt / shardtgt |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for p in &r.points {
        let mut label = p.point.label();
        if p.point.large() {
            label.push_str(" (MB/s)");
        }
        if p.errors() > 0 {
            label.push_str(&format!(" ⚠{} errors", p.errors()));
        }
        let _ = writeln!(
            s,
            "| {label} | {} | {} | **{}** | {} / {} | {} | {} / {} | {} / {} | {} | {} / {} |",
            mmm(p.thr(false)),
            mmm(p.thr(true)),
            f2(p.thr_ratio()),
            f1(p.p50(false)),
            f1(p.p50(true)),
            f2(ratio(p.p50(true), p.p50(false))),
            f1(p.p99(false)),
            f1(p.p99(true)),
            f2(p.cpu(false)),
            f2(p.cpu(true)),
            f2(ratio(p.cpu(true), p.cpu(false))),
            f2(p.client_cores(false)),
            f2(p.client_cores(true)),
        );
    }
    if let Some(tcp) = r.tcp_mb_s {
        for p in r.points.iter().filter(|p| p.point.large() && p.point.rw == "read") {
            let _ = writeln!(
                s,
                "\n{}: shardtgt at {} of the TCP stream, tgt at {}.",
                p.point.label(),
                p.thr(true).map_or("-".into(), |m| format!("{:.0}%", m.median / tcp.median * 100.0)),
                p.thr(false).map_or("-".into(), |m| format!("{:.0}%", m.median / tcp.median * 100.0)),
            );
        }
    }
    for o in &r.iscsi_perf {
        let _ = writeln!(
            s,
            "\nOutside client: `{}`: tgt {} IOPS, shardtgt {} IOPS, ratio {}.",
            o.command,
            f1(o.tgt_iops),
            f1(o.shardtgt_iops),
            f2(ratio(o.shardtgt_iops, o.tgt_iops))
        );
    }
    let _ = writeln!(s, "\n## Goals (issue 6)\n\n| goal | measured | met |\n|---|---:|:---:|");
    for (goal, got, met) in goals(r) {
        let m = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        let _ = writeln!(s, "| {goal} | {got} | {m} |");
    }
    let _ = writeln!(s, "| shards=2 vs shards=1 with two client processes | - | not measured by compare (needs a core per shard plus client cores) |");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Latency;

    fn rep(iops: f64, p50: f64, cpu: f64) -> RunReport {
        RunReport {
            iops,
            mb_per_s: iops * 0.131072,
            lat: Latency { p50_us: p50, ..Default::default() },
            target_cpu_us_per_io: Some(cpu),
            ..Default::default()
        }
    }

    fn result() -> CompareResult {
        let pt = |rw: &str, bs, qd, s| Point { backend: "null".into(), rw: rw.into(), bs, qd, sessions: s };
        CompareResult {
            date: utc_from_unix(0),
            command: "x".into(),
            machine: Machine::default(),
            tgt_version: "1.0".into(),
            shardtgt_rev: "abc".into(),
            daemon: "shardtgtd".into(),
            target_cpus: "0".into(),
            client_cpus: "1".into(),
            time_s: 5.0,
            ramp_s: 1.0,
            repeat: 3,
            tcp_mb_s: MinMedMax::of(&[2000.0]),
            tcp_pingpong_p50_us: Some(30.0),
            points: vec![
                PointResult {
                    point: pt("randread", 4096, 32, 4),
                    tgt: vec![rep(100.0, 50.0, 30.0), rep(120.0, 50.0, 30.0), rep(110.0, 50.0, 30.0)],
                    shardtgt: vec![rep(330.0, 20.0, 9.0), rep(300.0, 20.0, 9.0), rep(360.0, 20.0, 9.0)],
                },
                PointResult {
                    point: pt("randread", 4096, 1, 1),
                    tgt: vec![rep(10.0, 100.0, 30.0)],
                    shardtgt: vec![rep(10.0, 70.0, 9.0)],
                },
                PointResult {
                    point: pt("read", 131072, 8, 1),
                    tgt: vec![rep(10_000.0, 100.0, 30.0)],
                    shardtgt: vec![rep(14_000.0, 70.0, 9.0)],
                },
            ],
            iscsi_perf: vec![],
        }
    }

    #[test]
    fn goal_math() {
        let g = goals(&result());
        assert_eq!(g[0].2, Some(true), "{g:?}"); // 9/30 = 0.3
        assert_eq!(g[1].2, Some(true), "{g:?}"); // 330/110 = 3.0
        assert_eq!(g[1].1, "3.00x");
        assert_eq!(g[2].2, Some(false), "{g:?}"); // 0.7
        assert!(g[2].1.contains("TCP floor 30.0 us"), "{g:?}");
        assert_eq!(g[3].2, Some(true), "{g:?}"); // 1835/2000 = 92%
        let md = markdown(&result());
        assert!(md.contains("| null randread 4k qd32 x4 | 110 (100–120) | 330 (300–360) | **3.00** |"), "{md}");
    }

    #[test]
    fn chart_renders() {
        let path = std::env::temp_dir().join(format!("shardtgt-bench-chart-{}.svg", std::process::id()));
        crate::chart::write_svg(&result(), &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        if std::env::var_os("KEEP_CHART").is_none() {
            let _ = std::fs::remove_file(&path);
        }
        assert!(svg.starts_with("<svg") && svg.contains("null randread 4k qd32 x4") && svg.contains("3.00"), "{svg}");
    }

    #[test]
    fn matrix_sizes() {
        let b = vec!["null".to_string(), "ram".to_string()];
        assert_eq!(matrix(&b, false, false).len(), 16);
        assert_eq!(matrix(&b, false, true).len(), 20);
        assert_eq!(matrix(&b, true, false).len(), 9);
    }

    #[test]
    fn iscsi_perf_output() {
        let out = "\r00:00:01 - lba 5, iops current 139316 (544 MB/s), iops average 139316 (544 MB/s), in_flight 32\r00:00:02 - lba 1, iops current 163343 (638 MB/s), iops average 151329 (591 MB/s), in_flight 32\n\nfinished.\n";
        assert_eq!(parse_iscsi_perf(out), Some(151329.0));
        assert_eq!(parse_iscsi_perf("nothing"), None);
    }

    #[test]
    fn dates() {
        assert_eq!(utc_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_from_unix(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn config_text() {
        let sizes = LunSizes { ram: 1 << 30, file: 1 << 20, file_dir: PathBuf::from("/var/tmp") };
        let c = shardtgt_config(3262, 1, &["null".into(), "ram".into(), "rdwr".into(), "file-direct".into()], &sizes);
        assert!(c.contains("shards = 1") && c.contains("backend = \"ram\"") && c.contains("size = 1073741824"), "{c}");
        assert!(c.contains(
            "backend = \"rdwr\"\n  path = \"/var/tmp/shardtgt-rdwr.img\"\n  size = 1048576\n  direct = false"
        ));
        assert!(c.contains(
            "backend = \"file\"\n  path = \"/var/tmp/shardtgt-file-direct.img\"\n  size = 1048576\n  direct = true"
        ));
        let parsed = shardtgt_daemon::config::Config::parse(&c, "bench").expect("a valid shardtgtd config");
        assert_eq!(parsed.targets.len(), 4);
    }
}
