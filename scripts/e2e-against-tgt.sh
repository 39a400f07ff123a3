#!/usr/bin/env bash
# Run the end-to-end tests (crate shardtgt-tests) against Linux tgt instead of shardtgtd.
#
# Usage: scripts/e2e-against-tgt.sh [extra cargo test args, e.g. a test name filter]
#
# Why: it shows the harness and the test expectations are sound against an
# established target (and where tgt itself departs from RFC 7143), and gives a
# side-by-side reference. Starts its own tgtd (package `tgt`) on a free loopback
# port with the LUNs of TargetSpec::standard() (tgt numbers data LUNs from 1, so
# SHARDTGT_E2E_LUN_OFFSET=1), runs the tests one at a time (they share the one
# target), and stops tgtd on exit. Tests that need the shardtgtd process itself
# skip themselves. Needs root (tgtd) and tgt installed.
#
# Environment: CARGO_TARGET_DIR is honoured; TGT_TEST_TIMEOUT bounds the cargo
# run in seconds [1800].
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${TGT_TEST_TIMEOUT:=1800}"

for c in tgtd tgtadm python3 timeout; do
	command -v "$c" >/dev/null 2>&1 || { echo "e2e-against-tgt: '$c' not found (apt-get install tgt python3)" >&2; exit 2; }
done

IQN=iqn.2026-11.io.shardtgt:e2e
WORK=$(mktemp -d /tmp/e2e-tgt.XXXXXX)
TGTD_PID=
cleanup() {
	if [[ -n $TGTD_PID ]] && kill -0 "$TGTD_PID" 2>/dev/null; then
		kill -TERM "$TGTD_PID" 2>/dev/null || true
		for _ in $(seq 20); do kill -0 "$TGTD_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$TGTD_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# tgtd's management socket lives in the abstract namespace, numbered by -C
CTL=$((2000 + PORT % 1000))
truncate -s 64M "$WORK/lun1.img"
truncate -s 16M "$WORK/lun2.img"

tgtd -f -C "$CTL" --iscsi "portal=127.0.0.1:$PORT" >"$WORK/tgtd.log" 2>&1 &
TGTD_PID=$!
adm() { timeout 20 tgtadm -C "$CTL" --lld iscsi "$@"; }
for _ in $(seq 100); do
	adm --op show --mode target >/dev/null 2>&1 && break
	kill -0 "$TGTD_PID" 2>/dev/null || { cat "$WORK/tgtd.log" >&2; echo "tgtd exited" >&2; exit 1; }
	sleep 0.1
done
adm --op new --mode target --tid 1 -T "$IQN"
adm --op new --mode logicalunit --tid 1 --lun 1 -b "$WORK/lun1.img"
adm --op new --mode logicalunit --tid 1 --lun 2 -b "$WORK/lun2.img" --blocksize 4096
adm --op update --mode logicalunit --tid 1 --lun 2 --params readonly=1
adm --op bind --mode target --tid 1 -I ALL
echo "tgtd (pid $TGTD_PID) serves $IQN on 127.0.0.1:$PORT" >&2

export SHARDTGT_E2E_TARGET=127.0.0.1:$PORT SHARDTGT_E2E_IQN=$IQN SHARDTGT_E2E_LUN_OFFSET=1
timeout -k 10 "$TGT_TEST_TIMEOUT" cargo test -p shardtgt-tests --release --no-fail-fast "$@" -- --test-threads=1 </dev/null
