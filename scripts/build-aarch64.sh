#!/usr/bin/env bash
# Release binaries for the Raspberry Pi (64-bit Raspberry Pi OS = aarch64 Debian),
# cross-compiled on an x86_64 Debian machine with the settings of .cargo/config.toml.
#
#   scripts/build-aarch64.sh            -> $TARGET_DIR/pi/loyaltyd (stripped)
#
# Needs: rustup target add aarch64-unknown-linux-gnu
#        apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross
# (scripts/ci-aarch64.sh installs both). CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT=$TARGET_DIR/pi

rustup target list --installed 2>/dev/null | grep -qx "$TARGET" || {
    echo "build-aarch64: the $TARGET target is missing: rustup target add $TARGET" >&2
    exit 1
}
command -v aarch64-linux-gnu-gcc >/dev/null || {
    echo "build-aarch64: aarch64-linux-gnu-gcc is missing: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross" >&2
    exit 1
}

cargo build --release --locked --target "$TARGET" --bin loyaltyd

mkdir -p "$OUT"
bin=$TARGET_DIR/$TARGET/release/loyaltyd
aarch64-linux-gnu-strip -o "$OUT/loyaltyd" "$bin"
readelf -h "$OUT/loyaltyd" | grep -q 'Machine:.*AArch64' || {
    echo "build-aarch64: $OUT/loyaltyd is not an aarch64 binary" >&2
    exit 1
}
size=$(stat -c %s "$OUT/loyaltyd")
awk -v b="$size" -v f="$OUT/loyaltyd" 'BEGIN { printf "build-aarch64: %s: %d bytes (%.2f MiB) stripped\n", f, b, b / 1048576 }'
