#!/usr/bin/env bash
# The small trained model end to end: record a 256-token prompt + 256
# generated tokens (traces/tinylm), its statistics, low-rank predictors of
# several ranks trained on the first 75% of the tokens and evaluated on the
# rest, and a sweep comparing oracle, modeled and trained predictors.
#   experiments/tinylm.sh OUT_DIR     (LIFSIM: the binary, default ./lifsim)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: experiments/tinylm.sh OUT_DIR}
lifsim=${LIFSIM:-./lifsim}
mkdir -p "$out"
out=$(cd "$out" && pwd)
# the prompt: 256 bytes of held-out text the model was not trained on
head -c 2000 "$src/traces/tinylm/heldout.txt" | tail -c 1000 | head -c 256 >"$out/prompt.txt"
"$lifsim" -q record --model "$src/traces/tinylm" --prompt-file "$out/prompt.txt" --generate 256 \
	--inputs --magnitudes -o "$out/tinylm.h5"
"$lifsim" stats "$out/tinylm.h5" -o "$out/tinylm.stats.csv"
for r in 4 8 16 32 64; do
	"$lifsim" -q predictor train "$out/tinylm.h5" --rank "$r" --holdout 0.25 -o "$out/rank-$r.h5"
	"$lifsim" -q predictor eval "$out/rank-$r.h5" "$out/tinylm.h5" -o "$out/eval-rank-$r.csv"
done
TRACE="$out/tinylm.h5" PRED_DIR="$out" "$lifsim" sweep "$src/experiments/tinylm-predictors.ini" \
	-o "$out/predictors"
