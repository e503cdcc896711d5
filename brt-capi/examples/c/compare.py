"""The C example's logits against the host's `brt logits` (check.sh runs this).

  compare.py tokens TOKENS.u32 OUT.safetensors
      the tokens the C program fed, as the one document `brt logits` reads
  compare.py logits C_LOGITS.f32 HOST.safetensors TOLERANCE [LABEL]
      the C program's rows (the last positions) against the host's logits there:
      |c - host| <= TOLERANCE * max(1, |host|), absolute for logits up to 1 in
      magnitude and relative beyond (rounding differences grow with the values);
      LABEL names the program in the report (default "C"; firmware/check.sh
      uses this script too)

Only numpy and the safetensors layout (8-byte header length, JSON, data).
"""
import json
import struct
import sys

import numpy as np


def write_tokens(src, dst):
    tokens = np.fromfile(src, dtype="<u4").astype("<i4")
    header = json.dumps({"tokens": {"dtype": "I32", "shape": [1, len(tokens)], "data_offsets": [0, 4 * len(tokens)]}})
    header += " " * (-len(header) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header.encode() + tokens.tobytes())


def read_tensor(path, name):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    meta = json.loads(data[8 : 8 + n])[name]
    assert meta["dtype"] == "F32", meta
    start, end = meta["data_offsets"]
    return np.frombuffer(data[8 + n + start : 8 + n + end], dtype="<f4").reshape(meta["shape"])


def compare(c_path, host_path, tolerance, label="C"):
    host = read_tensor(host_path, "logits")[0]  # [tokens, vocab]
    vocab = host.shape[1]
    c = np.fromfile(c_path, dtype="<f4").reshape(-1, vocab)
    rows = host[host.shape[0] - c.shape[0] :]
    diff = np.abs(c.astype(np.float64) - rows.astype(np.float64))
    scaled = float(np.max(diff / np.maximum(1.0, np.abs(rows.astype(np.float64)))))
    diff = float(np.max(diff))
    same_argmax = bool(np.all(np.argmax(c, axis=1) == np.argmax(rows, axis=1)))
    print(
        f"{label} logits vs host `brt logits`: {c.shape[0]} positions x {vocab}, largest |logit| "
        f"{float(np.max(np.abs(rows))):.3g}, max |difference| {diff:.3g}, max |difference| / max(1, |logit|) "
        f"{scaled:.3g} (tolerance {tolerance:g}), greedy tokens {'agree' if same_argmax else 'differ'}"
    )
    # The greedy tokens are reported, not required: two logits closer than the
    # tolerance may order either way.
    if not (scaled <= tolerance):
        sys.exit(1)


if __name__ == "__main__":
    if sys.argv[1] == "tokens" and len(sys.argv) == 4:
        write_tokens(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "logits" and len(sys.argv) in (5, 6):
        compare(sys.argv[2], sys.argv[3], float(sys.argv[4]), *sys.argv[5:])
    else:
        sys.exit(__doc__)
