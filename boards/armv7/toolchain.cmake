# Board profile: 32-bit ARMv7 boards with Cortex-A7 cores and NEON/VFPv4:
# Raspberry Pi 2 Model B, Allwinner H3/A20 boards (Orange Pi PC, Banana Pi
# M2), STM32MP1; 256 MiB to 1 GiB; Debian armhf.  Toolchain file of the
# armv7 preset.
set(CAIRN_BOARD armv7 CACHE STRING "Board profile: boards/<name>")
set(CAIRN_BOARD_C_FLAGS "-mcpu=cortex-a7 -mfpu=neon-vfpv4 -mfloat-abi=hard")
# 32-bit ARM Linux always uses 4 KiB pages: no need for the 64 KiB
# segment alignment of the default, which pads every binary.
set(CAIRN_BOARD_LINK_FLAGS "-Wl,-z,max-page-size=4096")
set(CAIRN_BOARD_MEMORY_HIGH 48M)
set(CAIRN_BOARD_MEMORY_MAX 64M)
include(${CMAKE_CURRENT_LIST_DIR}/../../toolchains/arm-linux-gnueabihf.cmake)
