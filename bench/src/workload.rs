//! What a run does: access pattern, block size, queue depth, sessions,
//! duration or I/O count, ramp-up, verification.

use std::time::Duration;

use shardtgt_core::pdu::frame::DigestMode;

use crate::{berr, Result};

/// Access pattern (fio's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// Sequential reads.
    Read,
    /// Sequential writes.
    Write,
    /// Sequential mix of reads and writes (`--mix` percent reads).
    Rw,
    /// Uniformly random reads.
    RandRead,
    /// Uniformly random writes.
    RandWrite,
    /// Uniformly random mix (`--mix` percent reads).
    RandRw,
}

impl Pattern {
    /// Parse fio's name.
    pub fn parse(s: &str) -> Result<Pattern> {
        Ok(match s {
            "read" => Pattern::Read,
            "write" => Pattern::Write,
            "rw" | "readwrite" => Pattern::Rw,
            "randread" => Pattern::RandRead,
            "randwrite" => Pattern::RandWrite,
            "randrw" => Pattern::RandRw,
            _ => return Err(berr!("unknown pattern {s:?} (read|write|rw|randread|randwrite|randrw)")),
        })
    }

    /// fio's name.
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Read => "read",
            Pattern::Write => "write",
            Pattern::Rw => "rw",
            Pattern::RandRead => "randread",
            Pattern::RandWrite => "randwrite",
            Pattern::RandRw => "randrw",
        }
    }

    /// Random offsets (else sequential).
    pub fn random(self) -> bool {
        matches!(self, Pattern::RandRead | Pattern::RandWrite | Pattern::RandRw)
    }

    /// Percent of I/Os that are reads, given `--mix`.
    pub fn read_pct(self, mix: u8) -> u8 {
        match self {
            Pattern::Read | Pattern::RandRead => 100,
            Pattern::Write | Pattern::RandWrite => 0,
            Pattern::Rw | Pattern::RandRw => mix.min(100),
        }
    }
}

/// Everything one `run` needs besides the URL.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Access pattern.
    pub pattern: Pattern,
    /// Percent reads for mixed patterns.
    pub mix: u8,
    /// Bytes per I/O (a multiple of the LUN block size).
    pub bs: u32,
    /// Outstanding commands per session.
    pub qd: u32,
    /// Sessions (one TCP connection each).
    pub sessions: u32,
    /// Threads to spread the sessions over (0: one per session, at most the CPUs we may use).
    pub threads: u32,
    /// Measured duration (after the ramp), unless `ios` is set.
    pub duration: Duration,
    /// Stop after this many I/Os in total (over all sessions), ramp included.
    pub ios: Option<u64>,
    /// Warm-up time not counted in the results.
    pub ramp: Duration,
    /// Write stamped blocks and check every read.
    pub verify: bool,
    /// Limit the LBA span to this many bytes (0: the whole LUN).
    pub span_bytes: u64,
    /// Ask for CRC32C digests.
    pub digests: DigestMode,
    /// Print a progress line every second (to stderr).
    pub progress: bool,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            pattern: Pattern::RandRead,
            mix: 70,
            bs: 4096,
            qd: 32,
            sessions: 1,
            threads: 0,
            duration: Duration::from_secs(5),
            ios: None,
            ramp: Duration::from_secs(1),
            verify: false,
            span_bytes: 0,
            digests: DigestMode::NONE,
            progress: true,
        }
    }
}

impl Workload {
    /// One-line description, e.g. `randread 4k qd32 x4`.
    pub fn describe(&self) -> String {
        let mut s = format!("{} {} qd{} x{}", self.pattern.name(), fmt_bs(self.bs), self.qd, self.sessions);
        if matches!(self.pattern, Pattern::Rw | Pattern::RandRw) {
            s.push_str(&format!(" mix{}", self.mix));
        }
        if self.verify {
            s.push_str(" verify");
        }
        s
    }
}

/// `4096` → `4k`, `131072` → `128k`, `1000` → `1000`.
pub fn fmt_bs(bs: u32) -> String {
    if bs >= 1 << 20 && bs % (1 << 20) == 0 {
        format!("{}m", bs >> 20)
    } else if bs >= 1024 && bs % 1024 == 0 {
        format!("{}k", bs >> 10)
    } else {
        bs.to_string()
    }
}

/// xorshift64* (Vigna): a fast, deterministic generator for offsets and
/// read/write choices; not for anything that needs real randomness.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed })
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift (bias below 2^-32 for n < 2^32).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        for p in ["read", "write", "rw", "randread", "randwrite", "randrw"] {
            assert_eq!(Pattern::parse(p).unwrap().name(), p);
        }
        assert!(Pattern::parse("trim").is_err());
        assert_eq!(Pattern::RandRw.read_pct(70), 70);
        assert_eq!(Pattern::Write.read_pct(70), 0);
        assert_eq!(fmt_bs(4096), "4k");
        assert_eq!(fmt_bs(1 << 20), "1m");
    }

    #[test]
    fn rng_below_stays_in_range() {
        let mut r = Rng::new(1);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            seen[r.below(10) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800), "{seen:?}");
    }
}
