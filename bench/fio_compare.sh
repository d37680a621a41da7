#!/usr/bin/env bash
# bench/fio_compare.sh: lifsim's io engines beside fio at the same chunk size,
# parallelism and O_DIRECT, on one file of real (random) data.
#
# The host's disk is shared and drifts 2-4x from minute to minute, so every
# configuration runs fio and lifsim interleaved (fio psync, lifsim psync,
# fio io_uring, lifsim io_uring), REPEATS times, SECONDS each, and the table
# gives medians and the ratio of medians. psync: fio numjobs=N threads at
# depth 1 vs lifsim's pool of N pread threads; io_uring: fio iodepth=N vs
# lifsim's ring of depth N. Random reads over the whole file.
#   env: REPEATS (5), SECONDS (1), SIZE (1GiB), CONFIGS ("4KiB:1 4KiB:32 64KiB:8 1MiB:8"),
#        DIR (a temporary directory; the file is removed at exit)
set -euo pipefail
: "${LIFSIM:=./lifsim}"
REPEATS=${REPEATS:-5}
SECS=${SECONDS_PER_RUN:-1}
SIZE=${SIZE:-1GiB}
CONFIGS=${CONFIGS:-"4KiB:1 4KiB:32 64KiB:8 1MiB:8"}
command -v fio >/dev/null || { echo "fio_compare: fio is not installed (apt-get install fio)" >&2; exit 1; }
dir=$(mktemp -d "${DIR:-${TMPDIR:-/tmp}}/lifsim-fio.XXXXXX")
trap 'rm -rf "$dir"' EXIT
file=$dir/data.bin
"$LIFSIM" calibrate --make-file "$file" --size "$SIZE"

bytes() { case $1 in *KiB) echo $((${1%KiB} * 1024)) ;; *MiB) echo $((${1%MiB} * 1048576)) ;; *) echo "$1" ;; esac; }

fio_mib() { # engine bs par -> MiB/s
	local eng=$1 bs=$2 par=$3 args
	if [ "$eng" = psync ]; then args="--ioengine=psync --numjobs=$par --iodepth=1 --thread"
	else args="--ioengine=io_uring --numjobs=1 --iodepth=$par"; fi
	# shellcheck disable=SC2086
	fio --name=cmp --filename="$file" --rw=randread --bs="$bs" --direct=1 $args \
		--time_based --runtime="$SECS" --group_reporting --minimal --randrepeat=0 2>/dev/null |
		awk -F';' '{printf "%.1f\n", $7 / 1024}'
}

lifsim_mib() { # engine bs par -> MiB/s; --arena 0: reads land in reused buffers, as fio's do
	"$LIFSIM" -q calibrate --file "$file" -o "$dir/l.ini" --no-fit --engines "$1" \
		--chunks "$2" --parallelism "$3" --seconds "$SECS" --seed "$RANDOM" --arena 0
	awk -F, 'NR == 2 {printf "%.1f\n", $4}' "$dir/l.raw.csv"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "engine,chunk,parallelism,fio_mib_per_s,lifsim_mib_per_s,lifsim_over_fio,repeats"
for cfg in $CONFIGS; do
	bs=${cfg%%:*} par=${cfg##*:} b=$(bytes "${cfg%%:*}")
	declare -A runs=()
	for ((r = 0; r < REPEATS; r++)); do
		for eng in psync io_uring; do
			runs[fio_$eng]+="$(fio_mib "$eng" "$b" "$par") "
			runs[lifsim_$eng]+="$(lifsim_mib "$eng" "$bs" "$par") "
		done
	done
	for eng in psync io_uring; do
		f=$(tr ' ' '\n' <<<"${runs[fio_$eng]}" | grep . | median)
		l=$(tr ' ' '\n' <<<"${runs[lifsim_$eng]}" | grep . | median)
		echo "$eng,$bs,$par,$f,$l,$(echo "scale=3; $l / $f" | bc -l),$REPEATS"
	done
	unset runs
done
