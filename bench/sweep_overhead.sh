#!/usr/bin/env bash
# sweep_overhead: the sweep runner's own cost per point (expansion, checks,
# config.resolved.ini, parallel dispatch, results.csv with atomic rewrites),
# measured with the `echo` kind, which computes nothing. Median of 5 runs.
set -euo pipefail
LIFSIM=${LIFSIM:-./lifsim}
OUT=${BENCH_OUT:-bench/out}/sweep_overhead
POINTS_A=20 POINTS_B=25 # 500 points
REPEATS=5
mkdir -p "$OUT"

a=$(seq -s, 1 $POINTS_A)
b=$(seq -s, 1 $POINTS_B | sed 's/[0-9]*/b&/g')
cat > "$OUT/exp.ini" <<INI
[experiment]
kind = echo
[trace]
path = traces/opt-6.7b.h5
tokens = 1000
[sim]
window = $a
bundle = $b
layout = rowcol
dram_budget = 6.5GB
[device]
profile = models/devices/m1max.ini
parallelism = 32
INI
points=$((POINTS_A * POINTS_B))

median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

run() { # threads -> seconds for one fresh run
	local d="$OUT/run.$1"
	rm -rf "$d"
	local t0 t1
	t0=$(date +%s.%N)
	"$LIFSIM" --quiet --threads "$1" sweep "$OUT/exp.ini" -o "$d"
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}'
}

resume() { # seconds for a re-run that keeps every point
	local t0 t1
	t0=$(date +%s.%N)
	"$LIFSIM" --quiet --threads 2 sweep "$OUT/exp.ini" -o "$OUT/run.2"
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}'
}

for threads in 1 2; do
	s=$(for _ in $(seq $REPEATS); do run "$threads"; done | median)
	printf 'sweep_overhead: echo kind, %d points, --threads %d: median %.3f s (%.1f us/point, %d repeats)\n' \
		"$points" "$threads" "$s" "$(awk -v s="$s" -v n="$points" 'BEGIN {print s * 1e6 / n}')" "$REPEATS"
done
s=$(for _ in $(seq $REPEATS); do resume; done | median)
printf 'sweep_overhead: resume with all %d points kept: median %.3f s\n' "$points" "$s"
