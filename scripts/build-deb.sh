#!/usr/bin/env bash
# Builds the Debian package of loyaltyd from an already built binary, with dpkg-deb:
#
#   scripts/build-deb.sh [--arch arm64|amd64] [--out DIR] BINARY
#
# (default arm64, DIR = the binary's directory). The package holds /usr/bin/loyaltyd
# (stripped), the systemd unit, /etc/loyaltyd/{loyaltyd.toml,rules.toml} as conffiles,
# an example hub config (usr/share/doc/loyaltyd/examples/hub.toml) and the maintainer scripts of packaging/deb/ (user, groups, state dir, POS token).
# Depends: is computed from the binary's ELF dependencies. The version is Cargo.toml's
# unless LOYALTYD_DEB_VERSION is set (e.g. to try an upgrade).
#
# Why not cargo-deb: it would have to be compiled in every CI run (minutes on 2 cores)
# and would still need these maintainer scripts; dpkg-deb is on every Debian machine.
set -euo pipefail
cd "$(dirname "$0")/.."

arch=arm64
out=
while [ $# -gt 0 ]; do
    case "$1" in
    --arch) arch=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -*) echo "build-deb: unknown option $1" >&2; exit 2 ;;
    *) break ;;
    esac
done
[ $# -eq 1 ] || { echo "usage: scripts/build-deb.sh [--arch arm64|amd64] [--out DIR] BINARY" >&2; exit 2; }
bin=$1
out=${out:-$(dirname "$bin")}

case "$arch" in
arm64) machine=AArch64; strip=aarch64-linux-gnu-strip ;;
amd64) machine='Advanced Micro Devices X86-64'; strip='strip' ;;
*) echo "build-deb: unsupported architecture $arch" >&2; exit 2 ;;
esac
readelf -h "$bin" | grep -q "Machine:[[:space:]]*$machine" || {
    echo "build-deb: $bin is not a $arch binary" >&2
    exit 1
}

version=${LOYALTYD_DEB_VERSION:-$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n1)}
[ -n "$version" ] || { echo "build-deb: no version in Cargo.toml" >&2; exit 1; }
maintainer=${DEB_MAINTAINER:-loyaltyd maintainers <loyaltyd@localhost>}
# File times in the package: the last commit's, for a reproducible package.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/loyaltyd
umask 022

install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/loyaltyd" \
    "$root/usr/share/doc/loyaltyd"
"$strip" -o "$root/usr/bin/loyaltyd" "$bin"
chmod 0755 "$root/usr/bin/loyaltyd"
install -m 0644 systemd/loyaltyd.service "$root/lib/systemd/system/loyaltyd.service"
install -m 0644 packaging/deb/loyaltyd.toml "$root/etc/loyaltyd/loyaltyd.toml"
install -m 0644 config/rules.toml "$root/etc/loyaltyd/rules.toml"
install -m 0644 README.md "$root/usr/share/doc/loyaltyd/README.md"
install -m 0644 packaging/deb/copyright "$root/usr/share/doc/loyaltyd/copyright"
install -D -m 0644 packaging/deb/hub.toml "$root/usr/share/doc/loyaltyd/examples/hub.toml"

# Depends: from the shared libraries the binary needs and the newest glibc symbol
# version it uses. Anything unexpected stops the build rather than a broken package.
glibc=$(readelf -V --wide "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)
depends="adduser, libc6 (>= ${glibc:?no glibc symbol versions})"
for lib in $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    case "$lib" in
    libc.so.6 | libm.so.6 | libpthread.so.0 | libdl.so.2 | librt.so.1 | ld-linux-*.so.* | ld-linux.so.*) ;;
    libgcc_s.so.1) depends="$depends, libgcc-s1" ;;
    *) echo "build-deb: $bin needs $lib: add its package to Depends in scripts/build-deb.sh" >&2; exit 1 ;;
    esac
done

installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maintainer|" \
    -e "s|@INSTALLED_SIZE@|$installed_size|" -e "s|@DEPENDS@|$depends|" \
    packaging/deb/control.in >"$root/DEBIAN/control"
install -m 0644 packaging/deb/conffiles "$root/DEBIAN/conffiles"
for s in postinst prerm postrm; do
    install -m 0755 "packaging/deb/$s" "$root/DEBIAN/$s"
done
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort |
    grep -vxF -f <(sed 's|^/||' DEBIAN/conffiles) | xargs md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$out"
deb=$out/loyaltyd_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "build-deb: $deb ($(stat -c %s "$deb") bytes; Depends: $depends)"
