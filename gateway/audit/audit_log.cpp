#include "audit/audit_log.h"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cinttypes>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "audit/audit_verify.h"
#include "audit/json_text.h"

namespace moat::audit {

namespace {

const std::string zero_hash(64, '0');

std::string iso_time(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

void append_opt(std::string& out, const std::string& s) {
  if (s.empty()) out += "null";
  else append_json_string(out, s);
}

std::string last_line_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return last;
}

uint64_t seq_of(const std::string& line) {
  // The line starts {"seq":N, by construction.
  constexpr std::string_view head = "{\"seq\":";
  if (line.compare(0, head.size(), head) != 0) throw std::runtime_error("not an audit line");
  return std::stoull(line.substr(head.size()));
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1) throw std::runtime_error("sha256 failed");
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(hex[md[i] >> 4]);
    out.push_back(hex[md[i] & 15]);
  }
  return out;
}

std::string format_record_fields(const audit_record& r, uint64_t seq) {
  std::string out;
  out.reserve(256 + (r.request ? r.request->size() : 0) + (r.response ? r.response->size() : 0));
  out += "{\"seq\":" + std::to_string(seq) + ",\"id\":";
  append_json_string(out, r.id);
  out += ",\"time\":\"" + iso_time(r.time) + "\",\"key\":";
  append_opt(out, r.key_name);
  out += ",\"client\":";
  append_opt(out, r.client_subject);
  out += ",\"model\":";
  append_json_string(out, r.model);
  out += ",\"status\":" + std::to_string(r.status);
  char lat[32];
  std::snprintf(lat, sizeof lat, "%.3f", r.latency_ms);
  out += ",\"latency_ms\":";
  out += lat;
  out += ",\"tokens\":{\"prompt\":";
  out += r.tokens_prompt < 0 ? "null" : std::to_string(r.tokens_prompt);
  out += ",\"completion\":";
  out += r.tokens_completion < 0 ? "null" : std::to_string(r.tokens_completion);
  out += "},\"decisions\":[";
  for (size_t i = 0; i < r.decisions.size(); ++i) {
    const auto& d = r.decisions[i];
    if (i) out.push_back(',');
    out += "{\"policy\":";
    append_json_string(out, d.policy);
    out += ",\"rule\":";
    append_json_string(out, d.rule);
    out += ",\"action\":";
    append_json_string(out, d.action);
    out += ",\"count\":" + std::to_string(d.count) + "}";
  }
  out += "],\"tags\":{";
  for (size_t i = 0; i < r.tags.size(); ++i) {
    if (i) out.push_back(',');
    append_json_string(out, r.tags[i].first);
    out.push_back(':');
    append_json_string(out, r.tags[i].second);
  }
  out += "}";
  if (r.request) {
    out += ",\"request\":";
    append_json_string(out, *r.request);
  }
  if (r.response) {
    out += ",\"response\":";
    append_json_string(out, *r.response);
  }
  return out;
}

audit_config parse_audit_config(const YAML::Node& node, const std::string& base_dir) {
  auto where = [](const YAML::Node& n, const std::string& key) {
    return "audit." + key + (n.Mark().is_null() ? "" : " (line " + std::to_string(n.Mark().line + 1) + ")");
  };
  if (!node.IsMap()) throw std::runtime_error(where(node, "") + ": must be a map { path, max_bytes }");
  audit_config c;
  for (const auto& kv : node) {
    const std::string k = kv.first.as<std::string>();
    const YAML::Node& v = kv.second;
    try {
      if (k == "path") c.path = v.as<std::string>();
      else if (k == "max_bytes") c.max_bytes = v.as<uint64_t>();
      else if (k == "queue") c.queue = v.as<size_t>();
      else if (k == "max_wait_ms") c.max_wait = std::chrono::milliseconds(v.as<int64_t>());
      else if (k == "fsync") c.fsync = v.as<bool>();
      else throw std::runtime_error(where(kv.first, k) + ": unknown key (path, max_bytes, queue, max_wait_ms, fsync)");
    } catch (const YAML::Exception&) {
      throw std::runtime_error(where(v, k) + ": wrong type");
    }
  }
  if (c.path.empty()) throw std::runtime_error(where(node, "path") + ": is required");
  if (c.queue == 0) throw std::runtime_error(where(node["queue"], "queue") + ": must be at least 1");
  std::filesystem::path p(c.path);
  if (p.is_relative()) c.path = (std::filesystem::path(base_dir) / p).lexically_normal().string();
  return c;
}

audit_log::audit_log(audit_config cfg) : cfg_(std::move(cfg)) {
  resume_chain();
  file_ = std::fopen(cfg_.path.c_str(), "ab");
  if (!file_) throw std::runtime_error("audit: cannot open " + cfg_.path + ": " + std::strerror(errno));
  size_ = std::filesystem::exists(cfg_.path) ? std::filesystem::file_size(cfg_.path) : 0;
  writer_ = std::thread([this] { run(); });
}

audit_log::~audit_log() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  not_empty_.notify_all();
  writer_.join();
  if (file_) std::fclose(file_);
}

void audit_log::resume_chain() {
  // Continue the chain from the newest line on disk (the current file, else the last rotated).
  const auto files = chain_files(cfg_.path);
  prev_ = zero_hash;
  seq_ = 0;
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    const std::string last = last_line_of(*it);
    if (last.empty()) continue;
    try {
      seq_ = seq_of(last) + 1;
    } catch (const std::exception&) {
      throw std::runtime_error("audit: " + *it + " does not end with an audit line; move it aside");
    }
    prev_ = sha256_hex(last);
    break;
  }
}

bool audit_log::submit(audit_record r) {
  std::unique_lock lock(mu_);
  if (queue_.size() >= cfg_.queue &&
      !not_full_.wait_for(lock, cfg_.max_wait, [&] { return queue_.size() < cfg_.queue || stop_; })) {
    ++dropped_;
    spdlog::error("audit: queue full for {} ms, record {} dropped ({} dropped so far)", cfg_.max_wait.count(), r.id,
                  dropped_);
    return false;
  }
  queue_.push_back(std::move(r));
  lock.unlock();
  not_empty_.notify_one();
  return true;
}

void audit_log::flush() {
  std::unique_lock lock(mu_);
  idle_.wait(lock, [&] { return queue_.empty() && !busy_; });
}

uint64_t audit_log::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

uint64_t audit_log::written() const {
  std::lock_guard lock(mu_);
  return written_;
}

void audit_log::rotate() {
  std::fclose(file_);
  file_ = nullptr;
  // The next free FILE.NNNNNN.
  uint64_t n = 1;
  while (true) {
    char suffix[16];
    std::snprintf(suffix, sizeof suffix, ".%06" PRIu64, n);
    const std::string target = cfg_.path + suffix;
    if (!std::filesystem::exists(target)) {
      std::filesystem::rename(cfg_.path, target);
      break;
    }
    ++n;
  }
  file_ = std::fopen(cfg_.path.c_str(), "ab");
  if (!file_) throw std::runtime_error("audit: cannot reopen " + cfg_.path + ": " + std::strerror(errno));
  size_ = 0;
}

void audit_log::write_line(const audit_record& r) {
  std::string line = format_record_fields(r, seq_);
  line += ",\"prev\":\"" + prev_ + "\"";
  const std::string self = sha256_hex(line);
  line += ",\"hash\":\"" + self + "\"}";
  if (cfg_.max_bytes > 0 && size_ > 0 && size_ + line.size() + 1 > cfg_.max_bytes) rotate();
  prev_ = sha256_hex(line);
  ++seq_;
  line.push_back('\n');
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size())
    spdlog::error("audit: write to {} failed: {}", cfg_.path, std::strerror(errno));
  size_ += line.size();
}

void audit_log::run() {
  std::unique_lock lock(mu_);
  while (true) {
    not_empty_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty() && stop_) break;
    // Take the whole batch, write it without the lock, flush once.
    std::deque<audit_record> batch;
    batch.swap(queue_);
    busy_ = true;
    lock.unlock();
    not_full_.notify_all();
    for (const auto& r : batch) {
      try {
        write_line(r);
      } catch (const std::exception& e) {
        spdlog::error("audit: {}", e.what());
      }
    }
    if (file_) {
      std::fflush(file_);
      if (cfg_.fsync) ::fsync(fileno(file_));
    }
    lock.lock();
    written_ += batch.size();
    busy_ = false;
    if (queue_.empty()) idle_.notify_all();
  }
  busy_ = false;
  idle_.notify_all();
}

}  // namespace moat::audit
