#!/usr/bin/env bash
# libFuzzer targets of the edge (clang from Debian), built into build-fuzz/ at the repo root.
#   fuzz/run.sh                 build, replay fuzz/corpus/<target>/ (regressions), fuzz each 5 s
#   fuzz/run.sh SECONDS         the same, SECONDS per target
#   fuzz/run.sh --long          300 s per target (make fuzz)
#   fuzz/run.sh --ci            replay, then a fixed-seed run of 20000 inputs per target (make test:
#                               repeatable, so a CI run never fails on luck)
#   fuzz/run.sh build           build only
#   fuzz/run.sh TARGET [SECONDS] one target: http, openai, config, checkpoint, gguf, safetensors
# A crash stops the run and leaves its input in build-fuzz/crashes/<target>/: once fixed, copy
# it into fuzz/corpus/<target>/ so every later run replays it. A crash found in another folder's
# code and not fixed yet sits in fuzz/pending/<target>/: that target is skipped, saying so, until
# the fix lands and the input moves to fuzz/corpus/. fuzz/policy has its own build.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/build-fuzz"
mkdir -p "$out"
seconds=5
targets=(http openai config checkpoint gguf safetensors)
mode=run
ci_runs=
case "${1:-}" in
  --long) seconds=300 ;;
  --ci) ci_runs=20000 ;;
  build) mode=build ;;
  http|openai|config|checkpoint|gguf|safetensors) targets=("$1"); seconds="${2:-$seconds}" ;;
  "") ;;
  *) seconds="$1" ;;
esac

if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ not found, skipping (apt-get install clang)" >&2
  exit 0
fi

cxx=(clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
     -fno-omit-frame-pointer -DBOOST_BEAST_USE_STD_STRING_VIEW -DBOOST_ASIO_NO_DEPRECATED
     -I"$root/gateway" -I"$root/backends")

build_target() {
  local t="$1" srcs=() libs=()
  case "$t" in
    http) srcs=("$root/gateway/auth/edge_guard.cpp" "$root/gateway/auth/log_scrub.cpp" "$root/gateway/http/request_head.cpp"); libs=(-lspdlog -lfmt -lpthread) ;;
    openai) srcs=("$root"/gateway/openai/*.cpp); libs=($(pkg-config --libs simdjson 2>/dev/null || echo -lsimdjson)) ;;
    config) srcs=("$root"/gateway/config/*.cpp "$root/gateway/auth/auth_config.cpp" "$root/gateway/auth/api_key.cpp")
            libs=(-lyaml-cpp -lfmt -lcrypto) ;;
    checkpoint) srcs=("$root/gateway/crypto/key.cpp" "$root/gateway/crypto/chunk_cipher.cpp"
                      "$root/gateway/crypto/checkpoint_file.cpp"); libs=(-lcrypto) ;;
    gguf) srcs=("$root/backends/engine/gguf.cpp" "$root/backends/engine/mapped_file.cpp"
                "$root/backends/engine/tensor.cpp" "$root/backends/engine/model_config.cpp"
                "$root/gateway/crypto/key.cpp" "$root/gateway/crypto/chunk_cipher.cpp"
                "$root/gateway/crypto/checkpoint_file.cpp")
          libs=(-lsimdjson -lspdlog -lfmt -lpthread -lcrypto) ;;
    safetensors) srcs=("$root/backends/engine/safetensors.cpp" "$root/backends/engine/mapped_file.cpp"
                       "$root/backends/engine/tensor.cpp" "$root/gateway/crypto/key.cpp"
                       "$root/gateway/crypto/chunk_cipher.cpp" "$root/gateway/crypto/checkpoint_file.cpp")
                 libs=(-lsimdjson -lspdlog -lfmt -lpthread -lcrypto) ;;
  esac
  local bin="$out/${t}_fuzz"
  # Rebuild only when a source is newer than the binary (ccache is not used with sanitizers here).
  local newest
  newest=$(ls -t "$root/fuzz/$t"/*.cpp "${srcs[@]}" | head -1)
  if [[ -x "$bin" && "$bin" -nt "$newest" ]]; then return 0; fi
  echo "fuzz: building $t"
  "${cxx[@]}" "$root/fuzz/$t"/*.cpp "${srcs[@]}" "${libs[@]}" -o "$bin"
}

for t in "${targets[@]}"; do build_target "$t"; done
[[ "$mode" == build ]] && exit 0

for t in "${targets[@]}"; do
  bin="$out/${t}_fuzz"
  if compgen -G "$root/fuzz/pending/$t/*" >/dev/null; then
    if "$bin" -runs=0 "$root"/fuzz/pending/"$t"/* >/dev/null 2>&1; then
      echo "fuzz: $t: the pending crash is fixed: move fuzz/pending/$t/* to fuzz/corpus/$t/" >&2
    else
      echo "fuzz: $t: SKIPPED, known crash pending a fix (fuzz/pending/$t/)" >&2
      continue
    fi
  fi
  # The CI run starts from an empty working corpus: one kept from earlier runs grows, and the
  # same seed would then explore other inputs each time.
  work="$out/corpus/$t"
  [[ -n "$ci_runs" ]] && { work="$out/ci-corpus/$t"; rm -rf "$work"; }
  mkdir -p "$work" "$out/crashes/$t"
  # Regressions first: every kept input, run once.
  if compgen -G "$root/fuzz/corpus/$t/*" >/dev/null; then
    "$bin" -runs=0 "$root"/fuzz/corpus/"$t"/* >/dev/null 2>"$out/$t.replay.log" ||
      { cat "$out/$t.replay.log"; echo "fuzz: $t: a kept corpus input fails" >&2; exit 1; }
  fi
  if [[ -n "$ci_runs" ]]; then budget=(-seed=1 -runs="$ci_runs"); echo "fuzz: $t, $ci_runs inputs (seed 1)"
  else budget=(-max_total_time="$seconds"); echo "fuzz: $t for ${seconds}s"; fi
  "$bin" "${budget[@]}" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$out/crashes/$t/" -print_final_stats=0 \
    "$work" "$root/fuzz/corpus/$t" >"$out/$t.log" 2>&1 ||
    { tail -40 "$out/$t.log"; echo "fuzz: $t found a crash, input in $out/crashes/$t/" >&2; exit 1; }
  grep -E "^Done [0-9]+ runs" "$out/$t.log" | tail -1 || true
done
echo "fuzz: every target that ran is clean"
