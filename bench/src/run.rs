//! One benchmark run: log the sessions in, spread them over threads, print
//! a progress line every second, then merge what the threads measured into
//! a [`RunReport`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardtgt_core::ids::Lun;

use crate::cpu;
use crate::engine::{self, SessionSetup, Shared, ThreadResult, Timing, QD_MAX};
use crate::session::{Conn, LoginOptions};
use crate::stats::{Latency, RunReport};
use crate::url::IscsiUrl;
use crate::workload::{Rng, Workload};
use crate::{berr, Result};

/// Most regions (I/O-sized pieces) one session verifies; a larger LUN is
/// verified on its first part (use `--size` to choose the span).
pub const VERIFY_REGIONS_MAX: u64 = 1 << 22;

/// A run's inputs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Where.
    pub url: IscsiUrl,
    /// What.
    pub wl: Workload,
    /// The target process, for CPU time per I/O.
    pub target_pid: Option<u32>,
    /// Seed for offsets (per session: seed + index).
    pub seed: u64,
}

/// CPUs this process may run on.
pub fn usable_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Run the workload and report.
pub fn run(o: &RunOptions) -> Result<RunReport> {
    let wl = &o.wl;
    if wl.qd == 0 || wl.qd > QD_MAX {
        return Err(berr!("--qd must be 1..={QD_MAX}"));
    }
    if wl.sessions == 0 || wl.sessions > 1024 {
        return Err(berr!("--sessions must be 1..=1024"));
    }
    if wl.bs == 0 || wl.bs % 512 != 0 {
        return Err(berr!("--bs must be a multiple of 512"));
    }
    let lun = Lun::from_index(o.url.lun);
    let addr = o.url.addr();
    let mut conns = Vec::with_capacity(wl.sessions as usize);
    let mut geometry = None;
    for i in 0..wl.sessions {
        let mut lo = LoginOptions::new(&o.url.target, i);
        lo.digests = wl.digests;
        let mut c = Conn::login(&addr, &lo).map_err(|e| berr!("session {i}: {e}"))?;
        c.ready(lun).map_err(|e| berr!("session {i}: {e}"))?;
        if geometry.is_none() {
            geometry = Some(c.capacity(lun)?);
        }
        conns.push(c);
    }
    let (block_size, num_blocks) = geometry.unwrap_or((512, 0));
    if block_size == 0 || wl.bs % block_size != 0 {
        return Err(berr!("--bs {} is not a multiple of the LUN block size {block_size}", wl.bs));
    }
    let mut span = num_blocks;
    if wl.span_bytes > 0 {
        span = span.min(wl.span_bytes / u64::from(block_size));
    }
    let per_io = u64::from(wl.bs / block_size);
    if span < per_io {
        return Err(berr!("LUN of {num_blocks} blocks is smaller than one I/O"));
    }
    let regions = span / per_io;
    if wl.verify && regions < u64::from(wl.sessions) * u64::from(wl.qd) {
        return Err(berr!("--verify needs at least sessions x qd distinct blocks of --bs"));
    }
    let threads = match wl.threads {
        0 => (wl.sessions as usize).min(usable_cpus()),
        t => (t as usize).min(wl.sessions as usize),
    }
    .max(1);
    let tag = Rng::new(o.seed ^ u64::from(std::process::id()) ^ now_nanos()).next_u64();
    let mut per_thread: Vec<Vec<SessionSetup>> = (0..threads).map(|_| Vec::new()).collect();
    let n = u64::from(wl.sessions);
    for (i, conn) in conns.into_iter().enumerate() {
        let i64_ = i as u64;
        // Verify: disjoint regions per session (the model is per session).
        let (first_block, span_blocks, seq_start) = if wl.verify {
            // The model keeps 8 bytes per region: at most 32 MiB of it per session.
            let per = (regions / n).min(VERIFY_REGIONS_MAX);
            (i64_ * per * per_io, per * per_io, 0)
        } else {
            (0, regions * per_io, i64_ * regions / n)
        };
        let quota = wl.ios.map(|q| q / n + u64::from(i64_ < q % n));
        per_thread[i % threads].push(SessionSetup {
            conn,
            lun,
            block_size,
            first_block,
            span_blocks,
            seq_start,
            quota,
            seed: o.seed.wrapping_add(i64_ * 0x9e37_79b9),
            tag,
        });
    }

    let shared = Arc::new(Shared::default());
    let start = Instant::now();
    let record_from = start + wl.ramp;
    let end = if wl.ios.is_some() { None } else { Some(record_from + wl.duration) };
    let timing = Timing { record_from, end };
    let handles: Vec<_> = per_thread
        .into_iter()
        .enumerate()
        .map(|(t, setups)| {
            let (wl, shared) = (wl.clone(), shared.clone());
            std::thread::Builder::new()
                .name(format!("bench-{t}"))
                .spawn(move || engine::run_thread(setups, &wl, &shared, timing))
        })
        .collect::<std::io::Result<_>>()?;

    // Progress, and CPU samples at the window's edges.
    let me = std::process::id();
    let mut cpu_from = None;
    let mut cpu_to = None;
    let mut last = (Instant::now(), 0u64, 0u64);
    let mut next_tick = start + Duration::from_secs(1);
    loop {
        let now = Instant::now();
        if cpu_from.is_none() && now >= record_from {
            cpu_from = Some((now, o.target_pid.and_then(cpu::sample), cpu::sample(me)));
        }
        if cpu_to.is_none() && end.is_some_and(|e| now >= e) {
            cpu_to = Some((now, o.target_pid.and_then(cpu::sample), cpu::sample(me)));
        }
        if handles.iter().all(|h| h.is_finished()) {
            break;
        }
        if now >= next_tick {
            let ios = shared.ios.load(Ordering::Relaxed);
            let bytes = shared.bytes.load(Ordering::Relaxed);
            let dt = now.duration_since(last.0).as_secs_f64();
            if wl.progress && dt > 0.0 {
                eprintln!(
                    "[{:>4.0}s{}] {:>9.0} IOPS {:>9.1} MB/s  errors {}",
                    now.duration_since(start).as_secs_f64(),
                    if now < record_from { " ramp" } else { "" },
                    (ios - last.1) as f64 / dt,
                    (bytes - last.2) as f64 / dt / 1e6,
                    shared.errors.load(Ordering::Relaxed)
                );
            }
            last = (now, ios, bytes);
            next_tick += Duration::from_secs(1);
        }
        let mut wake = next_tick;
        if cpu_from.is_none() {
            wake = wake.min(record_from);
        }
        if let (None, Some(e)) = (cpu_to, end) {
            wake = wake.min(e);
        }
        std::thread::sleep(wake.saturating_duration_since(Instant::now()).min(Duration::from_millis(50)));
    }
    let mut total: Option<ThreadResult> = None;
    for h in handles {
        let r = h.join().map_err(|_| berr!("a load thread panicked"))?;
        match &mut total {
            Some(t) => t.merge(&r),
            None => total = Some(r),
        }
    }
    let total = total.ok_or_else(|| berr!("no load threads"))?;
    let fin = Instant::now();
    let cpu_to = cpu_to.unwrap_or_else(|| (fin, o.target_pid.and_then(cpu::sample), cpu::sample(me)));
    let secs = match (end, total.last_completion) {
        (Some(_), _) => wl.duration.as_secs_f64(),
        (None, Some(l)) => l.saturating_duration_since(record_from).as_secs_f64(),
        (None, None) => 0.0,
    };
    let per_sec = |v: f64| if secs > 0.0 { v / secs } else { 0.0 };
    let (target_cpu_us_per_io, target_cpu_cores, client_cpu_us_per_io, client_cpu_cores) = match &cpu_from {
        Some((t0, tgt0, me0)) => {
            let wall = cpu_to.0.duration_since(*t0).as_secs_f64().max(1e-9);
            let per_io = |s: f64| (total.ios > 0).then(|| s * 1e6 / total.ios as f64);
            let tgt = match (tgt0, &cpu_to.1) {
                (Some(a), Some(b)) => Some(cpu::cpu_secs(a, b)),
                _ => None,
            };
            let cli = match (me0, &cpu_to.2) {
                (Some(a), Some(b)) => Some(cpu::cpu_secs(a, b)),
                _ => None,
            };
            (tgt.and_then(per_io), tgt.map(|s| s / wall), cli.and_then(per_io), cli.map(|s| s / wall))
        }
        None => (None, None, None, None),
    };
    Ok(RunReport {
        url: o.url.to_string(),
        workload: wl.describe(),
        bs: wl.bs,
        qd: wl.qd,
        sessions: wl.sessions,
        threads: threads as u32,
        secs,
        ios: total.ios,
        reads: total.reads,
        writes: total.writes,
        bytes: total.bytes,
        errors: total.errors,
        verify_errors: total.verify_errors,
        nops_answered: total.nops,
        failed_sessions: total.failed_sessions,
        iops: per_sec(total.ios as f64),
        mb_per_s: per_sec(total.bytes as f64) / 1e6,
        lat: Latency::from_hist(&total.all).unwrap_or_default(),
        read_lat: Latency::from_hist(&total.read),
        write_lat: Latency::from_hist(&total.write),
        target_cpu_us_per_io,
        target_cpu_cores,
        client_cpu_us_per_io,
        client_cpu_cores,
        client_cpus: usable_cpus(),
        messages: total.messages,
    })
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}
