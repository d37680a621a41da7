#!/usr/bin/env bash
# run.sh: every benchmark (make bench). Each script prints its own figures.
set -euo pipefail
cd "${LIFSIM_SRCDIR:-.}"
bash bench/sweep_overhead.sh
