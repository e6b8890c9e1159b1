// `moat policy test --config FILE --input REQUESTS.jsonl`: runs the config's policies on sample
// requests (chat or completion bodies, optionally with a "response" text) without a backend and
// prints each decision. Exit status: 0 nothing blocked, 1 something blocked or failed, 2 usage,
// config or input errors. Made for a security team's own CI.
#include <simdjson.h>
#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "cli/commands.h"
#include "policy/policy.h"

namespace moat::cli {

namespace {

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: moat policy test --config FILE --input REQUESTS.jsonl [--quiet]\n\n"
               "Runs the `policies:` of the config on each line of REQUESTS.jsonl and prints the\n"
               "decision. A line is a chat body {\"model\",\"messages\":[...]} or a completion body\n"
               "{\"model\",\"prompt\":...}, optionally with \"response\": TEXT (run through the response\n"
               "policies), \"key\": NAME and \"client\": SUBJECT.\n"
               "  --quiet  print only blocked or failed requests and the summary\n"
               "Exit status: 0 nothing blocked, 1 a request was blocked or a policy failed, 2 usage,\n"
               "config or input error.\n");
}

std::string shown(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '"') out += "\\\"";
    else out.push_back(c);
  }
  return out + "\"";
}

// Text of a message's content: a string, or the text parts of an array.
bool content_text(simdjson::dom::element e, std::string* out) {
  std::string_view s;
  if (!e.get(s)) {
    out->assign(s);
    return true;
  }
  simdjson::dom::array parts;
  if (e.get(parts)) return false;
  for (auto p : parts) {
    std::string_view t;
    if (!p["text"].get(t)) {
      if (!out->empty()) out->push_back('\n');
      out->append(t);
    }
  }
  return true;
}

bool parse_request(simdjson::dom::element doc, policy::request_context* ctx, std::string* response, bool* has_response,
                   std::string* error) {
  std::string_view s;
  if (!doc["model"].get(s)) ctx->model.assign(s);
  if (!doc["key"].get(s)) ctx->key_name.assign(s);
  if (!doc["client"].get(s)) ctx->client_subject.assign(s);
  *has_response = !doc["response"].get(s);
  if (*has_response) response->assign(s);
  simdjson::dom::array msgs;
  if (!doc["messages"].get(msgs)) {
    for (auto m : msgs) {
      policy::message msg;
      std::string_view role;
      if (m["role"].get(role)) {
        *error = "a message has no role";
        return false;
      }
      msg.role.assign(role);
      simdjson::dom::element content;
      if (!m["content"].get(content) && !content_text(content, &msg.content)) {
        *error = "a message content is neither a string nor an array of parts";
        return false;
      }
      ctx->messages.push_back(std::move(msg));
    }
    return true;
  }
  simdjson::dom::element prompt;
  if (!doc["prompt"].get(prompt)) {
    if (!prompt.get(s)) {
      ctx->prompts.emplace_back(s);
      return true;
    }
    simdjson::dom::array arr;
    if (!prompt.get(arr)) {
      for (auto p : arr) {
        if (p.get(s)) {
          *error = "prompt arrays must hold strings here";
          return false;
        }
        ctx->prompts.emplace_back(s);
      }
      return true;
    }
  }
  *error = "neither \"messages\" nor \"prompt\"";
  return false;
}

void print_decision(const char* what, const policy::decision& d) {
  for (const auto& x : d.decisions)
    std::printf("    %s: %s/%s %s x%d\n", what, x.policy.c_str(), x.rule.c_str(), x.action.c_str(), x.count);
  for (const auto& [k, v] : d.tags) std::printf("    tag: %s=%s\n", k.c_str(), v.c_str());
  if (d.route_model) std::printf("    route: model -> %s\n", d.route_model->c_str());
}

const char* verdict_text(const policy::decision& d) {
  switch (d.outcome) {
    case policy::verdict::allow: return "ALLOW";
    case policy::verdict::block: return "BLOCK 403 policy_violation";
    case policy::verdict::fail: return "FAIL 500 policy_error";
  }
  return "?";
}

}  // namespace

int policy_command(int argc, char** argv) {
  std::string config, input;
  bool quiet = false;
  if (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    usage(stdout);
    return 0;
  }
  if (argc < 2 || std::strcmp(argv[1], "test") != 0) {
    usage(stderr);
    return 2;
  }
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    } else if (a == "--config" && i + 1 < argc) {
      config = argv[++i];
    } else if (a == "--input" && i + 1 < argc) {
      input = argv[++i];
    } else if (a == "--quiet") {
      quiet = true;
    } else {
      std::fprintf(stderr, "moat policy test: unknown or incomplete option %s\n\n", a.c_str());
      usage(stderr);
      return 2;
    }
  }
  if (config.empty() || input.empty()) {
    usage(stderr);
    return 2;
  }
  std::shared_ptr<const policy::policy_set> set;
  try {
    const YAML::Node root = YAML::LoadFile(config);
    const std::string dir = std::filesystem::path(config).parent_path().string();
    set = policy::policy_set::load(root["policies"], dir.empty() ? "." : dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moat policy test: %s: %s\n", config.c_str(), e.what());
    return 2;
  }
  for (const auto& w : set->warnings()) std::fprintf(stderr, "warning: %s\n", w.c_str());
  std::ifstream in(input, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "moat policy test: cannot read %s\n", input.c_str());
    return 2;
  }
  simdjson::dom::parser parser;
  std::string line;
  int n = 0, lineno = 0, blocked = 0, failed = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ++n;
    simdjson::dom::element doc;
    policy::request_context ctx;
    std::string response, error;
    bool has_response = false;
    if (parser.parse(line).get(doc) || !parse_request(doc, &ctx, &response, &has_response, &error)) {
      std::fprintf(stderr, "moat policy test: %s:%d: %s\n", input.c_str(), lineno,
                   error.empty() ? "not a JSON object" : error.c_str());
      return 2;
    }
    const auto d = set->check_request(ctx);
    policy::decision rd;
    if (d.outcome == policy::verdict::allow && has_response) rd = set->filter_response(ctx, response);
    const bool bad = d.outcome != policy::verdict::allow || rd.outcome != policy::verdict::allow;
    blocked += (d.outcome == policy::verdict::block || rd.outcome == policy::verdict::block) ? 1 : 0;
    failed += (d.outcome == policy::verdict::fail || rd.outcome == policy::verdict::fail) ? 1 : 0;
    if (quiet && !bad) continue;
    std::printf("request %d (line %d): %s", n, lineno, verdict_text(d));
    if (d.outcome != policy::verdict::allow) std::printf(": %s", d.reason.c_str());
    std::printf("\n");
    print_decision("request", d);
    if (d.outcome == policy::verdict::allow) {
      for (size_t i = 0; i < ctx.messages.size(); ++i)
        std::printf("    messages[%zu] %s: %s\n", i, ctx.messages[i].role.c_str(), shown(ctx.messages[i].content).c_str());
      for (size_t i = 0; i < ctx.prompts.size(); ++i) std::printf("    prompt[%zu]: %s\n", i, shown(ctx.prompts[i]).c_str());
      if (has_response) {
        std::printf("  response: %s", verdict_text(rd));
        if (rd.outcome != policy::verdict::allow) std::printf(": %s", rd.reason.c_str());
        std::printf("\n");
        print_decision("response", rd);
        if (rd.outcome == policy::verdict::allow) std::printf("    text: %s\n", shown(response).c_str());
      }
    }
  }
  std::printf("%d request(s): %d allowed, %d blocked, %d failed\n", n, n - blocked - failed, blocked, failed);
  return blocked + failed > 0 ? 1 : 0;
}

}  // namespace moat::cli
