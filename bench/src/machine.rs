//! A description of the machine for reports: CPU model, cores, kernel, memory.

use serde::{Deserialize, Serialize};

/// What a report says about the machine.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Online CPUs.
    pub cpus: usize,
    /// Kernel release.
    pub kernel: String,
    /// Memory in GiB.
    pub mem_gib: f64,
    /// Host name.
    pub hostname: String,
}

/// The first `model name` line of a /proc/cpuinfo text.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

impl Machine {
    /// Read this machine's description.
    pub fn detect() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let mem_kib: f64 = read("/proc/meminfo")
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpu_model: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown".into()),
            cpus: cpuinfo.lines().filter(|l| l.starts_with("processor")).count(),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            mem_gib: (mem_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            hostname: read("/proc/sys/kernel/hostname").trim().to_string(),
        }
    }

    /// One line, e.g. `AMD EPYC, 2 CPUs, 23.4 GiB, Linux 6.18.44`.
    pub fn line(&self) -> String {
        format!("{}, {} CPUs, {} GiB, Linux {}", self.cpu_model, self.cpus, self.mem_gib, self.kernel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_line() {
        assert_eq!(cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n").as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(cpu_model("nothing"), None);
        assert!(Machine::detect().cpus >= 1);
    }
}
