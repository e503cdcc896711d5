#!/usr/bin/env python3
"""Reads a GGUF file with the `gguf` package (ggml's own Python reader, which
brt did not write) and prints what it found as JSON: every metadata key and
value, every tensor's name, shape, type and values (dequantized to float), and
the CRC-32 of the tensor data computed here with zlib.

brt/tests/gguf.rs compares this with what brt wrote.

Usage: scripts/gguf_read.py MODEL.gguf
"""
import json
import sys
import zlib

import gguf
import numpy as np


def value(field):
    contents = field.contents()
    if isinstance(contents, (np.generic,)):
        return contents.item()
    return contents


def main(path):
    reader = gguf.GGUFReader(path)
    metadata = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        metadata[key] = value(field)
    tensors = []
    end = reader.data_offset
    for t in reader.tensors:
        values = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        tensors.append({
            "name": t.name,
            "shape": [int(d) for d in values.shape],
            "type": t.tensor_type.name,
            "values": [float(v) for v in values.reshape(-1)],
        })
        end = max(end, int(t.data_offset) + int(t.n_bytes))
    data = bytes(reader.data[reader.data_offset:end])
    print(json.dumps({
        "gguf_version": int(value(reader.fields["GGUF.version"])),
        "metadata": metadata,
        "tensors": tensors,
        "data_crc32": zlib.crc32(data),
    }))


if __name__ == "__main__":
    main(sys.argv[1])
