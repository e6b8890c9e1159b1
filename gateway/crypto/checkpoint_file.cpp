#include "crypto/checkpoint_file.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace moat::crypto {

// ---- plaintext_buffer ----

plaintext_buffer::plaintext_buffer(std::size_t size) : size_(size) {
  if (size == 0) return;
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    size_ = 0;
    throw checkpoint_error("cannot allocate " + std::to_string(size) + " bytes for a decrypted checkpoint");
  }
  ::madvise(p, size, MADV_DONTDUMP);  // best effort: keep the weights out of core files
  data_ = static_cast<std::uint8_t*>(p);
}

plaintext_buffer::plaintext_buffer(plaintext_buffer&& other) noexcept
    : data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}

plaintext_buffer& plaintext_buffer::operator=(plaintext_buffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

plaintext_buffer::~plaintext_buffer() { release(); }

void plaintext_buffer::release() noexcept {
  if (!data_) return;
  OPENSSL_cleanse(data_, size_);
  ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

// ---- reader ----

namespace {

std::string errno_text() { return std::strerror(errno); }

struct file_closer {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using file_ptr = std::unique_ptr<std::FILE, file_closer>;

}  // namespace

checkpoint_reader::checkpoint_reader(const std::string& path, const checkpoint_key& key) : path_(path) {
  file_ = std::fopen(path.c_str(), "rb");
  if (!file_) throw checkpoint_error(path + ": cannot open: " + errno_text());
  try {
    struct stat st {};
    if (::fstat(::fileno(file_), &st) != 0 || !S_ISREG(st.st_mode))
      throw checkpoint_error(path + ": not a regular file");
    std::uint8_t head[header_bytes];
    const std::size_t got = std::fread(head, 1, header_bytes, file_);
    header_ = checkpoint_header::parse(head, got, path);
    const std::uint64_t body = static_cast<std::uint64_t>(st.st_size) - header_bytes;
    const std::uint64_t record = std::uint64_t(header_.chunk_bytes) + tag_bytes;
    if (body < tag_bytes)
      throw checkpoint_error(path + ": chunk 0: missing or shorter than its tag: the file was truncated");
    chunk_count_ = (body + record - 1) / record;
    const std::uint64_t last = body - (chunk_count_ - 1) * record;
    if (last < tag_bytes)
      throw checkpoint_error(path + ": chunk " + std::to_string(chunk_count_ - 1) +
                             ": shorter than its tag: the file was truncated or extended");
    plaintext_size_ = body - chunk_count_ * tag_bytes;
    record_.resize(record);
    cipher_ = std::make_unique<chunk_cipher>(key, header_, path);
  } catch (...) {
    std::fclose(file_);
    file_ = nullptr;
    throw;
  }
}

checkpoint_reader::~checkpoint_reader() {
  if (file_) std::fclose(file_);
}

std::size_t checkpoint_reader::next_chunk(std::uint8_t* out) {
  if (done()) return 0;
  const std::uint64_t index = next_index_;
  const bool final = index + 1 == chunk_count_;
  const std::size_t want =
      final ? static_cast<std::size_t>(plaintext_size_ - index * header_.chunk_bytes) + tag_bytes
            : header_.chunk_bytes + tag_bytes;
  if (std::fread(record_.data(), 1, want, file_) != want)
    throw checkpoint_error(path_ + ": chunk " + std::to_string(index) + ": read failed (file changed "
                           "while reading?)");
  const std::size_t n = want - tag_bytes;
  cipher_->open(index, final, record_.data(), n, record_.data() + n, out);
  ++next_index_;
  return n;
}

bool is_encrypted_checkpoint(const std::string& path) {
  file_ptr f(std::fopen(path.c_str(), "rb"));
  if (!f) return false;
  std::uint8_t head[sizeof magic];
  return std::fread(head, 1, sizeof head, f.get()) == sizeof head && has_checkpoint_magic(head, sizeof head);
}

plaintext_buffer decrypt_file_to_memory(const std::string& path, const checkpoint_key& key) {
  checkpoint_reader reader(path, key);
  plaintext_buffer out(static_cast<std::size_t>(reader.plaintext_size()));
  std::size_t at = 0;
  // Chunks decrypt straight into the buffer; a failed chunk leaves the buffer to be wiped by
  // its destructor as the exception unwinds.
  while (!reader.done()) at += reader.next_chunk(out.data() + at);
  return out;
}

// ---- file to file ----

namespace {

// The output of encrypt/decrypt: OUT.part with mode 0600, renamed into place by commit(),
// removed if never committed.
class partial_output {
 public:
  explicit partial_output(const std::string& path) : path_(path), part_(path + ".part") {
    const int fd = ::open(part_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error(part_ + ": cannot create: " + errno_text());
    file_ = ::fdopen(fd, "wb");
    if (!file_) {
      ::close(fd);
      throw std::runtime_error(part_ + ": cannot open: " + errno_text());
    }
  }
  ~partial_output() {
    if (file_) std::fclose(file_);
    if (!committed_) ::unlink(part_.c_str());
  }
  void write(const std::uint8_t* p, std::size_t n) {
    if (n && std::fwrite(p, 1, n, file_) != n) throw std::runtime_error(part_ + ": write failed: " + errno_text());
  }
  void commit() {
    const bool ok = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
    std::fclose(file_);
    file_ = nullptr;
    if (!ok) throw std::runtime_error(part_ + ": write failed: " + errno_text());
    if (std::rename(part_.c_str(), path_.c_str()) != 0)
      throw std::runtime_error(path_ + ": cannot rename into place: " + errno_text());
    committed_ = true;
  }

 private:
  std::string path_, part_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

std::uint64_t size_of(std::FILE* f) {
  struct stat st {};
  return ::fstat(::fileno(f), &st) == 0 && S_ISREG(st.st_mode) ? static_cast<std::uint64_t>(st.st_size) : 0;
}

}  // namespace

void encrypt_file(const std::string& in_path, const std::string& out_path, const checkpoint_key& key,
                  const stream_options& options) {
  file_ptr in(std::fopen(in_path.c_str(), "rb"));
  if (!in) throw std::runtime_error(in_path + ": cannot open: " + errno_text());
  const std::uint64_t total = size_of(in.get());
  const checkpoint_header header = checkpoint_header::fresh(options.chunk_bytes);
  chunk_cipher cipher(key, header, out_path);
  partial_output out(out_path);
  const auto head = header.serialize();
  out.write(head.data(), head.size());

  // Two buffers: the chunk being sealed and the one read ahead, which tells whether the
  // current chunk is the final one. Memory: 2 x chunk_bytes whatever the file size.
  const std::size_t cb = header.chunk_bytes;
  std::vector<std::uint8_t> cur(cb), ahead(cb), sealed(cb);
  std::uint8_t tag[tag_bytes];
  auto fill = [&](std::vector<std::uint8_t>& buf) {
    const std::size_t n = std::fread(buf.data(), 1, cb, in.get());
    if (n < cb && std::ferror(in.get())) throw std::runtime_error(in_path + ": read failed: " + errno_text());
    return n;
  };
  std::size_t n = fill(cur);
  std::uint64_t done = 0;
  for (std::uint64_t index = 0;; ++index) {
    const std::size_t next = n == cb ? fill(ahead) : 0;
    const bool final = next == 0;
    cipher.seal(index, final, cur.data(), n, sealed.data(), tag);
    out.write(sealed.data(), n);
    out.write(tag, tag_bytes);
    done += n;
    if (options.progress) options.progress(done, total);
    if (final) break;
    std::swap(cur, ahead);
    n = next;
  }
  OPENSSL_cleanse(cur.data(), cur.size());
  OPENSSL_cleanse(ahead.data(), ahead.size());
  out.commit();
}

void decrypt_file(const std::string& in_path, const std::string& out_path, const checkpoint_key& key,
                  const stream_options& options) {
  checkpoint_reader reader(in_path, key);
  partial_output out(out_path);
  std::vector<std::uint8_t> plain(reader.chunk_bytes());
  std::uint64_t done = 0;
  try {
    while (!reader.done()) {
      const std::size_t n = reader.next_chunk(plain.data());
      out.write(plain.data(), n);
      done += n;
      if (options.progress) options.progress(done, reader.plaintext_size());
    }
  } catch (...) {
    OPENSSL_cleanse(plain.data(), plain.size());
    throw;
  }
  OPENSSL_cleanse(plain.data(), plain.size());
  out.commit();
}

}  // namespace moat::crypto
