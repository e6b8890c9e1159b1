#!/usr/bin/env bash
# Security benchmark: checkpoint decryption GB/s vs a plain read, API key check cost, TLS
# handshakes/s and kept-alive TLS vs plain round trips/s (in-process, then through `moat serve`
# with the echo backend). Writes bench/results/security.md.
# Usage: [MOAT_BUILD=build-dir] bench/security/run.sh [SIZE_MIB]   (default 1024: a 1 GiB
#   generated checkpoint; MOAT_BUILD defaults to build/, holding bin/moat and the echo plugin)
# Builds the in-process bench straight from the library sources (no CMake target needed).
set -euo pipefail
cd "$(dirname "$0")/../.."
MIB=${1:-1024}
MOAT_BUILD=${MOAT_BUILD:-build}
OUT=bench/results/security.md
BIN=bench/out/security_bench
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p bench/out bench/results
g++ -std=c++20 -O2 -DNDEBUG -DBOOST_BEAST_USE_STD_STRING_VIEW -DBOOST_ASIO_NO_DEPRECATED -Igateway \
  bench/security/security_bench.cpp gateway/crypto/key.cpp gateway/crypto/chunk_cipher.cpp \
  gateway/crypto/checkpoint_file.cpp gateway/auth/api_key.cpp gateway/auth/auth_config.cpp \
  gateway/auth/token_bucket.cpp gateway/auth/key_store.cpp gateway/tls/tls_context.cpp \
  -lssl -lcrypto -lyaml-cpp -lspdlog -lfmt -lpthread -o "$BIN"
# A CA and a server certificate for the TLS rows (P-256, as the tests use).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-ca \
  -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -keyout "$WORK/server.key" -out "$WORK/server.csr" 2>/dev/null
echo "subjectAltName=DNS:localhost" > "$WORK/ext"
openssl x509 -req -days 1 -set_serial 1 -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
  -extfile "$WORK/ext" -out "$WORK/server.pem" 2>/dev/null
{
  echo "# Security benchmark"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), OpenSSL $(openssl version | cut -d' ' -f2)."
  echo "Load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (other processes share these cores; figures are lower bounds)."
  echo "Checkpoint rows: a ${MIB} MiB generated file, best of 3, both read from the page cache. Key rows: one thread."
  echo "TLS rows: in-process client and server over loopback, blocking Asio, no HTTP layer."
  echo "moat serve rows: bench/security/serve_bench.py, one Python client thread over loopback against a TLS and a plaintext"
  echo "moat serve (2 I/O threads, echo backend), 5 s each; the client costs more per request than the gateway, so compare the rows"
  echo "with each other, not with the in-process ones."
  echo
  "$BIN" "$WORK" "$MIB"
  if [[ -x "$MOAT_BUILD/bin/moat" ]]; then
    python3 bench/security/serve_bench.py "$MOAT_BUILD" "$WORK" 5
  else
    echo "| moat serve rows | skipped: no $MOAT_BUILD/bin/moat (build it or set MOAT_BUILD) |"
  fi
} > "$OUT"
cat "$OUT"
