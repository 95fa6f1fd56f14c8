# Toolchain file: 32-bit ARM Linux, hard float (Debian armhf: ARMv7-A,
# VFPv3-D16, Thumb-2) with Debian's cross compiler
# (gcc-arm-linux-gnueabihf) and a sysroot of Debian armhf packages
# (toolchains/mksysroot.sh armhf).  Tests run under qemu-arm-static.
#
#   sh toolchains/mksysroot.sh armhf
#   cmake -S . -B build/armhf -DCMAKE_TOOLCHAIN_FILE=toolchains/arm-linux-gnueabihf.cmake
#
# Board profiles (boards/*/toolchain.cmake) set CAIRN_BOARD_C_FLAGS and
# include this file.
set(CMAKE_SYSTEM_PROCESSOR armv7l)
set(CAIRN_CROSS_TRIPLET arm-linux-gnueabihf)
set(CAIRN_CROSS_DEB_ARCH armhf)
set(CAIRN_CROSS_QEMU qemu-arm-static)
include(${CMAKE_CURRENT_LIST_DIR}/linux-cross.cmake)
