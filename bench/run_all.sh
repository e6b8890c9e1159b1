#!/usr/bin/env bash
# `make bench`: runs every bench/<area>/run.sh there is, one after the other (they share the
# machine, so never in parallel), and says which failed. Each writes its table to bench/results/.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
failed=()
for script in bench/*/run.sh; do
  [ -f "$script" ] || continue
  echo "== $script"
  if ! bash "$script"; then
    failed+=("$script")
  fi
done
# moat against llama.cpp: needs its own venv (see the script's header), else it says so and exits 0.
echo "== bench/engine/run_llamacpp.sh"
bash bench/engine/run_llamacpp.sh build 2 || failed+=("bench/engine/run_llamacpp.sh")
if [ ${#failed[@]} -gt 0 ]; then
  echo "bench: failed: ${failed[*]}" >&2
  exit 1
fi
