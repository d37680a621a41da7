"""Shared by traces/tinylm/train.py and traces/tinymoe/train.py: the training
text and the safetensors files they write and check (numpy only)."""
import gzip
import json
import os
import struct

import numpy as np


def load_text(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    return np.frombuffer(data, dtype=np.uint8)


def split(data, holdout):
    cut = int(len(data) * (1 - holdout))
    return data[:cut], data[cut:]


DTYPES = {"F16": np.float16, "F32": np.float32}


def write_safetensors(path, tensors):
    """tensors: dict name -> numpy array. 8-byte LE header length, JSON header, raw data."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = np.ascontiguousarray(tensors[name])
        code = {np.dtype(np.float16): "F16", np.dtype(np.float32): "F32"}[t.dtype]
        b = t.astype(t.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_safetensors(path, dtype=np.float32):
    """name -> array of dtype; ValueError naming the file and tensor on any defect."""
    with open(path, "rb") as f:
        raw = f.read()
    name = os.path.basename(path)
    if len(raw) < 8:
        raise ValueError(f"{name}: truncated (no header length)")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise ValueError(f"{name}: truncated (header of {n} bytes, file of {len(raw)})")
    try:
        header = json.loads(raw[8:8 + n])
    except ValueError:
        raise ValueError(f"{name}: malformed JSON header")
    out = {}
    for tname, d in header.items():
        if tname == "__metadata__":
            continue
        if d.get("dtype") not in DTYPES:
            raise ValueError(f"{name}: tensor {tname} has unsupported dtype {d.get('dtype')}")
        a, b = d["data_offsets"]
        want = int(np.prod(d["shape"])) * np.dtype(DTYPES[d["dtype"]]).itemsize
        if not 0 <= a <= b or b - a != want or 8 + n + b > len(raw):
            raise ValueError(f"{name}: tensor {tname}: data offsets [{a}, {b}) do not fit its "
                             f"shape or the file (truncated?)")
        arr = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.dtype(DTYPES[d["dtype"]]).newbyteorder("<"))
        out[tname] = arr.reshape(d["shape"]).astype(dtype)
    return out

