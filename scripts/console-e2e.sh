#!/usr/bin/env bash
# The console in a real browser (README, "Console"): Playwright, pinned in
# tests/console_e2e/requirements.txt, in a venv of its own, driving Debian's chromium
# (never Playwright's own browser downloads) against the real daemons started by
# tests/console_e2e/run.py. Arguments go to run.py (--keep, --chromium PATH).
# LOYALTYD_BIN picks the binary (default: the debug build). With CI=true a missing
# chromium (and a CJK font for the screenshots) is installed from apt.
set -euo pipefail
cd "$(dirname "$0")/.."
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
venv=$(realpath -m "${CONSOLE_E2E_VENV:-target/console-e2e-venv}")
bin=$(realpath -m "${LOYALTYD_BIN:-target/debug/loyaltyd}")
req=tests/console_e2e/requirements.txt
if ! command -v chromium >/dev/null; then
  if [ "${CI:-}" = true ]; then
    started=$(date +%s)
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
    echo "console e2e: chromium installed in $(($(date +%s) - started)) s"
  else
    echo "console e2e: needs Debian's chromium (apt-get install chromium)" >&2
    exit 1
  fi
fi
# A CJK font, so that the screenshots show the zh-CN pages as a shop's browser does.
if ! fc-list :lang=zh 2>/dev/null | grep -q .; then
  if [ "${CI:-}" = true ]; then
    started=$(date +%s)
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q fonts-wqy-microhei >/dev/null
    echo "console e2e: a CJK font installed in $(($(date +%s) - started)) s"
  else
    echo "console e2e: no CJK font (apt-get install fonts-wqy-microhei): Chinese shows as boxes in the screenshots" >&2
  fi
fi
# (Re)installed when the pins changed since the venv was made.
if ! cmp -s "$req" "$venv/requirements.txt"; then
  started=$(date +%s)
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir -r "$req"
  cp "$req" "$venv/requirements.txt"
  echo "console e2e: playwright installed in $(($(date +%s) - started)) s"
fi
[ -x "$bin" ] || { echo "console e2e: $bin is missing; build it first (cargo build)" >&2; exit 1; }
exec "$venv/bin/python" tests/console_e2e/run.py --bin "$bin" "$@"
