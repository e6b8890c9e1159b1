#!/usr/bin/env bash
# The latency the shipped policies add per 1 KB chat request through `moat serve` with the echo
# backend, against the same server with no policies (request checks, body rebuild, response
# filtering of the 1 KB answer). Writes bench/results/policy_gateway.md.
#   bench/policy/gateway.sh [--requests N]        BUILD=build by default
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${BUILD:-$root/build}"
[[ -f "$build/CMakeCache.txt" ]] || cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target moat moat_echo -j "${JOBS:-2}" >/dev/null
python="$root/.venv/bin/python"
[[ -x "$python" ]] || python=python3
table="$("$python" "$root/bench/policy/gateway_latency.py" "$build" "$@")"
out="$root/bench/results/policy_gateway.md"
mkdir -p "$(dirname "$out")"
{
  echo "# Policies through the gateway"
  echo
  echo "Made by \`bench/policy/gateway.sh\` on $(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$root" rev-parse --short=12 HEAD),"
  echo "build type $(grep -m1 CMAKE_BUILD_TYPE: "$build/CMakeCache.txt" | cut -d= -f2)."
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "One client, sequential requests on one kept-alive connection, one I/O thread; a 1 KB user"
  echo "message (one email address in it) that the echo backend answers back, so the answer is"
  echo "filtered too. Policies: policies/pii.lua, secrets.lua, prompt_injection.lua."
  echo
  echo "$table"
  echo
  echo "Target (issue 4): under 50 µs added for a 1 KB request."
} > "$out"
cat "$out"
