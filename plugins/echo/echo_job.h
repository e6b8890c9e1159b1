// One accepted echo request. submit() only validates and copies: create() refuses what must be
// refused synchronously and copies the texts the answer needs into the job's one allocation.
// The answer is planned by the first step, on a worker (the echo "model" knows it at once: it is
// the input); the worker then emits it one step at a time, one delta per unfinished choice per
// step, so n choices interleave as a batched engine's would.
//
// A request that is not streamed (moat_request::stream == 0), with no delay_ms and no fault,
// gets one delta per choice carrying all its tokens (and logprobs): the host joins a whole
// answer's deltas anyway, so per-word deltas would only cost a callback, a lock and a copy each.
// Streamed requests, delayed ones and injected faults keep their deltas (a word, or chunk_chars
// characters, each).
//
//   moat_status status = MOAT_OK;
//   std::unique_ptr<echo_job> job =
//       echo_job::create(options, vocab, *request, on_event, user_data, err, status);
//   echo_plan buffers;                 // a worker's, reused from job to job
//   job->lend_plan(&buffers);          // lend them (a job stepped by many workers keeps its own)
//   while (!job->step(false, MOAT_OK)) wait(delay);   // each step sends events
//   // (or, with no delay between deltas: job->run(false, MOAT_OK), every event at once)
//   job->lend_plan(nullptr);           // take them back
#pragma once

#include <moat/backend.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "echo_options.h"
#include "echo_vocab.h"

namespace moat::echo {

// The planned answer of one job. Its buffers keep their capacity from job to job when a worker
// lends the same plan to every job it runs to the end, so planning does not allocate once warm.
struct echo_plan {
  struct answer {  // one per prompt; its n choices share it
    // The answer's bytes: a view into the job's block (its prompt or body), or into `joined`.
    std::string_view text;
    std::string joined;  // an echoed prompt followed by the generated text
    // Tokens: one per piece (a word with its trailing whitespace). Piece k is the bytes
    // [k == 0 ? 0 : ends[k - 1], ends[k]); the pieces cover the text. The answer's are the
    // first `pieces` of each vector: the vectors are room that planning writes by index, and
    // only grow (see echo_job::plan_answer).
    size_t pieces = 0;
    std::vector<size_t> ends;
    std::vector<int32_t> tokens;
    moat_finish_reason finish = MOAT_FINISH_STOP;
    size_t piece_begin(size_t k) const { return k == 0 ? 0 : ends[k - 1]; }
  };
  struct choice {
    uint32_t index = 0;
    bool finished = false;
    size_t answer = 0;
    size_t sent = 0;    // bytes of the answer's text sent
    size_t tokens = 0;  // tokens sent
  };

  // Empties the plan for `answers` answers, keeping capacity (see trim()).
  void reset(size_t answers);
  // Drops what one unusually large request grew, so a worker does not hold it for ever.
  void trim();

  std::vector<answer> answers;  // answers[0, answer_count) are the job's; the rest are spare
  size_t answer_count = 0;
  std::vector<choice> choices;
  // Scratch for one delta's logprobs, kept to avoid an allocation per event.
  std::vector<moat_token_logprob> scratch_tokens;
  std::vector<moat_logprob_entry> scratch_entries;
};

class echo_job {
 public:
  // Validates `request` (valid only during this call) and copies what the worker needs: one
  // allocation. Returns nullptr with `status` and `err` set when the request cannot be served.
  // `options` and `vocab` must outlive the job.
  static std::unique_ptr<echo_job> create(const echo_options& options, vocabulary& vocab,
                                          const moat_request& request, moat_event_fn on_event,
                                          void* user_data, moat_error* err, moat_status& status);

  // Frees the job's one block (header and copied texts): see create().
  static void operator delete(void* block) { ::operator delete(block); }

  uint64_t id() const { return id_; }
  // fault: hang — the job sends nothing until it is cancelled.
  bool waits_for_cancel() const { return options_->fault == fault_mode::hang; }

  // Emits the next step's events (the first step plans the answer). With `cancelled` it sends
  // the terminal ERROR(cancel_code) instead. Returns true once the terminal event (DONE or
  // ERROR) has been sent; the job must not be stepped again. Called by one worker at a time.
  bool step(bool cancelled, moat_status cancel_code);
  // Sends every remaining event at once (no delay between deltas): the same events, in the same
  // order, as calling step() until it returns true, without a call and a fresh event per delta.
  void run(bool stop, moat_status stop_code);

  // A worker lends its buffers to a job it runs from its first step to its last, and takes
  // them back after (nullptr). A job stepped without a lent plan makes its own.
  void lend_plan(echo_plan* buffers) { plan_ = buffers; }

  // The scheduler's lock-free list of jobs to run links them through here (see
  // echo_scheduler.h); the job does not use it.
  echo_job* next_queued = nullptr;

 private:
  // create() allocates the header and the copied texts as one block.
  struct trailing_bytes {
    size_t count;
  };
  static void* operator new(size_t size, trailing_bytes extra) {
    return ::operator new(size + extra.count);
  }
  static void operator delete(void* block, trailing_bytes) { ::operator delete(block); }
  echo_job() = default;

  void make_plan();  // on the worker, at the first step
  // Plans `a` as `echoed` followed by `source` cut to max_words words and the stops; returns
  // the words of the answer's text.
  size_t plan_answer(echo_plan::answer& a, std::string_view echoed, std::string_view source,
                     int64_t max_words);
  // Plans `a` as the answer to `prompt` itself, whose words count in the prompt with
  // `other_words` more; returns the prompt's words (counted in the same pass when it can).
  size_t plan_prompt_answer(echo_plan::answer& a, std::string_view prompt, size_t other_words);
  int64_t word_budget(size_t prompt_words) const;
  void emit(const moat_event& event) const { on_event_(user_data_, &event); }
  // What every step does first: a stop, a fault before the first delta, planning, and an
  // embedding request's whole answer. True when the terminal event was sent.
  bool begin_step(bool cancelled, moat_status cancel_code);
  // One delta per unfinished choice, or its FINISH once it has none left; `delta` is a DELTA
  // event that each delta fills in. True when the terminal event (DONE, or an injected fault's
  // ERROR) was sent.
  bool emit_round(moat_event& delta);
  // run() for the usual streamed answer (one choice, a delta per word, no logprobs, no fault):
  // the same events as its rounds, in a loop that only moves the delta's text and token.
  void run_words(moat_event& delta);
  // Sends choice `c`'s next delta: the whole answer, one piece, or chunk_chars characters.
  void emit_delta(moat_event& event, echo_plan::choice& c, const echo_plan::answer& a);
  void emit_finish(uint32_t index, moat_finish_reason reason) const;
  void emit_error(moat_status code, std::string_view message) const;
  void emit_done() const;

  uint64_t id_ = 0;
  moat_request_kind kind_ = MOAT_REQUEST_CHAT;
  moat_event_fn on_event_ = nullptr;
  void* user_data_ = nullptr;              // OWNERSHIP: the host's; passed back, never touched
  const echo_options* options_ = nullptr;  // the backend's; outlives its jobs
  vocabulary* vocab_ = nullptr;            // the backend's; outlives its jobs
  uint32_t n_ = 1;
  int32_t max_tokens_ = -1;
  int32_t logprobs_ = -1;  // -1: none; else how many alternatives (echo has one: the chosen)
  bool echo_ = false;      // completion: the prompt starts the answer
  bool whole_ = false;     // one delta per choice (not streamed, no delay, no fault)
  // Views into this job's block (see create()). Chat: every message's content, and which one
  // is the last user message (text_count_ when none). Completion and embedding: the prompts,
  // a token prompt as its ids joined by spaces.
  const std::string_view* texts_ = nullptr;
  size_t text_count_ = 0;
  size_t last_user_ = 0;
  const std::string_view* stops_ = nullptr;
  size_t stop_count_ = 0;
  std::string_view body_;  // only with answer: body
  uint32_t deltas_sent_ = 0;
  bool planned_ = false;  // whether *plan_ holds this job's answer
  moat_usage usage_{};
  echo_plan* plan_ = nullptr;            // lent by a worker, or own_plan_
  std::unique_ptr<echo_plan> own_plan_;  // made at the first step when none is lent
};

}  // namespace moat::echo
