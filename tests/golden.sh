#!/usr/bin/env bash
# Every shipped simulate experiment's results.csv, for comparing two builds
# byte for byte (a refactor, a faster path):
#   bash tests/golden.sh LIFSIM OUT_DIR [TOKENS]
#   diff -r OLD_OUT NEW_OUT
# Runs from the source tree the script is in. Inputs that vary from host to
# host are made deterministic: bench-sweep gets a seeded trace of TOKENS tokens
# (default 200), lowbit gets the M1 Max profile with fixed kernel rates, and
# tinylm-predictors records the shipped model (OUT_DIR/tinylm). host-validate, host-predict
# and moe-host read the host SSD and are left out. The inputs go to one fixed scratch
# directory (GOLDEN_WORK, default /tmp/lifsim-golden), made anew each run, so
# that the paths in point ids agree between the two runs.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
lifsim=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
out=${2:?usage: tests/golden.sh LIFSIM OUT_DIR [TOKENS]}
tokens=${3:-200}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=${GOLDEN_WORK:-/tmp/lifsim-golden}
rm -rf "$work" && mkdir -p "$work"
"$lifsim" -q synth "$src/models/llms/opt-6.7b.ini" --tokens "$tokens" --seed 1 -o "$work/opt.h5"
"$lifsim" -q synth "$src/models/llms/gpt-oss-120b.ini" --tokens "$tokens" --seed 1 -o "$work/moe.h5"
# lowbit's device: the shipped profile with fixed kernel rates (bench-gemv measures them otherwise)
printf 'lut_weights_per_s = 4e9, 4e9, 3e9, 2.5e9\ndequant_weights_per_s = 2e9, 2e9, 1.5e9, 1.2e9\n' >"$work/rates.txt"
awk -v rates="$work/rates.txt" '{ print } /^\[compute\]/ { while ((getline l < rates) > 0) print l }' \
	"$src/models/devices/m1max.ini" >"$work/m1max-gemv.ini"
LIFSIM=$lifsim bash "$src/experiments/tinylm.sh" "$work/tinylm" >/dev/null
for ini in "$src"/experiments/*.ini; do
	name=$(basename "$ini" .ini)
	trace=$work/opt.h5
	case $name in
	host-validate | host-predict | moe-host) continue ;;
	tinylm-predictors) trace=$work/tinylm/tinylm.h5 ;;
	esac
	TRACE=$trace MOE_TRACE="$work/moe.h5" LOWBIT_DEVICE="$work/m1max-gemv.ini" PRED_DIR="$work/tinylm" \
		"$lifsim" -q sweep "$ini" -o "$out/$name"
done
"$lifsim" -q stats "$work/opt.h5" -o "$out/stats-opt.csv"
cp "$work/tinylm/tinylm.stats.csv" "$work"/tinylm/eval-rank-*.csv "$out/"
# per-token HDF5 files, and provenance.json (it records the build, date and host)
find "$out" \( -name '*.h5' -o -name provenance.json \) -delete
