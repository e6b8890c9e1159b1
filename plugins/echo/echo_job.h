// One accepted echo request. The whole answer is planned in submit() (the echo "model" knows it
// at once: it is the input); a worker thread then emits it one step at a time, one delta per
// unfinished choice per step, so n choices interleave as a batched engine's would.
//
//   moat_status status = MOAT_OK;
//   auto job = echo_job::create(options, vocab, *request, on_event, user_data, err, status);
//   while (!job->step(false, MOAT_OK)) wait(delay);   // each step sends events
#pragma once

#include <moat/backend.h>

#include <memory>
#include <string>
#include <vector>

#include "echo_options.h"
#include "echo_vocab.h"

namespace moat::echo {

class echo_job {
 public:
  // Validates and plans `request` (which is only valid during this call: everything needed is
  // copied). Returns nullptr with `status` and `err` set when the request cannot be served.
  static std::unique_ptr<echo_job> create(const echo_options& options, vocabulary& vocab,
                                          const moat_request& request, moat_event_fn on_event,
                                          void* user_data, moat_error* err, moat_status& status);

  uint64_t id() const { return id_; }
  // fault: hang — the job sends nothing until it is cancelled.
  bool waits_for_cancel() const { return fault_ == fault_mode::hang; }

  // Emits the next step's events. With `cancelled` it sends the terminal ERROR(cancel_code)
  // instead. Returns true once the terminal event (DONE or ERROR) has been sent; the job must
  // not be stepped again. Called by one worker at a time.
  bool step(bool cancelled, moat_status cancel_code);

  // The scheduler's lock-free list of jobs to run links them through here (see
  // echo_scheduler.h); the job does not use it.
  echo_job* next_queued = nullptr;

 private:
  struct delta {
    size_t begin = 0, end = 0;              // bytes of the answer text
    size_t token_begin = 0, token_end = 0;  // the tokens whose piece ends in this delta
  };
  struct answer {  // one per prompt; its n choices share it
    std::string text;
    std::vector<delta> deltas;
    std::vector<int32_t> tokens;                      // one id per piece
    std::vector<std::pair<size_t, size_t>> pieces;    // [begin, end) of each token's piece
    moat_finish_reason finish = MOAT_FINISH_STOP;
  };
  struct choice {
    uint32_t index = 0;
    size_t answer = 0;
    size_t next_delta = 0;
    bool finished = false;
  };

  echo_job() = default;
  void plan_answer(answer& a, std::string_view echoed, std::string_view source, int64_t max_words,
                   const std::vector<std::string>& stops, uint32_t chunk_chars, uint32_t n,
                   vocabulary& vocab);
  void emit(const moat_event& event) const { on_event_(user_data_, &event); }
  void emit_delta(uint32_t index, const answer& a, const delta& d);
  void emit_finish(uint32_t index, moat_finish_reason reason) const;
  void emit_error(moat_status code, std::string_view message) const;
  void emit_done() const;

  uint64_t id_ = 0;
  moat_request_kind kind_ = MOAT_REQUEST_CHAT;
  moat_event_fn on_event_ = nullptr;
  void* user_data_ = nullptr;  // OWNERSHIP: the host's; passed back, never touched
  fault_mode fault_ = fault_mode::none;
  uint32_t fault_after_deltas_ = 0;
  uint32_t deltas_sent_ = 0;
  int32_t logprobs_ = -1;  // -1: none; else how many alternatives (echo has one: the chosen)
  uint32_t embedding_dim_ = 0;
  moat_usage usage_{};
  std::vector<answer> answers_;
  std::vector<choice> choices_;
  // Scratch for one delta's logprobs, kept to avoid an allocation per event.
  std::vector<moat_token_logprob> scratch_tokens_;
  std::vector<moat_logprob_entry> scratch_entries_;
};

}  // namespace moat::echo
