// The answer to a chat or completion request, built from the backend's events on the strand:
// either collected into one JSON body, or turned into server-sent events that the session
// pulls. The HTTP status is chosen at the first event, so a backend that fails before any text
// gives the client a real error status; one that fails later ends the stream with an error
// event and `data: [DONE]`.
//
//   auto job = std::make_shared<generation_job>(opts, respond, ctx.metrics);
//   auto outcome = backend->submit(request, job, req.strand);
//   job->attach(outcome.handle);
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "host/call.h"
#include "http/message.h"
#include "metrics/registry.h"
#include "openai/protocol.h"

namespace moat::policy {
class response_filter;
}

namespace moat::api {

class request_trail;

struct generation_options {
  bool chat = true;             // chat.completion(.chunk) or text_completion
  bool stream = false;
  bool include_usage = false;   // stream_options.include_usage
  bool logprobs = false;
  uint32_t choices = 1;         // n * prompts: the largest valid event index + 1
  // The response's identity and the x-request-id (for log lines): views that need to stay
  // valid only for the job's constructor, which copies their text into the job itself.
  openai::response_meta meta;
  metrics::route route = metrics::route::chat_completions;
  std::string_view request_id;
  // The request's policies and audit line: answers are filtered through its policy set (per
  // choice), tokens and the redacted answer recorded. Null: no policies, no audit.
  std::shared_ptr<request_trail> trail;
};

class generation_job : public host::event_sink,
                       public http::stream_source,
                       public std::enable_shared_from_this<generation_job> {
 public:
  generation_job(generation_options options, http::responder respond, metrics::registry& metrics);
  ~generation_job() override;
  // Its options' views point into the job itself.
  generation_job(const generation_job&) = delete;
  generation_job& operator=(const generation_job&) = delete;

  // The accepted call, to cancel it when a slow client lets too much text pile up.
  void attach(std::weak_ptr<host::call> call) { call_ = std::move(call); }

  // Answers with `error` when submit() refused the request (no event will come).
  void reject(const openai::api_error& error);

  void on_event(host::owned_event&& event) override;  // strand
  void pull(next_fn next) override;                  // strand
  uint64_t tokens_used() const override { return tokens_used_; }  // strand
  bool ready() const override { return !serialized_.empty() || dirty_ || ended_; }  // strand

  // Unsent stream text (coalesced, before JSON framing) above which the request is cancelled:
  // the client reads far slower than the backend writes.
  static constexpr size_t max_pending_bytes = 8u << 20;
  // Unsent chunks above which further deltas are coalesced per choice until the next pull.
  static constexpr size_t coalesce_after_bytes = 256u << 10;

 private:
  void on_delta(host::owned_event& event);
  void emit_delta(host::owned_event& event);  // streamed text already filtered
  // Writes a plain chunk (choice 0's text, no logprobs, not chat's first) into serialized_;
  // false, untouched, for any other delta. Both on_event's fast path and emit_delta use it;
  // inline in both (generation.cpp), so the usual event costs one call frame less.
  [[gnu::always_inline]] inline bool append_plain_delta(const host::owned_event& event);
  void finish_filter(uint32_t index);         // releases a choice's held-back tail
  void end_blocked();                         // a response rule blocked the streamed answer
  bool filter_whole_answers();                // non-streamed: false after answering with an error
  void on_finish(const host::owned_event& event);
  void on_done(const host::owned_event& event);
  void on_error(const host::owned_event& event);
  void start_stream();
  void flush();
  std::string take_pending();
  // Streamed completions: where the next text of choice `index` starts (its logprobs'
  // text_offset continues across chunks, as in a whole answer); advances by `bytes`.
  uint32_t advance_offset(uint32_t index, size_t bytes);
  void append_chunk(std::string& out, const openai::chunk_delta& delta);  // one SSE event
  // Room in `out` for one more event carrying `text_bytes` of text (see grow_room).
  [[gnu::always_inline]] static void make_room(std::string& out, size_t text_bytes) {
    if (out.capacity() < 1024 || out.capacity() - out.size() < 512 + text_bytes)
      grow_room(out, text_bytes);
  }
  static void grow_room(std::string& out, size_t text_bytes);
  // Copies the text options_.meta and options_.request_id show into identity_ (or, when it does
  // not fit there, one allocation of its own) and points them at the copy.
  void keep_identity();

  // A streamed choice: what went out, and its text not yet handed to the session. One record
  // per choice, so a stream allocates one vector for them instead of one per field.
  struct choice_stream {
    std::string text;                            // pending
    std::vector<openai::logprob_item> logprobs;  // pending
    std::string finish;                          // its finish_reason once FINISH came, until sent
    bool has_delta = false;                      // text or logprobs are pending
    bool started = false;                        // its first chunk went out
    bool closed = false;                         // its finish_reason chunk went out
    uint32_t offset = 0;                         // bytes of text sent
  };

  generation_options options_;
  http::responder respond_;  // cleared once used
  metrics::registry& metrics_;
  std::weak_ptr<host::call> call_;

  // Non-streamed: text per choice; streamed: per choice. One choice (the usual request) is a
  // member of the job, so the job's one allocation holds it; more are in a vector of their own.
  std::span<openai::choice_result> results_;
  std::span<choice_stream> streams_;
  openai::choice_result first_result_;
  choice_stream first_stream_;
  std::vector<openai::choice_result> more_results_;
  std::vector<choice_stream> more_streams_;
  bool dirty_ = false;                          // streamed: a choice has something pending
  openai::chunk_framing framing_;               // streamed: the text every chunk shares
  std::string serialized_;                       // streamed: chunks not yet pulled, in order
  size_t pending_bytes_ = 0;
  std::string tail_;                             // streamed: usage / error event and [DONE]
  next_fn next_;                                 // streamed: a pull waiting for bytes
  uint64_t tokens_used_ = 0;                     // prompt + completion, from DONE
  bool ended_ = false;                           // the terminal event came
  bool responded_ = false;
  bool overflowed_ = false;
  // Streamed without logprobs nor response filters: choice 0's deltas after its first (any,
  // for completions) are plain chunks, written by on_event itself (see emit_delta).
  bool plain_deltas_ = false;
  bool pulled_ = false;  // streamed: take_pending ran once (it sized the next stream's buffer)
  // Streamed, with policies: one response filter per choice (null once finished).
  std::vector<std::unique_ptr<policy::response_filter>> filters_;
  std::string audit_answer_;  // the redacted answers, for the audit line
  std::vector<bool> logprobs_off_;  // per choice: the filter changed its text, logprobs withheld

  // The id, model, fingerprint and x-request-id text (~70 bytes for a short model name and
  // x-request-id; 128 allowed for the latter), so that a response's identity adds no
  // allocation to the job's own.
  char identity_[192];
  std::unique_ptr<char[]> identity_spill_;  // when they do not fit in identity_
};

const char* finish_reason_text(moat_finish_reason reason);

}  // namespace moat::api
