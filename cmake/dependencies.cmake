# Third-party libraries, all from Debian 12 packages (installed by `make deps`).
find_package(Threads REQUIRED)
find_package(Boost 1.74 REQUIRED COMPONENTS program_options)
find_package(OpenSSL REQUIRED)
find_package(simdjson REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(spdlog REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(RE2 REQUIRED IMPORTED_TARGET re2)
pkg_check_modules(LUA REQUIRED IMPORTED_TARGET lua5.4)
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)
if(MOAT_TESTS)
  find_package(GTest REQUIRED)
endif()

# The header-only ABI every plugin and the host include.
add_library(moat_abi INTERFACE)
target_include_directories(moat_abi INTERFACE ${CMAKE_SOURCE_DIR}/plugins/include)

# The moat executable's allocator: mimalloc (libmimalloc-dev) when found. Linked into the
# executable only (never into a library or plugin); it then serves every malloc of the process,
# plugins included. The gateway allocates small objects per request on the I/O thread and frees
# them there or on a backend's thread, where glibc malloc costs ~18% more instructions per
# request (callgrind, echo benchmark). Off for sanitizer builds (ASan brings its own) and with
# -DMOAT_MIMALLOC=OFF; without the package the executable keeps glibc malloc.
option(MOAT_MIMALLOC "Link the moat executable with mimalloc when it is installed" ON)
add_library(moat_allocator INTERFACE)
if(MOAT_MIMALLOC AND NOT MOAT_SANITIZE)
  find_library(MOAT_MIMALLOC_LIBRARY NAMES mimalloc)
  if(MOAT_MIMALLOC_LIBRARY)
    # --no-as-needed: the executable names no mimalloc symbol, yet the library must be loaded
    # (ahead of libc) for its malloc to take over.
    target_link_libraries(moat_allocator INTERFACE
      "-Wl,--push-state,--no-as-needed" ${MOAT_MIMALLOC_LIBRARY} "-Wl,--pop-state")
    message(STATUS "moat: the moat executable uses mimalloc (${MOAT_MIMALLOC_LIBRARY})")
  else()
    message(STATUS "moat: libmimalloc-dev not found; the moat executable uses glibc malloc")
  endif()
endif()
