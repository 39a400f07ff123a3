//! The daemon's resident memory and open file descriptors, read from
//! `/proc/PID/status` (VmRSS) and `/proc/PID/fd`, for tests that check a
//! hostile case leaves nothing behind.
//!
//! File descriptors must come back exactly: every connection holds one, so
//! one leaked connection shows. RSS is allowed a tolerance, because the
//! allocator keeps some freed pages and buffers grow to a high-water mark;
//! callers pick one small enough that a leak of per-connection or per-command
//! state (a receive buffer alone is 256 KiB) over the case still fails.

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

/// One sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// VmRSS in KiB.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: usize,
}

/// Sample process `pid` now.
pub fn usage(pid: u32) -> Usage {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let rss_kib = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).expect("read /proc/PID/fd").count();
    Usage { rss_kib, fds }
}

/// Poll (every 50 ms, at most `settle`) until `pid` is back within
/// `rss_tolerance_kib` of `base` and at or below its fd count; returns the
/// last sample either way.
pub fn settle(pid: u32, base: Usage, rss_tolerance_kib: u64, settle: Duration) -> Usage {
    let end = Instant::now() + settle;
    loop {
        let u = usage(pid);
        if (u.fds <= base.fds && u.rss_kib <= base.rss_kib + rss_tolerance_kib) || Instant::now() > end {
            return u;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// [`settle`], then panic (naming `context`) unless the fd count is back
/// to `base` exactly and RSS within `rss_tolerance_kib`. Prints the numbers.
pub fn assert_back_to_baseline(pid: u32, base: Usage, rss_tolerance_kib: u64, context: &str) -> Usage {
    let u = settle(pid, base, rss_tolerance_kib, Duration::from_secs(10));
    eprintln!(
        "resources after {context}: RSS {} KiB -> {} KiB ({:+} KiB), fds {} -> {}",
        base.rss_kib,
        u.rss_kib,
        u.rss_kib as i64 - base.rss_kib as i64,
        base.fds,
        u.fds
    );
    assert!(u.fds <= base.fds, "{context}: {} fds open, baseline {} (a leaked connection?)", u.fds, base.fds);
    assert!(
        u.rss_kib <= base.rss_kib + rss_tolerance_kib,
        "{context}: RSS {} KiB, baseline {} KiB + tolerance {rss_tolerance_kib} KiB",
        u.rss_kib,
        base.rss_kib
    );
    u
}
