#!/usr/bin/env bash
# MoE simulator benchmark: experiments/bench-moe.ini (48 points: cache policy
# x expert cache x expert layout) over a 1000-token router trace of a
# 120B-class model (gpt-oss-120b: 36 MoE layers, top-4 of 128 experts), on all
# cores. Reports the median wall time of the repeats, points per second and
# expert selections (token x layer x top-k) simulated per second.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
out=bench/out
reps=${BENCH_REPEATS:-3}
trace="$out/gpt-oss-120b-1000.h5"
mkdir -p "$out"
[ -f "$trace" ] || "$LIFSIM" -q synth "$LIFSIM_SRCDIR/models/llms/gpt-oss-120b.ini" --tokens 1000 --seed 1 -o "$trace"
export MOE_TRACE=$(cd "$(dirname "$trace")" && pwd)/$(basename "$trace")
exp="$LIFSIM_SRCDIR/experiments/bench-moe.ini"
run_sweep() { rm -rf "$out/bench-moe"; "$LIFSIM" -q sweep "$exp" -o "$out/bench-moe"; }
t=$(bench_median "$reps" run_sweep)
points=$(($(wc -l <"$out/bench-moe/results.csv") - 1))
sel=$((points * 1000 * 36 * 4))
printf 'moe: %d points in %.2f s (median of %d, %d threads): %.1f points/s, %.3g expert selections/s\n' \
	"$points" "$t" "$reps" "$(nproc)" "$(echo "$points / $t" | bc -l)" "$(echo "$sel / $t" | bc -l)"
echo "bench,points,seconds_median,points_per_s,selections_per_s" >"$out/moe.csv"
echo "moe,$points,$t,$(echo "$points / $t" | bc -l),$(echo "$sel / $t" | bc -l)" >>"$out/moe.csv"
