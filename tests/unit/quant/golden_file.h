// Reads the golden files tools/make_bnb_goldens.py writes (format in that script): named
// arrays of f32 or u8.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace moat::quant_test {

struct golden_array {
  uint8_t dtype = 0;  // 0 f32, 1 u8
  std::vector<float> f32;
  std::vector<uint8_t> u8;
};

inline std::map<std::string, golden_array> read_golden(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  auto read = [&](void* p, size_t n) {
    if (!in.read(static_cast<char*>(p), static_cast<std::streamsize>(n))) throw std::runtime_error("truncated " + path);
  };
  char magic[4];
  read(magic, 4);
  if (std::memcmp(magic, "MQG1", 4) != 0) throw std::runtime_error("bad magic in " + path);
  uint32_t count = 0;
  read(&count, 4);
  std::map<std::string, golden_array> out;
  for (uint32_t k = 0; k < count; ++k) {
    uint32_t len = 0;
    read(&len, 4);
    std::string name(len, '\0');
    read(name.data(), len);
    golden_array a;
    read(&a.dtype, 1);
    uint64_t n = 0;
    read(&n, 8);
    if (a.dtype == 0) {
      a.f32.resize(n);
      read(a.f32.data(), n * 4);
    } else {
      a.u8.resize(n);
      read(a.u8.data(), n);
    }
    out.emplace(name, std::move(a));
  }
  return out;
}

}  // namespace moat::quant_test
