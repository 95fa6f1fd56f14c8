# Installs libcairn, its headers, cairnd, the CLI, the plugins, a CMake
# package (find_package(cairn) -> cairn::cairn, cairn::sdk) and cairn.pc.
include(CMakePackageConfigHelpers)

install(TARGETS cairn cairn_sdk EXPORT cairnTargets
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS cairnd cairn_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/core/include/cairn
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(CAIRN_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/cairn)
install(EXPORT cairnTargets NAMESPACE cairn:: DESTINATION ${CAIRN_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/cairnConfig.cmake.in
    ${PROJECT_BINARY_DIR}/cairnConfig.cmake
    INSTALL_DESTINATION ${CAIRN_CMAKE_DIR}
    PATH_VARS CAIRN_PLUGIN_INSTALL_DIR)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cairnConfigVersion.cmake
    COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cairnConfig.cmake
    ${PROJECT_BINARY_DIR}/cairnConfigVersion.cmake
    ${PROJECT_SOURCE_DIR}/cmake/CairnPlugin.cmake
    DESTINATION ${CAIRN_CMAKE_DIR})

# The .pc file finds its prefix from its own place, so a relocated install
# (a scratch root, a sysroot) still works.
file(RELATIVE_PATH CAIRN_PC_TO_PREFIX
    /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
configure_file(${PROJECT_SOURCE_DIR}/cmake/cairn.pc.in
    ${PROJECT_BINARY_DIR}/cairn.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/cairn.pc
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
