//! CPU time of a process, from `/proc`.
//!
//! Two sources: the sum of `/proc/PID/task/*/schedstat` (nanoseconds on CPU
//! per live thread; precise, but a thread that exited takes its time with
//! it) and `utime + stime` of `/proc/PID/stat` (clock ticks of 1/100 s,
//! USER_HZ on Linux, including exited threads). Deltas use schedstat when
//! both samples have it, else the ticks.

use std::fs;

/// Linux's USER_HZ: `/proc` reports times in 1/100 s on every architecture we run on.
pub const USER_HZ: u64 = 100;

/// One reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuSample {
    /// utime + stime, in ticks.
    pub ticks: u64,
    /// Sum of on-CPU nanoseconds over live threads, when schedstat exists.
    pub sched_ns: Option<u64>,
}

/// utime + stime from the text of `/proc/PID/stat`.
pub fn parse_stat(text: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Read process `pid`'s CPU time (`None` when it does not exist).
pub fn sample(pid: u32) -> Option<CpuSample> {
    let ticks = parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    let mut sched_ns = Some(0u64);
    match fs::read_dir(format!("/proc/{pid}/task")) {
        Ok(dir) => {
            for e in dir.flatten() {
                let v = fs::read_to_string(e.path().join("schedstat"))
                    .ok()
                    .and_then(|t| t.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()));
                sched_ns = match (sched_ns, v) {
                    (Some(a), Some(b)) => Some(a + b),
                    _ => None,
                };
            }
        }
        Err(_) => sched_ns = None,
    }
    Some(CpuSample { ticks, sched_ns })
}

/// CPU seconds between two samples.
pub fn cpu_secs(a: &CpuSample, b: &CpuSample) -> f64 {
    match (a.sched_ns, b.sched_ns) {
        (Some(x), Some(y)) if y >= x => (y - x) as f64 / 1e9,
        _ => b.ticks.saturating_sub(a.ticks) as f64 / USER_HZ as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_name() {
        let t = "1234 (a b) c)) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_stat(t), Some(300));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn self_sample_moves() {
        let a = sample(std::process::id()).unwrap();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i) ^ (x >> 3);
        }
        std::hint::black_box(x);
        let b = sample(std::process::id()).unwrap();
        assert!(cpu_secs(&a, &b) >= 0.0);
        assert!(b.ticks >= a.ticks);
    }
}
