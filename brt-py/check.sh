#!/usr/bin/env bash
# Builds the Python wheel with maturin, installs it into a fresh virtual
# environment (with pytest and Dask, the package's `test` extra) and runs the
# package's tests, which compare it with the release `brt` program.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd .. && pwd)
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT

python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "maturin>=1.9,<2"
(cd "$root" && cargo build --release --quiet -p brt)
wheels="$root/target/wheels"
rm -rf "$wheels"
"$venv/bin/maturin" build --release --quiet -m Cargo.toml --interpreter "$venv/bin/python" --out "$wheels"
wheel=$(ls "$wheels"/brt-*.whl)
echo "built $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB)"
"$venv/bin/pip" install --quiet --disable-pip-version-check "$wheel[test]"
BRT_BIN="$root/target/release/brt" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests
