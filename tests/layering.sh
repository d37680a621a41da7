#!/usr/bin/env bash
# The layering check (make check): every #include "..." in the project's C
# sources points down the layers of ARCHITECTURE.md, never up or sideways.
# A folder may include its own headers and those of any folder of a lower
# rank; folders of one rank are independent of each other.
set -u
src=${LIFSIM_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$src" || exit 1
rank() {
	case $1 in
	sim/base) echo 0 ;;
	models/gemv | traces/record) echo 1 ;;
	models) echo 2 ;;
	traces) echo 3 ;;
	traces/predictor) echo 4 ;;
	sim/core) echo 5 ;;
	sim/real) echo 6 ;;
	sim/real/engines) echo 7 ;;
	sim/sweep) echo 8 ;;
	sim/cli) echo 9 ;;
	sim) echo 10 ;;
	*) echo -1 ;;
	esac
}
bad=0 n=0
for f in $(find sim models traces -name '*.[ch]' | sort); do
	from=$(dirname "$f")
	rf=$(rank "$from")
	if [ "$rf" -lt 0 ]; then
		echo "layering: $f: folder $from has no layer (add it to tests/layering.sh and ARCHITECTURE.md)"
		bad=$((bad + 1))
		continue
	fi
	while IFS= read -r inc; do
		n=$((n + 1))
		to=$(dirname "$inc")
		[ "$to" = "$from" ] && continue
		rt=$(rank "$to")
		if [ "$rt" -lt 0 ] || [ "$rt" -ge "$rf" ]; then
			echo "layering: $f includes $inc: $to (layer $rt) is not below $from (layer $rf)"
			bad=$((bad + 1))
		fi
	done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
done
if [ $bad -gt 0 ]; then
	echo "layering: $bad include(s) point up or sideways"
	exit 1
fi
echo "layering: $n includes, all point down the layers"
