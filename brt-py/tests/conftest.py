"""Shared fixtures: the repository's paths and the `brt` program the tests compare with."""

import json
import os
import pathlib
import struct
import subprocess

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def brt_program() -> pathlib.Path:
    """The `brt` program: $BRT_BIN, or the release build in this repository."""
    path = pathlib.Path(os.environ.get("BRT_BIN", ROOT / "target" / "release" / "brt"))
    if not path.is_file():
        # Not a skip: these tests exist to compare the package with the program.
        raise RuntimeError(f"no brt program at {path}: run `cargo build --release -p brt` or set BRT_BIN")
    return path


def run_brt(*args: str) -> str:
    """Runs the program on one thread (as the tests' models do) and returns its output."""
    done = subprocess.run([str(brt_program()), *args], capture_output=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"brt {' '.join(args)} failed: {done.stderr.decode(errors='replace')}")
    return done.stdout.decode()


def read_safetensors(path: pathlib.Path) -> dict:
    """The tensors of a safetensors file (the format: an 8-byte little-endian header
    length, a JSON header, the data), read here so the tests need only numpy."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    dtypes = {"F32": np.float32, "I32": np.int32, "I64": np.int64, "U8": np.uint8}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[8 + length + start : 8 + length + end]
        out[name] = np.frombuffer(raw, dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return out


@pytest.fixture(scope="session")
def builtin():
    import brt

    return brt.Model.builtin(threads=1)
