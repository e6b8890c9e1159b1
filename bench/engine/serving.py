"""Serving figures for the cpu backend through the whole stack: `moat serve` with the fixture model,
driven by the openai SDK over loopback at 1, 8 and 32 concurrent streams.

    MOAT_BUILD=build .venv/bin/python bench/engine/serving.py [--out bench/results/engine_serving.md]

Per concurrency level: time to first token (p50, p99), decode tokens/s per stream (tokens after the
first over the time from the first to the last chunk) and in aggregate (all completion tokens over
the wall time of the level). The engine alone (no HTTP, no scheduler) is measured by
engine_bench.cpp; the difference is what serving costs. Never run as a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import openai  # noqa: E402

from moat_process import moat_server  # noqa: E402

FIXTURE = ROOT.parent / "shared" / "fixtures" / "tinystories-656K-hf"
EOS = 2
MAX_TOKENS = 128


async def one_stream(client: openai.AsyncOpenAI, prompt: str) -> tuple[float, float, int]:
    """Returns (time to first token, decode seconds after it, completion tokens)."""
    start = time.perf_counter()
    first = last = None
    tokens = 0
    stream = await client.completions.create(
        model="tinystories", prompt=prompt, max_tokens=MAX_TOKENS, temperature=0, stream=True,
        logit_bias={str(EOS): -100}, stream_options={"include_usage": True})
    async for chunk in stream:
        now = time.perf_counter()
        if chunk.choices and chunk.choices[0].text:
            first = first or now
            last = now
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    return (first - start), (last - first), tokens


async def level(base_url: str, streams: int) -> dict:
    async with openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0,
                                  timeout=600) as client:
        await one_stream(client, "warm up")
        start = time.perf_counter()
        results = await asyncio.gather(*(one_stream(client, f"Story number {i}: once upon a time")
                                         for i in range(streams)))
        wall = time.perf_counter() - start
    ttft = sorted(r[0] for r in results)
    per_stream = [(r[2] - 1) / r[1] for r in results if r[1] > 0]
    return {
        "streams": streams,
        "ttft_p50_ms": 1000 * statistics.median(ttft),
        "ttft_p99_ms": 1000 * ttft[min(len(ttft) - 1, int(0.99 * len(ttft)))],
        "decode_per_stream": statistics.median(per_stream),
        "aggregate": sum(r[2] for r in results) / wall,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "engine_serving.md"))
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    build = Path(os.environ.get("MOAT_BUILD", ROOT / "build"))
    if not (build / "lib" / "moat" / "libmoat_cpu.so").is_file() or not FIXTURE.is_dir():
        print(f"serving bench: needs {build}/lib/moat/libmoat_cpu.so and {FIXTURE}", file=sys.stderr)
        return 1
    config = {
        "server": {"listen": "127.0.0.1:0", "threads": 2, "request_timeout_s": 600},
        "models": [{"name": "tinystories", "backend": "cpu", "max_queue": 1024,
                    "options": {"path": str(FIXTURE), "ctx": 512, "max_batch": 32,
                                "threads": args.threads, "kv_cache_mb": 64}}],
    }
    load_before = os.getloadavg()[0]
    server = moat_server(build / "bin" / "moat", Path(tempfile.mkdtemp()), config, "bench").start()
    try:
        rows = [asyncio.run(level(server.base_url, n)) for n in (1, 8, 32)]
    finally:
        server.stop()
    cpu = subprocess.run(["sh", "-c", "lscpu | grep 'Model name' | sed 's/.*: *//'"],
                         capture_output=True, text=True).stdout.strip() or platform.processor()
    lines = [
        "# cpu backend serving figures (tinystories-656K, f32)",
        "",
        f"Machine: {cpu}, {os.cpu_count()} cores. `moat serve` with the cpu backend (threads "
        f"{args.threads or 'all'}, max_batch 32), openai SDK streaming completions over loopback, "
        f"{MAX_TOKENS} tokens each (EOS masked), temperature 0. Command: "
        "`MOAT_BUILD=build .venv/bin/python bench/engine/serving.py`. The Python client runs on "
        "the same cores as the server, so at 32 streams part of the time is the client's. "
        f"Load average when the run started: {load_before:.1f} (other work on the machine skews "
        "every figure; rerun on a quiet machine to compare).",
        "",
        "| streams | TTFT p50 (ms) | TTFT p99 (ms) | decode tok/s per stream | aggregate tok/s |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r['streams']} | {r['ttft_p50_ms']:.1f} | {r['ttft_p99_ms']:.1f} | "
                     f"{r['decode_per_stream']:.0f} | {r['aggregate']:.0f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
