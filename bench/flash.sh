#!/usr/bin/env bash
# bench/flash.sh: evaluation speed of the flash model, the simulator's hottest
# call (flash_time_ns). For each form (tabulated m1max, parametric
# m1max-parametric) and each extent mix, the median extents/s of 5 runs of
# `lifsim device PROFILE --bench 4000000`.
set -euo pipefail
LIFSIM=${LIFSIM:-./lifsim}
SRC=${LIFSIM_SRCDIR:-.}
out=bench/out
mkdir -p "$out"
echo "flash model evaluation (median of 5 runs, 4M extents each):"
printf "  %-18s %-10s %-9s %s\n" profile model mix extents_per_s
for p in m1max m1max-parametric; do
	for i in 1 2 3 4 5; do
		"$LIFSIM" device "$SRC/models/devices/$p.ini" --bench 4000000 | tail -n +2
	done >"$out/flash-$p.csv"
	for mix in bundles distinct; do
		awk -F, -v m="$mix" '$3 == m { print $6, $1, $2 }' "$out/flash-$p.csv" | sort -g |
			awk 'NR == 3 { printf "  %-18s %-10s %-9s %.3g\n", $2, $3, "'"$mix"'", $1 }'
	done
done
