#!/usr/bin/env bash
# Simulator benchmark: experiments/bench-sweep.ini (120 points: predictor x
# window x layout x parallelism) and `stats` over a 32-layer x 16384-neuron x
# 1000-token trace (OPT-6.7B shape), each beside the one-pass floor measured
# in the same run: `stats --one-pass` loads (decompresses) the trace's bits
# and band once and counts them, which any computation over the trace pays.
# Target: the sweep in at most 2 s on 2 threads.
#   BENCH_REPEATS   repeats, interleaved (default 3); medians are printed
#   BENCH_THREADS   threads (default: all cores)
#   LIFSIM_BASELINE another lifsim to time side by side (same runs, interleaved)
# Reports wall medians, points per second, peak RSS and the ratio to the floor.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
out=bench/out
mkdir -p "$out"
reps=${BENCH_REPEATS:-3}
threads=${BENCH_THREADS:-$(nproc)}
trace="$out/opt-1000.h5"
[ -f "$trace" ] || "$LIFSIM" -q synth "$LIFSIM_SRCDIR/models/llms/opt-6.7b.ini" --tokens 1000 --seed 1 -o "$trace"
export TRACE=$(cd "$(dirname "$trace")" && pwd)/$(basename "$trace")
exp="$LIFSIM_SRCDIR/experiments/bench-sweep.ini"
bins=("$LIFSIM")
[ -z "${LIFSIM_BASELINE:-}" ] || bins+=("$LIFSIM_BASELINE")
# time_run NAME CMD...: wall seconds and peak RSS (KiB) appended to $out/NAME.times
time_run() {
	local name=$1
	shift
	/usr/bin/time -f '%e %M' -o "$out/.t" "$@" >/dev/null
	cat "$out/.t" >>"$out/$name.times"
}
rm -f "$out"/*.times
for ((r = 0; r < reps; r++)); do
	time_run floor "$LIFSIM" --threads "$threads" -q stats "$trace" --one-pass
	for i in "${!bins[@]}"; do
		rm -rf "$out/bench-sweep$i"
		time_run "sweep$i" "${bins[$i]}" --threads "$threads" -q sweep "$exp" -o "$out/bench-sweep$i"
		time_run "stats$i" "${bins[$i]}" --threads "$threads" -q stats "$trace" -o "$out/stats$i.csv"
	done
done
median() { sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
col() { awk -v c="$2" '{print $c}' "$out/$1.times" | median; }
floor=$(col floor 1)
points=$(($(wc -l <"$out/bench-sweep0/results.csv") - 1))
echo "bench-sweep and stats, OPT-6.7B shape (32 x 16384) x 1000 tokens, $threads threads, medians of $reps interleaved runs"
echo "(the machine is shared: other work may be running; compare the columns of one run)"
printf '%-10s %-9s %8s %10s %9s %9s\n' binary what seconds points/s peak_MiB x_floor
printf '%-10s %-9s %8.2f %10s %9.0f %9s\n' - one-pass "$floor" - "$(echo "$(col floor 2) / 1024" | bc -l)" 1.00
echo "bench,binary,seconds_median,points_per_s,peak_kib,ratio_to_floor,repeats" >"$out/sweep.csv"
echo "one_pass,$LIFSIM,$floor,,$(col floor 2),1,$reps" >>"$out/sweep.csv"
for i in "${!bins[@]}"; do
	name=$([ "$i" = 0 ] && echo new || echo baseline)
	for what in sweep stats; do
		t=$(col "$what$i" 1)
		kib=$(col "$what$i" 2)
		pps=$([ "$what" = sweep ] && echo "$points / $t" | bc -l || echo 0)
		printf '%-10s %-9s %8.2f %10.1f %9.0f %9.2f\n' "$name" "$what" "$t" "$pps" \
			"$(echo "$kib / 1024" | bc -l)" "$(echo "$t / $floor" | bc -l)"
		echo "$what,${bins[$i]},$t,$pps,$kib,$(echo "$t / $floor" | bc -l),$reps" >>"$out/sweep.csv"
	done
done
if [ "${#bins[@]}" = 2 ]; then
	# the columns both have (a baseline from before a results format change has fewer)
	n=$(head -1 "$out/bench-sweep1/results.csv" | tr , '\n' | wc -l)
	cmp -s <(cut -d, -f1-"$n" "$out/bench-sweep0/results.csv") "$out/bench-sweep1/results.csv" &&
		echo "results.csv: the baseline's $n columns byte-identical" ||
		echo "results.csv: differs from the baseline"
fi
