#!/usr/bin/env bash
# bench/gemv.sh: the GEMV kernels (issue 6 targets). 1 and 2 threads at the
# FFN shapes of models/llms (d_model 4096: 4096x16384 and 16384x4096), group
# 32, all kernels interleaved in one run; then group 64 at the target shape.
# Prints the targets from the CSVs. The machine may be shared: figures are
# medians of repeats, speedups are medians of back-to-back pairs, and the
# *_best / ms_min columns show the fastest repeat.
set -euo pipefail
LIFSIM=${LIFSIM:-./lifsim}
OUT=${BENCH_OUT:-bench/out}
REPEATS=${REPEATS:-7}
mkdir -p "$OUT"

targets() { # csv label
	awk -F, -v label="$2" 'NR > 1 && $3 == 1 && $4 == 4096 && $5 == 16384 {
			if ($1 == "lut") { sp[$2] = $12; ms[$2] = $7; lmin[$2] = $13 }
			if ($1 == "dequant") dmin[$2] = $13
		}
		END {
			printf "%s: lut speedup over dequant at 2 bits: %.2fx (target >= 3: %s); fastest repeats: %.2fx\n",
				label, sp[2], (sp[2] >= 3 ? "met" : "MISSED"), dmin[2] / lmin[2]
			printf "%s: lut speedup over dequant at 4 bits: %.2fx (target >= 1.5: %s); fastest repeats: %.2fx\n",
				label, sp[4], (sp[4] >= 1.5 ? "met" : "MISSED"), dmin[4] / lmin[4]
			printf "%s: lut ms by bits 4/3/2/1: %.3f %.3f %.3f %.3f; 1-bit/4-bit %.2f (proportional 0.25)\n",
				label, ms[4], ms[3], ms[2], ms[1], ms[1] / ms[4]
		}' "$1"
}

"$LIFSIM" bench-gemv --csv "$OUT/gemv.csv" --bits 1,2,3,4 --threads-list 1,2 \
	--shapes 4096x16384,16384x4096 --repeats "$REPEATS" --group 32
"$LIFSIM" bench-gemv --csv "$OUT/gemv-g64.csv" --bits 1,2,3,4 --threads-list 1 \
	--shapes 4096x16384 --repeats "$REPEATS" --group 64

# in-cache compute: no flush, one bit width at a time so both copies fit in L3
for b in 1 2 3 4; do
	"$LIFSIM" bench-gemv --quiet --csv "$OUT/gemv-warm-$b.csv" --warm --kernels dequant,lut \
		--bits $b --threads-list 1 --shapes 1024x16384 --repeats 21 --probe-mib 64
done

echo "---- targets (1 thread, 4096x16384) ----"
targets "$OUT/gemv.csv" "group 32"
targets "$OUT/gemv-g64.csv" "group 64"
echo "---- 2 threads: weight bytes/s over the DRAM bound (median; fastest) ----"
awk -F, 'NR > 1 && $3 == 2 && $1 != "dense" {
		printf "%5dx%-5d %-7s %d bits: %6.2f GB/s = %.2f of %.1f GB/s (fastest: %.2f)\n",
			$4, $5, $1, $2, $9, $11, $10, $14
	}' "$OUT/gemv.csv"
echo "---- in cache (1 thread, 1024x16384, no flush): compute alone ----"
for b in 1 2 3 4; do
	awk -F, 'NR > 1 && $1 == "lut" {
			printf "%d bits: lut %.3f ms, %.1f GB/s of weights; speedup over dequant %.2fx\n", $2, $7, $9, $12
		}' "$OUT/gemv-warm-$b.csv"
done
