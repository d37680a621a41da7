#!/usr/bin/env bash
# bench/moe-validate.sh: the MoE simulator's predictions against real expert
# reads on this host (experiments/moe-host.ini; issue 17's "host validation
# errors for MoE points").
#   1. a file of random data; `lifsim calibrate` on it (io_uring, 4 KiB..4 MiB
#      x 1..16: the expert reads are 512 KiB and up, CAL_PASSES passes) -> host.ini
#   2. an OLMoE-1B-7B synthetic router trace (64 tokens); an expert file per
#      expert layout (expert, matrix, cosel) at SCALE (0.125: 1.6 GB each)
#   3. `lifsim validate experiments/moe-host.ini` -> summary.csv; prints the
#      median and p90 |error| of io_ms, mem_ms and total_ms (io and total raw
#      and drift-corrected), and the mean signed error (the bias) of each
# Everything lives in WORK (a temporary directory unless given) and is
# deleted at exit unless KEEP=1; results are copied to OUT.
#   env: SCALE (0.125), CAL_SECONDS (0.2), CAL_PASSES (1), CAL_SIZE (2GiB),
#   OUT (bench/out/moe-validate), KEEP
set -euo pipefail
: "${LIFSIM:=./lifsim}"
: "${LIFSIM_SRCDIR:=.}"
SCALE=${SCALE:-0.125}
export SCALE
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/lifsim-moe-validate.XXXXXX")}
export WORK
mkdir -p "$WORK"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
model=$LIFSIM_SRCDIR/models/llms/olmoe-1b-7b.ini
out=${OUT:-bench/out/moe-validate}
mkdir -p "$out"

[ -f "$WORK/cal.bin" ] || "$LIFSIM" calibrate --make-file "$WORK/cal.bin" --size "${CAL_SIZE:-2GiB}"
[ -f "$WORK/host.ini" ] || "$LIFSIM" calibrate --file "$WORK/cal.bin" -o "$WORK/host.ini" \
	--engines io_uring --chunks 4KiB,16KiB,64KiB,256KiB,512KiB,1MiB,2MiB,4MiB --parallelism 1,2,4,8,16 \
	--seconds "${CAL_SECONDS:-0.2}" --passes "${CAL_PASSES:-1}" >"$out/calibrate.txt"
[ -f "$WORK/router.h5" ] || "$LIFSIM" -q synth "$model" -o "$WORK/router.h5" --tokens 64 --seed 1
for l in expert matrix cosel; do
	[ -f "$WORK/e-$l.lsw" ] || "$LIFSIM" -q layout "$model" --expert-layout "$l" \
		--router-trace "$WORK/router.h5" --scale "$SCALE" -o "$WORK/e-$l.lsw"
done
rm -rf "$WORK/val"
"$LIFSIM" -q validate "$LIFSIM_SRCDIR/experiments/moe-host.ini" -o "$WORK/val"
cp "$WORK/host.ini" "$WORK/val/validation.csv" "$WORK/val/summary.csv" "$out/"
awk -F, -v pts="$(($(wc -l <"$WORK/val/validation.csv") - 1))" '
	$2 == "all" && ($1 == "io_ms" || $1 == "io_ms_corr" || $1 == "mem_ms" || $1 == "total_ms" ||
			$1 == "total_ms_corr") {
		printf "moe-validate: %-13s median |err| %.3f, p90 %.3f (%d points; %s)\n", $1, $4, $5, $3,
			"load-dependent: see validation.csv drift"
	}' "$WORK/val/summary.csv" | tee "$out/errors.txt"
# the bias: mean signed error (predicted / measured - 1) over the points
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
	{ for (k = 1; k <= 5; k++) { v = $col[name[k]]; if (v == v + 0) { s[k] += v; n[k]++ } } }
	BEGIN { split("io_rel_err io_rel_err_corr mem_rel_err total_rel_err total_rel_err_corr", name, " ") }
	END { for (k = 1; k <= 5; k++) if (n[k]) printf "moe-validate: %-18s mean signed error %+.3f (%d points)\n",
		name[k], s[k] / n[k], n[k] }' "$WORK/val/validation.csv" | tee -a "$out/errors.txt"
