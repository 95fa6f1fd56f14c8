# Board profile: Raspberry Pi 4 Model B, Pi 400, Compute Module 4.
# BCM2711, 4x Cortex-A72 (ARMv8-A), 1 to 8 GiB; 64-bit Raspberry Pi OS
# or Debian arm64.  Used as the toolchain file of the rpi4 preset.
set(CAIRN_BOARD rpi4 CACHE STRING "Board profile: boards/<name>")
set(CAIRN_BOARD_C_FLAGS "-mcpu=cortex-a72")
# Segments aligned to 16 KiB load under 4 KiB and 16 KiB page kernels
# (the Pi 5 kernel uses 16 KiB); the default 64 KiB alignment pads each
# binary by up to 64 KiB per segment.
set(CAIRN_BOARD_LINK_FLAGS "-Wl,-z,max-page-size=16384")
# systemd limits for cairnd (MemoryHigh throttles, MemoryMax kills).
set(CAIRN_BOARD_MEMORY_HIGH 96M)
set(CAIRN_BOARD_MEMORY_MAX 128M)
include(${CMAKE_CURRENT_LIST_DIR}/../../toolchains/aarch64-linux-gnu.cmake)
