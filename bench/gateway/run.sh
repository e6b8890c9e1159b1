#!/usr/bin/env bash
# Gateway benchmark: `moat serve` with the echo backend against nginx answering the same bytes,
# on loopback with wrk, at concurrency 1, 16 and 256, non-streamed and streamed chat.
#
#   bash bench/gateway/run.sh                 # writes bench/results/gateway.md
#   DURATION=5 CONCURRENCY="1 16" bash bench/gateway/run.sh
#
# Environment: MOAT_BUILD (default build), DURATION seconds per run (10), ROUNDS (3), THREADS
# server threads for moat and nginx workers alike (1), WRK_THREADS (1), CONCURRENCY ("1 16 256"),
# RESULTS (bench/results/gateway.md). The raw wrk outputs stay in bench/out/gateway/.
#
# Each round runs every cell once, nginx then moat back to back; the table gives each cell's
# median round. On a shared 2-core machine one 10 s run of either side can move 10-17% with
# whatever else ran that minute; a paired ratio taken ROUNDS times is what holds still.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/bench/gateway"
BUILD=$(cd "$ROOT" && realpath -m "${MOAT_BUILD:-build}")
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-1}
WRK_THREADS=${WRK_THREADS:-1}
CONCURRENCY=${CONCURRENCY:-"1 16 256"}
RESULTS=${RESULTS:-$ROOT/bench/results/gateway.md}
OUT="$ROOT/bench/out/gateway"

for tool in wrk nginx curl python3; do
  command -v "$tool" >/dev/null || { echo "bench/gateway: $tool not found (make deps installs it)" >&2; exit 1; }
done
[ -x "$BUILD/bin/moat" ] || { echo "bench/gateway: $BUILD/bin/moat not built (make build)" >&2; exit 1; }

TMP=$(mktemp -d /tmp/moat-bench-gateway.XXXXXX)
MOAT_PID=""
NGINX_PID=""
cleanup() {
  [ -n "$MOAT_PID" ] && kill "$MOAT_PID" 2>/dev/null && wait "$MOAT_PID" 2>/dev/null || true
  [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
rm -rf "$OUT" && mkdir -p "$OUT"

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- moat ------------------------------------------------------------------------------------
sed "s/@THREADS@/$THREADS/" "$HERE/moat.yaml.in" >"$TMP/moat.yaml"
"$BUILD/bin/moat" serve --config "$TMP/moat.yaml" --listen 127.0.0.1:0 \
  >"$TMP/moat.stdout" 2>"$OUT/moat.stderr.log" &
MOAT_PID=$!
for _ in $(seq 300); do
  grep -q '^moat: listening on ' "$TMP/moat.stdout" 2>/dev/null && break
  kill -0 "$MOAT_PID" 2>/dev/null || { echo "bench/gateway: moat exited; see $OUT/moat.stderr.log" >&2; exit 1; }
  sleep 0.1
done
MOAT_ADDR=$(sed -n 's/^moat: listening on //p' "$TMP/moat.stdout")
[ -n "$MOAT_ADDR" ] || { echo "bench/gateway: moat did not get ready" >&2; exit 1; }

# The request bodies, and the exact bytes moat answers them with (nginx will send the same).
CONTENT="hello from the gateway benchmark, twelve words in all for every request"
printf '{"model":"echo","messages":[{"role":"user","content":"%s"}]}' "$CONTENT" >"$TMP/chat.req"
printf '{"model":"echo","stream":true,"messages":[{"role":"user","content":"%s"}]}' "$CONTENT" >"$TMP/stream.req"
curl -sf -H 'Content-Type: application/json' --data-binary @"$TMP/chat.req" \
  "http://$MOAT_ADDR/v1/chat/completions" >"$TMP/chat.resp"
curl -sfN -H 'Content-Type: application/json' --data-binary @"$TMP/stream.req" \
  "http://$MOAT_ADDR/v1/chat/completions" >"$TMP/stream.resp"
grep -q '"content":"hello from' "$TMP/chat.resp" || { echo "bench/gateway: unexpected answer: $(head -c 300 "$TMP/chat.resp")" >&2; exit 1; }
tail -c 14 "$TMP/stream.resp" | grep -q 'data: \[DONE\]' || { echo "bench/gateway: stream did not end in [DONE]" >&2; exit 1; }

# ---- nginx -----------------------------------------------------------------------------------
NGINX_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 "$HERE/nginx_conf.py" "$HERE/nginx.conf.in" "$TMP" "$NGINX_PORT" "$THREADS" \
  "$TMP/chat.resp" "$TMP/stream.resp" >"$TMP/nginx.conf"
nginx -p "$TMP" -c "$TMP/nginx.conf" -e "$TMP/nginx-error.log" &
NGINX_PID=$!
for _ in $(seq 100); do
  curl -sf -o /dev/null -X POST "http://127.0.0.1:$NGINX_PORT/json" && break
  sleep 0.1
done
curl -sf -X POST "http://127.0.0.1:$NGINX_PORT/json" | cmp -s - "$TMP/chat.resp" \
  || { echo "bench/gateway: nginx does not answer moat's bytes" >&2; exit 1; }
curl -sf -X POST "http://127.0.0.1:$NGINX_PORT/stream" | cmp -s - "$TMP/stream.resp" \
  || { echo "bench/gateway: nginx does not answer moat's stream bytes" >&2; exit 1; }

# ---- load ------------------------------------------------------------------------------------
COMMANDS="$OUT/commands.txt"
: >"$COMMANDS"
run_wrk() {  # round target mode concurrency url path body
  local round=$1 target=$2 mode=$3 c=$4 url=$5 path=$6 body=$7
  local t=$(( c < WRK_THREADS ? c : WRK_THREADS ))
  local shown="\$${target^^}_URL"  # the address, not this run's port
  if [ "$round" = 1 ]; then
    echo "BENCH_PATH=$path BENCH_BODY_FILE=$body wrk -t$t -c$c -d${DURATION}s --latency -s bench/gateway/post.lua $shown" \
      | sed "s#$TMP#\$TMP#g" >>"$COMMANDS"
  fi
  BENCH_PATH=$path BENCH_BODY_FILE=$body wrk -t"$t" -c"$c" -d"${DURATION}s" --latency \
    -s "$HERE/post.lua" "$url" >"$OUT/$target-$mode-c$c-r$round.txt"
}

MOAT_URL="http://$MOAT_ADDR"
NGINX_URL="http://127.0.0.1:$NGINX_PORT"
# Warm-up: connections, caches, the CPU governor.
BENCH_PATH=/v1/chat/completions BENCH_BODY_FILE=$TMP/chat.req wrk -t1 -c16 -d2s -s "$HERE/post.lua" "$MOAT_URL" >/dev/null
BENCH_PATH=/json BENCH_BODY_FILE=$TMP/chat.req wrk -t1 -c16 -d2s -s "$HERE/post.lua" "$NGINX_URL" >/dev/null

for round in $(seq "$ROUNDS"); do
  for c in $CONCURRENCY; do
    run_wrk "$round" nginx chat "$c" "$NGINX_URL" /json "$TMP/chat.req"
    run_wrk "$round" moat chat "$c" "$MOAT_URL" /v1/chat/completions "$TMP/chat.req"
    run_wrk "$round" nginx stream "$c" "$NGINX_URL" /stream "$TMP/stream.req"
    run_wrk "$round" moat stream "$c" "$MOAT_URL" /v1/chat/completions "$TMP/stream.req"
  done
done

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
kill -0 "$MOAT_PID" 2>/dev/null || { echo "bench/gateway: moat died under load; see $OUT/moat.stderr.log" >&2; exit 1; }

python3 "$HERE/report.py" "$OUT" \
  --machine "$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)" \
  --cores "$(nproc)" --threads "$THREADS" --wrk-threads "$WRK_THREADS" --duration "$DURATION" --rounds "$ROUNDS" \
  --commit "$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)" \
  --build-type "$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || echo unknown)" \
  --load "$LOAD_BEFORE" --load-after "$LOAD_AFTER" \
  --response-bytes "$(wc -c <"$TMP/chat.resp")" --stream-bytes "$(wc -c <"$TMP/stream.resp")" \
  --concurrency "$CONCURRENCY" >"$RESULTS"
cat "$RESULTS"
