#!/usr/bin/env bash
# Runs the CUDA decode benchmark and the PyTorch bf16 baseline on a GPU machine and writes
# bench/cuda/results/<UTC date>.txt. Usage: bench/cuda/run.sh [build-dir]  (default build-bench-cuda)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-bench-cuda}
cmake -S . -B "$build" -DMOAT_CUDA=ON -DMOAT_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target moat_cuda_bench
mkdir -p bench/cuda/results
out=bench/cuda/results/$(date -u +%Y-%m-%dT%H%M).txt
{
  echo "# moat kernels, synthetic Llama-3.1-8B shape (commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
  "$build"/bin/moat_cuda_bench --formats bf16,int8,int4,nf4 --batches 1,8,64,256 --ctx 512 --steps 20
  echo
  echo "# PyTorch bf16 baseline"
  python3 bench/cuda/torch_baseline.py --batches 1,8,64,256 --ctx 512 || echo "(torch baseline failed)"
  echo
  echo "# PyTorch bf16 baseline, torch.compile"
  python3 bench/cuda/torch_baseline.py --batches 1,8,64,256 --ctx 512 --compile || echo "(torch.compile failed here)"
} | tee "$out"
echo "written: $out"
