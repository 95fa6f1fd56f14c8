# packaging.cmake - Debian packages of cairn, one pair per architecture
# built (native or cross: the package architecture is the target's).
#
#   cmake --preset rpi4 && cmake --build --preset rpi4
#   cpack --config build/rpi4/CPackConfig.cmake -B build/rpi4/pkg
#     -> cairn_0.1.0-1_arm64.deb      cairnd, cairn, libcairn.so.N, plugins,
#                                     /etc/cairn/cairn.yaml, cairnd.service
#     -> cairn-dev_0.1.0-1_arm64.deb  headers, CMake package, cairn.pc,
#                                     the libcairn.so link
#
# Components.  Install rules that name no component (the core's, every
# plugin's) land in CMake's default component, "Unspecified", packaged as
# `cairn`.  The development files are moved from it to the `dev`
# component by cmake/packaging-split.cmake after CPack has staged them,
# by path, as Debian splits a -dev package: the include directory,
# <libdir>/cmake, <libdir>/pkgconfig, and the unversioned lib*.so links
# and static libraries directly in <libdir>.  So a new plugin or header
# needs no packaging change.
#
# The package installs where the build was configured to: the board
# presets configure CMAKE_INSTALL_PREFIX=/usr (Debian's layout, config in
# /etc/cairn); the dev and release presets keep /usr/local.  The default
# config is boards/<CAIRN_BOARD>/cairn.yaml; the board comes from the
# board preset's toolchain file, else from the target processor.
#
# Dependencies are declared, not computed (dpkg-shlibdeps cannot read a
# sysroot made of unpacked .debs).  A plugin that links another library
# adds its package:
#   set_property(GLOBAL APPEND PROPERTY CAIRN_DEB_DEPENDS "libmosquitto1 (>= 2.0.11)")

# ---- which board and which Debian architecture -------------------------
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64)$")
    set(_cairn_deb_arch arm64)
    set(_cairn_board rpi4)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^arm")
    set(_cairn_deb_arch armhf)
    set(_cairn_board armv7)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
    set(_cairn_deb_arch amd64)
    set(_cairn_board x86_64)
else()
    set(_cairn_deb_arch ${CMAKE_SYSTEM_PROCESSOR})
    set(_cairn_board x86_64)
endif()
if(CAIRN_CROSS_DEB_ARCH)
    set(_cairn_deb_arch ${CAIRN_CROSS_DEB_ARCH})
endif()
if(NOT CAIRN_BOARD)
    set(CAIRN_BOARD ${_cairn_board})
endif()
set(CAIRN_BOARD_CONFIG ${PROJECT_SOURCE_DIR}/boards/${CAIRN_BOARD}/cairn.yaml)
if(NOT EXISTS ${CAIRN_BOARD_CONFIG})
    message(FATAL_ERROR "CAIRN_BOARD=${CAIRN_BOARD}: no ${CAIRN_BOARD_CONFIG}")
endif()
if(NOT CAIRN_BOARD_MEMORY_HIGH)
    set(CAIRN_BOARD_MEMORY_HIGH infinity)
endif()
if(NOT CAIRN_BOARD_MEMORY_MAX)
    set(CAIRN_BOARD_MEMORY_MAX infinity)
endif()

# ---- what only the package installs -------------------------------------
# EXCLUDE_FROM_ALL: `cmake --install` into a prefix (tests, out-of-tree
# users) must not write to /etc; CPack installs the component by name and
# so gets these too.
set(CAIRN_CONFIG_FILE ${CMAKE_INSTALL_FULL_SYSCONFDIR}/cairn/cairn.yaml)
configure_file(${CMAKE_CURRENT_LIST_DIR}/cairnd.service.in
    ${PROJECT_BINARY_DIR}/cairnd.service @ONLY)
install(FILES ${CAIRN_BOARD_CONFIG}
    DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/cairn
    COMPONENT Unspecified EXCLUDE_FROM_ALL)
install(FILES ${PROJECT_BINARY_DIR}/cairnd.service
    DESTINATION lib/systemd/system
    COMPONENT Unspecified EXCLUDE_FROM_ALL)

# The board's default config must pass the check of the cairnd built
# with it (under the emulator in cross builds).
if(BUILD_TESTING)
    add_test(NAME board_default_config
        COMMAND cairnd --check -c ${CAIRN_BOARD_CONFIG})
    set_tests_properties(board_default_config PROPERTIES
        LABELS runtime TIMEOUT 60)
endif()

# ---- CPack --------------------------------------------------------------
set(CAIRN_DEB_MAINTAINER "cairn maintainers <maintainers@cairn.invalid>"
    CACHE STRING "Maintainer field of the .deb packages")
get_property(_cairn_deb_extra GLOBAL PROPERTY CAIRN_DEB_DEPENDS)
set(_cairn_deb_depends
    "libc6 (>= 2.34)" "libnng1 (>= 1.5.2)" "libcbor0.8 (>= 0.8.0)"
    "libyaml-0-2 (>= 0.2.5)" ${_cairn_deb_extra})
list(REMOVE_DUPLICATES _cairn_deb_depends)
list(JOIN _cairn_deb_depends ", " _cairn_deb_depends)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME cairn)
set(CPACK_PACKAGE_VENDOR cairn)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
# No CPACK_PACKAGE_DESCRIPTION_SUMMARY: each package's synopsis is the
# first line of its component's description below.
set(CPACK_PACKAGE_CONTACT "${CAIRN_DEB_MAINTAINER}")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL Unspecified dev)
set(CPACK_PRE_BUILD_SCRIPTS ${CMAKE_CURRENT_LIST_DIR}/packaging-split.cmake)
# Read by packaging-split.cmake (CPack passes on CPACK_* variables only).
set(CPACK_CAIRN_LIBDIR ${CMAKE_INSTALL_LIBDIR})
set(CPACK_CAIRN_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR})

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE ${_cairn_deb_arch})
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CAIRN_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)

set(CPACK_DEBIAN_UNSPECIFIED_PACKAGE_NAME cairn)
set(CPACK_DEBIAN_UNSPECIFIED_PACKAGE_DEPENDS "${_cairn_deb_depends}")
set(CPACK_COMPONENT_UNSPECIFIED_DESCRIPTION
    "edge runtime: cairnd, the cairn CLI, libcairn and plugins
cairnd loads service plugins that talk over an in-process NNG bus in
CBOR envelopes, and bridges to cloud brokers through a durable outbox.
Configured for the ${CAIRN_BOARD} board; systemd unit cairnd.service.")

set(_cairn_deb_ctl ${PROJECT_BINARY_DIR}/debian)
file(MAKE_DIRECTORY ${_cairn_deb_ctl})
file(WRITE ${_cairn_deb_ctl}/conffiles "${CAIRN_CONFIG_FILE}\n")
# Not enabled on install: the config needs its plugins first.
file(WRITE ${_cairn_deb_ctl}/postinst [=[#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
    if systemctl is-active --quiet cairnd.service; then
        systemctl restart cairnd.service || true
    fi
fi
]=])
file(WRITE ${_cairn_deb_ctl}/prerm [=[#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop cairnd.service >/dev/null 2>&1 || true
fi
]=])
file(WRITE ${_cairn_deb_ctl}/postrm [=[#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
fi
]=])
file(CHMOD ${_cairn_deb_ctl}/postinst ${_cairn_deb_ctl}/prerm
    ${_cairn_deb_ctl}/postrm
    PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
    GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
set(CPACK_DEBIAN_UNSPECIFIED_PACKAGE_CONTROL_EXTRA
    ${_cairn_deb_ctl}/conffiles ${_cairn_deb_ctl}/postinst
    ${_cairn_deb_ctl}/prerm ${_cairn_deb_ctl}/postrm)
set(CPACK_DEBIAN_UNSPECIFIED_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_DEV_PACKAGE_NAME cairn-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
    "cairn (= ${PROJECT_VERSION}-${CPACK_DEBIAN_PACKAGE_RELEASE})")
set(CPACK_COMPONENT_DEV_DESCRIPTION
    "cairn plugin SDK: headers, CMake package and pkg-config file
Build cairn plugins out of tree with find_package(cairn) and
cairn_add_plugin(), or with pkg-config --cflags --libs cairn.")

include(CPack)
