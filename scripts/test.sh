#!/usr/bin/env bash
# shardtgt's one test command: lints, builds, unit + end-to-end tests, and the
# libiscsi conformance run against a freshly started shardtgtd. CI runs exactly this
# (.ci/run). Works on a fresh Debian 12 as root, without a terminal: it installs
# what it needs with apt-get when a needed command is missing (reruns skip that).
#
# Steps, in order; the first failure stops the run with a banner saying which:
#   tools        install missing tools (libiscsi-bin, python3, procps, shellcheck, gcc)
#   lint-sh      ShellCheck on scripts/*.sh, scripts/conformance/conformance.sh and .ci/run
#   fmt          cargo fmt --all -- --check
#   clippy       cargo clippy --workspace --all-targets -- -D warnings
#   doc          RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps
#   build        cargo build --workspace --release --bins   (the shardtgtd the tests use)
#   test         cargo test --workspace --release           (unit + tests/ end-to-end)
#   fuzz         every cargo-fuzz target (fuzz/) for FUZZ_SECONDS each from the seed corpus
#   conformance  libiscsi iscsi-test-cu (CU_TESTS=ALL) against shardtgtd on a free port, once
#                per LUN type: RAM, a file on disk, a file on /dev/shm with O_DIRECT, each on a
#                fresh daemon; every failure must be listed in
#                scripts/conformance/known-failures.tsv (and every listed test must still fail),
#                or in scripts/conformance/order-dependent.tsv and then PASS when run again
#                on its own (fresh iscsi-test-cu process, same daemon, same options)
#
# Environment:
#   CONFORMANCE=scoped  the gate above [default]
#   CONFORMANCE=full    also run the suites on LUN 1 (RAM, 4096-byte blocks) on a fresh
#                       daemon; reported, never fails the run
#   CONFORMANCE=off     skip the conformance step
#   FUZZ_SECONDS        seconds per fuzz target [20]; FUZZ_SECONDS=0 skips the fuzz step
#   CONF_SCOPE          override the scoped suite list (space-separated CU_TESTS globs)
#   CONF_LUN, CONF_LUN2 LUN numbers of the 512-byte and the 4096-byte RAM LUNs [0, 1]
#   CONF_LUN_DISK, CONF_LUN_SHM  file LUNs on disk and on /dev/shm (O_DIRECT) [2, 3]
#   SHARDTGTD           daemon binary to test [$CARGO_TARGET_DIR/release/shardtgtd]
#   TEST_STEPS          run only these steps (space-separated names from the list above)
#   CARGO_TARGET_DIR    honoured; results go to $CARGO_TARGET_DIR/test-results
#                       (default target/test-results)
#   CI                  set by CI; the end-to-end tests then treat missing tools as failures
#
# Results: target/test-results/ (cargo logs, conformance TSVs and logs, daemon logs,
# summary.txt). Last line: "summary: N passed, M failed, K skipped".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

: "${CONFORMANCE:=scoped}"
: "${CONF_SCOPE:=ALL}"
KNOWN_FAILURES=$ROOT/scripts/conformance/known-failures.tsv
ORDER_DEPENDENT=$ROOT/scripts/conformance/order-dependent.tsv
: "${TEST_STEPS:=tools lint-sh fmt clippy doc build test fuzz conformance}"
: "${FUZZ_SECONDS:=20}"

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$ROOT/$TARGET_DIR
RES=$TARGET_DIR/test-results
DAEMON_BIN=${SHARDTGTD:-$TARGET_DIR/release/shardtgtd}
: "${CONF_LUN:=0}" "${CONF_LUN2:=1}" "${CONF_LUN_DISK:=2}" "${CONF_LUN_SHM:=3}"
IQN=iqn.2026-11.io.shardtgt:default

# bounds, in seconds
LINT_TIMEOUT=900
BUILD_TIMEOUT=2700
TEST_TIMEOUT=2400
APT_TIMEOUT=900

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export DEBIAN_FRONTEND=noninteractive

# ---------------------------------------------------------------- helpers

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}
banner() {
	printf '\n======================================================================\n' >&2
	printf '== %s\n' "$*" >&2
	printf '======================================================================\n' >&2
}

STEP_NAMES=()
STEP_RESULTS=()
STEP_SECS=()
CURRENT_STEP=
STEP_START=0
TESTS_PASSED=0
TESTS_FAILED=0
TESTS_SKIPPED=0
CONF_LINE=
CONF_FULL_LINES=()

want() { [[ " $TEST_STEPS " == *" $1 "* ]]; }

step_begin() {
	CURRENT_STEP=$1
	STEP_START=$SECONDS
	banner "STEP $1: $2"
}
step_end() {
	STEP_NAMES+=("$CURRENT_STEP")
	STEP_RESULTS+=("${1:-ok}")
	STEP_SECS+=($((SECONDS - STEP_START)))
	log "step $CURRENT_STEP: ${1:-ok} ($((SECONDS - STEP_START))s)"
	CURRENT_STEP=
}

print_summary() {
	{
		echo
		echo "shardtgt test summary ($(date -Is))"
		local i
		for i in "${!STEP_NAMES[@]}"; do
			printf '  %-12s %-8s %5ss\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]}" "${STEP_SECS[$i]}"
		done
		[[ -z $CURRENT_STEP ]] || printf '  %-12s %-8s %5ss\n' "$CURRENT_STEP" FAILED $((SECONDS - STEP_START))
		[[ -z $CONF_LINE ]] || echo "  conformance (gate): $CONF_LINE"
		for i in "${CONF_FULL_LINES[@]}"; do echo "  conformance (report only): $i"; done
		echo "  results: $RES"
	} | tee -a "$RES/summary.txt" >&2
}

# the daemon and the conformance run we started, if any (only these pids are ever signalled)
DAEMON_PID=
DAEMON_PORT=
DAEMON_LOG=
CONF_PID=

on_exit() {
	local rc=$?
	if [[ -n $CONF_PID ]]; then
		kill_tree "$CONF_PID"
		wait "$CONF_PID" 2>/dev/null || true
	fi
	if [[ -n $DAEMON_PID ]]; then
		stop_daemon || true
	fi
	if ((rc != 0)); then
		[[ -z $CURRENT_STEP ]] || banner "FAILED: step '$CURRENT_STEP' (exit status $rc); see the output above and $RES"
		print_summary || true
		TESTS_FAILED=$((TESTS_FAILED > 0 ? TESTS_FAILED : 1))
		echo "summary: $TESTS_PASSED passed, $TESTS_FAILED failed, $TESTS_SKIPPED skipped"
	fi
	exit "$rc"
}
trap on_exit EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

# true if PID runs and is not a zombie
pid_alive() {
	local st
	[[ -n ${1:-} && -r /proc/$1/stat ]] || return 1
	st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[[ $st != Z ]]
}

# tree_pids PID: PID and its descendants, parents first (through parent links, so only
# processes this script started)
tree_pids() {
	local k
	echo "$1"
	for k in $(pgrep -P "$1" 2>/dev/null || true); do tree_pids "$k"; done
}

# kill_tree PID: SIGTERM the whole tree, collected first and signalled parents first, so
# that no parent starts a new child meanwhile
kill_tree() {
	local pids p
	pids=$(tree_pids "$1")
	for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
}

free_port() {
	timeout 10 python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_open() {
	timeout 3 python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1" \
		>/dev/null 2>&1
}

# ---------------------------------------------------------------- tools

# command -> Debian package
declare -A PKG_OF=(
	[iscsi-test-cu]=libiscsi-bin [iscsi-ls]=libiscsi-bin [iscsi-inq]=libiscsi-bin
	[iscsi-readcapacity16]=libiscsi-bin [iscsi-perf]=libiscsi-bin
	[python3]=python3 [pgrep]=procps [timeout]=coreutils
	[cc]=gcc [shellcheck]=shellcheck
	[ss]=iproute2 [chattr]=e2fsprogs [mkfs.ext4]=e2fsprogs [losetup]=mount [unshare]=util-linux
)

install_tools() {
	local missing=() pkgs=() c p
	for c in "${!PKG_OF[@]}"; do
		command -v "$c" >/dev/null 2>&1 || missing+=("$c")
	done
	# libiscsi's shared library (used through ctypes by tests/tools/libiscsi_rw.py)
	if ! ldconfig -p 2>/dev/null | grep -q 'libiscsi\.so'; then
		missing+=(libiscsi.so)
		pkgs+=(libiscsi7)
	fi
	for c in "${missing[@]}"; do
		[[ -n ${PKG_OF[$c]:-} ]] && pkgs+=("${PKG_OF[$c]}")
	done
	if ((${#pkgs[@]})); then
		mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
		log "missing: ${missing[*]} -> installing: ${pkgs[*]}"
		local sudo=()
		if ((EUID != 0)); then
			command -v sudo >/dev/null 2>&1 || die "not root and no sudo; install as root: apt-get install -y ${pkgs[*]}"
			sudo=(sudo -n)
		fi
		timeout "$APT_TIMEOUT" "${sudo[@]}" apt-get update -q || die "apt-get update failed"
		timeout "$APT_TIMEOUT" "${sudo[@]}" apt-get install -y -q --no-install-recommends "${pkgs[@]}" </dev/null ||
			die "apt-get install ${pkgs[*]} failed"
	else
		log "all tools present"
	fi
	command -v cargo >/dev/null 2>&1 || die "cargo not found: this needs a Rust toolchain (rustup, stable)"
	local comp
	for comp in rustfmt clippy; do
		local probe=(cargo fmt --version)
		[[ $comp == clippy ]] && probe=(cargo clippy --version)
		if ! timeout 60 "${probe[@]}" >/dev/null 2>&1; then
			command -v rustup >/dev/null 2>&1 || die "cargo $comp missing and no rustup to add it"
			log "adding rustup component $comp"
			timeout 600 rustup component add "$comp" || die "rustup component add $comp failed"
		fi
	done
	for c in iscsi-test-cu iscsi-ls python3 timeout cc; do
		command -v "$c" >/dev/null 2>&1 || die "'$c' still missing after install"
	done
	log "$(cargo --version), $(rustc --version), libiscsi-bin $(dpkg-query -W -f='${Version}' libiscsi-bin 2>/dev/null || echo '?')"
}

# ---------------------------------------------------------------- daemon

# start_daemon NAME: shardtgtd with LUN 0 (256 MiB RAM, 512-byte blocks) and LUN 1
# (64 MiB RAM, 4096-byte blocks) on a free port; sets DAEMON_PID and DAEMON_PORT
start_daemon() {
	local name=$1 cfg dlog i
	[[ -x $DAEMON_BIN ]] || die "$DAEMON_BIN not built (run the build step)"
	DAEMON_PORT=$(free_port)
	cfg=$RES/$name.toml
	dlog=$RES/$name-shardtgtd.log
	DAEMON_LOG=$dlog
	cat >"$cfg" <<EOF
# written by scripts/test.sh
[global]
shards = 2
queue_depth = 128
nop_interval_ms = 5000
login_timeout_ms = 15000
# SCSI.Sanitize.Reset checks that a SANITIZE survives aborts, resets and a new
# login, ~4.5 s after it starts: pace the overwrite of these 256 MiB LUs to ~8 s
# so it is still running then (the test assumes media that slow).
sanitize_rate_mib = 32

[[portal]]
address = "127.0.0.1:$DAEMON_PORT"
tpgt = 1

[[target]]
name = "$IQN"
  [[target.lun]]
  lun = $CONF_LUN
  backend = "ram"
  size = "256MiB"
  block_size = 512
  read_only = false

  [[target.lun]]
  lun = $CONF_LUN2
  backend = "ram"
  size = "64MiB"
  block_size = 4096
  read_only = false

  # file LUN on the disk the repository is on (io_uring, buffered)
  [[target.lun]]
  lun = $CONF_LUN_DISK
  backend = "file"
  path = "$RES/$name-disk.img"
  size = "256MiB"

  # file LUN on tmpfs with O_DIRECT
  [[target.lun]]
  lun = $CONF_LUN_SHM
  backend = "file"
  path = "/dev/shm/shardtgt-test-$$-$name.img"
  size = "256MiB"
  direct = true
EOF
	RUST_LOG=${RUST_LOG:-info} "$DAEMON_BIN" --config "$cfg" </dev/null >"$dlog" 2>&1 &
	DAEMON_PID=$!
	for ((i = 0; i < 200; i++)); do
		if ! pid_alive "$DAEMON_PID"; then
			local rc=0
			wait "$DAEMON_PID" || rc=$?
			DAEMON_PID=
			tail -n 40 "$dlog" >&2
			die "shardtgtd exited with status $rc at startup (config $cfg, log $dlog)"
		fi
		port_open "$DAEMON_PORT" && break
		sleep 0.1
	done
	port_open "$DAEMON_PORT" || die "shardtgtd not listening on 127.0.0.1:$DAEMON_PORT after 20s (log $dlog)"
	log "shardtgtd pid $DAEMON_PID listens on 127.0.0.1:$DAEMON_PORT (log $dlog)"
	# ready = a login and INQUIRY on the first LUN work; if they never do, say so and go
	# on: the conformance run then reports the details
	local url="iscsi://127.0.0.1:$DAEMON_PORT/$IQN/$CONF_LUN" out=
	for ((i = 0; i < 20; i++)); do
		out=$(timeout 10 iscsi-inq -i iqn.2026-11.test:ready "$url" 2>&1) && return 0
		sleep 0.5
	done
	log "WARNING: iscsi-inq $url still fails after 10s: $out"
}

# stop_daemon: SIGTERM, wait up to 15s, SIGKILL; sets DAEMON_RC to the exit status
# (not in a subshell: only this shell can wait for its child)
DAEMON_RC=0
stop_daemon() {
	local pid=$DAEMON_PID rc=0 i
	DAEMON_RC=0
	[[ -n $pid ]] || return 0
	DAEMON_PID=
	if ! pid_alive "$pid"; then
		log "shardtgtd (pid $pid) had already exited before SIGTERM"
	else
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 150; i++)); do
			pid_alive "$pid" || break
			sleep 0.1
		done
		if pid_alive "$pid"; then
			log "shardtgtd (pid $pid) still running 15s after SIGTERM: SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	wait "$pid" 2>/dev/null || rc=$?
	DAEMON_RC=$rc
	log "shardtgtd (pid $pid) exited with status $rc"
}

# run_conformance NAME LUN PATTERN...: one conformance.sh run per pattern into $RES/conformance;
# merges them into NAME.tsv; sets CONF_RESULT="passed N, failed M, skipped K"; returns 1 if
# anything failed or the daemon died
run_conformance() {
	local name=$1 lun=$2
	shift 2
	local dir=$RES/conformance p out last pass=0 fail=0 skip=0 bad=0 safe
	mkdir -p "$dir"
	printf 'test\tresult\treason\n' >"$dir/$name.tsv"
	for p in "$@"; do
		safe=${p//[^A-Za-z0-9._-]/_}
		log "conformance $name: CU_TESTS=$p on LUN $lun"
		# in the background, so that a dying daemon stops the run at once instead of
		# after the suite timeout (libiscsi keeps trying to reconnect)
		RESULTS_DIR=$dir TARGET_URL="iscsi://127.0.0.1:$DAEMON_PORT/$IQN/$lun" CU_TESTS=$p \
			CU_SUITE_TIMEOUT=${CU_SUITE_TIMEOUT:-300} CU_TIMEOUT=${CU_TIMEOUT:-2400} \
			timeout -k 30 3000 scripts/conformance/conformance.sh "$name-$safe" </dev/null >"$dir/$name-$safe.out" &
		CONF_PID=$!
		while pid_alive "$CONF_PID"; do
			if ! pid_alive "$DAEMON_PID"; then
				log "shardtgtd died: stopping the conformance run"
				# conformance.sh runs iscsi-test-cu under its own timeout, in another process
				# group: signal the whole tree
				kill_tree "$CONF_PID"
				break
			fi
			sleep 0.5
		done
		wait "$CONF_PID" 2>/dev/null || true
		CONF_PID=
		out=$(cat "$dir/$name-$safe.out")
		printf '%s\n' "$out" | sed 's/^/    /' >&2
		last=$(printf '%s\n' "$out" | tail -n 1)
		if [[ $last =~ ^passed\ ([0-9]+),\ failed\ ([0-9]+),\ skipped\ ([0-9]+)$ ]]; then
			pass=$((pass + BASH_REMATCH[1]))
			fail=$((fail + BASH_REMATCH[2]))
			skip=$((skip + BASH_REMATCH[3]))
		else
			log "conformance $name: CU_TESTS=$p produced no result line (setup error?)"
			bad=1
		fi
		[[ -f $dir/$name-$safe-conformance.tsv ]] && tail -n +2 "$dir/$name-$safe-conformance.tsv" >>"$dir/$name.tsv"
		if ! pid_alive "$DAEMON_PID"; then
			log "shardtgtd DIED during conformance $name ($p); last lines of $DAEMON_LOG:"
			tail -n 40 "$DAEMON_LOG" >&2 || true
			bad=1
			break
		fi
	done
	# Failures must all be listed in known-failures.tsv, and every listed test that ran must
	# still fail (a fixed test has to leave the list). A failure listed in order-dependent.tsv
	# (state left by an earlier test of its suite) must pass when run again on its own.
	local unknown stale t again
	again=$(awk -F'\t' 'NR == FNR { if ($0 !~ /^#/ && NF) od[$1] = 1; next }
		FNR > 1 && $2 == "FAIL" && ($1 in od) { print $1 }' "$ORDER_DEPENDENT" "$dir/$name.tsv")
	for t in $again; do
		log "conformance $name: $t failed in suite order (listed in $ORDER_DEPENDENT): running it alone"
		RESULTS_DIR=$dir TARGET_URL="iscsi://127.0.0.1:$DAEMON_PORT/$IQN/$lun" CU_TESTS=$t \
			CU_SUITE_TIMEOUT=${CU_SUITE_TIMEOUT:-300} CU_TIMEOUT=600 \
			timeout -k 30 900 scripts/conformance/conformance.sh "$name-alone-$t" </dev/null >"$dir/$name-alone-$t.out" || true
		sed 's/^/    /' "$dir/$name-alone-$t.out" >&2
		if [[ $(tail -n 1 "$dir/$name-alone-$t.out") == "passed 1, failed 0, skipped 0" ]]; then
			log "conformance $name: $t passes on its own"
			sed -i "s/^$t\tFAIL\t/$t\tORDER\t/" "$dir/$name.tsv"
			fail=$((fail - 1))
			pass=$((pass + 1))
		else
			log "conformance $name: $t fails on its own too"
			bad=1
		fi
	done
	CONF_RESULT="passed $pass, failed $fail, skipped $skip"
	unknown=$(awk -F'\t' 'NR == FNR { if ($0 !~ /^#/ && NF) known[$1] = 1; next }
		FNR > 1 && $2 != "PASS" && $2 != "SKIP" && $2 != "ORDER" && !($1 in known) { print $1 }' \
		"$KNOWN_FAILURES" "$dir/$name.tsv")
	stale=$(awk -F'\t' 'NR == FNR { if ($0 !~ /^#/ && NF) known[$1] = 1; next }
		FNR > 1 && $2 == "PASS" && ($1 in known) { print $1 }' \
		"$KNOWN_FAILURES" "$dir/$name.tsv")
	[[ -z $unknown ]] || log "conformance $name: failures not in $KNOWN_FAILURES: $(echo "$unknown" | tr '\n' ' ')"
	[[ -z $stale ]] || log "conformance $name: listed as known failures but now PASS (remove them): $(echo "$stale" | tr '\n' ' ')"
	[[ -z $unknown && -z $stale && $bad == 0 ]]
}

# ---------------------------------------------------------------- steps

rm -rf "$RES"
mkdir -p "$RES"
log "shardtgt test run in $ROOT; steps: $TEST_STEPS; CONFORMANCE=$CONFORMANCE; results in $RES"

if want tools; then
	step_begin tools "install missing tools"
	install_tools
	step_end
fi

if want lint-sh; then
	step_begin lint-sh "shellcheck scripts"
	if command -v shellcheck >/dev/null 2>&1; then
		sh_files=(scripts/*.sh scripts/conformance/conformance.sh .ci/run)
		timeout 300 shellcheck -x -P SCRIPTDIR "${sh_files[@]}"
		step_end
	else
		log "shellcheck not installed; skipped"
		step_end skipped
	fi
fi

if want fmt; then
	step_begin fmt "cargo fmt --all -- --check"
	timeout "$LINT_TIMEOUT" cargo fmt --all -- --check
	step_end
fi

if want clippy; then
	step_begin clippy "cargo clippy --workspace --all-targets -- -D warnings"
	timeout "$BUILD_TIMEOUT" cargo clippy --workspace --all-targets -- -D warnings
	step_end
fi

if want doc; then
	step_begin doc "RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps"
	RUSTDOCFLAGS=-Dwarnings timeout "$BUILD_TIMEOUT" cargo doc --workspace --no-deps
	step_end
fi

if want build; then
	step_begin build "cargo build --workspace --release --bins"
	timeout "$BUILD_TIMEOUT" cargo build --workspace --release --bins
	[[ -x $DAEMON_BIN ]] || die "build finished but $DAEMON_BIN is missing"
	step_end
fi

if want test; then
	step_begin test "cargo test --workspace --release (SHARDTGTD=$DAEMON_BIN)"
	[[ -x $DAEMON_BIN ]] || die "$DAEMON_BIN missing: the build step must run first"
	test_rc=0
	SHARDTGTD=$DAEMON_BIN timeout -k 30 "$TEST_TIMEOUT" cargo test --workspace --release --no-fail-fast </dev/null 2>&1 |
		tee "$RES/cargo-test.log" || test_rc=$?
	while read -r p f ig; do
		TESTS_PASSED=$((TESTS_PASSED + p))
		TESTS_FAILED=$((TESTS_FAILED + f))
		TESTS_SKIPPED=$((TESTS_SKIPPED + ig))
	done < <(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed; \([0-9]*\) ignored.*/\1 \2 \3/p' \
		"$RES/cargo-test.log")
	grep -h '^SKIPPED ' "$RES/cargo-test.log" >&2 || true
	((test_rc == 0)) || die "cargo test failed (exit status $test_rc): $TESTS_FAILED failed; log $RES/cargo-test.log"
	step_end
fi

if want fuzz && ((FUZZ_SECONDS > 0)); then
	step_begin fuzz "cargo fuzz: every target for ${FUZZ_SECONDS}s"
	FUZZ_SECONDS=$FUZZ_SECONDS FUZZ_TARGET_DIR=$TARGET_DIR/fuzz timeout "$BUILD_TIMEOUT" scripts/fuzz.sh </dev/null 2>&1 |
		tee "$RES/fuzz.log"
	step_end
fi

if want conformance && [[ $CONFORMANCE != off ]]; then
	step_begin conformance "libiscsi iscsi-test-cu against shardtgtd (CONFORMANCE=$CONFORMANCE)"
	[[ -x scripts/conformance/conformance.sh ]] || die "scripts/conformance/conformance.sh missing"
	read -r -a scope <<<"$CONF_SCOPE"
	gate_ok=1
	CONF_LINE=
	# One run per LUN type, each on a fresh daemon: RAM, a file on disk, a file on tmpfs (O_DIRECT).
	for spec in "ram:$CONF_LUN" "file-disk:$CONF_LUN_DISK" "file-shm:$CONF_LUN_SHM"; do
		kind=${spec%%:*}
		lun=${spec#*:}
		start_daemon "conformance-$kind"
		run_conformance "shardtgt-$kind" "$lun" "${scope[@]}" || gate_ok=0
		CONF_LINE+="$kind: $CONF_RESULT; "
		stop_daemon
		rm -f "/dev/shm/shardtgt-test-$$-conformance-$kind.img"
		if ((DAEMON_RC != 0)); then
			log "shardtgtd exited with status $DAEMON_RC after SIGTERM (want 0)"
			gate_ok=0
		fi
		if [[ $CONF_RESULT =~ ^passed\ ([0-9]+),\ failed\ ([0-9]+),\ skipped\ ([0-9]+)$ ]]; then
			TESTS_PASSED=$((TESTS_PASSED + BASH_REMATCH[1]))
			TESTS_FAILED=$((TESTS_FAILED + BASH_REMATCH[2]))
			TESTS_SKIPPED=$((TESTS_SKIPPED + BASH_REMATCH[3]))
		fi
		log "conformance gate $kind LUN $lun ($CONF_SCOPE): $CONF_RESULT; per-test: $RES/conformance/shardtgt-$kind.tsv"
		awk -F'\t' 'NR > 1 && $2 != "PASS" && $2 != "SKIP" { print "    " $2 ": " $1 "  " $3 }' \
			"$RES/conformance/shardtgt-$kind.tsv" >&2 || true
	done

	if [[ $CONFORMANCE == full ]]; then
		banner "conformance, report only: CU_TESTS=$CONF_SCOPE on LUN 1 (RAM, 4096-byte blocks)"
		start_daemon conformance-lun1
		run_conformance scoped-lun1 "$CONF_LUN2" "${scope[@]}" || true
		CONF_FULL_LINES+=("scoped suites on LUN 1 (4 KiB blocks): $CONF_RESULT")
		stop_daemon
		((DAEMON_RC == 0)) || CONF_FULL_LINES+=("daemon exit status after SIGTERM: $DAEMON_RC")
		# shared/ sits beside the clone in CI and on the team's machines
		compare=$ROOT/../shared/conformance/tgt-results/tgt-conformance-summary.tsv
		if [[ -f $compare ]]; then
			log "for comparison, Linux tgt 1.0.85 on the full suite: $(tail -n 1 "$compare" | tr '\t' ' ')"
		fi
	fi
	((gate_ok)) || die "conformance gate failed: $CONF_LINE(want no failure outside $KNOWN_FAILURES, and a clean daemon exit)"
	step_end
fi

print_summary
echo "summary: $TESTS_PASSED passed, $TESTS_FAILED failed, $TESTS_SKIPPED skipped"
