// model_error: the one exception type the loaders and the forward pass throw.
//
//   try { auto m = moat::engine::load_model("models/tiny"); }
//   catch (const moat::engine::model_error& e) { spdlog::error("{}", e.what()); }
//
// Messages name the file and, where it applies, the tensor or key, so an operator can fix the
// input without a debugger. It never crosses the plugin ABI: the cpu plugin turns it into a
// moat_status + message.
#pragma once

#include <stdexcept>
#include <string>

namespace moat::engine {

class model_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace moat::engine
