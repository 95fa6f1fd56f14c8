# Board profile: Raspberry Pi 5, Compute Module 5.
# BCM2712, 4x Cortex-A76 (ARMv8.2-A), 2 to 16 GiB; 64-bit Raspberry Pi OS
# (16 KiB page kernel) or Debian arm64.  Toolchain file of the rpi5 preset.
set(CAIRN_BOARD rpi5 CACHE STRING "Board profile: boards/<name>")
set(CAIRN_BOARD_C_FLAGS "-mcpu=cortex-a76")
# The Pi 5 kernel uses 16 KiB pages: segments must be aligned to at least
# that; more (the 64 KiB default) only pads the files.
set(CAIRN_BOARD_LINK_FLAGS "-Wl,-z,max-page-size=16384")
set(CAIRN_BOARD_MEMORY_HIGH 192M)
set(CAIRN_BOARD_MEMORY_MAX 256M)
include(${CMAKE_CURRENT_LIST_DIR}/../../toolchains/aarch64-linux-gnu.cmake)
