#!/usr/bin/env bash
# make bench: run every benchmark script; outputs go to bench/out.
set -euo pipefail
here=$(dirname "$0")
bash "$here/gemv.sh"
