#!/bin/sh
# cross.sh - CI's cross-compilation step, and the way to run it by hand on
# a Debian 12 machine (root, or a user with sudo):
#
#   sh tests/cross.sh
#
# Installs the cross compilers and qemu-user, builds the arm64 and armhf
# sysroots from Debian's packages (toolchains/mksysroot.sh), builds the
# rpi4 (arm64) and armv7 (armhf) presets and runs their unit and runtime
# tests under qemu (ctest --preset rpi4|armv7), builds rpi5 and checks
# its default config, makes the .deb packages of each architecture, and
# prints the footprint report (tests/bench/footprint/footprint.sh) with a
# native x86_64 build for the idle-memory figures.  Extra arguments go to
# each ctest run.
set -eu
cd "$(dirname "$0")/.."
START=$(date +%s)
step() { echo "=== [$(($(date +%s) - START))s] $*"; }

step "packages"
sh tests/install-deps.sh
PKGS="gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf qemu-user-static
      debian-archive-keyring dpkg-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    echo "installing:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        --no-install-recommends $missing >/dev/null
fi

step "sysroots"
sh toolchains/mksysroot.sh arm64
sh toolchains/mksysroot.sh armhf

for board in rpi4 armv7; do
    step "$board: build"
    cmake --preset "$board" >/dev/null
    cmake --build --preset "$board"
    step "$board: unit and runtime tests under qemu"
    ctest --preset "$board" "$@"
done

step "rpi5: build, default config"
cmake --preset rpi5 >/dev/null
cmake --build --preset rpi5
ctest --preset rpi5 -R '^board_default_config$'

step "x86_64: build (for the idle-memory figures)"
cmake --preset x86_64 >/dev/null
cmake --build --preset x86_64

step "packages"
for board in rpi4 armv7 x86_64; do
    rm -rf "build/$board/pkg"
    cpack --config "build/$board/CPackConfig.cmake" -B "build/$board/pkg" >/dev/null
    ls -l build/"$board"/pkg/*.deb
done

step "footprint"
sh tests/bench/footprint/footprint.sh build/x86_64 build/rpi4 build/rpi5 build/armv7

step "done"
