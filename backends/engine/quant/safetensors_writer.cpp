#include "engine/quant/safetensors_writer.h"

#include <fstream>
#include <stdexcept>

namespace moat::engine::quant {
namespace {

// Tensor names are checkpoint keys (ASCII in practice); escape what JSON requires anyway.
std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      static const char hex[] = "0123456789abcdef";
      out += "\\u00";
      out += hex[(c >> 4) & 0xf];
      out += hex[c & 0xf];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

void write_safetensors(const std::filesystem::path& file, const std::vector<safetensors_entry>& entries) {
  std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
  uint64_t offset = 0;
  for (const safetensors_entry& e : entries) {
    // Appended piece by piece (GCC 12 misreports chained operator+ on strings as overlapping).
    header += ',';
    header += json_string(e.name);
    header += ":{\"dtype\":\"";
    header += e.dtype;
    header += "\",\"shape\":[";
    for (size_t i = 0; i < e.shape.size(); ++i) {
      if (i) header += ',';
      header += std::to_string(e.shape[i]);
    }
    header += "],\"data_offsets\":[";
    header += std::to_string(offset);
    header += ',';
    header += std::to_string(offset + e.data.size());
    header += "]}";
    offset += e.data.size();
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');

  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("cannot write " + file.string());
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));
  out.write(reinterpret_cast<const char*>(len), 8);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  for (const safetensors_entry& e : entries) {
    out.write(reinterpret_cast<const char*>(e.data.data()), static_cast<std::streamsize>(e.data.size()));
  }
  out.flush();
  if (!out) throw std::runtime_error("write failed: " + file.string());
}

}  // namespace moat::engine::quant
