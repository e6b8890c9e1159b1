// Error bodies and the SSE framing, both small enough to share one file.
#include "openai/json_write.h"
#include "openai/protocol.h"

namespace moat::openai {

api_error invalid_request(std::string message, std::optional<std::string> param,
                          std::optional<std::string> code) {
  api_error error;
  error.message = std::move(message);
  error.param = std::move(param);
  error.code = std::move(code);
  return error;
}

std::string error_json(const api_error& error) {
  std::string out;
  out.reserve(96 + error.message.size());
  out += "{\"error\":{\"message\":";
  append_json_string(out, error.message);
  out += ",\"type\":";
  append_json_string(out, error.type);
  out += ",\"param\":";
  if (error.param) {
    append_json_string(out, *error.param);
  } else {
    out += "null";
  }
  out += ",\"code\":";
  if (error.code) {
    append_json_string(out, *error.code);
  } else {
    out += "null";
  }
  out += "}}";
  return out;
}

std::string sse_data(std::string_view json) {
  std::string out;
  out.reserve(json.size() + 8);
  out += "data: ";
  out += json;
  out += "\n\n";
  return out;
}

std::string sse_error(const api_error& error) { return sse_data(error_json(error)); }

}  // namespace moat::openai
