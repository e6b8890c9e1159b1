#!/usr/bin/env bash
# Builds the libFuzzer target for the streaming redactor into build-fuzz-policy/ (repo root).
#   fuzz/policy/build.sh                       # build
#   fuzz/policy/build.sh run [SECONDS]         # build, then fuzz for SECONDS (default 60)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/build-fuzz-policy"
mkdir -p "$out"
srcs=("$root"/gateway/policy/*.cpp)
# The CLI command needs the gateway's CLI header only; leave it out of the fuzzer.
srcs=("${srcs[@]/$root\/gateway\/policy\/policy_command.cpp}")
clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer \
  -DMOAT_SOURCE_DIR="\"$root\"" -I"$root/gateway" $(pkg-config --cflags re2 lua5.4) \
  "$root/fuzz/policy/stream_fuzz.cpp" ${srcs[@]} \
  $(pkg-config --libs re2 lua5.4) -lyaml-cpp -lspdlog -lfmt -lpthread \
  -o "$out/stream_fuzz"
echo "built $out/stream_fuzz"
if [[ "${1:-}" == "run" ]]; then
  mkdir -p "$out/corpus"
  "$out/stream_fuzz" -max_total_time="${2:-60}" -max_len=512 "$out/corpus" "$root/fuzz/policy/corpus"
fi
