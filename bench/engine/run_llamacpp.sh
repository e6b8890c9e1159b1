#!/usr/bin/env bash
# moat's CPU engine against llama.cpp (bench/engine/llamacpp.py) on the fixture model and on a
# synthetic TinyLlama-1.1B-shaped model, same threads, same weights, Q8_0 vs int8 and Q4_0 vs
# int4 / nf4; writes bench/results/engine_llamacpp.md (+ .json).
#   bench/engine/run_llamacpp.sh [BUILD_DIR] [THREADS]
# Environment: OUT (default bench/results/engine_llamacpp.md), SYNTHETIC=0 (fixture only, a
# quick check), PROMPT / CTX / DECODE / REPS (64 / 32 / 8 / 3), LLAMACPP_ARGS (passed through).
# Needs a Python venv with llama-cpp-python, gguf and numpy, kept out of CI (LLAMACPP_VENV,
# default /tmp/moat-llamacpp-venv); without it the script says so and exits 0. Make one with
#   python3 -m venv /tmp/moat-llamacpp-venv
#   CMAKE_BUILD_PARALLEL_LEVEL=1 CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
#     -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_BF16=ON -DGGML_AMX_INT8=OFF" \
#     /tmp/moat-llamacpp-venv/bin/pip install llama-cpp-python gguf numpy
# (AMX off: on the machine these figures come from, llama.cpp's AMX Q8_0/Q4_0 path faults; with a
# native build pass --llama-no-extra-bufts through LLAMACPP_ARGS instead.)
# Model files go to bench/out/ (git-ignored): the synthetic model is 2 GiB of f16 plus its GGUFs.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
THREADS=${2:-2}
VENV=${LLAMACPP_VENV:-/tmp/moat-llamacpp-venv}
PY="$VENV/bin/python"
if [ ! -x "$PY" ] || ! "$PY" -c "import llama_cpp, gguf, numpy" 2> /dev/null; then
  echo "run_llamacpp.sh: skipped: no venv with llama-cpp-python, gguf and numpy at $VENV (see the comment at the top of $0)"
  exit 0
fi
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$BUILD" -j "${BUILD_JOBS:-2}" --target moat_engine_bench > /dev/null

FIX=../shared/fixtures/tinystories-656K-hf
SYN=bench/out/synthetic-tinyllama-1.1b
GG=bench/out/gguf
mkdir -p "$GG"
MODELS=()
if [ "${SYNTHETIC:-1}" != 0 ]; then
  [ -f "$SYN/model.safetensors" ] || "$PY" tools/make_synthetic_llama.py "$SYN"
  [ -f "$GG/synthetic-tinyllama-1.1b-q4_0.gguf" ] || "$PY" tools/hf_to_gguf.py "$SYN" "$GG/synthetic-tinyllama-1.1b" --types q8_0,q4_0
  MODELS+=(--model "synthetic-TinyLlama-1.1B=$SYN,$GG/synthetic-tinyllama-1.1b")
fi
if [ -d "$FIX" ]; then
  [ -f "$GG/tinystories-656K-q4_0.gguf" ] || "$PY" tools/hf_to_gguf.py "$FIX" "$GG/tinystories-656K" --types q8_0,q4_0
  MODELS+=(--model "tinystories-656K=$FIX,$GG/tinystories-656K")
else
  echo "run_llamacpp.sh: $FIX absent: the fixture rows are left out"
fi
# Both engines wait as they do out of the box: llama.cpp's OpenMP workers spin a while, then
# sleep (libgomp's default), and moat's pool spins up to MOAT_CPU_SPIN_US (100 us) before it
# sleeps. On a machine busy with other work set OMP_WAIT_POLICY=PASSIVE and MOAT_CPU_SPIN_US=0:
# a spinning worker there takes the core its peer needs (llama.cpp once fell to 0.2 tokens/s at
# batch 1 on the 1.1B model with OMP_WAIT_POLICY=active on a loaded machine).
"$PY" bench/engine/llamacpp.py --moat-bin "$BUILD/bin/moat_engine_bench" --threads "$THREADS" "${MODELS[@]}" \
  --prompt "${PROMPT:-64}" --ctx "${CTX:-32}" --decode "${DECODE:-8}" --reps "${REPS:-3}" \
  --out "${OUT:-bench/results/engine_llamacpp.md}" ${LLAMACPP_ARGS:-}
