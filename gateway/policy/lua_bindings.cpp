// What a policy script sees: the sandboxed globals, moat.re / moat.rule / moat.stream_redact /
// moat.settings, and the ctx table with block/redact/tag. Lua reports errors with longjmp, so
// these C functions keep no C++ object with a destructor alive across a Lua call that may raise.
#include <lua.hpp>
#include <re2/re2.h>

#include <algorithm>
#include <cstring>

#include "policy/lua_bindings.h"
#include "policy/lua_runtime.h"

namespace moat::policy {

namespace {

constexpr const char* ctx_meta = "moat.ctx";
constexpr size_t max_tags = 64;
constexpr size_t max_tag_bytes = 256;
constexpr int max_groups = 16;

int disabled_pattern_fn(lua_State* L) {
  return luaL_error(L, "Lua patterns are disabled in policies (not linear-time): use moat.re");
}

int safe_setmetatable(lua_State* L) {
  // Finalizers would run outside any hook call (during GC or lua_close): refuse them.
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, 2) != LUA_TNIL) return luaL_error(L, "__gc metamethods are not allowed in policies");
    lua_pop(L, 1);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

const RE2& checked_regex(lua_State* L, int arg) {
  size_t len;
  const char* p = luaL_checklstring(L, arg, &len);
  lua_runtime* rt = rt_of(L);
  const RE2* re = rt->regex(p, len, &rt->scratch_);
  if (!re) luaL_error(L, "bad pattern: %s", rt->scratch_.c_str());
  return *re;
}

std::string_view arg_view(lua_State* L, int arg) {
  size_t len;
  const char* s = luaL_checklstring(L, arg, &len);
  return {s, len};
}

// moat.re.find(s, pattern [, init]) -> start, end (1-based, inclusive), captures... | nil
int re_find(lua_State* L) {
  const auto s = arg_view(L, 1);
  const RE2& re = checked_regex(L, 2);
  charge(L, s.size());
  const lua_Integer init = luaL_optinteger(L, 3, 1);
  if (init < 1 || static_cast<size_t>(init) > s.size() + 1) {
    lua_pushnil(L);
    return 1;
  }
  const int n = std::min(re.NumberOfCapturingGroups(), max_groups) + 1;
  re2::StringPiece groups[max_groups + 1];
  if (!re.Match(re2::StringPiece(s.data(), s.size()), static_cast<size_t>(init - 1), s.size(), RE2::UNANCHORED, groups, n)) {
    lua_pushnil(L);
    return 1;
  }
  const auto b = groups[0].data() - s.data();
  lua_pushinteger(L, b + 1);
  lua_pushinteger(L, b + static_cast<lua_Integer>(groups[0].size()));
  for (int g = 1; g < n; ++g) {
    if (groups[g].data()) lua_pushlstring(L, groups[g].data(), groups[g].size());
    else lua_pushnil(L);
  }
  return n + 1;
}

// moat.re.match(s, pattern) -> the captures, or the whole match when the pattern has none | nil
int re_match(lua_State* L) {
  const auto s = arg_view(L, 1);
  const RE2& re = checked_regex(L, 2);
  charge(L, s.size());
  const int n = std::min(re.NumberOfCapturingGroups(), max_groups) + 1;
  re2::StringPiece groups[max_groups + 1];
  if (!re.Match(re2::StringPiece(s.data(), s.size()), 0, s.size(), RE2::UNANCHORED, groups, n)) {
    lua_pushnil(L);
    return 1;
  }
  if (n == 1) {
    lua_pushlstring(L, groups[0].data(), groups[0].size());
    return 1;
  }
  for (int g = 1; g < n; ++g) {
    if (groups[g].data()) lua_pushlstring(L, groups[g].data(), groups[g].size());
    else lua_pushnil(L);
  }
  return n - 1;
}

// Replaces every match in `in` into rt->scratch_; returns the count (-1: bad rewrite).
int replace_all(lua_runtime* rt, const RE2& re, std::string_view in, std::string_view rewrite) {
  rt->scratch_.assign(in);
  std::string error;
  if (!re.CheckRewriteString(re2::StringPiece(rewrite.data(), rewrite.size()), &error)) {
    rt->scratch_ = error;
    return -1;
  }
  return RE2::GlobalReplace(&rt->scratch_, re, re2::StringPiece(rewrite.data(), rewrite.size()));
}

// moat.re.gsub(s, pattern, replacement) -> new string, count   (\1 in replacement: group 1)
int re_gsub(lua_State* L) {
  const auto s = arg_view(L, 1);
  const RE2& re = checked_regex(L, 2);
  const auto rewrite = arg_view(L, 3);
  charge(L, s.size());
  lua_runtime* rt = rt_of(L);
  const int n = replace_all(rt, re, s, rewrite);
  if (n < 0) return luaL_error(L, "bad replacement: %s", rt->scratch_.c_str());
  lua_pushlstring(L, rt->scratch_.data(), rt->scratch_.size());
  lua_pushinteger(L, n);
  return 2;
}

// Builds a rule from load-time arguments; returns false with the reason in rt->scratch_.
bool add_rule(lua_runtime* rt, std::string_view name, std::string_view pattern, std::string_view action,
              std::string_view replace, unsigned on, std::string_view validate, std::string_view label) {
  if (!rt->registering_) return true;  // a worker thread's copy: the rules were taken at compile time
  rule r;
  r.name = name;
  r.pattern = pattern;
  if (action == "redact" || action.empty()) r.action = rule_action::redact;
  else if (action == "block") r.action = rule_action::block;
  else if (action == "audit") r.action = rule_action::audit;
  else if (action == "pseudonymize") r.action = rule_action::pseudonymize;
  else {
    rt->scratch_ = "rule '" + r.name + "': action must be redact, block, audit or pseudonymize";
    return false;
  }
  if (rt->src_.pseudonymize && r.action == rule_action::redact) r.action = rule_action::pseudonymize;
  r.replace = replace;
  r.on = on;
  r.validate = validate;
  r.label = label;
  r.origin = rt->src_.path;
  try {
    finalize_rule(r);
  } catch (const std::exception& e) {
    rt->scratch_ = e.what();
    return false;
  }
  rt->registering_->push_back(std::move(r));
  return true;
}

bool add_stream_rule(lua_runtime* rt, std::string_view pattern, std::string_view replace) {
  const std::string name = "stream_" + std::to_string(++rt->stream_rules_);
  return add_rule(rt, name, pattern, "redact", replace, on_response, {}, {});
}

std::string_view opt_field(lua_State* L, int table, const char* key) {
  lua_getfield(L, table, key);
  size_t len = 0;
  const char* s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : nullptr;
  if (!s && !lua_isnil(L, -1)) luaL_error(L, "moat.rule: `%s` must be a string", key);
  lua_pop(L, 1);  // the string stays alive: the table still references it
  return s ? std::string_view(s, len) : std::string_view();
}

// moat.rule{ name=, pattern=, action=, replace=, on={"request","response"}, validate=, label= }
int moat_rule(lua_State* L) {
  lua_runtime* rt = rt_of(L);
  if (!rt->loading_) return luaL_error(L, "moat.rule may only be called while the policy loads");
  luaL_checktype(L, 1, LUA_TTABLE);
  const auto name = opt_field(L, 1, "name");
  const auto pattern = opt_field(L, 1, "pattern");
  const auto action = opt_field(L, 1, "action");
  const auto replace = opt_field(L, 1, "replace");
  const auto validate = opt_field(L, 1, "validate");
  const auto label = opt_field(L, 1, "label");
  unsigned on = on_request | on_response;
  lua_getfield(L, 1, "on");
  if (lua_istable(L, -1)) {
    on = 0;
    const lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, -1));
    for (lua_Integer i = 1; i <= n; ++i) {
      lua_rawgeti(L, -1, i);
      const char* d = lua_tostring(L, -1);
      if (d && std::strcmp(d, "request") == 0) on |= on_request;
      else if (d && std::strcmp(d, "response") == 0) on |= on_response;
      else return luaL_error(L, "moat.rule: `on` entries must be \"request\" or \"response\"");
      lua_pop(L, 1);
    }
  } else if (!lua_isnil(L, -1)) {
    return luaL_error(L, "moat.rule: `on` must be a list");
  }
  lua_pop(L, 1);
  if (!add_rule(rt, name, pattern, action, replace, on, validate, label)) return luaL_error(L, "%s", rt->scratch_.c_str());
  return 0;
}

// moat.stream_redact(pattern, replacement): a response rule applied to streams as they flow.
int moat_stream_redact(lua_State* L) {
  lua_runtime* rt = rt_of(L);
  if (!rt->loading_) return luaL_error(L, "moat.stream_redact may only be called while the policy loads");
  const auto pattern = arg_view(L, 1);
  const auto replace = arg_view(L, 2);
  if (!add_stream_rule(rt, pattern, replace)) return luaL_error(L, "%s", rt->scratch_.c_str());
  return 0;
}

int ctx_block(lua_State* L) {
  lua_job* job = rt_of(L)->job_;
  size_t len;
  const char* reason = luaL_optlstring(L, 2, "blocked by policy", &len);
  if (!job) return luaL_error(L, "ctx used outside its hook");
  job->blocked = true;
  job->block_reason.assign(reason, std::min<size_t>(len, 512));
  return 0;
}

int ctx_tag(lua_State* L) {
  lua_job* job = rt_of(L)->job_;
  const auto name = arg_view(L, 2);
  size_t len;
  const char* value = luaL_tolstring(L, 3, &len);
  if (!job) return luaL_error(L, "ctx used outside its hook");
  if (job->d->tags.size() < max_tags)
    job->d->tags.emplace_back(std::string(name.substr(0, max_tag_bytes)), std::string(value, std::min(len, max_tag_bytes)));
  return 0;
}

// Rewrites the string field `key` of the table at `table` in place; adds to the count.
void redact_field(lua_State* L, int table, const char* key, const RE2& re, std::string_view rewrite, int* count) {
  lua_getfield(L, table, key);
  if (lua_type(L, -1) != LUA_TSTRING) {
    lua_pop(L, 1);
    return;
  }
  size_t len;
  const char* s = lua_tolstring(L, -1, &len);
  charge(L, len);
  lua_runtime* rt = rt_of(L);
  const int n = replace_all(rt, re, {s, len}, rewrite);
  lua_pop(L, 1);
  if (n < 0) luaL_error(L, "bad replacement: %s", rt->scratch_.c_str());
  if (n == 0) return;
  *count += n;
  lua_pushlstring(L, rt->scratch_.data(), rt->scratch_.size());
  lua_setfield(L, table, key);
}

// ctx:redact(pattern, replacement): over every message content and prompt, or the answer.
int ctx_redact(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const RE2& re = checked_regex(L, 2);
  const auto rewrite = arg_view(L, 3);
  lua_job* job = rt_of(L)->job_;
  if (!job) return luaL_error(L, "ctx used outside its hook");
  int count = 0;
  if (job->rctx) {
    redact_field(L, 1, "text", re, rewrite, &count);
  } else {
    if (lua_getfield(L, 1, "messages") == LUA_TTABLE) {
      const lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, -1));
      for (lua_Integer i = 1; i <= n; ++i) {
        if (lua_rawgeti(L, -1, i) == LUA_TTABLE) redact_field(L, lua_gettop(L), "content", re, rewrite, &count);
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
    redact_field(L, 1, "prompt", re, rewrite, &count);
    if (lua_getfield(L, 1, "prompts") == LUA_TTABLE) {
      const int t = lua_gettop(L);
      const lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, t));
      for (lua_Integer i = 1; i <= n; ++i) {
        lua_rawgeti(L, t, i);
        if (lua_type(L, -1) == LUA_TSTRING) {
          size_t len;
          const char* s = lua_tolstring(L, -1, &len);
          charge(L, len);
          lua_runtime* rt = rt_of(L);
          const int k = replace_all(rt, re, {s, len}, rewrite);
          lua_pop(L, 1);
          if (k < 0) return luaL_error(L, "bad replacement: %s", rt->scratch_.c_str());
          if (k > 0) {
            count += k;
            lua_pushlstring(L, rt->scratch_.data(), rt->scratch_.size());
            lua_rawseti(L, t, i);
          }
        } else {
          lua_pop(L, 1);
        }
      }
    }
    lua_pop(L, 1);
  }
  job->redactions += count;
  lua_pushinteger(L, count);
  return 1;
}

void push_setting(lua_State* L, const setting& s) {
  switch (s.kind) {
    case setting::nil: lua_pushnil(L); break;
    case setting::boolean: lua_pushboolean(L, s.b); break;
    case setting::number: lua_pushnumber(L, s.n); break;
    case setting::string: lua_pushlstring(L, s.s.data(), s.s.size()); break;
    case setting::list:
    case setting::map:
      lua_createtable(L, 0, 0);
      for (size_t i = 0; i < s.values.size(); ++i) {
        push_setting(L, s.values[i]);
        if (s.kind == setting::list) lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
        else lua_setfield(L, -2, s.keys[i].c_str());
      }
      break;
  }
}

// Builds the sandbox: runs under lua_pcall (allocation failures raise, never panic).
}  // namespace

int setup_state(lua_State* L) {
  auto* src = static_cast<const script_source*>(lua_touserdata(L, 1));
  static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},        {LUA_STRLIBNAME, luaopen_string},
                                  {LUA_TABLIBNAME, luaopen_table},  {LUA_MATHLIBNAME, luaopen_math},
                                  {LUA_UTF8LIBNAME, luaopen_utf8},  {LUA_COLIBNAME, luaopen_coroutine}};
  for (const auto& lib : libs) {
    luaL_requiref(L, lib.name, lib.func, 1);
    lua_pop(L, 1);
  }
  for (const char* name : {"dofile", "loadfile", "load", "require", "collectgarbage", "print", "warn"}) {
    lua_pushnil(L);
    lua_setglobal(L, name);
  }
  // package/require were never opened; luaL_requiref registered them in package.loaded only
  // when package exists, and _LOADED holds the libraries above: clear it from the registry view.
  lua_getglobal(L, "setmetatable");
  lua_pushcclosure(L, safe_setmetatable, 1);
  lua_setglobal(L, "setmetatable");

  lua_getglobal(L, LUA_STRLIBNAME);
  for (const char* name : {"find", "match", "gmatch", "gsub"}) {
    lua_pushcfunction(L, disabled_pattern_fn);
    lua_setfield(L, -2, name);
  }
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  lua_pop(L, 1);
  // getmetatable("") returns false and the shared string metatable cannot be changed.
  lua_pushliteral(L, "");
  lua_getmetatable(L, -1);
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 2);

  // moat.re, moat.rule, moat.stream_redact, moat.settings
  lua_createtable(L, 0, 4);
  static const luaL_Reg re_fns[] = {{"find", re_find}, {"match", re_match}, {"gsub", re_gsub}, {nullptr, nullptr}};
  luaL_newlib(L, re_fns);
  lua_setfield(L, -2, "re");
  lua_pushcfunction(L, moat_rule);
  lua_setfield(L, -2, "rule");
  lua_pushcfunction(L, moat_stream_redact);
  lua_setfield(L, -2, "stream_redact");
  push_setting(L, src->settings);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 0);
  }
  lua_setfield(L, -2, "settings");
  lua_setglobal(L, "moat");

  // The ctx metatable: methods block, redact, tag; the fields are plain table fields.
  luaL_newmetatable(L, ctx_meta);
  static const luaL_Reg methods[] = {{"block", ctx_block}, {"redact", ctx_redact}, {"tag", ctx_tag}, {nullptr, nullptr}};
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);

  // The chunk: text only.
  const char* chunkname = lua_pushfstring(L, "@%s", src->path.c_str());
  if (luaL_loadbufferx(L, src->code.data(), src->code.size(), chunkname, "t") != LUA_OK) return lua_error(L);
  lua_call(L, 0, 0);
  return 0;
}

namespace {

void push_opt(lua_State* L, const std::string& s) {
  if (s.empty()) lua_pushnil(L);
  else lua_pushlstring(L, s.data(), s.size());
}

void push_ctx_common(lua_State* L, const request_context& c) {
  lua_createtable(L, 0, 8);
  lua_pushlstring(L, c.model.data(), c.model.size());
  lua_setfield(L, -2, "model");
  push_opt(L, c.key_name);
  lua_setfield(L, -2, "key");
  push_opt(L, c.client_subject);
  lua_setfield(L, -2, "client");
  luaL_setmetatable(L, ctx_meta);
}

const char* checked_string_field(lua_State* L, int table, const char* key, size_t* len, const char* what, lua_Integer i) {
  lua_getfield(L, table, key);
  if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "ctx.%s[%d].%s must be a string", what, static_cast<int>(i), key);
  const char* s = lua_tolstring(L, -1, len);
  lua_pop(L, 1);
  return s;
}

}  // namespace

int call_on_request(lua_State* L) {
  lua_job* job = rt_of(L)->job_;
  request_context& c = *job->ctx;
  push_ctx_common(L, c);
  const int ctx = lua_gettop(L);
  lua_createtable(L, static_cast<int>(c.messages.size()), 0);
  for (size_t i = 0; i < c.messages.size(); ++i) {
    lua_createtable(L, 0, 2);
    lua_pushlstring(L, c.messages[i].role.data(), c.messages[i].role.size());
    lua_setfield(L, -2, "role");
    lua_pushlstring(L, c.messages[i].content.data(), c.messages[i].content.size());
    lua_setfield(L, -2, "content");
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  lua_setfield(L, ctx, "messages");
  if (c.prompts.size() == 1) {
    lua_pushlstring(L, c.prompts[0].data(), c.prompts[0].size());
    lua_setfield(L, ctx, "prompt");
  }
  lua_createtable(L, static_cast<int>(c.prompts.size()), 0);
  for (size_t i = 0; i < c.prompts.size(); ++i) {
    lua_pushlstring(L, c.prompts[i].data(), c.prompts[i].size());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  lua_setfield(L, ctx, "prompts");

  lua_getglobal(L, "on_request");
  lua_pushvalue(L, ctx);
  lua_call(L, 1, 0);

  // Read back what the script may have rewritten.
  if (lua_getfield(L, ctx, "model") == LUA_TSTRING) {
    size_t len;
    const char* m = lua_tolstring(L, -1, &len);
    if (std::string_view(m, len) != c.model) job->d->route_model = std::string(m, len);
  }
  lua_pop(L, 1);
  if (lua_getfield(L, ctx, "messages") != LUA_TTABLE) return luaL_error(L, "ctx.messages must be a table");
  const int msgs = lua_gettop(L);
  const lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, msgs));
  if (static_cast<size_t>(n) > c.messages.size() + 1024) return luaL_error(L, "ctx.messages grew too large");
  c.messages.resize(static_cast<size_t>(n));
  for (lua_Integer i = 1; i <= n; ++i) {
    if (lua_rawgeti(L, msgs, i) != LUA_TTABLE) return luaL_error(L, "ctx.messages[%d] must be a table", static_cast<int>(i));
    const int m = lua_gettop(L);
    size_t rl, cl;
    const char* role = checked_string_field(L, m, "role", &rl, "messages", i);
    const char* content = checked_string_field(L, m, "content", &cl, "messages", i);
    c.messages[i - 1].role.assign(role, rl);
    c.messages[i - 1].content.assign(content, cl);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (c.prompts.size() == 1 && lua_getfield(L, ctx, "prompt") == LUA_TSTRING) {
    size_t len;
    const char* p = lua_tolstring(L, -1, &len);
    c.prompts[0].assign(p, len);
    lua_pop(L, 1);
  } else if (c.prompts.size() > 1) {
    lua_pop(L, lua_getfield(L, ctx, "prompts") == LUA_TTABLE ? 0 : 1);
    if (lua_istable(L, -1)) {
      for (size_t i = 0; i < c.prompts.size(); ++i) {
        if (lua_rawgeti(L, -1, static_cast<lua_Integer>(i + 1)) == LUA_TSTRING) {
          size_t len;
          const char* p = lua_tolstring(L, -1, &len);
          c.prompts[i].assign(p, len);
        }
        lua_pop(L, 1);
      }
      lua_pop(L, 1);
    }
  }
  return 0;
}

int call_on_response(lua_State* L) {
  lua_job* job = rt_of(L)->job_;
  push_ctx_common(L, *job->rctx);
  const int ctx = lua_gettop(L);
  lua_pushlstring(L, job->text->data(), job->text->size());
  lua_setfield(L, ctx, "text");
  lua_pushboolean(L, job->streamed);
  lua_setfield(L, ctx, "streamed");
  lua_getglobal(L, "on_response");
  lua_pushvalue(L, ctx);
  lua_call(L, 1, 0);
  if (!job->streamed) {
    if (lua_getfield(L, ctx, "text") != LUA_TSTRING) return luaL_error(L, "ctx.text must be a string");
    size_t len;
    const char* t = lua_tolstring(L, -1, &len);
    job->text->assign(t, len);
    lua_pop(L, 1);
  }
  return 0;
}

}  // namespace moat::policy
