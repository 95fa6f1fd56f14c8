# packaging-split.cmake - CPack pre-build script (see packaging.cmake):
# moves the development files from the staged `cairn` package (component
# Unspecified) to the staged `cairn-dev` package (component dev), by
# path, the way Debian splits a -dev package:
#   <includedir>/...              headers
#   <libdir>/cmake/...            CMake package
#   <libdir>/pkgconfig/...        pkg-config files
#   <libdir>/lib*.so, lib*.a      the link-time names and static libraries
# (versioned libraries, plugins in <libdir>/cairn/plugins, programs and
# everything else stay in the runtime package).
set(_stage ${CPACK_TEMPORARY_INSTALL_DIRECTORY})
set(_from ${_stage}/Unspecified${CPACK_PACKAGING_INSTALL_PREFIX})
set(_to ${_stage}/dev${CPACK_PACKAGING_INSTALL_PREFIX})
if(NOT IS_DIRECTORY ${_from})
    message(FATAL_ERROR "packaging-split: nothing staged in ${_from}")
endif()

set(_lib ${CPACK_CAIRN_LIBDIR})
file(GLOB_RECURSE _files LIST_DIRECTORIES false RELATIVE ${_from}
    ${_from}/${CPACK_CAIRN_INCLUDEDIR}/*
    ${_from}/${_lib}/cmake/*
    ${_from}/${_lib}/pkgconfig/*)
file(GLOB _libs LIST_DIRECTORIES false RELATIVE ${_from}
    ${_from}/${_lib}/lib*.so ${_from}/${_lib}/lib*.a)
list(APPEND _files ${_libs})
if(NOT _files)
    message(FATAL_ERROR "packaging-split: no development files in ${_from}")
endif()

foreach(f IN LISTS _files)
    get_filename_component(_dir ${_to}/${f} DIRECTORY)
    file(MAKE_DIRECTORY ${_dir})
    file(RENAME ${_from}/${f} ${_to}/${f})
endforeach()

# Directories left empty behind, deepest first.
foreach(d ${CPACK_CAIRN_INCLUDEDIR} ${_lib}/cmake ${_lib}/pkgconfig)
    if(IS_DIRECTORY ${_from}/${d})
        file(GLOB_RECURSE _left LIST_DIRECTORIES false ${_from}/${d}/*)
        if(NOT _left)
            file(REMOVE_RECURSE ${_from}/${d})
        endif()
    endif()
endforeach()
list(LENGTH _files _n)
message(STATUS "packaging-split: ${_n} development files to cairn-dev")
