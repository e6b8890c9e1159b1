// Internal: pieces of the response bodies that several serializers write the same way.
#pragma once

#include <span>
#include <string>

#include "openai/json_write.h"
#include "openai/protocol.h"

namespace moat::openai::detail {

// `{"id":…,"object":"<object>","created":…,"model":…[,"system_fingerprint":…]` — the caller
// continues with `,"choices":`.
void append_head(json_out& out, const response_meta& meta, std::string_view object);
// `{"prompt_tokens":…,"completion_tokens":…,"total_tokens":…}`
void append_usage(json_out& out, const usage_counts& usage);
// Chat: `{"content":[{token, logprob, bytes, top_logprobs}],"refusal":null}`.
void append_chat_logprobs(json_out& out, std::span<const logprob_item> items);
// Completions: `{"tokens","token_logprobs","top_logprobs","text_offset"}`; offsets start at
// text_offset and advance by each token's byte length.
void append_completion_logprobs(json_out& out, std::span<const logprob_item> items,
                                uint32_t text_offset);

}  // namespace moat::openai::detail
