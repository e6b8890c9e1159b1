// The sandboxed Lua state: allocator cap, instruction budget, the calls into the hooks, and the
// per-thread cache. What the script sees (moat.*, ctx) is in lua_bindings.cpp. Every Lua call
// runs under lua_pcall so nothing reaches lua_atpanic.
#include "policy/lua_runtime.h"

#include <lua.hpp>
#include <re2/re2.h>
#include <spdlog/spdlog.h>

#include "policy/lua_bindings.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

namespace moat::policy {

lua_runtime* rt_of(lua_State* L) { return *static_cast<lua_runtime**>(lua_getextraspace(L)); }

// Charges C-side work (regex scans) to the budget.
void charge(lua_State* L, size_t bytes) {
  auto& lim = rt_of(L)->limits_;
  lim.executed += bytes / bytes_per_unit + 1;
  if (lim.executed > lim.budget) {
    lim.over_budget = true;
    luaL_error(L, "instruction budget exceeded");
  }
}

namespace {

constexpr size_t max_regex_cache = 256;

// The allocator: refuses growth past the cap, so a memory bomb gets LUA_ERRMEM, not the OOM
// killer; growth also counts against the call's budget (see limits_state).
void* capped_alloc(void* ud, void* ptr, size_t osize, size_t nsize) {
  auto* lim = static_cast<lua_runtime::limits_state*>(ud);
  const size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    std::free(ptr);
    lim->used -= old;
    return nullptr;
  }
  if (nsize > old) {
    lim->executed += (nsize - old) / bytes_per_unit;
    if (lim->executed > lim->budget) {
      lim->over_budget = true;  // reported as the budget, not as memory
      return nullptr;
    }
    if (lim->used + (nsize - old) > lim->cap) return nullptr;
  }
  void* p = std::realloc(ptr, nsize);
  if (!p) return nullptr;
  lim->used = lim->used - old + nsize;
  return p;
}

constexpr int hook_every = 1000;

void count_hook(lua_State* L, lua_Debug*) {
  auto& lim = rt_of(L)->limits_;
  lim.executed += hook_every;
  if (lim.executed > lim.budget) {
    // Fire on every instruction from now on, so a pcall loop in the script cannot outlast it.
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    luaL_error(L, "instruction budget exceeded (%d)", static_cast<int>(std::min<uint64_t>(lim.budget, 2000000000)));
  }
}


}  // namespace

lua_runtime::lua_runtime(const script_source& src, std::vector<rule>* registered) : src_(src) {
  limits_.cap = src.limits.memory;
  limits_.budget = src.limits.instructions;  // the allocator charges from the first allocation
  L_ = lua_newstate(capped_alloc, &limits_);
  if (!L_) throw policy_error(src.path + ": cannot create a Lua state (memory limit too small?)");
  *static_cast<lua_runtime**>(lua_getextraspace(L_)) = this;
  registering_ = registered;
  loading_ = true;
  limits_.executed = 0;
  limits_.over_budget = false;
  limits_.budget = src.limits.instructions;
  lua_sethook(L_, count_hook, LUA_MASKCOUNT, hook_every);
  lua_pushcfunction(L_, setup_state);
  lua_pushlightuserdata(L_, const_cast<script_source*>(&src));
  const int status = lua_pcall(L_, 1, 0, 0);
  registering_ = nullptr;
  loading_ = false;
  if (status != LUA_OK) {
    std::string msg = lua_type(L_, -1) == LUA_TSTRING ? lua_tostring(L_, -1) : "(error object is not a string)";
    if (limits_.over_budget) msg = "instruction budget exceeded while loading";
    else if (status == LUA_ERRMEM) msg = "memory limit exceeded while loading";
    lua_close(L_);
    L_ = nullptr;
    throw policy_error(src.path + ": " + msg);
  }
  lua_getglobal(L_, "on_request");
  has_on_request_ = lua_isfunction(L_, -1);
  lua_getglobal(L_, "on_response");
  has_on_response_ = lua_isfunction(L_, -1);
  lua_pop(L_, 2);
}

lua_runtime::~lua_runtime() {
  if (L_) lua_close(L_);
}

const RE2* lua_runtime::regex(const char* pattern, size_t len, std::string* error) {
  std::string key(pattern, len);
  auto it = regex_cache_.find(key);
  if (it != regex_cache_.end()) return it->second.get();
  RE2::Options o;
  o.set_log_errors(false);
  auto re = std::make_unique<RE2>(key, o);
  if (!re->ok()) {
    *error = re->error();
    return nullptr;
  }
  if (regex_cache_.size() >= max_regex_cache) regex_cache_.clear();  // a script making patterns from input
  return regex_cache_.emplace(std::move(key), std::move(re)).first->second.get();
}

bool lua_runtime::call(int (*fn)(lua_State*), lua_job& job, decision& d, const char* hook) {
  job_ = &job;
  limits_.executed = 0;
  limits_.over_budget = false;
  limits_.budget = src_.limits.instructions;
  lua_sethook(L_, count_hook, LUA_MASKCOUNT, hook_every);
  lua_settop(L_, 0);
  lua_pushcfunction(L_, fn);
  const int status = lua_pcall(L_, 0, 0, 0);
  job_ = nullptr;
  if (status == LUA_OK) {
    if (job.blocked) {
      d.outcome = verdict::block;
      d.reason = job.block_reason;
      d.decisions.push_back({src_.name, hook, "block", 1});
    }
    if (job.redactions > 0) d.decisions.push_back({src_.name, hook, "redact", job.redactions});
    if (d.route_model) d.decisions.push_back({src_.name, hook, "route", 1});
    return true;
  }
  std::string msg = lua_type(L_, -1) == LUA_TSTRING ? lua_tostring(L_, -1) : "(error object is not a string)";
  if (limits_.over_budget) msg = "instruction budget exceeded (" + std::to_string(src_.limits.instructions) +
                                 ", counting allocations and regex work)";
  else if (status == LUA_ERRMEM) msg = "memory limit exceeded (" + std::to_string(src_.limits.memory) + " bytes)";
  if (msg.size() > 300) msg.resize(300);
  lua_settop(L_, 0);
  broken_ = true;
  d.outcome = verdict::fail;
  d.reason = "policy " + src_.name + " failed in " + hook + ": " + msg;
  d.decisions.push_back({src_.name, hook, "fail", 1});
  spdlog::error("{}", d.reason);
  return false;
}

void lua_runtime::on_request(request_context& ctx, decision& d) {
  if (!has_on_request_) return;
  lua_job job;
  job.ctx = &ctx;
  job.d = &d;
  call(call_on_request, job, d, "on_request");
}

void lua_runtime::on_response(const request_context& ctx, std::string& text, decision& d, bool streamed) {
  if (!has_on_response_) return;
  lua_job job;
  job.rctx = &ctx;
  job.text = &text;
  job.d = &d;
  job.streamed = streamed;
  call(call_on_response, job, d, "on_response");
}

namespace {

struct thread_cache_entry {
  uint64_t id;
  std::weak_ptr<const int> alive;
  std::vector<std::unique_ptr<lua_runtime>> runtimes;
};

}  // namespace

lua_runtime& runtime_for(const compiled_policies& c, size_t index) {
  // One state per script per worker thread; entries of sets that were swapped out are dropped here.
  thread_local std::vector<thread_cache_entry> cache;
  thread_cache_entry* entry = nullptr;
  for (auto it = cache.begin(); it != cache.end();) {
    if (it->alive.expired()) {
      it = cache.erase(it);
      continue;
    }
    if (it->id == c.id) entry = &*it;
    ++it;
  }
  if (!entry) {
    cache.push_back({c.id, c.token, {}});
    entry = &cache.back();
    entry->runtimes.resize(c.scripts.size());
  }
  auto& slot = entry->runtimes[index];
  if (!slot || slot->broken()) slot = std::make_unique<lua_runtime>(c.scripts[index]);
  return *slot;
}

}  // namespace moat::policy

