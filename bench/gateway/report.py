#!/usr/bin/env python3
"""Turns the wrk outputs of bench/gateway/run.sh into the markdown table of bench/results/gateway.md.

    python3 bench/gateway/report.py bench/out/gateway --machine "..." --cores 2 ... > gateway.md

Reads <target>-<mode>-c<N>-r<round>.txt (target moat|nginx, mode chat|stream; run.sh runs every
round's nginx and moat back to back) and commands.txt. Each cell shows its median round by the
moat/nginx ratio of that round's pair, and every round's ratio beside it.
"""

import argparse
import re
import statistics
import sys
from pathlib import Path

UNITS_US = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0}
NAME_RE = re.compile(r"^(moat|nginx)-(chat|stream)-c(\d+)(?:-r(\d+))?\.txt$")


def parse_duration_us(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * UNITS_US[match.group(2)]


def parse_wrk(text: str) -> dict:
    out = {"rps": None, "p50": None, "p99": None, "requests": 0, "non2xx": 0, "socket_errors": 0}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Requests/sec:"):
            out["rps"] = float(line.split()[1])
        elif re.match(r"^50(\.0+)?%\s", line):
            out["p50"] = parse_duration_us(line.split()[1])
        elif re.match(r"^99(\.0+)?%\s", line):
            out["p99"] = parse_duration_us(line.split()[1])
        elif re.match(r"^\d+ requests in", line):
            out["requests"] = int(line.split()[0])
        elif line.startswith("Non-2xx or 3xx responses:"):
            out["non2xx"] = int(line.split(":")[1])
        elif line.startswith("Socket errors:"):
            out["socket_errors"] = sum(int(n) for n in re.findall(r"\d+", line))
    if out["rps"] is None or out["p50"] is None:
        raise ValueError("wrk output without Requests/sec or a latency distribution")
    return out


def fmt_us(value: float) -> str:
    return f"{value / 1000:.2f} ms" if value >= 10_000 else f"{value:.0f} µs"


def pick_median_rounds(rounds: dict) -> tuple:
    """For each (mode, c) with both targets: the round whose paired ratio is the median (the
    lower middle one for an even count), as {(target, mode, c): run}, and every round's ratio in
    round order, as {(mode, c): [ratio, ...]}."""
    runs, ratios = {}, {}
    for (target, mode, c), moat_rounds in rounds.items():
        if target != "moat" or ("nginx", mode, c) not in rounds:
            continue
        nginx_rounds = rounds[("nginx", mode, c)]
        paired = sorted(set(moat_rounds) & set(nginx_rounds))
        if not paired:
            continue
        by_round = {r: moat_rounds[r]["rps"] / nginx_rounds[r]["rps"] for r in paired}
        ratios[(mode, c)] = [by_round[r] for r in paired]
        middle = statistics.median_low(by_round.values())
        chosen = next(r for r in paired if by_round[r] == middle)
        runs[("moat", mode, c)] = moat_rounds[chosen]
        runs[("nginx", mode, c)] = nginx_rounds[chosen]
    return runs, ratios


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir", type=Path)
    for name in ("machine", "cores", "threads", "wrk-threads", "duration", "rounds", "commit", "load",
                 "load-after", "build-type", "response-bytes", "stream-bytes", "concurrency"):
        ap.add_argument(f"--{name}", default="?")
    args = ap.parse_args()

    rounds = {}  # (target, mode, c) -> {round: parsed wrk output}
    for path in sorted(args.outdir.iterdir()):
        match = NAME_RE.match(path.name)
        if match:
            target, mode, c = match.group(1), match.group(2), int(match.group(3))
            rounds.setdefault((target, mode, c), {})[int(match.group(4) or 1)] = parse_wrk(
                path.read_text())
    runs, ratios_by_cell = pick_median_rounds(rounds)

    lines = [
        "# Gateway benchmark: moat (echo backend) against nginx",
        "",
        "Written by `bench/gateway/run.sh` (`make bench`); do not edit by hand.",
        "",
        f"- Machine: {args.machine}, {args.cores} cores (`nproc`), loopback only.",
        f"- Load average before / after: {args.load} / {args.load_after}"
        " (the machine is shared: other engineers' builds may have been running).",
        f"- moat at commit {args.commit} ({args.build_type} build), "
        f"`server.threads: {args.threads}`, `logging.level: warn`; nginx "
        f"`worker_processes {args.threads}`; wrk with up to {args.wrk_threads} thread(s), "
        f"{args.duration} s per run, {args.rounds} rounds: each cell is its median round by "
        "moat/nginx (every round's ratio in the last column).",
        f"- Request: a chat completion of 12 words to model `echo`. Response: {args.response_bytes}"
        f" bytes of JSON; streamed: {args.stream_bytes} bytes of SSE (one word per delta). nginx "
        "answers the same POSTs with the very same bytes from memory (`return 200`), the "
        "HTTP/1.1 ceiling here (it sends the stream's bytes in one body with Content-Length, "
        "where moat sends chunks as the echo backend produces them).",
        "",
        "| mode | concurrency | moat req/s | nginx req/s | moat/nginx | moat p50 | moat p99 "
        "| nginx p50 | nginx p99 | errors (moat) | rounds' moat/nginx |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for mode in ("chat", "stream"):
        for c in sorted({k[2] for k in runs if k[1] == mode}):
            moat, nginx = runs.get(("moat", mode, c)), runs.get(("nginx", mode, c))
            if not moat or not nginx:
                continue
            errors = sum(r["non2xx"] + r["socket_errors"]
                         for r in rounds[("moat", mode, c)].values())
            every = ", ".join(f"{r:.2f}" for r in ratios_by_cell[(mode, c)])
            lines.append(
                f"| {'non-streamed' if mode == 'chat' else 'streamed'} | {c} "
                f"| {moat['rps']:,.0f} | {nginx['rps']:,.0f} | {moat['rps'] / nginx['rps']:.2f} "
                f"| {fmt_us(moat['p50'])} | {fmt_us(moat['p99'])} | {fmt_us(nginx['p50'])} "
                f"| {fmt_us(nginx['p99'])} | {errors} | {every} |")
    lines.append("")
    for mode, label in (("chat", "non-streamed"), ("stream", "streamed")):
        moat, nginx = runs.get(("moat", mode, 1)), runs.get(("nginx", mode, 1))
        if moat and nginx:
            lines.append(f"- Added latency at concurrency 1, {label}: moat p50 − nginx p50 = "
                         f"**{moat['p50'] - nginx['p50']:.0f} µs** (target: < 100 µs).")
    ratios = [runs[("moat", m, c)]["rps"] / runs[("nginx", m, c)]["rps"]
              for (t, m, c) in runs if t == "moat" and ("nginx", m, c) in runs]
    if ratios:
        lines.append(f"- moat/nginx requests/s: {min(ratios):.2f} at worst, {max(ratios):.2f} "
                     "at best (target: ≥ 0.7).")
    lines += ["", "Commands (`$TMP` is the script's temporary directory; `$MOAT_URL` is the "
              "address `moat serve --listen 127.0.0.1:0` printed, `$NGINX_URL` nginx's):", "",
              "```"]
    commands = args.outdir / "commands.txt"
    if commands.is_file():
        lines += commands.read_text().splitlines()
    lines += ["```", ""]
    sys.stdout.write("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
