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
if [ ${#failed[@]} -gt 0 ]; then
  echo "bench: failed: ${failed[*]}" >&2
  exit 1
fi
