// The tamper-evident audit trail: one JSON line per request, hash-chained, written by its own
// thread so that the request path never waits on the disk.
//
//   moat::audit::audit_log log({.path = "audit.jsonl", .max_bytes = 64 << 20});
//   moat::audit::audit_record r;
//   r.id = "chatcmpl-1"; r.key_name = "team-a"; r.model = "stories15m"; r.status = 200;
//   r.request = redacted_prompt;             // payloads only as the policies left them
//   log.submit(std::move(r));                 // never blocks on I/O; bounded queue
//
// Line format (fields in this order; see docs/policies.md):
//   {"seq":N,"id":..,"time":..,"key":..|null,"client":..|null,"model":..,"status":N,
//    "latency_ms":X,"tokens":{"prompt":N,"completion":N},"decisions":[..],"tags":{..},
//    "request":..,"response":..,"prev":"<sha256 of the previous line>","hash":"<sha256 of this
//    line up to ,"hash">"}
// The first line of a chain has seq 0 and prev of 64 zeros. Rotation renames the file to
// FILE.000001, FILE.000002, ... and the chain (seq, prev) continues in the new file.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace YAML {
class Node;
}

namespace moat::audit {

struct audit_decision {
  std::string policy;
  std::string rule;
  std::string action;
  int count = 1;
};

struct audit_record {
  std::string id;
  std::chrono::system_clock::time_point time = std::chrono::system_clock::now();
  std::string key_name;        // empty -> null
  std::string client_subject;  // empty -> null
  std::string model;
  int status = 200;
  double latency_ms = 0;
  int64_t tokens_prompt = -1;  // -1 -> null (unknown)
  int64_t tokens_completion = -1;
  std::vector<audit_decision> decisions;
  std::vector<std::pair<std::string, std::string>> tags;
  std::optional<std::string> request;   // redacted payload, or absent
  std::optional<std::string> response;  // redacted payload, or absent
};

struct audit_config {
  std::string path;
  uint64_t max_bytes = 0;       // 0: no rotation
  size_t queue = 10000;         // records waiting for the writer
  std::chrono::milliseconds max_wait{50};  // how long submit() may wait on a full queue
  bool fsync = false;           // fsync after each batch (slower, survives power loss)
};

// Reads `audit: { path, max_bytes, queue, fsync }`; relative paths resolve against base_dir.
// Throws std::runtime_error naming the key and line.
audit_config parse_audit_config(const YAML::Node& node, const std::string& base_dir);

// The JSON line for a record, without prev/hash and the closing brace (exposed for tests).
std::string format_record_fields(const audit_record& r, uint64_t seq);
std::string sha256_hex(std::string_view data);

class audit_log {
 public:
  // Opens (or continues) the chain at cfg.path; throws std::runtime_error when it cannot.
  explicit audit_log(audit_config cfg);
  ~audit_log();  // drains the queue
  audit_log(const audit_log&) = delete;
  audit_log& operator=(const audit_log&) = delete;

  // Queues a record. Returns false (and counts a drop, logged) when the queue stayed full for
  // cfg.max_wait: the request path is never held longer than that.
  bool submit(audit_record r);
  // Waits until everything submitted so far is written (tests, shutdown).
  void flush();
  uint64_t dropped() const;
  uint64_t written() const;

 private:
  void run();
  void write_line(const audit_record& r);
  void rotate();
  void resume_chain();

  audit_config cfg_;
  std::FILE* file_ = nullptr;
  uint64_t size_ = 0;
  uint64_t seq_ = 0;
  std::string prev_;  // hex sha256 of the last line

  mutable std::mutex mu_;
  std::condition_variable not_empty_, not_full_, idle_;
  std::deque<audit_record> queue_;
  bool stop_ = false;
  bool busy_ = false;
  uint64_t dropped_ = 0;
  uint64_t written_ = 0;
  std::thread writer_;
};

}  // namespace moat::audit
