#!/usr/bin/env bash
# make bench: every benchmark script in bench/, in order. Each prints its own
# figures (medians of repeats) and may write CSV under bench/out/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${LIFSIM:=./lifsim}"
export LIFSIM LIFSIM_SRCDIR="${LIFSIM_SRCDIR:-$(dirname "$here")}"
mkdir -p bench/out
for b in "$here"/foundation.sh "$here"/[a-eg-z]*.sh; do
	[ -f "$b" ] || continue
	[ "$(basename "$b")" = run.sh ] && continue
	[ "$(basename "$b")" = lib.sh ] && continue
	echo "== $(basename "$b" .sh)"
	bash "$b"
done
