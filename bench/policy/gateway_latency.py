"""Latency the policies add per request through `moat serve` (echo backend): the same 1 KB chat
request, sequential on one kept-alive connection, against a server with no policies and one
with the shipped library (pii, secrets, prompt_injection). Prints a markdown table.

    python bench/policy/gateway_latency.py BUILD_DIR [--requests N]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from moat_process import moat_server  # noqa: E402

# ~1 KB of ordinary prose with one address in it: every rule scans all of it, one redacts.
PROSE = ("The quarterly review covers shipping volumes, supplier lead times and the open items "
         "from the last planning meeting. Please send corrections to ops.team@example.com before "
         "Friday so that the summary can go out with the numbers everyone agreed on. ")
PROMPT = (PROSE * 6)[:1024]


def config(policies: bool) -> dict:
    cfg: dict = {
        "server": {"listen": "127.0.0.1:0", "threads": 1},
        "models": [{"name": "echo", "backend": "echo", "options": {"max_context": 100000}}],
    }
    if policies:
        cfg["policies"] = [{"path": str(ROOT / "policies" / name)}
                           for name in ("pii.lua", "secrets.lua", "prompt_injection.lua")]
    return cfg


def measure(binary: Path, policies: bool, requests: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        srv = moat_server(binary, Path(tmp), config(policies), "bench").start()
        try:
            conn = http.client.HTTPConnection(srv.host, srv.port, timeout=30)
            body = json.dumps({"model": "echo", "max_tokens": 1000,
                               "messages": [{"role": "system", "content": "Summarize."},
                                            {"role": "user", "content": PROMPT}]})
            headers = {"content-type": "application/json"}
            samples = []
            for i in range(requests + requests // 10):  # the first tenth warms up
                start = time.perf_counter()
                conn.request("POST", "/v1/chat/completions", body, headers)
                resp = conn.getresponse()
                data = resp.read()
                elapsed = time.perf_counter() - start
                if resp.status != 200:
                    raise RuntimeError(f"status {resp.status}: {data[:200]!r}")
                if i == 0:
                    # The policies really ran: the address must not come back.
                    answer = json.loads(data)["choices"][0]["message"]["content"]
                    assert ("ops.team@example.com" in answer) != policies, answer[:200]
                if i >= requests // 10:
                    samples.append(elapsed * 1e6)
            conn.close()
            return samples
        finally:
            srv.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--requests", type=int, default=2000)
    args = ap.parse_args()
    binary = Path(args.build).resolve() / "bin" / "moat"
    rows = {}
    for policies in (False, True):
        s = sorted(measure(binary, policies, args.requests))
        rows[policies] = (statistics.median(s), s[int(len(s) * 0.99) - 1], statistics.mean(s))
    print("| server | median µs | p99 µs | mean µs |")
    print("|---|---:|---:|---:|")
    for policies, (med, p99, mean) in rows.items():
        name = "shipped policies" if policies else "no policies"
        print(f"| {name} | {med:.0f} | {p99:.0f} | {mean:.0f} |")
    added = rows[True][0] - rows[False][0]
    print(f"| **added (median)** | **{added:.0f}** | {rows[True][1] - rows[False][1]:.0f} | "
          f"{rows[True][2] - rows[False][2]:.0f} |")


if __name__ == "__main__":
    main()
