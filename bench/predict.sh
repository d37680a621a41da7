#!/usr/bin/env bash
# bench/predict.sh: lifsim's predicted io, memory, compute and total time per
# token against a real replay on this host that also computes, with I/O and
# compute one after another and pipelined (experiments/host-predict.ini;
# issue 14's host targets).
#   1. a 4 GiB file of random data; `lifsim calibrate` on it (io_uring,
#      4 KiB..1 MiB x 1..64, CAL_PASSES passes) and `lifsim calibrate --compute`
#      (OpenBLAS sgemv out of the caches) -> host.ini
#   2. an OPT-6.7B synthetic trace; the rowcol weight file at SCALE (1: 8.6 GB)
#   3. `lifsim validate experiments/host-predict.ini` -> summary.csv; prints the
#      errors of compute_ms and total_ms (raw and drift-corrected) by overlap
#      mode, and the machine's load before and after
# Everything lives in WORK (a temporary directory unless given) and is deleted
# at exit unless KEEP=1; a WORK that already holds a file keeps it (so a
# second run with KEEP=1 WORK=DIR only validates: about 4 min at SCALE=1).
#   env: SCALE (0.25; 1 = OPT-6.7B at full size), CAL_SECONDS (0.2),
#   CAL_PASSES (3), OUT (bench/out/predict), KEEP, WORK, BLAS_THREADS (1:
#   OpenBLAS's threads for calibrate --compute and the replay alike, so one
#   core is left to the pipelined reader; the profile records it)
# A kernel that samples page access (DAMON's kdamond, as on lifsim's test
# host) slows the first touch of memory left idle for a second or more about
# 2x, which the replay's place and copies meet and calibrate's rates do not
# (experiments/README.md, host-predict): lifsim calibrate and validate say
# when one runs.
set -euo pipefail
case ${BLAS_THREADS:-1} in
'' | *[!0-9]* | 0*) echo "predict.sh: BLAS_THREADS='${BLAS_THREADS}' is not a thread count (1, 2, ...)" >&2; exit 2 ;;
esac
export OPENBLAS_NUM_THREADS=${BLAS_THREADS:-1}
: "${LIFSIM:=./lifsim}"
: "${LIFSIM_SRCDIR:=.}"
SCALE=${SCALE:-0.25}
export SCALE
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/lifsim-predict.XXXXXX")}
export WORK
mkdir -p "$WORK"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
model=$LIFSIM_SRCDIR/models/llms/opt-6.7b.ini
out=${OUT:-bench/out/predict}
mkdir -p "$out"

[ -f "$WORK/cal.bin" ] || "$LIFSIM" calibrate --make-file "$WORK/cal.bin" --size 4GiB
[ -f "$WORK/host-flash.ini" ] || "$LIFSIM" calibrate --file "$WORK/cal.bin" -o "$WORK/host-flash.ini" \
	--engines io_uring --seconds "${CAL_SECONDS:-0.2}" --passes "${CAL_PASSES:-3}" | tee "$out/calibrate.txt"
[ -f "$WORK/host.ini" ] || "$LIFSIM" calibrate --compute --passes "${CAL_PASSES:-3}" \
	--profile "$WORK/host-flash.ini" -o "$WORK/host.ini" |
	tee -a "$out/calibrate.txt"
[ -f "$WORK/opt.h5" ] || "$LIFSIM" -q synth "$model" -o "$WORK/opt.h5" --tokens 200
[ -f "$WORK/w-rowcol.lsw" ] || "$LIFSIM" layout "$model" --layout rowcol --trace "$WORK/opt.h5" \
	--scale "$SCALE" -o "$WORK/w-rowcol.lsw"
echo "load before: $(uptime)" | tee "$out/load.txt"
rm -rf "$WORK/val"
"$LIFSIM" -q validate "$LIFSIM_SRCDIR/experiments/host-predict.ini" -o "$WORK/val"
echo "load after: $(uptime)" | tee -a "$out/load.txt"
cp "$WORK/host.ini" "$WORK/val/validation.csv" "$WORK/val/summary.csv" "$out/"
# the errors that matter here: compute and total, by overlap mode
awk -F, 'NR == 1 || ($1 ~ /^(compute_ms|compute_ms_corr|total_ms|total_ms_corr|io_ms_corr)$/ && $2 ~ /^(none|pipelined|all)$/)' \
	"$WORK/val/summary.csv" | tee "$out/errors.csv"
