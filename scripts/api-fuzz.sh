#!/usr/bin/env bash
# The API fuzz run (README, "API fuzzing"): schemathesis, pinned in
# tests/api_fuzz/requirements.txt, in a venv of its own, against the real daemon started
# by tests/api_fuzz/run.py. Arguments go to run.py (--max-examples N, --seed S, --keep,
# --verbose). LOYALTYD_BIN picks the binary (default: the debug build).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(realpath -m "${API_FUZZ_VENV:-target/api-fuzz-venv}")
bin=$(realpath -m "${LOYALTYD_BIN:-target/debug/loyaltyd}")
req=tests/api_fuzz/requirements.txt
# (Re)installed when the pins changed since the venv was made.
if ! cmp -s "$req" "$venv/requirements.txt"; then
  started=$(date +%s)
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir -r "$req"
  cp "$req" "$venv/requirements.txt"
  echo "api fuzz: schemathesis installed in $(($(date +%s) - started)) s"
fi
[ -x "$bin" ] || { echo "api fuzz: $bin is missing; build it first (cargo build)" >&2; exit 1; }
exec "$venv/bin/python" tests/api_fuzz/run.py --bin "$bin" --st "$venv/bin/st" "$@"
