#!/usr/bin/env bash
# bench/gemv.sh: the GEMV kernels (issue 6 targets). Single thread and 2
# threads at the FFN shapes of models/llms (d_model 4096: 4096x16384 up,
# 16384x4096 down), all kernels interleaved in one run; prints the targets
# from the CSV. The machine may be shared: figures are medians of repeats,
# speedups are medians of back-to-back pairs.
set -euo pipefail
LIFSIM=${LIFSIM:-./lifsim}
OUT=${BENCH_OUT:-bench/out}
mkdir -p "$OUT"
csv="$OUT/gemv.csv"
"$LIFSIM" bench-gemv --csv "$csv" --bits 1,2,3,4 --threads-list 1,2 \
	--shapes 4096x16384,16384x4096 --repeats "${REPEATS:-7}" --group "${GROUP:-32}"

# targets: single thread, 4096x16384
awk -F, 'NR > 1 && $3 == 1 && $4 == 4096 && $5 == 16384 && $1 == "lut" {
		sp[$2] = $12; ms[$2] = $7
	}
	END {
		printf "target lut >= 3x dequant at 2 bits:   %.2fx  %s\n", sp[2], (sp[2] >= 3 ? "met" : "MISSED")
		printf "target lut >= 1.5x dequant at 4 bits: %.2fx  %s\n", sp[4], (sp[4] >= 1.5 ? "met" : "MISSED")
		printf "lut time by bits (1 thread, 4096x16384): 4: %.3f ms, 3: %.3f, 2: %.3f, 1: %.3f; 1-bit/4-bit = %.2f (proportional: 0.25)\n",
			ms[4], ms[3], ms[2], ms[1], ms[1] / ms[4]
	}' "$csv"
# 2 threads: fraction of the DRAM bandwidth bound (median; fastest repeat)
awk -F, 'NR > 1 && $3 == 2 && $1 != "dense" {
		printf "2 threads %5dx%-5d %-7s %d bits: %6.2f GB/s of weights = %.2f of %.1f GB/s (fastest: %.2f)\n",
			$4, $5, $1, $2, $9, $11, $10, $14
	}' "$csv"
