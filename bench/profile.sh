#!/usr/bin/env bash
# Profile shardtgtd under load and render a flamegraph.
#
#   bench/profile.sh [--daemon PATH] [--bench PATH] [--time SECS] [--out FILE.svg]
#                    [--call-graph dwarf|fp] [--backend null|ram] [-- RUN OPTIONS...]
#
# Starts shardtgtd (one shard, pinned to CPU 0) with one LUN, drives it with
# `shardtgt-bench run` pinned to CPU 1 (default: 4K randread, 4 sessions x
# QD32), records `perf record -e cpu-clock` on the daemon only, and renders
# the stacks with inferno (installed with `cargo install inferno` if missing).
# Writes FILE.svg and FILE.txt (the run's report and the top symbols), and
# with KEEP_FOLDED=1 the collapsed stacks as FILE.folded.
#
# cpu-clock, not cycles: VMs here often expose no hardware counters (check
# with `perf stat -e instructions true`). Stacks: the release profile keeps
# line tables; --call-graph dwarf unwinds through them without frame
# pointers (default). With RUSTFLAGS="-C force-frame-pointers=yes" builds,
# --call-graph fp is cheaper and records longer runs.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
tdir=${CARGO_TARGET_DIR:-$root/target}
daemon=$tdir/release/shardtgtd
bench=$tdir/release/shardtgt-bench
secs=10
out=$here/results/flame-randread-4k.svg
callgraph=dwarf
backend=null
port=${PROFILE_PORT:-3263}
run_args=(--rw randread --bs 4k --qd 32 --sessions 4)

while [ $# -gt 0 ]; do
    case "$1" in
        --daemon) daemon=$2; shift 2 ;;
        --bench) bench=$2; shift 2 ;;
        --time) secs=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --call-graph) callgraph=$2; shift 2 ;;
        --backend) backend=$2; shift 2 ;;
        --) shift; run_args=("$@"); break ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "profile.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

for f in "$daemon" "$bench"; do
    [ -x "$f" ] || { echo "profile.sh: $f not built (cargo build --release -p shardtgt-daemon -p shardtgt-bench)" >&2; exit 1; }
done
command -v perf >/dev/null || { echo "profile.sh: perf not installed (apt-get install linux-perf)" >&2; exit 1; }
if ! command -v inferno-flamegraph >/dev/null; then
    echo "profile.sh: installing inferno" >&2
    cargo install inferno >&2
fi
export PATH=$PATH:$HOME/.cargo/bin

work=$(mktemp -d)
daemon_pid=
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

size=1TiB
[ "$backend" = ram ] && size=1GiB
cat > "$work/shardtgt.toml" <<TOML
[global]
shards = 1
[[portal]]
address = "127.0.0.1:$port"
[[target]]
name = "iqn.2026-11.io.shardtgt:profile"
  [[target.lun]]
  lun = 0
  backend = "$backend"
  size = "$size"
TOML

taskset -c 0 "$daemon" --config "$work/shardtgt.toml" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done

url=iscsi://127.0.0.1:$port/iqn.2026-11.io.shardtgt:profile/0
taskset -c 1 "$bench" run --url "$url" --time $((secs + 2)) --ramp 1 --quiet \
    --target-pid "$daemon_pid" "${run_args[@]}" >"$work/bench.txt" 2>&1 &
bench_pid=$!
sleep 1
perf record -e cpu-clock -F 997 --call-graph "$callgraph" -p "$daemon_pid" -o "$work/perf.data" -- sleep "$secs" \
    2>"$work/perf.log" >/dev/null
wait "$bench_pid" || true

mkdir -p "$(dirname "$out")"
base=${out%.svg}
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf >"$work/stacks.folded"
inferno-flamegraph --title "shardtgtd: ${run_args[*]} ($backend)" <"$work/stacks.folded" >"$out"
if [ -n "${KEEP_FOLDED:-}" ]; then cp "$work/stacks.folded" "$base.folded"; fi
{
    echo "# shardtgtd profile: ${run_args[*]} on $backend, $secs s, perf cpu-clock, call graph $callgraph"
    cat "$work/bench.txt"
    echo
    perf report -i "$work/perf.data" --no-children -g none --sort symbol --percent-limit 0.5 --stdio 2>/dev/null | grep -v '^$' | head -60
} >"$base.txt"
echo "wrote $out and $base.txt${KEEP_FOLDED:+ and $base.folded}"
