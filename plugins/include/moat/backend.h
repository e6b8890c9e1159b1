/* moat/backend.h — the C ABI every moat backend plugin implements.
 *
 * A plugin is a shared library (libmoat_<name>.so) exporting one symbol:
 *
 *     const moat_backend_api* moat_backend_entry(void);
 *
 * The host calls it once after dlopen, checks abi_version == MOAT_BACKEND_ABI_VERSION
 * (refusing a mismatch), then drives the table:
 *
 *     const moat_backend_api* api = moat_backend_entry();
 *     moat_backend* b = NULL;
 *     moat_error err = {sizeof err};
 *     moat_backend_config cfg = {sizeof cfg};
 *     cfg.model_name = (moat_str){"tiny", 4};
 *     cfg.options_json = (moat_str){"{\"delay_ms\":0}", 14};
 *     if (api->create(&cfg, &b, &err) != MOAT_OK) fprintf(stderr, "%s\n", err.message);
 *     api->submit(b, &request, on_event, my_context, &err);   // events arrive on plugin threads
 *     api->cancel(b, request.request_id);                       // optional, any time
 *     api->destroy(b);
 *
 * Rules of the boundary (see docs/plugins.md):
 *  - Plain C. No exceptions cross it: every function is noexcept on the C++ side.
 *  - Every struct begins with uint32_t struct_size. A reader only touches fields that lie inside
 *    struct_size; fields are only ever appended, so either side can be newer.
 *  - Strings are {data, size} and need not be NUL-terminated; text is UTF-8.
 *  - Errors are a moat_status plus a message written into a caller-owned moat_error.
 *  - Function-table slots are only ever appended. Slots marked optional may be NULL.
 */
#ifndef MOAT_BACKEND_H
#define MOAT_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any change that is not an append at the end of a struct or of the table. */
#define MOAT_BACKEND_ABI_VERSION 1u

/* Status codes. The gateway maps each to an HTTP status (in parentheses). */
typedef enum moat_status {
  MOAT_OK = 0,
  MOAT_ERR_INVALID_ARGUMENT = 1, /* (400) the request is malformed for this backend */
  MOAT_ERR_UNSUPPORTED = 2,      /* (400) a feature the backend does not offer */
  MOAT_ERR_CONTEXT_LENGTH = 3,   /* (400, code context_length_exceeded) */
  MOAT_ERR_NOT_FOUND = 4,        /* (404) */
  MOAT_ERR_BUSY = 5,             /* (429) the backend's own queue is full */
  MOAT_ERR_INTERNAL = 6,         /* (500) */
  MOAT_ERR_UPSTREAM = 7,         /* (502) an upstream server failed or sent garbage */
  MOAT_ERR_UNAVAILABLE = 8,      /* (503) not ready, shutting down, device lost */
  MOAT_ERR_TIMEOUT = 9,          /* (504) */
  MOAT_ERR_CANCELLED = 10,       /* the request was cancelled by the host */
  MOAT_ERR_IO = 11,              /* (500) a file could not be read at load time */
} moat_status;

typedef struct moat_str {
  const char* data; /* not necessarily NUL-terminated; may be NULL when size == 0 */
  size_t size;
} moat_str;

/* Caller-owned error: the callee writes a NUL-terminated message (truncated to fit). */
typedef struct moat_error {
  uint32_t struct_size;
  moat_status code;
  char message[1024];
} moat_error;

/* Opaque backend instance: one per configured model. */
typedef struct moat_backend moat_backend;

/* ---- configuration ---------------------------------------------------------------------- */

typedef enum moat_log_level {
  MOAT_LOG_DEBUG = 0,
  MOAT_LOG_INFO = 1,
  MOAT_LOG_WARN = 2,
  MOAT_LOG_ERROR = 3,
} moat_log_level;

/* Log sink the host provides; callable from any thread, for the backend's whole life.
 * Backends must never pass prompt or answer text to it. */
typedef void (*moat_log_fn)(void* user_data, moat_log_level level, moat_str message);

typedef struct moat_backend_config {
  uint32_t struct_size;
  moat_str model_name;   /* the name clients send as "model" */
  moat_str options_json; /* the model's `options:` map from the config, as a JSON object */
  moat_str config_dir;   /* directory of the config file; relative paths in options are
                            resolved against it */
  moat_log_fn log;       /* optional */
  void* log_user_data;
} moat_backend_config;

/* ---- capabilities and stats ------------------------------------------------------------- */

enum {
  MOAT_CAP_CHAT = 1u << 0,
  MOAT_CAP_COMPLETIONS = 1u << 1,
  MOAT_CAP_EMBEDDINGS = 1u << 2,
  MOAT_CAP_TOKENIZE = 1u << 3, /* tokenize and detokenize slots are implemented */
  MOAT_CAP_LOGPROBS = 1u << 4,
  MOAT_CAP_TOKEN_PROMPTS = 1u << 5, /* prompts given as token ids are understood */
};

typedef struct moat_capabilities {
  uint32_t struct_size;
  uint32_t flags;          /* MOAT_CAP_* */
  uint32_t max_context;    /* tokens; 0 = unknown / unlimited */
  uint32_t embedding_dim;  /* 0 when embeddings are not offered */
  uint32_t max_top_logprobs; /* largest top_logprobs accepted (OpenAI allows 20) */
  moat_str owned_by;       /* shown in /v1/models; owned by the backend, valid until destroy */
} moat_capabilities;

typedef struct moat_stats {
  uint32_t struct_size;
  uint32_t requests_running; /* sequences in the running batch */
  uint32_t requests_waiting; /* admitted but not yet scheduled */
  double kv_cache_usage;     /* 0..1, fraction of the KV budget in use; 0 where none */
} moat_stats;

/* ---- requests ---------------------------------------------------------------------------- */

typedef enum moat_request_kind {
  MOAT_REQUEST_CHAT = 1,
  MOAT_REQUEST_COMPLETION = 2,
  MOAT_REQUEST_EMBEDDING = 3,
} moat_request_kind;

typedef struct moat_message {
  uint32_t struct_size;
  moat_str role;    /* "system", "developer", "user", "assistant", "tool" */
  moat_str content; /* text content; parts of type "text" are joined by the gateway */
  moat_str name;    /* optional participant name; size 0 when absent */
} moat_message;

/* One prompt of a completion or embedding request: text, or token ids (then text.size == 0). */
typedef struct moat_prompt {
  uint32_t struct_size;
  moat_str text;
  const int32_t* tokens;
  size_t token_count;
} moat_prompt;

typedef struct moat_logit_bias {
  int32_t token;
  float bias; /* -100 .. 100, added to the logit */
} moat_logit_bias;

typedef struct moat_sampling {
  uint32_t struct_size;
  float temperature;       /* 0 = greedy */
  float top_p;             /* 1 = off */
  int32_t top_k;           /* 0 or -1 = off */
  float min_p;             /* 0 = off */
  float presence_penalty;  /* -2 .. 2 */
  float frequency_penalty; /* -2 .. 2 */
  uint64_t seed;
  uint32_t has_seed;       /* 0: the backend picks a seed */
  int32_t max_tokens;      /* -1: until the context is full */
  uint32_t n;              /* choices per prompt, >= 1 */
  int32_t logprobs;        /* -1: none; otherwise the number of top alternatives (0..20) */
  const moat_str* stop;    /* stop strings, never emitted */
  size_t stop_count;
  const moat_logit_bias* logit_bias;
  size_t logit_bias_count;
} moat_sampling;

/* A validated, normalized request, after the request policies ran.
 * OWNERSHIP: everything reachable from it is owned by the host and valid only during submit();
 * the backend copies what it keeps. */
typedef struct moat_request {
  uint32_t struct_size;
  uint64_t request_id;      /* unique per host process; used by cancel() */
  moat_request_kind kind;
  moat_str model;
  const moat_message* messages; /* CHAT */
  size_t message_count;
  const moat_prompt* prompts;   /* COMPLETION and EMBEDDING: one or more */
  size_t prompt_count;
  moat_sampling sampling;       /* CHAT and COMPLETION */
  uint32_t stream;              /* informational: the client asked for a stream */
  uint32_t echo;                /* COMPLETION: prepend the prompt to the answer */
  uint32_t add_generation_prompt; /* CHAT: 1 unless the client asked otherwise */
  moat_str body_json;           /* the normalized request as OpenAI JSON (for forwarding
                                   backends such as upstream) */
} moat_request;

/* ---- events ------------------------------------------------------------------------------ */

typedef enum moat_event_kind {
  MOAT_EVENT_DELTA = 1,     /* new text for one choice */
  MOAT_EVENT_FINISH = 2,    /* one choice ended (finish_reason) */
  MOAT_EVENT_EMBEDDING = 3, /* one embedding vector */
  MOAT_EVENT_DONE = 4,      /* terminal: the whole request ended well (usage) */
  MOAT_EVENT_ERROR = 5,     /* terminal: the request failed (error_code, error_message) */
} moat_event_kind;

typedef enum moat_finish_reason {
  MOAT_FINISH_NONE = 0,
  MOAT_FINISH_STOP = 1,   /* EOS or a stop string */
  MOAT_FINISH_LENGTH = 2, /* max_tokens or the context limit */
  MOAT_FINISH_CONTENT_FILTER = 3,
} moat_finish_reason;

typedef struct moat_token_logprob {
  int32_t token;
  moat_str text; /* the token's bytes, which may be part of a UTF-8 character */
  float logprob;
} moat_token_logprob;

typedef struct moat_logprob_entry {
  moat_token_logprob chosen;
  const moat_token_logprob* top; /* most likely first */
  size_t top_count;
} moat_logprob_entry;

typedef struct moat_usage {
  uint64_t prompt_tokens;
  uint64_t completion_tokens;
} moat_usage;

/* OWNERSHIP: the event and all it points to are owned by the backend and valid only during the
 * callback; the host copies what it keeps. */
typedef struct moat_event {
  uint32_t struct_size;
  moat_event_kind kind;
  uint32_t index;          /* choice index (prompt_index * n + i) or embedding input index */
  moat_str text;           /* DELTA: complete UTF-8 text, never half a character */
  const int32_t* tokens;   /* DELTA: the tokens this delta covers (may be empty) */
  size_t token_count;
  const moat_logprob_entry* logprobs; /* DELTA: one entry per token when logprobs >= 0 */
  size_t logprob_count;
  moat_finish_reason finish_reason;   /* FINISH */
  const float* embedding;  /* EMBEDDING: unit vector */
  size_t embedding_dim;
  moat_usage usage;        /* DONE: totals for the whole request */
  moat_status error_code;  /* ERROR */
  moat_str error_message;  /* ERROR: safe to show to the client (no paths, no payloads) */
} moat_event;

/* Event sink. Called from the backend's own threads, never re-entrantly for one request, and
 * never from inside submit(). For every submit() that returned MOAT_OK, exactly one terminal
 * event (DONE or ERROR) arrives, also after cancel(); nothing arrives after it, so the host may
 * free user_data when it sees the terminal event. */
typedef void (*moat_event_fn)(void* user_data, const moat_event* event);

/* Result sinks for the synchronous helpers; the pointers are valid only during the call. */
typedef void (*moat_tokens_fn)(void* user_data, const int32_t* tokens, size_t count);
typedef void (*moat_text_fn)(void* user_data, moat_str text);

typedef struct moat_tokenize_request {
  uint32_t struct_size;
  moat_str text;                 /* used when message_count == 0 */
  const moat_message* messages;  /* when given, the chat template is applied */
  size_t message_count;
  uint32_t add_special_tokens;   /* BOS etc. for plain text */
  uint32_t add_generation_prompt;
} moat_tokenize_request;

/* ---- the function table ------------------------------------------------------------------ */

/* Slots appended after the first release default to NULL in C++, so that a table written as a
 * positional aggregate before the slot existed still compiles under -Wextra
 * (-Wmissing-field-initializers) and leaves the slot empty. C zero-fills omitted members anyway. */
#ifdef __cplusplus
#define MOAT_SLOT_DEFAULT_NULL = nullptr
#else
#define MOAT_SLOT_DEFAULT_NULL
#endif

typedef struct moat_backend_api {
  uint32_t struct_size;
  uint32_t abi_version; /* MOAT_BACKEND_ABI_VERSION the plugin was built against */
  moat_str name;        /* plugin name, e.g. "echo"; static storage */

  /* Loads a model. May block for a long time; the host calls it off the I/O threads.
   * OWNERSHIP: config is valid during the call only; *out belongs to the host until destroy. */
  moat_status (*create)(const moat_backend_config* config, moat_backend** out, moat_error* err);

  /* Frees the instance. Any request still running gets its terminal event before this returns. */
  void (*destroy)(moat_backend* backend);

  /* Fills caps. Any thread. */
  moat_status (*capabilities)(moat_backend* backend, moat_capabilities* caps);

  /* Starts a request and returns at once (never blocks on generation). On MOAT_OK events follow
   * on backend threads; on an error no event follows. Any thread. */
  moat_status (*submit)(moat_backend* backend, const moat_request* request,
                        moat_event_fn on_event, void* user_data, moat_error* err);

  /* Asks the backend to stop a request; honoured within one decode step, freeing its batch
   * slot and cache. Unknown or finished ids are ignored. Any thread; never blocks. */
  void (*cancel)(moat_backend* backend, uint64_t request_id);

  /* Optional (MOAT_CAP_TOKENIZE). Synchronous and cheap; any thread. */
  moat_status (*tokenize)(moat_backend* backend, const moat_tokenize_request* request,
                          moat_tokens_fn on_tokens, void* user_data, moat_error* err);
  moat_status (*detokenize)(moat_backend* backend, const int32_t* tokens, size_t count,
                            moat_text_fn on_text, void* user_data, moat_error* err);

  /* Optional. Load and queue figures for /metrics; any thread; never blocks. */
  moat_status (*stats)(moat_backend* backend, moat_stats* stats);

  /* Optional, appended after `stats` without an ABI version bump: a plugin built against an
   * older backend.h declares a smaller struct_size, and the host reads this slot only when
   * struct_size covers it (it reads as NULL otherwise). Extra Prometheus text-format families
   * for GET /metrics (e.g. the cuda plugin's GPU gauges), called at each scrape.
   * The text: `# HELP name ...` / `# TYPE name gauge|counter|untyped|histogram|summary` before
   * each family's samples, family names starting with `moat:` or `moat_`, one line per sample.
   * The host adds the label model_name="<the model's name>" to every sample, so do not write
   * one; it drops, with one warning per backend, lines that do not parse, a family already
   * exported by the gateway, a family declared twice and samples without a declared family.
   * on_text may be called any number of times (pieces are concatenated) and only during this
   * call. A status other than MOAT_OK drops the whole text; /metrics still answers.
   * Any thread; must not block for long (cache slow readings).
   * OWNERSHIP: the text is the plugin's, valid only during on_text. */
  moat_status (*metrics)(moat_backend* backend, moat_text_fn on_text, void* user_data)
      MOAT_SLOT_DEFAULT_NULL;
} moat_backend_api;

/* The one exported symbol. Returns static storage; never NULL. */
typedef const moat_backend_api* (*moat_backend_entry_fn)(void);
#define MOAT_BACKEND_ENTRY_SYMBOL "moat_backend_entry"

#if defined(__GNUC__)
#define MOAT_EXPORT __attribute__((visibility("default")))
#else
#define MOAT_EXPORT
#endif

MOAT_EXPORT const moat_backend_api* moat_backend_entry(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOAT_BACKEND_H */
