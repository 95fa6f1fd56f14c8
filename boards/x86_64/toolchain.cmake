# Board profile: generic x86_64 (industrial PCs, gateways, VMs), a native
# build with the host's compiler and libraries.  Toolchain file of the
# x86_64 preset; not a cross build.
set(CAIRN_BOARD x86_64 CACHE STRING "Board profile: boards/<name>")
set(CMAKE_C_FLAGS_INIT "-march=x86-64 -mtune=generic")
set(CAIRN_BOARD_MEMORY_HIGH 192M)
set(CAIRN_BOARD_MEMORY_MAX 256M)
