#!/bin/sh
# mksysroot.sh - builds the sysroot of a cross build from Debian's own
# packages for the target architecture, so that no one stages libraries
# by hand.
#
#   sh toolchains/mksysroot.sh arm64          -> build/sysroot/arm64
#   sh toolchains/mksysroot.sh armhf [DIR]
#
# How: a private apt (its own sources, lists, cache and an empty dpkg
# status, with the target as its native architecture) resolves the
# dependency closure of the -dev packages cairn builds against, libc6-dev
# included, and downloads it; each .deb is then unpacked with dpkg-deb -x.
# The host's apt and dpkg state are neither read for packages nor changed
# (no dpkg --add-architecture), and root is not needed.  Absolute symlinks
# in the unpacked tree are rewritten to point inside it.
#
# Running it again with the same package set is a no-op; a changed set or
# new versions rebuild the tree.  Environment:
#   CAIRN_DEB_MIRROR  Debian mirror (default http://deb.debian.org/debian)
#   CAIRN_DEB_SECURITY security mirror (default http://deb.debian.org/debian-security)
#   CAIRN_DEB_SUITE   suite (default bookworm)
#   CAIRN_DEB_CACHE   where downloaded .debs are kept between runs
#                     (default DIR.debs, next to the sysroot)
#   CAIRN_SYSROOT_EXTRA  more packages to add to the sysroot
set -eu

usage() {
    echo "usage: $0 arm64|armhf [DIR]" >&2
    exit 2
}
[ $# -ge 1 ] || usage
ARCH=$1
case "$ARCH" in
arm64 | armhf) ;;
*) usage ;;
esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${2:-$ROOT/build/sysroot/$ARCH}
MIRROR=${CAIRN_DEB_MIRROR:-http://deb.debian.org/debian}
SECURITY=${CAIRN_DEB_SECURITY:-http://deb.debian.org/debian-security}
SUITE=${CAIRN_DEB_SUITE:-bookworm}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# What cairn and its plugins link against; apt adds what these depend on
# (libmbedtls for nng, libssl for rabbitmq, libc6-dev, ...).
PKGS="libc6-dev libnng-dev libcbor-dev libyaml-dev libcmocka-dev
      libsqlite3-dev libmosquitto-dev librabbitmq-dev ${CAIRN_SYSROOT_EXTRA:-}"

for tool in apt-get dpkg-deb realpath; do
    command -v "$tool" >/dev/null || {
        echo "mksysroot: $tool not found (Debian host needed)" >&2
        exit 1
    }
done
[ -r "$KEYRING" ] || {
    echo "mksysroot: $KEYRING missing: apt-get install debian-archive-keyring" >&2
    exit 1
}

mkdir -p "$(dirname "$DIR")"
DIR=$(cd "$(dirname "$DIR")" && pwd)/$(basename "$DIR")
APT=$DIR.apt
CACHE=${CAIRN_DEB_CACHE:-$DIR.debs}
mkdir -p "$APT/lists/partial" "$APT/cache" "$APT/empty" "$CACHE/partial"
: >"$APT/status"
{
    echo "deb [signed-by=$KEYRING] $MIRROR $SUITE main"
    echo "deb [signed-by=$KEYRING] $MIRROR $SUITE-updates main"
    echo "deb [signed-by=$KEYRING] $SECURITY $SUITE-security main"
} >"$APT/sources.list"

# sysroot_apt ARGS...: apt-get with the private state above.
sysroot_apt() {
    apt-get -q \
        -o Dir::Etc::SourceList="$APT/sources.list" \
        -o Dir::Etc::SourceParts="$APT/empty" \
        -o Dir::Etc::Preferences="$APT/empty/none" \
        -o Dir::Etc::PreferencesParts="$APT/empty" \
        -o Dir::State="$APT" \
        -o Dir::State::status="$APT/status" \
        -o Dir::Cache="$APT/cache" \
        -o Dir::Cache::archives="$CACHE" \
        -o APT::Architecture="$ARCH" \
        -o APT::Architectures="$ARCH" \
        -o APT::Install-Recommends=false \
        -o Debug::NoLocking=true \
        -o APT::Sandbox::User=root \
        "$@"
}

echo "mksysroot: resolving $ARCH packages ($SUITE)"
# A mirror caught mid-sync fails one index (seen with the security suite);
# the main suite alone still gives a consistent sysroot.
if ! sysroot_apt -qq update; then
    set -- "$APT"/lists/*_"${SUITE}"_main_binary-"${ARCH}"_Packages*
    [ -e "$1" ] || {
        echo "mksysroot: could not load the package lists of $SUITE" >&2
        exit 1
    }
    echo "mksysroot: warning: going on with the package lists that loaded" >&2
fi
# "Inst NAME (VERSION ... [ARCH])" for every package of the closure.
sysroot_apt -s install $PKGS |
    sed -n 's/^Inst \([^ ]*\) (\([^ ]*\) .*\[\([a-z0-9]*\)\]).*/\1 \2 \3/p' |
    sort >"$APT/closure"
[ -s "$APT/closure" ] || {
    echo "mksysroot: apt resolved nothing" >&2
    exit 1
}

if [ -f "$DIR/.cairn-sysroot" ] && cmp -s "$APT/closure" "$DIR/.cairn-sysroot"; then
    echo "mksysroot: $DIR is up to date ($(wc -l <"$APT/closure") packages)"
    exit 0
fi

echo "mksysroot: downloading $(wc -l <"$APT/closure") packages"
sysroot_apt -qq -y --download-only install $PKGS >/dev/null

# Unpacked into a fresh tree beside DIR, which then replaces DIR, so an
# interrupted run leaves DIR as it was and dropped packages leave nothing.
NEW=$DIR.new
rm -rf "$NEW"
mkdir -p "$NEW"
while read -r name version arch; do
    # apt stores NAME_VERSION_ARCH.deb with ':' (epochs) written %3a.
    deb=$CACHE/${name}_$(printf '%s' "$version" | sed 's/:/%3a/g')_$arch.deb
    [ -f "$deb" ] || {
        echo "mksysroot: $deb was not downloaded" >&2
        exit 1
    }
    dpkg-deb -x "$deb" "$NEW"
done <"$APT/closure"

# Absolute symlinks (say lib/libfoo.so -> /lib/aarch64-linux-gnu/libfoo.so.1)
# would point into the build host: make them relative, inside the sysroot.
find "$NEW" -type l | while read -r link; do
    target=$(readlink "$link")
    case "$target" in
    /*)
        rel=$(realpath -m -s --relative-to="$(dirname "$link")" "$NEW$target")
        ln -sfn "$rel" "$link"
        ;;
    esac
done
left=$(find "$NEW" -type l -lname '/*' | head -n 3)
[ -z "$left" ] || {
    echo "mksysroot: absolute symlinks left: $left" >&2
    exit 1
}
cp "$APT/closure" "$NEW/.cairn-sysroot"

# Never remove a folder this script did not make.
if [ -e "$DIR" ] && [ ! -f "$DIR/.cairn-sysroot" ] &&
    [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
    echo "mksysroot: $DIR is not empty and not a sysroot of ours" >&2
    exit 1
fi
rm -rf "$DIR"
mv "$NEW" "$DIR"
echo "mksysroot: $DIR ready ($(wc -l <"$APT/closure") packages, $(du -sh "$DIR" | cut -f1))"
