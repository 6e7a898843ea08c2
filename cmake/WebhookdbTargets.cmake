# Helpers shared by every component's CMakeLists.

# Per-target warnings; -Werror only when WEBHOOKDB_WERROR is on (CI).
function(webhookdb_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
    -Wnon-virtual-dtor -Woverloaded-virtual -Wimplicit-fallthrough
    # Designated initializers that omit members are how config structs are
    # meant to be used; GCC 12 warns about them under -Wextra.
    -Wno-missing-field-initializers
    # GCC 12 reports std::string concatenation at -O2 as overlapping memcpy
    # (GCC bug 105329), a false positive inside libstdc++.
    $<$<CXX_COMPILER_ID:GNU>:-Wno-restrict>)
  get_target_property(unity ${target} UNITY_BUILD)
  if(unity)
    # In a unity build every source is #included, so GCC takes a class with a
    # member of an anonymous-namespace type (our pimpls) for one in a header.
    target_compile_options(${target} PRIVATE $<$<CXX_COMPILER_ID:GNU>:-Wno-subobject-linkage>)
  endif()
  if(WEBHOOKDB_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# webhookdb_component(<name> SOURCES ... [PUBLIC_LIBS ...] [PRIVATE_LIBS ...])
# Defines library webhookdb_<name>, alias webhookdb::<name> (the installed
# name too), exported in webhookdbTargets.
function(webhookdb_component name)
  cmake_parse_arguments(ARG "" "" "SOURCES;PUBLIC_LIBS;PRIVATE_LIBS;PRIVATE_DEFS" ${ARGN})
  add_library(webhookdb_${name} ${ARG_SOURCES})
  add_library(webhookdb::${name} ALIAS webhookdb_${name})
  set_target_properties(webhookdb_${name} PROPERTIES EXPORT_NAME ${name} OUTPUT_NAME webhookdb_${name})
  target_include_directories(webhookdb_${name} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_compile_features(webhookdb_${name} PUBLIC cxx_std_20)
  target_link_libraries(webhookdb_${name} PUBLIC ${ARG_PUBLIC_LIBS} PRIVATE ${ARG_PRIVATE_LIBS})
  if(ARG_PRIVATE_DEFS)
    target_compile_definitions(webhookdb_${name} PRIVATE ${ARG_PRIVATE_DEFS})
  endif()
  webhookdb_warnings(webhookdb_${name})
  # Shared builds: a SONAME that changes with every minor version (0.x breaks
  # on minors; the package version file says SameMinorVersion), and only what
  # include/webhookdb/export.hpp marks WEBHOOKDB_EXPORT is exported.
  set_target_properties(webhookdb_${name} PROPERTIES
    VERSION ${PROJECT_VERSION}
    SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR}
    # Installed, a shared component finds the components it links beside it:
    # an executable's RUNPATH does not serve its libraries' own dependencies.
    INSTALL_RPATH "$ORIGIN")
  # Shared builds: every component hidden but for WEBHOOKDB_EXPORT, and
  # nothing outside namespace webhookdb in its dynamic symbol table
  # (cmake/webhookdb.map says why). Check: nm -DC --defined-only <lib>.so
  if(BUILD_SHARED_LIBS)
    set_target_properties(webhookdb_${name} PROPERTIES
      CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
    target_link_options(webhookdb_${name} PRIVATE
      "LINKER:--version-script=${PROJECT_SOURCE_DIR}/cmake/webhookdb.map")
    set_property(TARGET webhookdb_${name} APPEND PROPERTY LINK_DEPENDS ${PROJECT_SOURCE_DIR}/cmake/webhookdb.map)
  endif()
  # The webhookdb::<name> components it links (PUBLIC_LIBS), for the package
  # config: find_package(webhookdb COMPONENTS <name>) loads those first.
  set(needs "")
  foreach(lib IN LISTS ARG_PUBLIC_LIBS)
    if(lib MATCHES "^webhookdb::(.+)$")
      list(APPEND needs ${CMAKE_MATCH_1})
    endif()
  endforeach()
  set_property(GLOBAL APPEND_STRING PROPERTY WEBHOOKDB_COMPONENT_NEEDS
    "set(_webhookdb_needs_${name} \"${needs}\")\n")
  # One export set a component, so a consumer loads only the components it asks for.
  install(TARGETS webhookdb_${name} EXPORT webhookdb_${name}Targets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(EXPORT webhookdb_${name}Targets NAMESPACE webhookdb::
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/webhookdb)
endfunction()
