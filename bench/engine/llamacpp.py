#!/usr/bin/env python3
"""moat's CPU engine against llama.cpp on the same machine, threads, weights and quantization,
in one script; writes a markdown table (bench/results/engine_llamacpp.md).

    python bench/engine/llamacpp.py --moat-bin build/bin/moat_engine_bench --threads 2 \\
        --model NAME=HF_DIR,GGUF_PREFIX [--model ...] [--prompt 128] [--ctx 64] [--decode 16] \\
        [--streams 1,8,32] [--pairs int8:q8_0,int4:q4_0,nf4:q4_0] [--out FILE]

Each --model names a Hugging Face folder (moat loads it and quantizes on load with `quant:`) and
the prefix of its GGUF files (GGUF_PREFIX-q8_0.gguf, -q4_0.gguf, made from the same weights by
tools/hf_to_gguf.py). The pair "gguf:q8_0" has moat load that same GGUF file (its Q8_0 / Q4_0
blocks run as stored on moat's kernels). For each pair (moat quant : llama.cpp type) both
engines measure, each in
its own process (so resident memory is its own):
  - prefill: one sequence, --prompt random tokens in one forward (after one warm-up forward);
    time to first token is that forward's time;
  - decode at each stream count S: S sequences are prefilled with --ctx tokens each, one warm-up
    step, then --decode greedy steps, all S sequences in one batch per step (moat: one runner
    forward with S items; llama.cpp: one llama_decode of a llama_batch holding S sequences);
  - resident memory (VmRSS) at the end, and its file-mapped part.
The bound beside each decode figure: S * B / (weight bytes + S * KV bytes read per token), with
B the copy bandwidth measured here (numpy copy of a 1 GiB array, bytes read + written per
second, best of 5). The header also gives a read-only figure, closer to what a forward step
does (it reads weights and writes little): numpy sums of a 1 GiB array split over --threads
threads (bytes read per second, best of 5), and moat_engine_bench's own probe of the same kind
(read_bandwidth in its JSON, best over its runs); the bound column keeps the copy figure.
Needs numpy, gguf and llama-cpp-python (a venv outside CI: see
bench/engine/run_llamacpp.sh). Never a test: the figures depend on the machine and its load.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np


def copy_bandwidth():
    n = 1 << 30
    a = np.ones(n, dtype=np.uint8)
    b = np.empty_like(a)
    best = 1e30
    for _ in range(5):
        t0 = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n / best


def read_bandwidth(threads):
    """Bytes read per second summing a 1 GiB array split over `threads` threads (numpy's
    reductions release the GIL), best of 5."""
    import threading
    n = (1 << 30) // 8
    a = np.arange(n, dtype=np.int64)  # every page touched before timing
    parts = np.array_split(a, max(1, threads))
    sums = [0] * len(parts)

    def work(i):
        sums[i] = int(parts[i].sum())

    best = 1e30
    for _ in range(5):
        ts = [threading.Thread(target=work, args=(i,)) for i in range(len(parts))]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        best = min(best, time.perf_counter() - t0)
    return a.nbytes / best


def status_mib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    return -1.0


def gguf_weight_bytes(path):
    """Bytes one step reads: every tensor but the embedding (read one row per token), unless
    the embedding is also the output head (tied)."""
    import gguf
    r = gguf.GGUFReader(path)
    names = {t.name for t in r.tensors}
    total = 0
    for t in r.tensors:
        if t.name == "token_embd.weight" and "output.weight" in names:
            continue
        total += int(t.n_bytes)
    return total


# ---------------------------------------------------------------- llama.cpp worker process --

def llama_worker(args):
    import llama_cpp as L

    L.llama_backend_init()
    mp = L.llama_model_default_params()
    if args.no_extra_bufts:
        mp.use_extra_bufts = False  # no AMX / repacked weight buffers (see --llama-no-extra-bufts)
    t_load = time.perf_counter()
    model = L.llama_model_load_from_file(args.gguf.encode(), mp)
    if not model:
        raise SystemExit(f"llama.cpp could not load {args.gguf}")
    streams = [int(s) for s in args.streams.split(",")]
    max_s = max(streams)
    per_seq = ((max(args.prompt, args.ctx + args.decode * args.reps + 2) + 255) // 256) * 256
    cp = L.llama_context_default_params()
    cp.n_ctx = max_s * per_seq  # n_ctx / n_seq_max cells per sequence
    cp.n_batch = max(args.prompt, max_s * args.ctx, max_s)
    cp.n_ubatch = min(cp.n_batch, 512)
    cp.n_seq_max = max_s
    cp.n_threads = args.threads
    cp.n_threads_batch = args.threads
    # One KV stream per sequence: with a unified cache every sequence's attention would span all
    # sequences' cells (masked), which costs llama.cpp a lot at 8 and 32 sequences.
    cp.kv_unified = False
    ctx = L.llama_init_from_model(model, cp)
    if not ctx:
        raise SystemExit("llama.cpp could not create a context")
    load_s = time.perf_counter() - t_load
    vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
    n_layer, n_embd = L.llama_model_n_layer(model), L.llama_model_n_embd(model)
    n_head, n_head_kv = L.llama_model_n_head(model), L.llama_model_n_head_kv(model)
    kv_bytes_per_token = 2 * n_layer * (n_embd // n_head) * n_head_kv * 2  # f16 K and V
    batch = L.llama_batch_init(cp.n_batch, 0, max_s)
    mem = L.llama_get_memory(ctx)
    rng = np.random.default_rng(7)
    prompts = rng.integers(3, vocab, size=(max_s, max(args.prompt, args.ctx)))

    def run(entries):
        """entries: (token, pos, seq, wants_logits). One llama_decode for all of them."""
        batch.n_tokens = len(entries)
        for i, (tok, pos, seq, want) in enumerate(entries):
            batch.token[i] = int(tok)
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = 1 if want else 0
        rc = L.llama_decode(ctx, batch)
        if rc != 0:
            raise SystemExit(f"llama_decode returned {rc}")

    def logits_row(i):
        return np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, i), shape=(vocab,))

    out = {"engine": "llama.cpp", "model": os.path.basename(args.gguf), "threads": args.threads,
           "extra_bufts": not args.no_extra_bufts,
           "load_s": load_s, "kv_bytes_per_token": kv_bytes_per_token,
           "weight_bytes": gguf_weight_bytes(args.gguf), "system_info": L.llama_print_system_info().decode()}
    prompt = [(prompts[0][p], p, 0, p == args.prompt - 1) for p in range(args.prompt)]
    run(prompt)  # warm-up (page faults, thread start, weight repacking)
    t = 1e30
    for _ in range(args.reps):  # best of --reps: the machine may be shared
        L.llama_memory_clear(mem, True)
        t0 = time.perf_counter()
        run(prompt)
        t = min(t, time.perf_counter() - t0)
    out["prefill_tps"] = args.prompt / t
    out["ttft_ms"] = t * 1e3
    out["decode"] = []
    for s in streams:
        L.llama_memory_clear(mem, True)
        run([(prompts[q][p], p, q, p == args.ctx - 1) for q in range(s) for p in range(args.ctx)])
        # logits of each stream's last context token: rows ctx-1, 2*ctx-1, ... of that batch
        nxt = [int(np.argmax(logits_row((q + 1) * args.ctx - 1))) for q in range(s)]

        def step(pos):
            run([(nxt[q], pos, q, True) for q in range(s)])
            for q in range(s):
                nxt[q] = int(np.argmax(logits_row(q)))

        step(args.ctx)  # warm-up
        t, pos = 1e30, args.ctx
        for _ in range(args.reps):  # best of --reps runs of --decode steps, positions go on
            t0 = time.perf_counter()
            for _ in range(args.decode):
                pos += 1
                step(pos)
            t = min(t, time.perf_counter() - t0)
        out["decode"].append({"streams": s, "tps": s * args.decode / t})
    out["rss_mib"] = status_mib("VmRSS")
    out["rss_file_mib"] = status_mib("RssFile")
    out["rss_anon_mib"] = status_mib("RssAnon")
    L.llama_batch_free(batch)
    L.llama_free(ctx)
    L.llama_model_free(model)
    print(json.dumps(out))


# ------------------------------------------------------------------------------ the driver --

def run_json(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def bound(streams, bw, wbytes, kv_per_token, ctx_read):
    return streams * bw / (wbytes + streams * kv_per_token * ctx_read)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--moat-bin", default="build/bin/moat_engine_bench")
    ap.add_argument("--model", action="append", default=[], help="NAME=HF_DIR,GGUF_PREFIX")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--ctx", type=int, default=64)
    ap.add_argument("--decode", type=int, default=16)
    ap.add_argument("--streams", default="1,8,32")
    ap.add_argument("--reps", type=int, default=3, help="best of N timed runs of each measurement")
    ap.add_argument("--pairs", default="gguf:q8_0,int8:q8_0,gguf:q4_0,int4:q4_0,nf4:q4_0",
                    help="moat quant:llama.cpp type; moat quant 'gguf' = moat loads the same GGUF file")
    ap.add_argument("--out", default="bench/results/engine_llamacpp.md")
    ap.add_argument("--llama-no-extra-bufts", dest="no_extra_bufts", action="store_true",
                    help="load llama.cpp weights without its extra buffer types (AMX tiles, repacked Q4_0/Q8_0): "
                         "for builds whose AMX path faults on this machine")
    ap.add_argument("--llama-worker", dest="gguf", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.gguf:
        return llama_worker(args)

    load_before = os.getloadavg()
    bw = copy_bandwidth()
    read_bw = read_bandwidth(args.threads)
    common = ["--threads", str(args.threads), "--prompt", str(args.prompt), "--ctx", str(args.ctx), "--decode",
              str(args.decode), "--streams", args.streams, "--reps", str(args.reps)]
    ctx_read = args.ctx + args.decode * args.reps / 2.0  # mean positions attended per decode step
    sections = []
    commands = []
    for spec in args.model:
        name, paths = spec.split("=", 1)
        hf_dir, prefix = paths.split(",", 1)
        llama_cache = {}
        for pair in args.pairs.split(","):
            quant, gtype = pair.split(":")
            gguf_path = f"{prefix}-{gtype}.gguf"
            if quant == "gguf":  # moat reads the very file llama.cpp reads, blocks as stored
                moat_cmd = [args.moat_bin, "--model", gguf_path, "--json"] + common
            else:
                moat_cmd = [args.moat_bin, "--model", hf_dir, "--quant", quant, "--json"] + common
            commands.append(" ".join(moat_cmd))
            print(f"{name}: moat {quant} ...", file=sys.stderr, flush=True)
            m = run_json(moat_cmd)
            if gtype not in llama_cache:
                llama_cmd = [sys.executable, os.path.abspath(__file__), "--llama-worker", gguf_path] + common
                if args.no_extra_bufts:
                    llama_cmd.append("--llama-no-extra-bufts")
                commands.append(" ".join(llama_cmd))
                print(f"{name}: llama.cpp {gtype} ...", file=sys.stderr, flush=True)
                llama_cache[gtype] = run_json(llama_cmd)
            lc = llama_cache[gtype]
            sections.append((name, quant, gtype, m, lc))
    load_after = os.getloadavg()

    lines = ["# moat CPU engine vs llama.cpp", ""]
    lines.append(f"{time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}, {platform.node()}, "
                 f"{os.cpu_count()} cores ({cpu_model()}), threads = {args.threads} for both engines.")
    lines.append(f"Load average before: {' '.join(f'{x:.2f}' for x in load_before)}; after: "
                 f"{' '.join(f'{x:.2f}' for x in load_after)} (other engineers' builds and tests share these "
                 f"cores: every figure is a lower bound, and moat/llama.cpp runs alternate, so both see similar load).")
    lines.append(f"Copy bandwidth (numpy, 1 GiB, read + written bytes): {bw / 1e9:.1f} GB/s. "
                 f"Bound = S x bandwidth / (weight bytes + S x KV bytes per token x {ctx_read:g} positions).")
    moat_read = max((m.get("read_bandwidth", 0.0) for _, _, _, m, _ in sections), default=0.0)
    lines.append(f"Read bandwidth ({args.threads} threads, read bytes only): numpy sum {read_bw / 1e9:.1f} GB/s, "
                 f"moat_engine_bench probe {moat_read / 1e9:.1f} GB/s (best over its runs); a bound from these "
                 f"would be {read_bw / bw:.2f}x / {moat_read / bw:.2f}x the copy-based one.")
    lines.append(f"Prefill: one sequence of {args.prompt} random tokens. Decode: S sequences of {args.ctx} "
                 f"context tokens, {args.decode} greedy steps, all S in one batch per step. Each figure is the "
                 f"best of {args.reps} timed runs (the machine is shared); KV cache: moat f32, llama.cpp f16.")
    if sections:
        import llama_cpp
        lines.append(f"llama.cpp: llama-cpp-python {llama_cpp.__version__}, "
                     f"`{sections[0][4]['system_info'].strip()}`"
                     f"{'' if sections[0][4]['extra_bufts'] else ', extra buffer types (AMX, repack) off'}; "
                     f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset (libgomp: spin a while, then sleep)')}, "
                     f"MOAT_CPU_SPIN_US={os.environ.get('MOAT_CPU_SPIN_US', 'unset (100 us)')}; "
                     f"moat: `{sections[0][3]['isa']}` kernels.")
    lines.append("")
    lines.append("| model | moat quant | llama.cpp type | measurement | moat | llama.cpp | moat's advantage (> 1: moat better) | "
                 "moat % of bound | llama.cpp % of bound |")
    lines.append("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name, quant, gtype, m, lc in sections:
        def row(what, a, b, unit, pa="", pb="", higher_better=True):
            ratio = (a / b if higher_better else b / a) if a > 0 and b > 0 else float("nan")
            lines.append(f"| {name} | {quant} | {gtype} | {what} | {a:.1f} {unit} | {b:.1f} {unit} | "
                         f"{ratio:.2f}x | {pa} | {pb} |")
        row("weights read per step", m["weight_bytes"] / 1e6, lc["weight_bytes"] / 1e6, "MB", higher_better=False)
        row(f"prefill {args.prompt} tokens", m["prefill_tps"], lc["prefill_tps"], "tok/s")
        row("time to first token", m["ttft_ms"], lc["ttft_ms"], "ms", higher_better=False)
        for dm, dl in zip(m["decode"], lc["decode"]):
            s = dm["streams"]
            bm = bound(s, bw, m["weight_bytes"], m["kv_bytes_per_token"], ctx_read)
            bl = bound(s, bw, lc["weight_bytes"], lc["kv_bytes_per_token"], ctx_read)
            row(f"decode, {s} stream{'s' if s > 1 else ''}", dm["tps"], dl["tps"], "tok/s",
                f"{100 * dm['tps'] / bm:.0f}%", f"{100 * dl['tps'] / bl:.0f}%")
        row("resident memory (of it file-mapped)", m["rss_mib"], lc["rss_mib"], "MiB", higher_better=False)
        lines[-1] = lines[-1].replace(f"| {m['rss_mib']:.1f} MiB |", f"| {m['rss_mib']:.1f} ({m['rss_file_mib']:.0f}) MiB |")
        lines[-1] = lines[-1].replace(f"| {lc['rss_mib']:.1f} MiB |", f"| {lc['rss_mib']:.1f} ({lc['rss_file_mib']:.0f}) MiB |")
    lines.append("")
    lines.append("Commands:")
    lines.append("")
    lines += [f"    {c}" for c in commands]
    lines.append("")
    text = "\n".join(lines)
    if os.path.dirname(args.out):
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump({"bandwidth": bw, "read_bandwidth": read_bw, "load_before": load_before, "load_after": load_after,
                   "runs": [{"model": n, "quant": q, "gguf_type": g, "moat": m, "llama.cpp": lc}
                            for n, q, g, m, lc in sections]}, f, indent=1)
    print(text)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
