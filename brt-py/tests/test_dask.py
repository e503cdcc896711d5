"""The Dask example scores a folder on a local cluster of two worker processes
and reports exactly what `brt eval --json` reports for the same files."""

import json
import pathlib
import shutil
import sys

import dask.distributed as distributed  # the package's `test` extra installs it

from conftest import ROOT, run_brt

sys.path.insert(0, str(ROOT / "brt-py" / "examples"))


def test_dask_scores_a_folder_as_brt_eval_does(tmp_path):
    import dask_score

    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ["README.md", "ARCHITECTURE.md", "brt/README.md", "brt-py/README.md", "conformance/README.md"]:
        shutil.copy(ROOT / name, folder / name.replace("/", "-"))
    want = json.loads(run_brt("eval", str(folder), "--json", "--threads", "1"))["models"][0]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster:
        with distributed.Client(cluster) as client:
            got = dask_score.score_folder(client, "builtin", str(folder))
            workers = len(client.scheduler_info()["workers"])
    assert workers == 2
    assert len(got["files"]) == len(want["files"]) == 5
    for mine, theirs in zip(got["files"], want["files"]):
        assert pathlib.Path(mine["file"]) == pathlib.Path(theirs["file"])
        for key in ["bytes", "tokens", "predictions", "nats_per_token", "bits_per_token", "bits_per_byte"]:
            assert mine[key] == theirs[key], (mine["file"], key)
    for key in ["bytes", "tokens", "predictions", "nats_per_token", "bits_per_token", "bits_per_byte"]:
        assert got["total"][key] == want["total"][key], key
