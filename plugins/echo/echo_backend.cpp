// Placeholder: the echo backend is being written.
#include "moat/backend.h"
static moat_backend_api api = {sizeof(moat_backend_api), MOAT_BACKEND_ABI_VERSION, {"echo", 4},
                               nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
extern "C" const moat_backend_api* moat_backend_entry(void) { return &api; }
