// The host allocator's own resident memory: what the malloc serving `moat serve` keeps beyond the
// program's live blocks, which the weights, KV and activation terms do not see.
//
//   allocator a = running_allocator();            // mimalloc in a default build, glibc otherwise
//   double b = allocator_bytes(a);                // added to a CPU device's total by `moat plan`
//   allocator g = parse_allocator("glibc");       // --allocator: plan for another build
//
// What is counted (docs/planning.md, "The allocator"): `moat plan` runs in the same executable
// that serves, so the allocator this process uses is the one a server started from it would use.
// glibc malloc is the reference the other terms were checked against and counts 0. mimalloc
// (linked into the moat executable by default, cmake/dependencies.cmake) gives each thread that
// allocates its own heap: its own 32 MiB segments with their page metadata, a separate 64 KiB
// page per size class it allocates from, and freed pages kept until that thread allocates again.
// For the cpu backend that costs a fixed ~0.9 MiB more than glibc per model (its scheduler thread,
// which builds every request's state and the forward buffers, and the load), whatever the
// backend's `threads` (pool workers run kernels on buffers they do not allocate), the model's
// size or the workload: measured with 1 to 8 threads, 2.6 MB and 75 MB fp32 models, n 1 to 16.
#pragma once

#include <string_view>

namespace moat::planner {

enum class allocator { glibc, mimalloc };

std::string_view name_of(allocator a);

// "glibc" or "mimalloc"; throws plan_error naming the choices for anything else.
allocator parse_allocator(std::string_view text);

// The malloc that serves this process: mimalloc when its library is loaded (its entry points
// resolve), else glibc's (or a sanitizer's, which the planner treats alike).
allocator running_allocator();

// Resident bytes the allocator keeps beyond glibc's for one model served on a CPU device.
double allocator_bytes(allocator a);

}  // namespace moat::planner
