#include "engine/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "engine/model_error.h"

namespace moat::engine {

std::shared_ptr<mapped_file> mapped_file::open(const std::filesystem::path& path, const crypto::key_source* key) {
  const bool encrypted = crypto::is_encrypted_checkpoint(path.string());
  if (encrypted && key == nullptr) {
    throw model_error(path.string() + ": is encrypted; set key_file or key_env in the model options");
  }
  if (!encrypted && key != nullptr) {
    // A plaintext weights file where an encrypted one is expected may have been substituted.
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) throw model_error(path.string() + ": cannot open: no such file");
    throw model_error(path.string() + ": a key is configured (key_file/key_env) but the file is not an encrypted checkpoint");
  }
  if (!encrypted) return open_plain(path);
  std::shared_ptr<mapped_file> m(new mapped_file());
  m->path_ = path;
  crypto::checkpoint_key k;  // wipes itself when it leaves scope
  try {
    k = crypto::load_key(*key);
  } catch (const std::exception& e) {
    throw model_error(path.string() + ": cannot read its key: " + e.what());  // names the file/variable, not the key
  }
  try {
    m->plain_ = crypto::decrypt_file_to_memory(path.string(), k);
  } catch (const std::exception& e) {
    throw model_error(std::string("encrypted checkpoint ") + e.what());  // names the file and chunk
  }
  m->data_ = m->plain_->data();
  m->size_ = m->plain_->size();
  return m;
}

std::shared_ptr<mapped_file> mapped_file::open_plain(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw model_error(path.string() + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw model_error(path.string() + ": cannot stat: " + std::strerror(err));
  }
  std::shared_ptr<mapped_file> m(new mapped_file());
  m->path_ = path;
  m->size_ = static_cast<size_t>(st.st_size);
  if (m->size_ > 0) {
    void* p = ::mmap(nullptr, m->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw model_error(path.string() + ": cannot mmap: " + std::strerror(err));
    }
    m->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file alive
  return m;
}

bool mapped_file::contains(const void* p, size_t n) const {
  const auto a = reinterpret_cast<uintptr_t>(p), base = reinterpret_cast<uintptr_t>(data_);
  return data_ != nullptr && a >= base && n <= size_ && a - base <= size_ - n;
}

size_t mapped_file::release(const void* p, size_t n) {
  if (n == 0 || !contains(p, n)) return 0;
  static const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  // Only the whole pages inside the range: the partial pages at its ends hold bytes of the
  // neighbouring tensors (or the header), which may still be read.
  const auto a = reinterpret_cast<uintptr_t>(p);
  const uintptr_t first = (a + page - 1) / page * page, last = (a + n) / page * page;
  if (last <= first) return 0;
  // A MAP_PRIVATE file mapping and the decrypted buffer (MAP_PRIVATE | MAP_ANONYMOUS) are both
  // page aligned, and both are ours: dropping their pages cannot reach another process.
  if (::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED) != 0) return 0;  // only advice
  released_ += last - first;
  return last - first;
}

mapped_file::~mapped_file() {
  if (data_ != nullptr && !plain_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace moat::engine
