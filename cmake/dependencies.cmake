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

# The moat executable's allocator: mimalloc (libmimalloc-dev, which `make deps` installs) by
# default when installed, glibc malloc otherwise or with -DMOAT_USE_MIMALLOC=OFF. Linked into
# the executable only (never into a library or plugin); it then serves every malloc of the
# process, plugins included. glibc is slow to free blocks another thread allocated, which every
# answer's events do (backend threads -> I/O thread); see the commit that made it the default
# for the measured gain. Its per-thread heaps keep ~0.9 MiB more per cpu model than glibc,
# which `moat plan` counts (planner/allocator.h, docs/planning.md "The allocator").
# Never with sanitizers (they bring their own allocator): MOAT_SANITIZE, or -fsanitize=... given
# in CMAKE_CXX_FLAGS (a TSan build, say).
option(MOAT_USE_MIMALLOC "Link the moat executable with mimalloc (libmimalloc-dev) when it is installed" ON)
add_library(moat_allocator INTERFACE)
if(MOAT_USE_MIMALLOC AND NOT MOAT_SANITIZE AND NOT CMAKE_CXX_FLAGS MATCHES "-fsanitize")
  find_library(MOAT_MIMALLOC_LIBRARY NAMES mimalloc)
  if(MOAT_MIMALLOC_LIBRARY)
    # --no-as-needed: the executable names no mimalloc symbol, yet the library must be loaded
    # (ahead of libc) for its malloc to take over.
    target_link_libraries(moat_allocator INTERFACE
      "-Wl,--push-state,--no-as-needed" ${MOAT_MIMALLOC_LIBRARY} "-Wl,--pop-state")
    message(STATUS "moat: the moat executable uses mimalloc (${MOAT_MIMALLOC_LIBRARY})")
  else()
    message(STATUS "moat: libmimalloc-dev is not installed (make deps installs it); glibc malloc")
  endif()
endif()
