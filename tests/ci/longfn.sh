#!/usr/bin/env bash
# Functions longer than LIMIT lines (default 60) in the project's C sources,
# longest first: "LINES FILE:LINE NAME". A function is counted from its
# opening brace in column 0 to its closing brace in column 0 (the style of
# docs/STYLE.md). Exits 0; a report, not a gate:
#   bash tests/ci/longfn.sh [LIMIT]
set -euo pipefail
cd "$(dirname "$0")/../.."
limit=${1:-60}
files=$(mktemp)
trap 'rm -f "$files"' EXIT
git ls-files '*.c' 2>/dev/null | grep -v '^tests/' >"$files" ||
	find sim models traces -name '*.c' >"$files"
xargs awk -v LIMIT="$limit" '
/^[A-Za-z_].*\(/ && !/;[ \t]*$/ { sig = $0; sigline = FNR }
/^\{/ { start = FNR; name = sig; sub(/\(.*/, "", name); n = split(name, w, /[ \t*]+/); name = w[n] }
/^\}/ && start { len = FNR - start + 1; if (len > LIMIT) printf "%d %s:%d %s\n", len, FILENAME, sigline, name; start = 0 }
' <"$files" | sort -rn
