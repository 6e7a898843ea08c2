# One pkg-config file a component (webhookdb-<component>.pc) and webhookdb.pc
# for all of them, installed in <libdir>/pkgconfig:
#   pkg-config --cflags --libs webhookdb-core webhookdb-memory
# Requires: the components and libraries in its public headers; Requires.private
# and Libs.private: what a static library also needs at link time.
set(_pc_libdir "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
set(_pc_includedir "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
# component;public requires;private requires;private libs (no .pc: Boost is header-only here)
set(_pc_core "nlohmann_json >= 3.11" "libcrypto" "-pthread")
set(_pc_memory "webhookdb-core" "" "")
set(_pc_testing "webhookdb-core webhookdb-memory" "" "")
set(_pc_curl "webhookdb-core" "libcurl" "")
set(_pc_pg "webhookdb-core" "libpqxx >= 6.4 libpq libcrypto" "")
set(_pc_webhooks "webhookdb-core" "libcrypto" "")
set(_pc_jobs "webhookdb-core webhookdb-pg" "libpqxx >= 6.4" "")
foreach(component IN LISTS WEBHOOKDB_COMPONENTS)
  if(NOT DEFINED _pc_${component})
    message(FATAL_ERROR "cmake/WebhookdbPkgConfig.cmake: no pkg-config entry for component ${component}")
  endif()
  list(GET _pc_${component} 0 _pc_requires)
  list(GET _pc_${component} 1 _pc_requires_private)
  list(GET _pc_${component} 2 _pc_libs_private)
  string(REPLACE ";" ", " _pc_requires "${_pc_requires}")
  set(_pc_file ${PROJECT_BINARY_DIR}/pkgconfig/webhookdb-${component}.pc)
  file(WRITE ${_pc_file}.in "prefix=@CMAKE_INSTALL_PREFIX@
libdir=${_pc_libdir}
includedir=${_pc_includedir}

Name: webhookdb-${component}
Description: ${PROJECT_DESCRIPTION} (component ${component})
Version: ${PROJECT_VERSION}
Requires: ${_pc_requires}
Requires.private: ${_pc_requires_private}
Cflags: -I\${includedir}
Libs: -L\${libdir} -lwebhookdb_${component}
Libs.private: ${_pc_libs_private}
")
  list(APPEND _pc_all webhookdb-${component})
endforeach()
string(REPLACE ";" ", " _pc_all_requires "${_pc_all}")
file(WRITE ${PROJECT_BINARY_DIR}/pkgconfig/webhookdb.pc.in "prefix=@CMAKE_INSTALL_PREFIX@

Name: webhookdb
Description: ${PROJECT_DESCRIPTION} (every component)
Version: ${PROJECT_VERSION}
Requires: ${_pc_all_requires}
")
# The prefix is the one given at install time (cmake --install --prefix), so
# the files are configured by an install script, not at configure time.
foreach(_pc_name IN ITEMS webhookdb ${_pc_all})
  install(CODE "configure_file(\"${PROJECT_BINARY_DIR}/pkgconfig/${_pc_name}.pc.in\"
    \"${PROJECT_BINARY_DIR}/pkgconfig/${_pc_name}.pc\" @ONLY)")
  install(FILES ${PROJECT_BINARY_DIR}/pkgconfig/${_pc_name}.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endforeach()
