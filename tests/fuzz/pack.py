#!/usr/bin/env python3
"""Pack files into one fuzz input as tests/fuzz/fuzz_common.h's fuzz_dir reads
it: per file, a 1-byte name length, the name, a 4-byte little-endian data
length, the data.

  pack.py OUT [--flags N] FILE[=NAME]...   (NAME: the name inside; default
                                            the file's base name)
  pack.py --unpack [--flags] IN DIR        the files of IN into DIR, named
                                            as fuzz_dir names them
--flags N writes one leading byte N first (fuzz_checkpoint's flags byte);
with --unpack, --flags skips it and prints it.
"""
import os
import struct
import sys


def unpack(args):
    flags = args[:1] == ["--flags"]
    args = args[flags:]
    if len(args) != 2:
        sys.exit(__doc__)
    data, out = open(args[0], "rb").read(), args[1]
    os.makedirs(out, exist_ok=True)
    at = 0
    if flags and data:
        print(data[0])
        at = 1
    for _ in range(16):  # FUZZ_DIR_MAX
        if at >= len(data) or not data[at]:
            break
        n = min(data[at], len(data) - at - 1)
        raw = data[at + 1:at + 1 + n]
        at += 1 + n
        name = "".join(chr(c) if chr(c).isascii() and (chr(c).isalnum() or chr(c) in "._-") else "_"
                       for c in raw)
        name = "_" if name in ("", ".", "..") else name
        length = int.from_bytes(data[at:at + 4], "little")
        at = min(at + 4, len(data))
        length = min(length, len(data) - at)
        with open(os.path.join(out, name), "wb") as f:
            f.write(data[at:at + length])
        at += length


def main():
    args = sys.argv[1:]
    if args[:1] == ["--unpack"]:
        return unpack(args[1:])
    if not args:
        sys.exit(__doc__)
    out, args = args[0], args[1:]
    blob = b""
    if args[:1] == ["--flags"]:
        blob += bytes([int(args[1])])
        args = args[2:]
    for a in args:
        path, _, name = a.partition("=")
        name = (name or os.path.basename(path)).encode()
        data = open(path, "rb").read()
        blob += bytes([len(name)]) + name + struct.pack("<I", len(data)) + data
    open(out, "wb").write(blob)


if __name__ == "__main__":
    main()
