# cairn_add_plugin(NAME SOURCES...)
#
# Builds a cairn plugin: a MODULE (a shared object meant for dlopen) with
# hidden visibility, so the only exported symbol is the ABI entry that
# CAIRN_PLUGIN_DEFINE() marks with default visibility.  No "lib" prefix:
# the file is NAME.so.  Shipped for out-of-tree builds as well.
function(cairn_add_plugin name)
    add_library(${name} MODULE ${ARGN})
    set_target_properties(${name} PROPERTIES
        PREFIX ""
        C_VISIBILITY_PRESET hidden
        C_STANDARD 11)
    target_link_libraries(${name} PRIVATE cairn::sdk)
endfunction()
