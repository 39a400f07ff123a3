//! `shardtgt-bench`: see `shardtgt-bench help`.

use std::process::ExitCode;

use shardtgt_bench::args::{parse_secs, parse_size, Args};
use shardtgt_bench::run::{run, RunOptions};
use shardtgt_bench::url::IscsiUrl;
use shardtgt_bench::workload::{Pattern, Workload};
use shardtgt_bench::{berr, compare, Result};
use shardtgt_core::pdu::frame::DigestMode;

const USAGE: &str = "\
shardtgt-bench: iSCSI load generator and tgt/shardtgt comparison

USAGE:
  shardtgt-bench run --url iscsi://HOST[:PORT]/IQN/LUN [options]
  shardtgt-bench compare [options]        (see `shardtgt-bench compare --help`)
  shardtgt-bench tcp-stream [--time S] [--sender-cpu N] [--receiver-cpu N]

RUN OPTIONS:
  --url URL          target (libiscsi URL form)
  --rw PATTERN       read|write|rw|randread|randwrite|randrw   [randread]
  --mix PCT          percent reads for rw/randrw               [70]
  --bs SIZE          bytes per I/O (4k, 128k, ...)              [4k]
  --qd N             commands in flight per session            [32]
  --sessions N       sessions (TCP connections)                 [1]
  --threads N        client threads (0: one per session, at most the usable CPUs) [0]
  --time SECS        measured time after the ramp               [5]
  --ios N            stop after N I/Os instead of a time
  --ramp SECS        warm-up not counted                        [1]
  --size SIZE        limit the LBA span (default: whole LUN)
  --verify           write stamped blocks, check every read
  --digest           ask for CRC32C header and data digests
  --target-pid PID   report the target's CPU time per I/O
  --seed N           offsets seed                               [1]
  --json             print the report as JSON on stdout
  --quiet            no progress line
";

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty() {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    }
    let cmd = argv.remove(0);
    let r = match cmd.as_str() {
        "run" => cmd_run(Args::new(argv)),
        "compare" => compare::main(Args::new(argv)),
        "tcp-stream" => cmd_tcp(Args::new(argv)),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(berr!("unknown command {other:?}; try `shardtgt-bench help`")),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shardtgt-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn cmd_run(mut a: Args) -> Result<()> {
    if a.flag("--help") {
        print!("{USAGE}");
        return Ok(());
    }
    let url = IscsiUrl::parse(&a.value("--url")?.ok_or_else(|| berr!("--url is required"))?)?;
    let d = Workload::default();
    let wl = Workload {
        pattern: a.parse_or("--rw", d.pattern, Pattern::parse)?,
        mix: a.num("--mix", d.mix)?,
        bs: a.parse_or("--bs", u64::from(d.bs), parse_size)?.try_into().map_err(|_| berr!("--bs too large"))?,
        qd: a.num("--qd", d.qd)?,
        sessions: a.num("--sessions", d.sessions)?,
        threads: a.num("--threads", d.threads)?,
        duration: a.parse_or("--time", d.duration, parse_secs)?,
        ios: a.value("--ios")?.map(|v| v.parse().map_err(|_| berr!("--ios: bad number"))).transpose()?,
        ramp: a.parse_or("--ramp", d.ramp, parse_secs)?,
        verify: a.flag("--verify"),
        span_bytes: a.parse_or("--size", 0, parse_size)?,
        digests: if a.flag("--digest") { DigestMode::BOTH } else { DigestMode::NONE },
        progress: !a.flag("--quiet"),
    };
    let target_pid =
        a.value("--target-pid")?.map(|v| v.parse().map_err(|_| berr!("--target-pid: bad pid"))).transpose()?;
    let seed = a.num("--seed", 1u64)?;
    let json = a.flag("--json");
    a.finish()?;
    let report = run(&RunOptions { url, wl, target_pid, seed })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| berr!("json: {e}"))?);
    } else {
        print!("{}", report.human());
    }
    if report.verify_errors > 0 {
        return Err(berr!("{} verify errors", report.verify_errors));
    }
    Ok(())
}

fn cmd_tcp(mut a: Args) -> Result<()> {
    let secs = a.parse_or("--time", std::time::Duration::from_secs(3), parse_secs)?;
    let s = a.value("--sender-cpu")?.map(|v| v.parse().map_err(|_| berr!("bad cpu"))).transpose()?;
    let r = a.value("--receiver-cpu")?.map(|v| v.parse().map_err(|_| berr!("bad cpu"))).transpose()?;
    a.finish()?;
    let mbps = shardtgt_bench::tcpstream::measure(secs, s, r)?;
    println!("{mbps:.1} MB/s");
    Ok(())
}
