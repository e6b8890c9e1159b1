// text_unicode_tables.h — generated Unicode category ranges (see tools/make_text_goldens.py).
#pragma once

#include <cstddef>

namespace moat::engine {

struct unicode_range {
  char32_t first, last;
};

extern const unicode_range unicode_letters[];
extern const size_t unicode_letters_size;
extern const unicode_range unicode_numbers[];
extern const size_t unicode_numbers_size;

}  // namespace moat::engine
