"""Score a folder of documents across the workers of a Dask cluster.

Each worker loads the model once (the first time it is given a document) and
keeps it; documents are scored one per task, as `brt eval` scores files, and
the totals are added up as `brt eval` adds them, so the report has the numbers
of `brt eval --json` on the same files.

    python dask_score.py MODEL FOLDER [--scheduler tcp://host:8786] [--workers N] [--threads T]

MODEL is a model file brt reads, or `builtin`. Without --scheduler it starts a
local cluster of N worker processes. Prints a JSON report: `files` (one entry per
file) and `total`, with the keys of `brt eval --json`.
"""

import argparse
import json
import math
import pathlib
import threading

import brt

# The models of this worker process, by path. A worker's threads share them
# (brt releases the GIL and runs one call of a model at a time).
_MODELS = {}
_LOCK = threading.Lock()

SUMS = ("bytes", "tokens", "predictions", "nats")


def _model(path: str, threads: int) -> "brt.Model":
    with _LOCK:
        if path not in _MODELS:
            _MODELS[path] = brt.Model.builtin(threads=threads) if path == "builtin" else brt.Model(path, threads=threads)
        return _MODELS[path]


def score_file(model_path: str, threads: int, file: str) -> dict:
    """Scores one document (runs on a worker)."""
    model = _model(model_path, threads)
    result = model.score(pathlib.Path(file).read_bytes())
    return {"file": file, **{k: result[k] for k in SUMS + ("nats_per_token", "bits_per_token", "bits_per_byte")}}


def total(files: list, bytes_tokenizer: bool = True) -> dict:
    """The sums over files, added in file order and divided as `brt eval` does."""
    sums = {k: 0 for k in SUMS}
    sums["nats"] = 0.0
    for f in files:
        for k in SUMS:
            sums[k] += f[k]
    per_token = sums["nats"] / max(sums["predictions"], 1)
    byte_count = sums["predictions"] if bytes_tokenizer else sums["bytes"]
    return {
        "file": "(all)",
        **sums,
        "nats_per_token": per_token,
        "bits_per_token": per_token / math.log(2),
        "bits_per_byte": sums["nats"] / math.log(2) / max(byte_count, 1),
    }


def score_folder(client, model_path: str, folder: str, threads: int = 1) -> dict:
    """Scores every file of `folder` (in name order, as `brt eval` lists a folder) on the client's cluster."""
    files = sorted(str(p) for p in pathlib.Path(folder).iterdir() if p.is_file())
    futures = client.map(score_file, [model_path] * len(files), [threads] * len(files), files, pure=False)
    results = client.gather(futures)
    return {"files": results, "total": total(results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a model file brt reads, or `builtin`")
    parser.add_argument("folder", help="a folder whose files are documents")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler (default: a local cluster)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the local cluster")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of each worker's model")
    args = parser.parse_args()

    from dask.distributed import Client, LocalCluster

    if args.scheduler:
        client = Client(args.scheduler)
    else:
        client = Client(LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True))
    with client:
        print(json.dumps(score_folder(client, args.model, args.folder, args.threads), indent=2))


if __name__ == "__main__":
    main()
