#!/usr/bin/env bash
# render.sh SCRIPT.gp RESULTS_DIR OUT_DIR: render one figure script to
# OUT_DIR/NAME.png and OUT_DIR/NAME.pdf (pngcairo / pdfcairo), each written to
# a temporary name first and renamed, so a failed render leaves no figure.
# gnuplot's stdout (the "placeholder: ..." notes) is passed through.
set -euo pipefail
if [ $# -ne 3 ]; then
	echo "usage: plots/render.sh SCRIPT.gp RESULTS_DIR OUT_DIR" >&2
	exit 2
fi
script=$1 results=$2 out=$3
command -v gnuplot >/dev/null || { echo "render.sh: gnuplot is not installed (Debian: gnuplot-nox)" >&2; exit 1; }
[ -r "$script" ] || { echo "render.sh: $script: cannot read" >&2; exit 1; }
[ -d "$results" ] || { echo "render.sh: $results: no such results directory" >&2; exit 1; }
mkdir -p "$out"
name=$(basename "$script" .gp)
plots=$(cd "$(dirname "$script")" && pwd)
results=$(cd "$results" && pwd)
out=$(cd "$out" && pwd)
for fmt in png pdf; do
	tmp="$out/$name.tmp.$fmt"
	rm -f "$tmp"
	if ! (cd "$plots" && gnuplot -e "R='$results'; OUT='$out/$name.tmp.$fmt'; FMT='$fmt'" \
		-e "load 'common.gpi'" "$(basename "$script")"); then
		rm -f "$tmp"
		echo "render.sh: $script: gnuplot failed ($fmt)" >&2
		exit 1
	fi
	[ -s "$tmp" ] || { echo "render.sh: $script: gnuplot wrote nothing ($fmt)" >&2; exit 1; }
	mv -f "$tmp" "$out/$name.$fmt"
done
