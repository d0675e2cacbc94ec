#!/usr/bin/env bash
# CI for the Raspberry Pi build (64-bit Raspberry Pi OS = aarch64 Debian), run by
# .ci/run after the native tests, or by hand on an x86_64 Debian machine:
#
#   1. installs the cross toolchain and qemu user-mode emulation (apt) and the Rust
#      target (rustup), when missing;
#   2. builds the test suite for aarch64 in the release profile, the one that ships,
#      and runs it under qemu-aarch64 (the cargo runner of .cargo/config.toml; the
#      end-to-end tests start the aarch64 loyaltyd through LOYALTYD_TEST_RUNNER);
#   3. takes the release binary from the same build (scripts/build-aarch64.sh: no second
#      compilation), smoke-runs it under qemu with the packaged config;
#   4. builds the arm64 .deb (scripts/build-deb.sh) and checks it: fields, contents,
#      owners and modes, conffiles, md5sums, maintainer scripts (sh -n), the unit
#      (systemd-analyze verify), the packaged config (parsed by the packaged binary).
#
# What runs under emulation, and why (see README, "Raspberry Pi"):
#   - every unit test of the library (decoders, rules, journal, store) and the
#     end-to-end tests of api.rs, readers.rs (RDM6300 over a pty, stdin, the systemd
#     unit), crash.rs (LOYALTYD_CRASH_ROUNDS=20 kills instead of 50), replay_props.rs
#     and sync.rs (hub and terminals, all aarch64 under qemu), golden.rs (0.1 and 0.2
#     journals replayed to the same state);
#   - cli.rs except its four error-catalogue tests (errors_cards_and_members,
#     errors_redemption_and_pin, errors_coupons_rewards_refunds, errors_invalid_input):
#     each runs a few hundred `loyaltyd` processes, ~0.4 s apiece under qemu, ~5 min of
#     CPU together, to check error codes that do not depend on the architecture, and
#     they run natively in the same CI. LOYALTYD_QEMU_FULL=1 runs them too.
#   - Nothing needs GPIO: without a GPIO chip, Wiegand and GPIO feedback are refused
#     plainly, which the unit tests check; real pins are tested on a Pi.
#
# Environment: CARGO_TARGET_DIR (default target), LOYALTYD_QEMU_FULL=1.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

TARGET=aarch64-unknown-linux-gnu
TARGET_DIR=${CARGO_TARGET_DIR:-target}
RUNNER=scripts/qemu-aarch64-runner
t0=$(date +%s)
step() { echo "== ci-aarch64 [$(($(date +%s) - t0)) s] $*"; }
fail() {
    echo "ci-aarch64: $*" >&2
    exit 1
}

step "1. tools"
need_apt=()
command -v aarch64-linux-gnu-gcc >/dev/null || need_apt+=(gcc-aarch64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ] || need_apt+=(libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || need_apt+=(qemu-user)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
command -v dpkg-deb >/dev/null || need_apt+=(dpkg)
if [ ${#need_apt[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || fail "missing ${need_apt[*]}: run as root, or apt-get install them"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi
command -v rustup >/dev/null || fail "rustup is missing: it adds the $TARGET target"
rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
aarch64-linux-gnu-gcc --version | head -n1
qemu-aarch64 --version | head -n1

step "2. tests under qemu-aarch64 (release profile)"
skip=()
if [ "${LOYALTYD_QEMU_FULL:-0}" != 1 ]; then
    for t in errors_cards_and_members errors_redemption_and_pin errors_coupons_rewards_refunds errors_invalid_input; do
        skip+=(--skip "$t")
    done
fi
# The power-cut drill and its FUSE filesystem (tests/powercut.rs) run natively only: the
# filesystem is served by the test process, which qemu-user would emulate too.
skip+=(--skip powercut)
# The hub on PostgreSQL runs natively only (tests/hub_stores.rs, *_on_postgres).
skip+=(--skip on_postgres)
# The end-to-end tests named above (and the golden journals: the frozen record format
# read on the architecture that ships); the rest (members, campaigns, reports, the
# console, the PostgreSQL hub, ...) exercise no architecture-dependent code beyond what
# these do and run natively in the same CI. LOYALTYD_QEMU_FULL=1 runs every test target.
targets=(--test api --test readers --test crash --test replay_props --test sync --test cli --test golden)
[ "${LOYALTYD_QEMU_FULL:-0}" = 1 ] && targets=(--tests)
LOYALTYD_CRASH_ROUNDS=${LOYALTYD_CRASH_ROUNDS:-20} \
    cargo test --release --locked --target "$TARGET" --lib --bins "${targets[@]}" -- "${skip[@]}"

step "3. release binary"
scripts/build-aarch64.sh
bin=$TARGET_DIR/pi/loyaltyd
"$RUNNER" "$bin" --version

# The packaged config: absolute paths, and no start before terminal_id is set.
conf=packaging/deb/loyaltyd.toml
grep -qx 'data_dir = "/var/lib/loyaltyd"' "$conf" || fail "$conf: data_dir"
grep -qx 'rules = "/etc/loyaltyd/rules.toml"' "$conf" || fail "$conf: rules"
grep -qx 'token_file = "/etc/loyaltyd/pos.token"' "$conf" || fail "$conf: token_file"
smoke=$(mktemp -d)
trap 'rm -rf "$smoke"' EXIT
sed -e "s|/var/lib/loyaltyd|$smoke/data|" -e "s|/etc/loyaltyd/rules.toml|$PWD/config/rules.toml|" \
    "$conf" >"$smoke/unset.toml"
if "$RUNNER" "$bin" --config "$smoke/unset.toml" member show --card 04A1B2C3 >"$smoke/out" 2>&1; then
    fail "the packaged config was accepted with an empty terminal_id"
fi
grep -q terminal_id "$smoke/out" || fail "empty terminal_id refused without saying so: $(cat "$smoke/out")"
sed 's/^terminal_id = ""/terminal_id = "SHOP1_T1"/' "$smoke/unset.toml" >"$smoke/set.toml"
"$RUNNER" "$bin" --config "$smoke/set.toml" member add --card 04A1B2C3 --name Ann --phone 13800000001
"$RUNNER" "$bin" --config "$smoke/set.toml" --json member show --card 04A1B2C3 | grep -q '"name":"Ann"' ||
    fail "member show after member add"

step "4. the arm64 .deb"
scripts/build-deb.sh --arch arm64 "$bin"
version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n1)
deb=$TARGET_DIR/pi/loyaltyd_${version}_arm64.deb
dpkg-deb --info "$deb"
[ "$(dpkg-deb --field "$deb" Package)" = loyaltyd ] || fail "Package"
[ "$(dpkg-deb --field "$deb" Architecture)" = arm64 ] || fail "Architecture"
[ "$(dpkg-deb --field "$deb" Version)" = "$version" ] || fail "Version"
dpkg-deb --field "$deb" Depends | grep -q 'libc6 (>= ' || fail "Depends lacks libc6"
dpkg-deb --contents "$deb" | tee "$smoke/contents"
# Every file that must be there, owned by root, with its mode.
for want in \
    '-rwxr-xr-x root/root ./usr/bin/loyaltyd' \
    '-rw-r--r-- root/root ./lib/systemd/system/loyaltyd.service' \
    '-rw-r--r-- root/root ./etc/loyaltyd/loyaltyd.toml' \
    '-rw-r--r-- root/root ./etc/loyaltyd/rules.toml' \
    '-rw-r--r-- root/root ./usr/share/doc/loyaltyd/copyright' \
    '-rw-r--r-- root/root ./usr/share/doc/loyaltyd/README.md' \
    '-rw-r--r-- root/root ./usr/share/doc/loyaltyd/examples/hub.toml'; do
    read -r mode owner path <<<"$want"
    awk -v m="$mode" -v o="$owner" -v p="$path" '$1 == m && $2 == o && $NF == p { found = 1 } END { exit !found }' \
        "$smoke/contents" || fail "the package lacks $want"
done
# No token, no data in the package: both are made on the Pi.
if grep -Eq 'pos\.token|/var/lib' "$smoke/contents"; then fail "the package ships a token or data"; fi
# The control area: conffiles, md5sums, maintainer scripts.
dpkg-deb --control "$deb" "$smoke/DEBIAN"
dpkg-deb --extract "$deb" "$smoke/root"
[ "$(cat "$smoke/DEBIAN/conffiles")" = "$(printf '/etc/loyaltyd/loyaltyd.toml\n/etc/loyaltyd/rules.toml')" ] ||
    fail "conffiles: $(cat "$smoke/DEBIAN/conffiles")"
while read -r f; do [ -f "$smoke/root$f" ] || fail "conffile $f is not in the package"; done <"$smoke/DEBIAN/conffiles"
(cd "$smoke/root" && md5sum --quiet -c ../DEBIAN/md5sums) || fail "md5sums"
for s in postinst prerm postrm; do
    [ -x "$smoke/DEBIAN/$s" ] || fail "$s is missing or not executable"
    sh -n "$smoke/DEBIAN/$s" || fail "$s: syntax"
    echo "$s: sh -n ok"
done
grep -q 'usermod -a -G gpio,dialout,input loyaltyd' "$smoke/DEBIAN/postinst" || fail "postinst: groups"
# The packaged binary: aarch64, stripped, runs; the packaged unit verifies.
readelf -h "$smoke/root/usr/bin/loyaltyd" | grep -q 'Machine:.*AArch64' || fail "not an aarch64 binary"
if readelf -S "$smoke/root/usr/bin/loyaltyd" | grep -q '\.symtab'; then fail "the packaged binary is not stripped"; fi
"$RUNNER" "$smoke/root/usr/bin/loyaltyd" --version
sed "s|/usr/bin/loyaltyd|$smoke/root/usr/bin/loyaltyd|" "$smoke/root/lib/systemd/system/loyaltyd.service" \
    >"$smoke/loyaltyd.service"
systemd-analyze verify "$smoke/loyaltyd.service"
sed -e "s|/var/lib/loyaltyd|$smoke/data2|" -e "s|/etc/loyaltyd/|$smoke/root/etc/loyaltyd/|" \
    -e 's/^terminal_id = ""/terminal_id = "SHOP1_T1"/' "$smoke/root/etc/loyaltyd/loyaltyd.toml" >"$smoke/packaged.toml"
"$RUNNER" "$smoke/root/usr/bin/loyaltyd" --config "$smoke/packaged.toml" report daily --date 2026-06-15 >/dev/null ||
    fail "the packaged binary refused the packaged config"

size=$(stat -c %s "$bin")
step "done: $deb; stripped aarch64 loyaltyd $size bytes ($(awk -v b="$size" 'BEGIN { printf "%.2f", b / 1048576 }') MiB)"
