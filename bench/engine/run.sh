#!/usr/bin/env bash
# CPU engine benchmark: builds moat_engine_bench, runs it on the fixture model, on stories260K
# and on a synthetic ~58M-parameter f32 Llama (large enough to be memory-bound), and writes
# bench/results/engine_cpu.md. Usage: bench/engine/run.sh [BUILD_DIR] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
THREADS=${2:-0}
FIX=../shared/fixtures
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$BUILD" -j "$(nproc)" --target moat_engine_bench > /dev/null
BIN="$BUILD/bin/moat_engine_bench"
OUT=bench/results/engine_cpu.md
{
  echo "# CPU engine benchmark"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), threads=$THREADS."
  echo "Load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (other processes share these cores; figures are lower bounds)."
  echo "Decode bound: streams x copy-loop bandwidth / (weight bytes + streams x KV bytes read per token)."
  echo "The two fixture models fit in cache (1-3 MB), so the DRAM bound does not limit them: their decode is compute-bound."
  echo "The synthetic ~58M-parameter model (168 MB read per step) is the memory-bound case."
  echo "Prompt 128 random tokens (32 for the synthetic model), 32 decode steps per stream (8 for the synthetic model), greedy, f32 compute."
  echo
  "$BIN" --model "$FIX/tinystories-656K-hf" --threads "$THREADS" 2>/dev/null
  "$BIN" --model "$FIX/llama2c-stories260K/stories260K.bin" --threads "$THREADS" 2>/dev/null | tail -n +3
  "$BIN" --synthetic 512,8,1408,32000 --threads "$THREADS" --prompt 32 --decode 8 2>/dev/null | tail -n +3
} > "$OUT"
cat "$OUT"

# For `moat plan`: the measured share of the bandwidth bound that single-stream decode reaches
# on the memory-bound synthetic model (see planner docs: bench/results/engine.json).
awk -F'|' '/synthetic/ && /decode, 1 stream/ {
  split($4, v, " "); split($5, b, " ");
  if (b[1] > 0) printf "{\"backend\": \"cpu\", \"decode_bandwidth_efficiency\": %.3f, \"source\": \"bench/engine/run.sh\"}\n", v[1] / b[1]
}' "$OUT" > bench/results/engine.json
cat bench/results/engine.json
