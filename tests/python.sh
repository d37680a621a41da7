#!/usr/bin/env bash
# make check: the Python reader (python/lifsim) on a trace made by `lifsim
# synth` and on two small sweeps (tests/test_python.py checks them).
set -eu
src=${LIFSIM_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
lifsim=${LIFSIM:-$src/lifsim}
py=""
for p in python3 /usr/bin/python3; do
	if command -v "$p" >/dev/null && "$p" -c 'import h5py, numpy, pandas' 2>/dev/null; then
		py=$p
		break
	fi
done
if [ -z "$py" ]; then
	echo "python.sh: no python3 with h5py, numpy and pandas (apt-get install python3-h5py python3-pandas)" >&2
	exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$lifsim" -q synth "$src/models/llms/opt-6.7b.ini" --tokens 12 --seed 3 -o "$work/t.h5"
cat >"$work/a.ini" <<EOT
[experiment]
model = $src/models/llms/opt-6.7b.ini
device = $src/models/devices/m1max.ini
[synth]
tokens = 40
[sim]
window = 0, 4
EOT
cat >"$work/b.ini" <<EOT
[experiment]
model = $src/models/llms/opt-6.7b.ini
device = $src/models/devices/m1max.ini
[synth]
tokens = 40
[sim]
layout = separate, rowcol
EOT
"$lifsim" -q --threads 2 sweep "$work/a.ini" -o "$work/a"
"$lifsim" -q --threads 2 sweep "$work/b.ini" -o "$work/b"
PYTHONPATH="$src/python${PYTHONPATH:+:$PYTHONPATH}" "$py" "$src/tests/test_python.py" "$work"
