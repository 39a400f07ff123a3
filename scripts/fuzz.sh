#!/usr/bin/env bash
# Run every cargo-fuzz target briefly (FUZZ_SECONDS each, default 20) from the
# committed seed corpus. Installs cargo-fuzz when missing. cargo-fuzz needs
# nightly-only compiler flags (-Zsanitizer); on the stable toolchain we allow
# them with RUSTC_BOOTSTRAP=1, which is confined to this script's builds.
# A crash leaves its input under fuzz/artifacts/<target>/ and fails the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${FUZZ_SECONDS:=20}"
: "${FUZZ_TARGET_DIR:=$PWD/target/fuzz}"
if ! cargo fuzz --version >/dev/null 2>&1; then
	echo "installing cargo-fuzz"
	cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=$FUZZ_TARGET_DIR
cd fuzz
cargo fuzz build -O
targets=$(cargo fuzz list)
for t in $targets; do
	mkdir -p "corpus/$t"
	# Work on a copy so a CI run does not grow the committed corpus.
	work=$(mktemp -d)
	cp -r "corpus/$t/." "$work/"
	echo "fuzz $t for ${FUZZ_SECONDS}s"
	out=$(cargo fuzz run -O "$t" "$work" -- -max_total_time="$FUZZ_SECONDS" 2>&1) || {
		printf '%s\n' "$out" | tail -40
		echo "fuzz target $t failed"
		rm -rf "$work"
		exit 1
	}
	printf '%s\n' "$out" | grep -E '^Done' || true
	rm -rf "$work"
done
