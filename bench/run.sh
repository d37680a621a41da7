#!/usr/bin/env bash
# bench/run.sh: every benchmark, run by `make bench` (LIFSIM and LIFSIM_SRCDIR set).
set -euo pipefail
SRC=${LIFSIM_SRCDIR:-.}
bash "$SRC/bench/flash.sh"
