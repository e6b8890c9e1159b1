// Internal to the Lua runtime: the per-call job and the C functions lua_runtime.cpp runs under
// lua_pcall. See lua_runtime.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "policy/policy.h"

struct lua_State;

namespace moat::policy {

class lua_runtime;

struct lua_job {
  request_context* ctx = nullptr;      // on_request
  const request_context* rctx = nullptr;  // on_response
  std::string* text = nullptr;
  decision* d = nullptr;
  bool streamed = false;
  bool blocked = false;
  std::string block_reason;
  int redactions = 0;
};

lua_runtime* rt_of(lua_State* L);  // from the state's extra space
inline constexpr uint64_t bytes_per_unit = 16;  // bytes allocated or scanned per budget unit
// Charges C-side work to the budget; raises "instruction budget exceeded" past it.
void charge(lua_State* L, size_t bytes);

// Each runs under lua_pcall with the runtime in the extra space.
int setup_state(lua_State* L);      // arg 1: const script_source*; builds the sandbox, runs the chunk
int call_on_request(lua_State* L);  // runs on_request for rt_of(L)->job_
int call_on_response(lua_State* L); // runs on_response for rt_of(L)->job_

}  // namespace moat::policy
