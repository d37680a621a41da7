#!/usr/bin/env bash
# The 70B-class sweep: bench/sweep70b.ini (20 points: window x layout x
# parallelism, oracle predictor) over a Llama-2-70B-shaped trace of
# BENCH70B_TOKENS tokens (default 10,000), beside the one-pass floor (load
# the trace's bits once and count them) measured in the same run.
# Reports wall and CPU (user + system) medians, points per second and peak
# RSS (target: under 4 GB). The sweep reads the trace by blocks of tokens
# (sim_cache_new_stream, ARCHITECTURE.md "Data flow"), so its memory is the
# decisions' per-token rows plus a block (about 64 MiB of bits) and each
# layer's window, not the trace's bits (2.9 GB at 10,000 tokens).
#   BENCH70B_TOKENS, BENCH_REPEATS (default 1), BENCH_THREADS, LIFSIM_BASELINE as bench/sweep.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
out=bench/out
mkdir -p "$out"
tokens=${BENCH70B_TOKENS:-10000}
reps=${BENCH_REPEATS:-1}
threads=${BENCH_THREADS:-$(nproc)}
trace="$out/llama70b-$tokens.h5"
[ -f "$trace" ] || "$LIFSIM" -q synth "$LIFSIM_SRCDIR/models/llms/llama-2-70b.ini" --tokens "$tokens" \
	--seed 1 --no-magnitudes -o "$trace"
export TRACE=$(cd "$(dirname "$trace")" && pwd)/$(basename "$trace")
exp="$LIFSIM_SRCDIR/bench/sweep70b.ini"
bins=("$LIFSIM")
[ -z "${LIFSIM_BASELINE:-}" ] || bins+=("$LIFSIM_BASELINE")
rm -f "$out"/*.t70
for ((r = 0; r < reps; r++)); do
	/usr/bin/time -f '%e %M %U %S' -a -o "$out/floor.t70" "$LIFSIM" --threads "$threads" -q stats "$trace" --one-pass
	for i in "${!bins[@]}"; do
		rm -rf "$out/sweep70b$i"
		/usr/bin/time -f '%e %M %U %S' -a -o "$out/sweep$i.t70" \
			"${bins[$i]}" --threads "$threads" -q sweep "$exp" -o "$out/sweep70b$i" || true
	done
done
median() { sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
col() { grep -v '^Command' "$out/$1.t70" | awk -v c="$2" '{print c == 5 ? $3 + $4 : $c}' | median; }
floor=$(col floor 1)
echo "70B-class sweep, Llama-2-70B shape (80 x 28672) x $tokens tokens, $threads threads, medians of $reps runs"
echo "(the machine is shared: other work may be running; compare the columns of one run)"
printf '%-10s %-9s %8s %8s %10s %9s %9s\n' binary what seconds cpu_s points/s peak_MiB x_floor
printf '%-10s %-9s %8.2f %8.2f %10s %9.0f %9s\n' - one-pass "$floor" "$(col floor 5)" - \
	"$(echo "$(col floor 2) / 1024" | bc -l)" 1.00
for i in "${!bins[@]}"; do
	name=$([ "$i" = 0 ] && echo new || echo baseline)
	[ -f "$out/sweep70b$i/results.csv" ] || { echo "$name: the sweep failed"; continue; }
	points=$(($(wc -l <"$out/sweep70b$i/results.csv") - 1))
	t=$(col "sweep$i" 1)
	printf '%-10s %-9s %8.2f %8.2f %10.2f %9.0f %9.2f\n' "$name" sweep "$t" "$(col "sweep$i" 5)" \
		"$(echo "$points / $t" | bc -l)" \
		"$(echo "$(col "sweep$i" 2) / 1024" | bc -l)" "$(echo "$t / $floor" | bc -l)"
done
