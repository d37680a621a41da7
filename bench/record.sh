#!/usr/bin/env bash
# bench/record.sh: `lifsim record` decode speed in tokens/s, and its ratio to
# the memory-bandwidth bound (weight bytes read per token / DRAM read
# bandwidth, the best of 7 passes of bench/membw.c measured right after each
# record run), for
#   - traces/tinylm (the project's trained model), when it is there;
#   - a random-weight OPT-125M-shaped checkpoint (fp16 on disk);
#   - a random-weight OPT-1.3B-shaped checkpoint (fp16 on disk, ~2.6 GB),
# written by tests/ref/ref.py to a temporary directory and deleted afterwards.
# Each figure is the median of REPEATS runs of a prompt of 8 tokens plus GEN
# greedily generated tokens; tokens/s is over the generated tokens only (the
# verb's own timing, excluding checkpoint loading).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${LIFSIM_SRCDIR:-$(dirname "$here")}
: "${LIFSIM:=./lifsim}"
REPEATS=${REPEATS:-5}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lifsim-bench-record.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p bench/out
out=bench/out/record.csv

cc -O3 -march=native -ffast-math -fopenmp "$here/membw.c" -o "$tmp/membw"
echo "1 2 3 4 5 6 7 8" >"$tmp/ids"

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# bench_model NAME DIR GEN [OPTS]: REPEATS records, each followed by a bandwidth
# measurement, so that each ratio compares runs made side by side (the
# machine is shared and its bandwidth drifts); figures are medians.
bench_model() {
	local name=$1 dir=$2 gen=$3 opts=${4:-} line rate bytes bw rows=""
	for ((i = 0; i < REPEATS; i++)); do
		line=$("$LIFSIM" record --model "$dir" --tokens-file "$tmp/ids" --generate "$gen" $opts \
			-o "$tmp/t.h5" | grep '^generation:')
		rate=$(echo "$line" | awk '{print $2}')
		bytes=$(echo "$line" | sed 's/.*(\([0-9]*\) weight bytes.*/\1/')
		bw=$("$tmp/membw" 1024)
		rows+="$rate $bytes $bw"$'\n'
	done
	printf '%s' "$rows" | awk -v n="$name" -v r="$REPEATS" -v g="$gen" -v out="$out" '
	function med(a, k,   i, j, t) {
		for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
		return (k % 2) ? a[(k+1)/2] : (a[k/2] + a[k/2+1]) / 2
	}
	{ k++; t[k] = $1; b = $2; bw[k] = $3; ratio[k] = $1 * $2 / $3 }
	END {
		mt = med(t, k); mb = med(bw, k); mr = med(ratio, k)
		printf "%-10s %8.2f tokens/s  (median of %d x %d tokens)  weights %.0f MB/token  " \
		       "DRAM read %.1f GB/s  bound %.2f tokens/s  ratio %.0f%% (median of per-run ratios)\n",
		       n, mt, r, g, b / 1e6, mb / 1e9, mb / b, 100 * mr
		printf "%s,%g,%.0f,%.0f,%g,%g\n", n, mt, b, mb, mb / b, mr >> out
	}'
}

echo "model,tokens_per_s,weight_bytes_per_token,dram_read_bytes_per_s,bound_tokens_per_s,ratio" >"$out"
if [ -f "$src/traces/tinylm/config.json" ]; then
	bench_model tinylm "$src/traces/tinylm" 64
fi
"$PY" "$src/tests/ref/ref.py" write "$tmp/opt-125m" --family opt --shape opt-125m --dtype f16
bench_model opt-125m "$tmp/opt-125m" 32
rm -rf "$tmp/opt-125m"
"$PY" "$src/tests/ref/ref.py" write "$tmp/opt-1.3b" --family opt --shape opt-1.3b --dtype f16
echo "opt-1.3b checkpoint: $(du -sh "$tmp/opt-1.3b" | cut -f1)"
bench_model opt-1.3b "$tmp/opt-1.3b" 16
# the same checkpoint kept in fp16 in memory: half the bytes per token
bench_model opt-1.3b-half "$tmp/opt-1.3b" 16 --half-weights
rm -rf "$tmp/opt-1.3b"
