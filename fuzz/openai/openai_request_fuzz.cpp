// libFuzzer: the OpenAI JSON request parsers. The first byte picks the endpoint; the rest is the
// body. Every input must give a parsed request or an api_error, never a crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "openai/protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 5) {
    case 0: (void)moat::openai::parse_chat_request(body); break;
    case 1: (void)moat::openai::parse_completion_request(body); break;
    case 2: (void)moat::openai::parse_embedding_request(body); break;
    case 3: (void)moat::openai::parse_tokenize_request(body); break;
    default: (void)moat::openai::parse_detokenize_request(body); break;
  }
  return 0;
}
