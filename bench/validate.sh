#!/usr/bin/env bash
# bench/validate.sh: lifsim's predictions against real reads on this host
# (experiments/host-validate.ini; issue 4's targets).
#   1. a 4 GiB file of random data; `lifsim calibrate` on it (both engines,
#      4 KiB..1 MiB x 1..64, plus the sequential rate; 3 passes) -> host.ini
#   2. an OPT-6.7B synthetic trace; weight files in rowcol and hot at SCALE
#      (1: 8.6 GB each; the disk must have room for two)
#   3. `lifsim validate experiments/host-validate.ini` -> summary.csv
#   4. the naive full-model read's rate beside calibrate's sequential rate, both
#      the one calibrate measured and the one validate's probes measured beside it
# Everything lives in WORK (a temporary directory unless given) and is
# deleted at exit unless KEEP=1; results are copied to bench/out/validate/.
#   env: SCALE (0.25; 1 = OPT-6.7B at full size), CAL_SECONDS (0.2 per calibration point),
#   CAL_PASSES (3 passes over the grid, each point's median kept),
#   CAL_SIZE (4GiB), OUT (bench/out/validate), KEEP
set -euo pipefail
: "${LIFSIM:=./lifsim}"
: "${LIFSIM_SRCDIR:=.}"
SCALE=${SCALE:-0.25} # make bench: a quick run; SCALE=1 for the 7B-scale figures
export SCALE
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/lifsim-validate.XXXXXX")}
export WORK
mkdir -p "$WORK"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
model=$LIFSIM_SRCDIR/models/llms/opt-6.7b.ini
out=${OUT:-bench/out/validate}
mkdir -p "$out"

[ -f "$WORK/cal.bin" ] || "$LIFSIM" calibrate --make-file "$WORK/cal.bin" --size "${CAL_SIZE:-4GiB}"
[ -f "$WORK/host.ini" ] || "$LIFSIM" calibrate --file "$WORK/cal.bin" -o "$WORK/host.ini" \
	--seconds "${CAL_SECONDS:-0.2}" --passes "${CAL_PASSES:-3}" | tee "$out/calibrate.txt"
[ -f "$WORK/opt.h5" ] || "$LIFSIM" -q synth "$model" -o "$WORK/opt.h5" --tokens 200
for l in rowcol hot; do
	[ -f "$WORK/w-$l.lsw" ] || "$LIFSIM" layout "$model" --layout "$l" --trace "$WORK/opt.h5" \
		--scale "$SCALE" -o "$WORK/w-$l.lsw"
done
"$LIFSIM" validate "$LIFSIM_SRCDIR/experiments/host-validate.ini" -o "$WORK/val"
cp "$WORK/host.ini" "$WORK/host.raw.csv" "$WORK/val/validation.csv" "$WORK/val/summary.csv" "$out/"

# naive full read vs the sequential rate calibrate measured
seq=$(awk -F, '$9 == "sequential" {print $4}' "$WORK/host.raw.csv")
col() { # column $1 of the naive row of validation.csv
	awk -F, -v c="$1" 'NR == 1 {for (i = 1; i <= NF; i++) h[h[i] = $i] = i; next} $3 == "naive" {print $h[c]}' \
		"$WORK/val/validation.csv"
}
ms=$(col io_ms_meas) bytes=$(col bytes_per_token_meas) pred=$(col io_ms_pred) side=$(col probe_mib_per_s)
awk -v b="$bytes" -v ms="$ms" -v pred="$pred" -v seq="$seq" -v side="$side" 'BEGIN {
	mib = b / 1048576; rate = mib / (ms / 1000)
	printf "naive full read of %.0f bytes: %.1f MiB/s measured, %.1f MiB/s predicted; ", b, rate, mib / (pred / 1000)
	printf "calibrate'"'"'s sequential rate: %.1f MiB/s at calibration (%.3fx), ", seq, rate / seq
	printf "%.1f MiB/s measured beside the naive reads by the same method (%.3fx)\n", side, rate / side
}' |
	tee "$out/naive.txt"
