# moat_add_plugin(NAME SOURCES...): builds build/lib/moat/libmoat_NAME.so exporting only
# moat_backend_entry (everything else hidden, so two plugins never clash).
function(moat_add_plugin name)
  add_library(moat_${name} SHARED ${ARGN})
  target_link_libraries(moat_${name} PRIVATE moat_abi)
  set_target_properties(moat_${name} PROPERTIES
    LIBRARY_OUTPUT_DIRECTORY ${MOAT_PLUGIN_DIR}
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    PREFIX "lib")
  target_link_options(moat_${name} PRIVATE -Wl,--no-undefined)
endfunction()
