# linux-cross.cmake - what the Debian cross toolchain files share.  Not a
# toolchain file itself: aarch64-linux-gnu.cmake and
# arm-linux-gnueabihf.cmake set CAIRN_CROSS_TRIPLET, CAIRN_CROSS_DEB_ARCH,
# CAIRN_CROSS_QEMU and CMAKE_SYSTEM_PROCESSOR, then include this.
#
# The sysroot is Debian's packages for the target, unpacked by
# toolchains/mksysroot.sh (default: <source>/build/sysroot/<deb-arch>, or
# -DCAIRN_SYSROOT=DIR, or $CAIRN_SYSROOT).  Everything cairn links against
# is found there and only there: compiler, headers and libraries through
# CMAKE_SYSROOT, find_* and find_package through CMAKE_FIND_ROOT_PATH in
# ONLY mode, pkg-config through PKG_CONFIG_LIBDIR and
# PKG_CONFIG_SYSROOT_DIR.  Programs (pkg-config, qemu) come from the host.
#
# Tests run under qemu-user: CMAKE_CROSSCOMPILING_EMULATOR is
# "qemu-<arch>-static -L <sysroot>", so ctest runs target executables on
# the build host with the sysroot's dynamic loader and libraries.
set(CMAKE_SYSTEM_NAME Linux)

if(NOT CAIRN_SYSROOT)
    if(DEFINED ENV{CAIRN_SYSROOT} AND NOT "$ENV{CAIRN_SYSROOT}" STREQUAL "")
        set(CAIRN_SYSROOT "$ENV{CAIRN_SYSROOT}")
    else()
        get_filename_component(CAIRN_SYSROOT
            "${CMAKE_CURRENT_LIST_DIR}/../build/sysroot/${CAIRN_CROSS_DEB_ARCH}"
            ABSOLUTE)
    endif()
endif()
set(CAIRN_SYSROOT "${CAIRN_SYSROOT}" CACHE PATH
    "Sysroot of the ${CAIRN_CROSS_DEB_ARCH} cross build (toolchains/mksysroot.sh)")
# try_compile projects read this toolchain file again: hand them the path.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES CAIRN_SYSROOT)

if(NOT EXISTS "${CAIRN_SYSROOT}/usr/include/stdio.h")
    message(FATAL_ERROR
        "No ${CAIRN_CROSS_DEB_ARCH} sysroot at ${CAIRN_SYSROOT}.  Build it "
        "with:\n  sh toolchains/mksysroot.sh ${CAIRN_CROSS_DEB_ARCH}\n"
        "(or point -DCAIRN_SYSROOT=DIR at one)")
endif()

find_program(CAIRN_CROSS_CC ${CAIRN_CROSS_TRIPLET}-gcc)
if(NOT CAIRN_CROSS_CC)
    message(FATAL_ERROR "${CAIRN_CROSS_TRIPLET}-gcc not found: "
        "apt-get install gcc-${CAIRN_CROSS_TRIPLET}")
endif()
set(CMAKE_C_COMPILER "${CAIRN_CROSS_CC}")
set(CMAKE_LIBRARY_ARCHITECTURE ${CAIRN_CROSS_TRIPLET})

set(CMAKE_SYSROOT "${CAIRN_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH "${CAIRN_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config reads only the sysroot's .pc files and prefixes what they
# say with the sysroot.  CMAKE_PREFIX_PATH must not add host paths.
set(ENV{PKG_CONFIG_LIBDIR}
    "${CAIRN_SYSROOT}/usr/lib/${CAIRN_CROSS_TRIPLET}/pkgconfig:${CAIRN_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${CAIRN_SYSROOT}")
set(ENV{PKG_CONFIG_PATH} "")
set(PKG_CONFIG_USE_CMAKE_PREFIX_PATH OFF)

find_program(CAIRN_CROSS_QEMU_PATH ${CAIRN_CROSS_QEMU})
if(CAIRN_CROSS_QEMU_PATH)
    set(CMAKE_CROSSCOMPILING_EMULATOR
        "${CAIRN_CROSS_QEMU_PATH};-L;${CAIRN_SYSROOT}")
else()
    message(WARNING "${CAIRN_CROSS_QEMU} not found (apt-get install "
        "qemu-user-static): the tests cannot run on this host")
endif()

# Board profiles (boards/*/toolchain.cmake) add CPU flags and link flags.
set(CMAKE_C_FLAGS_INIT "${CAIRN_BOARD_C_FLAGS}")
foreach(kind EXE SHARED MODULE)
    set(CMAKE_${kind}_LINKER_FLAGS_INIT "${CAIRN_BOARD_LINK_FLAGS}")
endforeach()
