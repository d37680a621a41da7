# bench/lib.sh: helpers for benchmark scripts (source it).
# bench_median N CMD...: run CMD N times, print the median wall time in seconds.
bench_median() {
	local n=$1
	shift
	local times=()
	for ((i = 0; i < n; i++)); do
		local t0 t1
		t0=$(date +%s.%N)
		"$@" >/dev/null
		t1=$(date +%s.%N)
		times+=("$(echo "$t1 - $t0" | bc -l)")
	done
	printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}
