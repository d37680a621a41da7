"""tests/python.sh runs this on WORK holding t.h5 (lifsim synth, 12 tokens of
OPT-6.7B, seed 3) and sweeps a/ (window 0, 4) and b/ (layout separate, rowcol)."""
import os
import sys

import numpy as np

import lifsim

work = sys.argv[1]
failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what)
    if not cond:
        failures.append(what)


# ---- read_trace ----
t = lifsim.read_trace(os.path.join(work, "t.h5"))
check(isinstance(t.attrs["model"], str) and t.attrs["model"] == "opt-6.7b", "model attribute is a str")
check(isinstance(t.attrs["generator"], str), "generator attribute is a str")
check((t.n_tokens, t.layers, t.d_ffn) == (12, 32, 16384), "shape from the attributes")
lay = t.layer(5)
check(lay.dtype == bool and lay.shape == (12, 16384), "layer(5) is bool [tokens, d_ffn]")
tok = t.token(7)
check(tok.dtype == bool and tok.shape == (32, 16384), "token(7) is bool [layers, d_ffn]")
check(np.array_equal(t.active[7, 5], lay[7]) and np.array_equal(tok[5], lay[7]),
      "layer, token and active agree")
frac = lay.mean()
check(0.005 < frac < 0.2, "sparsity near OPT-6.7B's (active fraction %.3f)" % frac)
# bit order: bit i % 8 of byte i / 8 (LSB first) is neuron i
packed = t._packed[7, 5]
i = int(np.flatnonzero(lay[7])[0])
check((packed[i // 8] >> (i % 8)) & 1 == 1, "neuron %d's bit is LSB-first" % i)
check("description" in t.datasets["active"] and "encoding" in t.datasets["active"],
      "the active dataset says what it holds")
check(isinstance(t.datasets["active"]["description"], str), "dataset attributes are str")
lv = t.band_level(5)
check(lv is not None and lv.shape == (12, 16384) and lv.max() <= 3, "band levels 0..3")

# ---- read_sweep ----
a = lifsim.read_sweep(os.path.join(work, "a"))
check(len(a) == 2 and list(a["sim.window"]) == [0, 4], "sweep a: two points, sim.window")
check(set(a["sim.layout"]) == {"rowcol"}, "sweep a: the default layout is a column")
for c in ("lifsim_version", "lifsim_commit", "date", "host", "cpu"):
    check(c in a and a[c].notna().all(), "provenance column %s" % c)
check(a["experiment.model.sha256"].str.len().eq(64).all(), "the model's sha256 per row")
check(a["experiment.device.sha256"].str.len().eq(64).all(), "the device's sha256 per row")
check(a["point_id"].str.len().eq(16).all(), "point_id stays a 16-digit string")
both = lifsim.read_sweep([os.path.join(work, "a"), os.path.join(work, "b")])
check(len(both) == 4, "two sweeps, one DataFrame of 4 rows")
check(list(both["sim.layout"]) == ["rowcol", "rowcol", "separate", "rowcol"],
      "sim.layout kept for every row of both sweeps")
check(list(both["sim.window"]) == [0, 4, 5, 5], "sim.window (default 5 in b) kept for every row")
check(both["io_ms"].notna().all() and (both["io_ms"] > 0).all(), "results present")
check(list(both["sweep"].map(os.path.basename)) == ["a", "a", "b", "b"], "sweep column")

if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
print("all checks passed")
