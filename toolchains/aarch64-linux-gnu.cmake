# Toolchain file: 64-bit ARM Linux (Debian arm64) with Debian's cross
# compiler (gcc-aarch64-linux-gnu) and a sysroot of Debian arm64 packages
# (toolchains/mksysroot.sh arm64).  Tests run under qemu-aarch64-static.
#
#   sh toolchains/mksysroot.sh arm64
#   cmake -S . -B build/arm64 -DCMAKE_TOOLCHAIN_FILE=toolchains/aarch64-linux-gnu.cmake
#
# Board profiles (boards/*/toolchain.cmake) set CAIRN_BOARD_C_FLAGS and
# include this file.
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CAIRN_CROSS_TRIPLET aarch64-linux-gnu)
set(CAIRN_CROSS_DEB_ARCH arm64)
set(CAIRN_CROSS_QEMU qemu-aarch64-static)
include(${CMAKE_CURRENT_LIST_DIR}/linux-cross.cmake)
