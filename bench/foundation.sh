#!/usr/bin/env bash
# Foundation benchmark: synth and stats on a 32-layer x 16384-neuron x 1000-token
# trace (OPT-6.7B shape). Target: under 2 s each on a 2-core machine.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
out=bench/out
reps=${BENCH_REPEATS:-5}
model="$LIFSIM_SRCDIR/models/llms/opt-6.7b.ini"
trace="$out/opt-1000.h5"
echo "synth+stats, OPT-6.7B shape (32 x 16384) x 1000 tokens, median of $reps runs, $(nproc) threads"
s1=$(bench_median "$reps" "$LIFSIM" -q synth "$model" --tokens 1000 --seed 1 -o "$trace")
s2=$(bench_median "$reps" "$LIFSIM" -q synth "$model" --tokens 1000 --seed 1 --no-magnitudes -o "$out/opt-1000-nb.h5")
st=$(bench_median "$reps" "$LIFSIM" -q stats "$trace" -o "$out/opt-1000.stats.csv")
st0=$(bench_median "$reps" "$LIFSIM" -q stats "$trace" --coact-samples 0)
printf 'synth (with band):           %6.2f s\n' "$s1"
printf 'synth (no band):             %6.2f s\n' "$s2"
printf 'stats (with co-activation):  %6.2f s\n' "$st"
printf 'stats (no co-activation):    %6.2f s\n' "$st0"
printf 'trace size: %s bytes\n' "$(stat -c %s "$trace")"
{
	echo "bench,seconds_median,repeats"
	echo "synth_band,$s1,$reps"
	echo "synth_noband,$s2,$reps"
	echo "stats,$st,$reps"
	echo "stats_nocoact,$st0,$reps"
} >"$out/foundation.csv"
