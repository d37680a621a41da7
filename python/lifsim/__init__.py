"""lifsim: read lifsim's files from Python (numpy, h5py, pandas).

    import lifsim
    t = lifsim.read_trace("opt-6.7b.h5")    # an activation trace (traces/FORMAT.md)
    t.attrs["model"]                          # root attributes; strings are str
    t.layer(3)                                # bool [tokens, d_ffn]: who fired in layer 3
    t.token(0)                                # bool [layers, d_ffn]: token 0, every layer
    df = lifsim.read_sweep("results/x")       # a sweep's results (experiments/FORMAT.md)
    df = lifsim.read_sweep(["results/a", "results/b"])   # two sweeps, one DataFrame

Pure Python; lifsim's own C code is not needed to read its files.
"""
import json
import os

import numpy as np

__all__ = ["Trace", "read_trace", "read_sweep", "TRACE_SCHEMA"]

TRACE_SCHEMA = "lifsim-trace"
TRACE_VERSION = 1
PROVENANCE_COLUMNS = ("lifsim_version", "lifsim_commit", "date", "host", "cpu")


def _str(v):
    """An HDF5 attribute value as Python: bytes (older traces) decoded as
    UTF-8, numpy scalars as Python numbers, arrays left as arrays."""
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.bytes_):
        return bytes(v).decode("utf-8")
    if isinstance(v, np.generic):
        return v.item()
    return v


class Trace:
    """An activation trace held in memory bit-packed (1/8 of a byte per
    neuron); layer() and token() unpack what they are asked for.

    attrs     root attributes (schema, model, layers, d_ffn, tokens, ...)
    tokens    int32 [T] token ids
    n_tokens, layers, d_ffn
    """

    def __init__(self, path):
        import h5py

        self.path = path
        with h5py.File(path, "r") as f:
            self.attrs = {k: _str(v) for k, v in f.attrs.items()}
            if self.attrs.get("schema") != TRACE_SCHEMA:
                raise ValueError("%s: not a lifsim trace (schema %r)" % (path, self.attrs.get("schema")))
            if self.attrs.get("schema_version") != TRACE_VERSION:
                raise ValueError("%s: trace schema_version %r, this reader knows %d"
                                 % (path, self.attrs.get("schema_version"), TRACE_VERSION))
            self.n_tokens = int(self.attrs["tokens"])
            self.layers = int(self.attrs["layers"])
            self.d_ffn = int(self.attrs["d_ffn"])
            self.tokens = f["tokens"][: self.n_tokens]
            self._packed = f["active"][: self.n_tokens]
            self._band = f["band"][: self.n_tokens] if "band" in f else None
            self.datasets = {name: {k: _str(v) for k, v in f[name].attrs.items()} for name in f}

    def _unpack(self, packed):
        return np.unpackbits(packed, axis=-1, bitorder="little")[..., : self.d_ffn].astype(bool)

    def layer(self, layer):
        """bool [n_tokens, d_ffn]: the active neurons of every token in layer."""
        return self._unpack(self._packed[:, layer, :])

    def token(self, token):
        """bool [layers, d_ffn]: the active neurons of token in every layer."""
        return self._unpack(self._packed[token])

    @property
    def active(self):
        """bool [n_tokens, layers, d_ffn], all of it (a byte per neuron: large)."""
        return self._unpack(self._packed)

    def band_level(self, layer):
        """uint8 [n_tokens, d_ffn]: each neuron's closeness to the threshold,
        0 (far) to 3 (nearest), in layer; None when the trace has no band."""
        if self._band is None:
            return None
        rb = self._packed.shape[-1]
        planes = self._band[:, layer, :]
        lo = self._unpack(planes[:, :rb]).astype(np.uint8)
        hi = self._unpack(planes[:, rb:]).astype(np.uint8)
        return lo | (hi << 1)

    def ffn_inputs(self, layer):
        """float32 [n_tokens, d_model] in layer, read from the file; None when
        the trace has none."""
        import h5py

        with h5py.File(self.path, "r") as f:
            if "ffn_inputs" not in f:
                return None
            return f["ffn_inputs"][: self.n_tokens, layer, :]

    def __repr__(self):
        return "<lifsim.Trace %s: %s, %d tokens, %d layers, d_ffn %d>" % (
            self.path, self.attrs.get("model"), self.n_tokens, self.layers, self.d_ffn)


def read_trace(path):
    """Read a lifsim trace (traces/FORMAT.md): a Trace."""
    return Trace(path)


def _provenance(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def _read_one(d):
    import pandas as pd

    csv = os.path.join(d, "results.csv")
    df = pd.read_csv(csv, dtype={"point_id": str, "row": str}, keep_default_na=False,
                     na_values=[""])
    prov = _provenance(os.path.join(d, "provenance.json"))
    df.insert(0, "sweep", d)
    for key in PROVENANCE_COLUMNS + ("experiment",):
        df["experiment_file" if key == "experiment" else key] = prov.get(key)
    for inp in prov.get("inputs", []):
        col = inp["setting"] + ".sha256"
        if col not in df:
            df[col] = None
        if inp["setting"] in df:
            df.loc[df[inp["setting"]].astype(str) == inp["value"], col] = inp["sha256"]
    return df


def read_sweep(dirs):
    """Read one results directory, or a list of them, into a pandas DataFrame:
    every column of results.csv (the swept values, the results, every setting
    as section.key), plus `sweep` (the directory), the provenance
    (lifsim_version, lifsim_commit, date, host, cpu, experiment_file) and, for
    every input file a setting names, SETTING.sha256. Several directories are
    concatenated; a column one sweep lacks is NaN in its rows."""
    import pandas as pd

    if isinstance(dirs, (str, os.PathLike)):
        return _read_one(os.fspath(dirs))
    return pd.concat([_read_one(os.fspath(d)) for d in dirs], ignore_index=True, sort=False)
