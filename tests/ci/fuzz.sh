#!/bin/bash
# CI: build the libFuzzer targets (tests/fuzz/) and run each for a short time
# from its seed corpus (FUZZ_SECONDS each, default 20). Installs clang when
# missing. Fails on any crash or sanitizer report.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
secs=${FUZZ_SECONDS:-20}
if ! command -v clang-14 >/dev/null && ! command -v clang >/dev/null; then
	sudo=$( [ "$(id -u)" = 0 ] || echo sudo )
	$sudo apt-get install -y -q clang-14 libclang-rt-14-dev
fi
out=${FUZZ_OUT:-$src/build/fuzz}
bash "$src/tests/fuzz/build.sh" "$out"
# Leaks are detected, but for the one libhdf5 loses on a corrupt object
# header (tests/fuzz/lsan.supp says why it is libhdf5's, not lifsim's).
export LSAN_OPTIONS="suppressions=$src/tests/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
# Unsymbolized: a reader child forked to read an old-format HDF5 file shares
# its parent's pipes to llvm-symbolizer, and a garbled frame could make a
# report of libhdf5's look like lifsim's (tests/fuzz/README.md). A finding is
# rerun symbolized below.
export ASAN_OPTIONS="symbolize=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for bin in "$out"/fuzz_*; do
	name=$(basename "$bin")
	name=${name#fuzz_}
	mkdir -p "$work/$name"
	seeds=$src/tests/fuzz/corpus/$name
	[ -d "$seeds" ] || seeds= # a target without seeds in the tree starts empty
	echo "== fuzz $name for ${secs}s"
	rc=0
	"$bin" -max_total_time="$secs" -rss_limit_mb=4096 -max_len=65536 \
		-artifact_prefix="$work/$name-" "$work/$name" $seeds >"$work/$name.log" 2>&1 || rc=$?
	# an artifact with libFuzzer's exit 0 is a report in a reader child that
	# does not start in libhdf5: a finding too (tests/fuzz/README.md)
	found_now=$(find "$work" -maxdepth 1 -type f \( -name "$name-crash-*" -o -name "$name-leak-*" \
		-o -name "$name-oom-*" -o -name "$name-timeout-*" \) | head -5)
	if [ "$rc" != 0 ] || [ -n "$found_now" ]; then
		tail -40 "$work/$name.log"
		for a in $found_now; do
			echo "== $a, run again symbolized:"
			ASAN_OPTIONS=symbolize=1 "$bin" -rss_limit_mb=4096 "$a" 2>&1 | tail -40 || true
		done
		echo "fuzz $name failed (exit $rc${found_now:+; artifacts: $found_now})"
		exit 1
	fi
	grep -E '^(#[0-9]+.*DONE|Done )' "$work/$name.log" | tail -2
	# what a run found before (tests/fuzz/found/NAME-*), once each: still
	# no crash, no sanitizer report and no leak
	for found in "$src"/tests/fuzz/found/"$name"-*; do
		[ -e "$found" ] || continue
		"$bin" -rss_limit_mb=4096 "$found" >"$work/$name.found.log" 2>&1 ||
			{ tail -40 "$work/$name.found.log"; echo "fuzz $name: $found fails again"; exit 1; }
		echo "found $(basename "$found"): passes"
	done
done
