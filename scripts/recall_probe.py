"""Where does recall fail: in what the state holds, or in reading it?

    python scripts/recall_probe.py MODEL FOLDER [--documents N]

FOLDER holds recall documents with one-digit values (`brt recall generate
--value-digits 1 ...`). Needs the `brt` Python package (brt-py) and numpy.

1. Probe: feeds every document through a session and, at each query (just before
   its digit), takes a copy of the carried state (`Session.state()`: caches and
   recurrent state). A ridge regression on 70% of the queries predicts the asked
   digit from the state; its accuracy on the other 30% says whether the state holds
   the digit (chance: 0.10).
2. Read: in one document, sets one definition's digit (and its query's) to each of
   0..9 and reports how far the model's digit logits at the query move: how much the
   prediction depends on what was written three blocks earlier.
"""

import argparse
import pathlib
import re

import numpy as np

import brt

QUERY = rb"<[A-Z]{3}\?(\d)>"


def probe(model: "brt.Model", files: list) -> None:
    states, digits = [], []
    for path in files:
        text = path.read_bytes()
        ids = model.encode(text)
        session = model.session(chunk=64)
        fed = 0
        for query in re.finditer(QUERY, text):
            at = query.start(1)
            if at < 60:
                continue
            session.feed(ids[fed:at])
            fed = at
            states.append(session.state())
            digits.append(int(query.group(1)))
    x = np.array(states, dtype=np.float64)
    y = np.array(digits)
    train = np.arange(len(y)) < int(0.7 * len(y))
    mean, scale = x[train].mean(0), x[train].std(0) + 1e-6
    z = (x - mean) / scale
    targets = np.eye(10)[y]
    for ridge in [10.0, 100.0, 1000.0]:
        a = z[train]
        w = np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ targets[train])
        accuracy = ((z[~train] @ w).argmax(1) == y[~train]).mean()
        print(f"probe: {len(y)} queries, {x.shape[1]} state values, ridge {ridge:g}: held-out accuracy {accuracy:.3f}")


def read(model: "brt.Model", path: pathlib.Path) -> None:
    text = bytearray(path.read_bytes())
    definitions = list(re.finditer(rb"<([A-Z]{3})=(\d)>", bytes(text)))
    definition = definitions[min(3, len(definitions) - 1)]
    query = re.search(rb"<" + definition.group(1) + rb"\?(\d)>", bytes(text)[definition.end() :])
    at = definition.end() + query.start(1)
    digit_ids = model.encode(b"0123456789")
    rows = []
    for v in range(10):
        changed = bytearray(text)
        changed[definition.start(2)] = changed[at] = ord("0") + v
        rows.append(model.logits(model.encode(bytes(changed)))[at - 1][digit_ids])
    rows = np.array(rows)
    spread = rows.max(0) - rows.min(0)
    print(f"read: the query {at - definition.start(2)} bytes after its definition; "
          f"the digit logits move by at most {spread.max():.3f} as the defined digit changes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("folder")
    parser.add_argument("--documents", type=int, default=300)
    args = parser.parse_args()
    model = brt.Model(args.model, threads=1)
    files = sorted(pathlib.Path(args.folder).glob("*.txt"))[: args.documents]
    probe(model, files)
    read(model, files[3])


if __name__ == "__main__":
    main()
