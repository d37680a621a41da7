#!/usr/bin/env bash
# make bench: bench/foundation.sh first, then every other benchmark script in
# bench/. Each prints its own figures (medians of repeats) and may write CSV
# under bench/out/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${LIFSIM:=./lifsim}"
export LIFSIM LIFSIM_SRCDIR="${LIFSIM_SRCDIR:-$(dirname "$here")}"
mkdir -p bench/out
for b in "$here"/foundation.sh "$here"/*.sh; do
	case "$(basename "$b")" in run.sh | lib.sh) continue ;; esac
	[ "$b" != "$here/foundation.sh" ] || [ -z "${done_foundation:-}" ] || continue
	done_foundation=1
	echo "== $(basename "$b" .sh)"
	bash "$b"
done
