#!/usr/bin/env bash
# bench/batch.sh: small batches of reads measured against the flash model's
# cost of them (bench/batchbench.c; issue 17's io error of MoE points).
#   bash bench/batch.sh FILE PROFILE [PAR] [REPS]
# FILE: a file of at least 1024 x 1.5 MiB (e.g. `lifsim calibrate
# --make-file`); PROFILE: a device profile from `lifsim calibrate` on the
# same disk. Per size (1.5 MiB: one OLMoE expert at moe-host.ini's scale;
# 512 KiB: one matrix) and per n in 1 2 4 8 16 32 64: REPS (31) batches of n
# reads through io_uring opened PAR (8) deep. The program is compiled (from
# the build tree's liblifsim.a, run from the build directory) to
# ${BIN:-bench/out/batchbench} when missing, so that a quiet measurement
# window (one that pauses other jobs) need not build.
#   env: BIN, ENGINE (io_uring), SIZES ("1572864 524288"), NS ("1 2 4 8 16 32 64")
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
file=${1:?usage: bench/batch.sh FILE PROFILE [PAR] [REPS]}
profile=${2:?usage: bench/batch.sh FILE PROFILE [PAR] [REPS]}
par=${3:-8}
reps=${4:-31}
bin=${BIN:-bench/out/batchbench}
if [ ! -x "$bin" ]; then
	mkdir -p "$(dirname "$bin")"
	libs=$(make -s --no-print-directory -f Makefile --eval 'print-libs: ; @echo $(LIFSIM_LIBS)' print-libs)
	cc -O2 -I"$src" -I. "$src/bench/batchbench.c" liblifsim.a $libs -lm -o "$bin"
fi
[ "${BUILD_ONLY:-0}" = 1 ] && exit 0
first=1
for size in ${SIZES:-1572864 524288}; do
	# shellcheck disable=SC2086
	"$bin" "$file" "$profile" "${ENGINE:-io_uring}" "$par" "$size" "$reps" 1 ${NS:-1 2 4 8 16 32 64} |
		if [ $first = 1 ]; then cat; else tail -n +2; fi
	first=0
done
