//! Report math and report types: latency percentiles from an HDR
//! histogram, min/median/max over repeats, ratios, and the per-run report
//! printed as a table or JSON.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latency summary in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

impl Latency {
    /// Summarize a histogram of nanoseconds (`None` when empty).
    pub fn from_hist(h: &Histogram<u64>) -> Option<Latency> {
        if h.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Some(Latency {
            p50_us: us(h.value_at_quantile(0.50)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            mean_us: h.mean() / 1000.0,
        })
    }
}

/// Minimum, median and maximum of repeated measurements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MinMedMax {
    /// Smallest.
    pub min: f64,
    /// Median (mean of the two middle values for an even count).
    pub median: f64,
    /// Largest.
    pub max: f64,
}

impl MinMedMax {
    /// Summarize `values`, ignoring NaN (`None` when nothing is left).
    pub fn of(values: &[f64]) -> Option<MinMedMax> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Some(MinMedMax { min: v[0], median, max: v[n - 1] })
    }
}

/// `a / b`, `None` when either is missing or `b` is not positive.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() => Some(a / b),
        _ => None,
    }
}

/// What one `run` measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunReport {
    /// Target URL.
    pub url: String,
    /// Workload, e.g. `randread 4k qd32 x4`.
    pub workload: String,
    /// Bytes per I/O.
    pub bs: u32,
    /// Queue depth per session.
    pub qd: u32,
    /// Sessions.
    pub sessions: u32,
    /// Client threads.
    pub threads: u32,
    /// Measured seconds (after the ramp).
    pub secs: f64,
    /// I/Os completed in the measured window.
    pub ios: u64,
    /// Of which reads.
    pub reads: u64,
    /// Of which writes.
    pub writes: u64,
    /// Bytes moved in the window.
    pub bytes: u64,
    /// Failed commands (CHECK CONDITION, Reject, lost with a connection).
    pub errors: u64,
    /// Reads whose data did not match (`--verify`).
    pub verify_errors: u64,
    /// NOP-In pings answered.
    pub nops_answered: u64,
    /// Sessions that ended on an error.
    pub failed_sessions: u32,
    /// I/Os per second.
    pub iops: f64,
    /// Megabytes (10^6) per second.
    pub mb_per_s: f64,
    /// Latency of all I/Os.
    pub lat: Latency,
    /// Latency of reads, if any.
    pub read_lat: Option<Latency>,
    /// Latency of writes, if any.
    pub write_lat: Option<Latency>,
    /// Target CPU microseconds per I/O (`--target-pid`).
    pub target_cpu_us_per_io: Option<f64>,
    /// Target CPU use in cores (1.0 = one core busy).
    pub target_cpu_cores: Option<f64>,
    /// Our own CPU microseconds per I/O.
    pub client_cpu_us_per_io: Option<f64>,
    /// Our own CPU use in cores.
    pub client_cpu_cores: Option<f64>,
    /// CPUs this process may run on.
    pub client_cpus: usize,
    /// First few error descriptions.
    pub messages: Vec<String>,
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.prec$}"))
}

impl RunReport {
    /// A short table for people.
    pub fn human(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!("{}  {}\n", self.url, self.workload));
        s.push_str(&format!(
            "  {:.0} IOPS  {:.1} MB/s  over {:.2} s  ({} I/Os, {} errors, {} verify errors, {} failed sessions)\n",
            self.iops, self.mb_per_s, self.secs, self.ios, self.errors, self.verify_errors, self.failed_sessions
        ));
        let l = |name: &str, l: &Latency| {
            format!(
                "  {name:<6} lat us: p50 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  mean {:.1}\n",
                l.p50_us, l.p99_us, l.p999_us, l.max_us, l.mean_us
            )
        };
        s.push_str(&l("all", &self.lat));
        if self.reads > 0 && self.writes > 0 {
            if let Some(r) = &self.read_lat {
                s.push_str(&l("read", r));
            }
            if let Some(w) = &self.write_lat {
                s.push_str(&l("write", w));
            }
        }
        s.push_str(&format!(
            "  cpu: target {} us/IO ({} cores)   client {} us/IO ({} of {} cores)\n",
            opt(self.target_cpu_us_per_io, 2),
            opt(self.target_cpu_cores, 2),
            opt(self.client_cpu_us_per_io, 2),
            opt(self.client_cpu_cores, 2),
            self.client_cpus
        ));
        if self.client_cpu_cores.is_some_and(|c| c > 0.9 * self.client_cpus as f64) {
            s.push_str("  note: the client used nearly all of its CPUs; it may be the bottleneck\n");
        }
        for m in &self.messages {
            s.push_str(&format!("  ! {m}\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_data() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        // 1..=1000 microseconds, once each.
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let l = Latency::from_hist(&h).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() / b < 0.002;
        assert!(close(l.p50_us, 500.0), "{l:?}");
        assert!(close(l.p99_us, 990.0), "{l:?}");
        assert!(close(l.p999_us, 999.0), "{l:?}");
        assert!(close(l.max_us, 1000.0), "{l:?}");
        assert!(close(l.mean_us, 500.5), "{l:?}");
        assert!(Latency::from_hist(&Histogram::<u64>::new(3).unwrap()).is_none());
    }

    #[test]
    fn min_median_max() {
        assert_eq!(MinMedMax::of(&[3.0, 1.0, 2.0]), Some(MinMedMax { min: 1.0, median: 2.0, max: 3.0 }));
        assert_eq!(MinMedMax::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert_eq!(MinMedMax::of(&[f64::NAN, 5.0]).unwrap().median, 5.0);
        assert_eq!(MinMedMax::of(&[]), None);
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(Some(3.0), Some(1.5)), Some(2.0));
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
        assert_eq!(ratio(Some(f64::INFINITY), Some(1.0)), None);
    }

    #[test]
    fn report_roundtrips_json() {
        let r = RunReport { iops: 1234.0, workload: "randread 4k qd1 x1".into(), ..Default::default() };
        let j = serde_json::to_string(&r).unwrap();
        let back: RunReport = serde_json::from_str(&j).unwrap();
        assert_eq!(back.iops, 1234.0);
        assert!(r.human().contains("1234 IOPS"));
    }
}
