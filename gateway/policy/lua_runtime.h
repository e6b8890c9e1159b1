// One sandboxed lua_State running one policy script. Not thread-safe: each worker thread gets its
// own through runtime_for() (a thread-local cache keyed by the compiled set).
//
//   lua_runtime rt(script, &rules);            // loads the file; throws policy_error on failure
//   rt.on_request(ctx, decision);              // fail closed: decision.verdict == fail on error
//   if (rt.broken()) { /* discard: the next call builds a fresh state */ }
//
// Sandbox: base (minus load/loadfile/dofile/collectgarbage/print/require), string (minus the
// Lua-pattern functions, which are not linear-time: use moat.re), table, math, utf8, coroutine.
// No io, os, package, debug. Chunks load as text only. setmetatable refuses __gc, the string
// metatable is protected. Memory is capped by the allocator, instructions by a count hook.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "policy/policy.h"
#include "policy/policy_internal.h"

struct lua_State;

namespace re2 {
class RE2;
}

namespace moat::policy {

struct lua_job;

class lua_runtime {
 public:
  // `registered`, when given, receives the rules the script declares with moat.rule and
  // moat.stream_redact while loading.
  explicit lua_runtime(const script_source& src, std::vector<rule>* registered = nullptr);
  ~lua_runtime();
  lua_runtime(const lua_runtime&) = delete;
  lua_runtime& operator=(const lua_runtime&) = delete;

  bool has_on_request() const { return has_on_request_; }
  bool has_on_response() const { return has_on_response_; }
  void on_request(request_context& ctx, decision& d);
  // `text` is rewritten by ctx:redact or by assigning ctx.text unless `streamed`.
  void on_response(const request_context& ctx, std::string& text, decision& d, bool streamed);
  // After a failure the state may hold half-done work: the owner drops it.
  bool broken() const { return broken_; }

  // Internals reached from the C functions the script calls.
  // The budget counts VM instructions plus work done in C on the script's behalf: one unit per
  // 16 bytes allocated or scanned by moat.re, so a loop of string.rep or gsub over a large text
  // runs out as surely as a loop of instructions.
  struct limits_state {
    size_t used = 0;
    size_t cap = 0;
    uint64_t executed = 0;
    uint64_t budget = 0;
    bool over_budget = false;
  };
  limits_state limits_;
  lua_job* job_ = nullptr;
  std::vector<rule>* registering_ = nullptr;
  bool loading_ = false;
  const script_source& src_;
  int stream_rules_ = 0;
  std::string scratch_;
  const re2::RE2* regex(const char* pattern, size_t len, std::string* error);

 private:
  bool call(int (*fn)(lua_State*), lua_job& job, decision& d, const char* hook);

  lua_State* L_ = nullptr;
  bool has_on_request_ = false;
  bool has_on_response_ = false;
  bool broken_ = false;
  std::unordered_map<std::string, std::unique_ptr<re2::RE2>> regex_cache_;
};

// The calling thread's runtime for script `index` of set `c`, created on first use and replaced
// after a failure.
lua_runtime& runtime_for(const compiled_policies& c, size_t index);

}  // namespace moat::policy
