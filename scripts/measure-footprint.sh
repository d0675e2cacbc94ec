#!/usr/bin/env bash
# The footprint figures of README ("Raspberry Pi"): the stripped aarch64 binary's size,
# and the daemon's resident memory (VmRSS, and the peak VmHWM, of /proc/PID/status)
# after start-up with COUNT members (default 100000): the aarch64 binary under
# qemu-aarch64, and the native x86_64 binary on the same data dir for comparison.
# Under qemu user mode the process is the emulator: its RSS includes qemu itself and
# its translated-code cache, so it overstates what the binary needs on a Pi.
#
#   scripts/build-aarch64.sh
#   cargo build --release --locked --bin loyaltyd --example seed_members
#   scripts/measure-footprint.sh [COUNT]
#
# The daemon runs with the packaged config (packaging/deb/loyaltyd.toml: cache_mib = 8,
# no reader, standalone) with its paths pointed at a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."

count=${1:-100000}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
pi_bin=$TARGET_DIR/pi/loyaltyd
native_bin=$TARGET_DIR/release/loyaltyd
seed=$TARGET_DIR/release/examples/seed_members
for f in "$pi_bin" "$native_bin" "$seed"; do
    [ -x "$f" ] || { echo "measure-footprint: $f is missing (see the commands at the top)" >&2; exit 1; }
done

work=$(mktemp -d)
pid=
cleanup() {
    [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$seed" "$work/data" "$count" T1
echo "data dir: $(du -sh "$work/data" | cut -f1) ($(du -sh "$work/data/journal.log" | cut -f1) journal)"
echo "test-token-0123456789" >"$work/token"
sed -e 's/^terminal_id = ""/terminal_id = "T1"/' -e "s|/var/lib/loyaltyd|$work/data|" \
    -e "s|/etc/loyaltyd/rules.toml|$PWD/config/rules.toml|" -e "s|/etc/loyaltyd/pos.token|$work/token|" \
    packaging/deb/loyaltyd.toml >"$work/loyaltyd.toml"

# measure LABEL COMMAND...: starts the daemon, waits for "listening on", settles 2 s,
# prints VmRSS and VmHWM, stops it with SIGTERM.
measure() {
    local label=$1
    shift
    local log=$work/$label.log t0 waited=0
    t0=$(date +%s.%N)
    "$@" --config "$work/loyaltyd.toml" serve --listen 127.0.0.1:0 >"$log" 2>&1 &
    pid=$!
    until grep -q 'listening on' "$log"; do
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
        sleep 0.05
        waited=$((waited + 1))
        [ "$waited" -lt 2400 ] || { echo "$label: no start within 120 s" >&2; cat "$log" >&2; exit 1; }
    done
    local up
    up=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
    sleep 2
    local rss hwm
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
    awk -v l="$label" -v u="$up" -v r="$rss" -v h="$hwm" 'BEGIN {
        printf "%-28s ready in %5.2f s   VmRSS %6d KiB (%.1f MiB)   VmHWM %6d KiB (%.1f MiB)\n", l, u, r, r / 1024, h, h / 1024
    }'
    kill -TERM "$pid"
    wait "$pid" || true
    pid=
}

size=$(stat -c %s "$pi_bin")
awk -v b="$size" 'BEGIN { printf "stripped aarch64 loyaltyd: %d bytes (%.2f MiB)\n", b, b / 1048576 }'
echo "daemon after start-up with $count members:"
measure "aarch64 under qemu-aarch64" env QEMU_LD_PREFIX=/usr/aarch64-linux-gnu qemu-aarch64 "$pi_bin"
measure "x86_64 native" "$native_bin"
