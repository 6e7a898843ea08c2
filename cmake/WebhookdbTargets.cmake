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
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_compile_features(webhookdb_${name} PUBLIC cxx_std_20)
  target_link_libraries(webhookdb_${name} PUBLIC ${ARG_PUBLIC_LIBS} PRIVATE ${ARG_PRIVATE_LIBS})
  if(ARG_PRIVATE_DEFS)
    target_compile_definitions(webhookdb_${name} PRIVATE ${ARG_PRIVATE_DEFS})
  endif()
  webhookdb_warnings(webhookdb_${name})
  install(TARGETS webhookdb_${name} EXPORT webhookdbTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endfunction()
