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

# The moat executable's allocator: mimalloc (libmimalloc-dev) with -DMOAT_USE_MIMALLOC=ON, when
# installed. Linked into the executable only (never into a library or plugin); it then serves
# every malloc of the process, plugins included. In the echo benchmark it saves ~18% of the
# instructions per request (callgrind, c=16: 71.8k -> 58.3k); it is off by default because its
# per-thread heaps add ~0.7 MiB RSS with the cpu backend's threads, which the memory planner
# does not count (tests/e2e/test_planner_rss.py: error -4% -> -9..-10%, past its 10% bound).
# Never with sanitizers (ASan brings its own allocator).
option(MOAT_USE_MIMALLOC "Link the moat executable with mimalloc (libmimalloc-dev) when it is installed" OFF)
add_library(moat_allocator INTERFACE)
if(MOAT_USE_MIMALLOC AND NOT MOAT_SANITIZE)
  find_library(MOAT_MIMALLOC_LIBRARY NAMES mimalloc)
  if(MOAT_MIMALLOC_LIBRARY)
    # --no-as-needed: the executable names no mimalloc symbol, yet the library must be loaded
    # (ahead of libc) for its malloc to take over.
    target_link_libraries(moat_allocator INTERFACE
      "-Wl,--push-state,--no-as-needed" ${MOAT_MIMALLOC_LIBRARY} "-Wl,--pop-state")
    message(STATUS "moat: the moat executable uses mimalloc (${MOAT_MIMALLOC_LIBRARY})")
  else()
    message(STATUS "moat: MOAT_USE_MIMALLOC=ON but libmimalloc-dev is not installed; glibc malloc")
  endif()
endif()
