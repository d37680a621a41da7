#!/usr/bin/env bash
# Simulator benchmark: experiments/bench-sweep.ini (120 points: predictor x
# window x layout x parallelism) over a 32-layer x 16384-neuron x 1000-token
# trace, on all cores. Target: the whole sweep in under 30 s on 2 cores.
# Reports the median wall time of the repeats, points per second and
# neuron-events (token x layer x neuron decisions) per second.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
out=bench/out
reps=${BENCH_REPEATS:-3}
trace="$out/opt-1000.h5"
[ -f "$trace" ] || "$LIFSIM" -q synth "$LIFSIM_SRCDIR/models/llms/opt-6.7b.ini" --tokens 1000 --seed 1 -o "$trace"
export TRACE=$(cd "$(dirname "$trace")" && pwd)/$(basename "$trace")
exp="$LIFSIM_SRCDIR/experiments/bench-sweep.ini"
run_sweep() { rm -rf "$out/bench-sweep"; "$LIFSIM" -q sweep "$exp" -o "$out/bench-sweep"; }
t=$(bench_median "$reps" run_sweep)
points=$(($(wc -l <"$out/bench-sweep/results.csv") - 1))
events=$((points * 1000 * 32 * 16384))
printf 'sweep: %d points in %.2f s (median of %d, %d threads): %.1f points/s, %.3g neuron-events/s\n' \
	"$points" "$t" "$reps" "$(nproc)" "$(echo "$points / $t" | bc -l)" "$(echo "$events / $t" | bc -l)"
echo "bench,points,seconds_median,points_per_s,neuron_events_per_s" >"$out/sweep.csv"
echo "sweep,$points,$t,$(echo "$points / $t" | bc -l),$(echo "$events / $t" | bc -l)" >>"$out/sweep.csv"
