"""`moat plan`'s memory estimate against the resident memory the cpu backend really uses.

Method (docs/planning.md, "Checked against the cpu backend"): start `moat serve` with only an
echo model and read its VmRSS after one request (the process, the gateway and the allocator
warmed up); start it again with only a cpu model, send one completion with n = N choices of a
prompt of P tokens, max_tokens M and the end-of-text token banned by logit_bias, so every choice
reaches exactly P + M positions; read VmRSS. The difference is what the model costs the process.
The planner is asked for the same request (`--weights fp32 --kv fp32 --context P+M --concurrency N
--n N --prompt-tokens P --gpu cpu-2s`) and its weights + KV + activations + allocator must be within
10% of it. The allocator term is what the server's malloc keeps beyond glibc's (mimalloc, the moat
executable's default: ~0.9 MiB per cpu model; glibc: 0): `moat plan` counts the malloc of the binary
it runs in, and the test checks that the server it measured ran on the same one.

The paged KV pool is allocated untouched, so RSS counts only the blocks written: the prompt's full
blocks once (the N choices share them) and, per choice, a copy of the partly filled last prompt
block plus its answer's blocks. Planning for those blocks, not for the pool's capacity, is what
makes the comparison honest. Long answers (M = 300) keep that per-choice KV the large term.

Two models: the fixture (2.6 MB of fp32 weights, where the KV and buffers weigh more than the
weights) and a synthetic ~75 MB fp32 Llama written by the test into a temporary folder (random
weights, the fixture's tokenizer), where the weights dominate. A third check isolates the KV
sharing: the same request with n = 16 and n = 1, whose difference is the 15 extra choices' blocks.
"""

from __future__ import annotations

import array
import json
import os
import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
import requests

from conftest import BINARY, BUILD, ECHO_PLUGIN, REPO, echo_model, server_section
from moat_process import moat_server

FIXTURE = Path(os.environ.get("MOAT_FIXTURES_DIR", REPO.parent / "shared" / "fixtures")) / "tinystories-656K-hf"
CPU_PLUGIN = BUILD / "lib" / "moat" / "libmoat_cpu.so"
EOS = 2
BLOCK_SIZE = 16  # the cpu backend's kv_block_size default, which the servers here keep
TOLERANCE = 0.10


def library_rss(pid: int) -> int:
    """Resident bytes of the process's shared-library mappings (code the planner does not size)."""
    total, library = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and not fields[0].endswith(":"):
            library = len(fields) >= 6 and ".so" in fields[-1]
        elif library and fields[:1] == ["Rss:"]:
            total += int(fields[1]) * 1024
    return total


def server_allocator(pid: int) -> str:
    """The malloc serving the process, as `moat plan --json` names it: mimalloc when its library is mapped."""
    return "mimalloc" if "libmimalloc" in Path(f"/proc/{pid}/maps").read_text() else "glibc"


def vm_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc status")


def serve(workdir: Path, name: str, model: dict) -> moat_server:
    config = {"server": server_section(request_timeout_s=300, max_body_bytes="1MiB"), "models": [model]}
    server = moat_server(BINARY, workdir, config, name=name)
    server.start()
    return server


def baseline_rss(workdir: Path) -> tuple[int, int]:
    """(RSS, shared-library RSS) of the same binary serving only the echo backend, after one request."""
    server = serve(workdir, "rss-echo", echo_model("echo"))
    try:
        r = requests.post(server.url("/v1/completions"), json={"model": "echo", "prompt": "hello", "max_tokens": 4},
                          timeout=30)
        assert r.status_code == 200, r.text
        return vm_rss(server.proc.pid), library_rss(server.proc.pid)
    finally:
        server.stop()


def measure(workdir: Path, name: str, model_path: Path, n: int, words: int, max_tokens: int,
            ctx: int, kv_cache_mb: int) -> tuple[tuple[int, int, str], int, int]:
    """((RSS, shared-library RSS, allocator) after the request, prompt tokens, positions each choice reaches)."""
    model = {"name": "m", "backend": "cpu", "max_queue": 16,
             "options": {"path": str(model_path), "ctx": ctx, "threads": 2, "max_batch": n,
                         "kv_cache_mb": kv_cache_mb, "seed": 7}}
    server = serve(workdir, name, model)
    try:
        body = {"model": "m", "prompt": "Once upon a time " * words, "max_tokens": max_tokens, "n": n,
                "temperature": 1.0, "seed": 7, "logit_bias": {str(EOS): -100}}
        r = requests.post(server.url("/v1/completions"), json=body, timeout=300)
        assert r.status_code == 200, r.text
        out = r.json()
        assert len(out["choices"]) == n
        assert all(c["finish_reason"] == "length" for c in out["choices"]), out["choices"]
        usage = out["usage"]
        assert usage["completion_tokens"] == n * max_tokens
        pid = server.proc.pid
        return ((vm_rss(pid), library_rss(pid), server_allocator(pid)), usage["prompt_tokens"],
                usage["prompt_tokens"] + max_tokens)
    finally:
        server.stop()


def plan(model_path: Path, prompt: int, context: int, n: int) -> dict:
    """The plan of one request: n choices of a `prompt`-token prompt, each reaching `context`."""
    out = subprocess.run([str(BINARY), "plan", "--model", str(model_path), "--weights", "fp32", "--kv", "fp32",
                          "--context", str(context), "--concurrency", str(n), "--n", str(n),
                          "--prompt-tokens", str(prompt), "--kv-block-size", str(BLOCK_SIZE), "--gpu", "cpu-2s",
                          "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def write_synthetic_model(folder: Path, hidden=512, layers=6, heads=8, kv_heads=4, intermediate=1408) -> int:
    """A random fp32 Llama in Hugging Face layout with the fixture's tokenizer; returns its bytes."""
    folder.mkdir()
    fixture_config = json.loads((FIXTURE / "config.json").read_text())
    vocab = fixture_config["vocab_size"]
    config = dict(fixture_config, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                  num_key_value_heads=kv_heads, intermediate_size=intermediate, tie_word_embeddings=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"):
        if (FIXTURE / f).is_file():
            shutil.copy(FIXTURE / f, folder / f)
    kv_dim = hidden // heads * kv_heads
    shapes: list[tuple[str, list[int]]] = [("model.embed_tokens.weight", [vocab, hidden])]
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes += [(p + "input_layernorm.weight", [hidden]), (p + "post_attention_layernorm.weight", [hidden]),
                   (p + "self_attn.q_proj.weight", [hidden, hidden]), (p + "self_attn.k_proj.weight", [kv_dim, hidden]),
                   (p + "self_attn.v_proj.weight", [kv_dim, hidden]), (p + "self_attn.o_proj.weight", [hidden, hidden]),
                   (p + "mlp.gate_proj.weight", [intermediate, hidden]), (p + "mlp.up_proj.weight", [intermediate, hidden]),
                   (p + "mlp.down_proj.weight", [hidden, intermediate])]
    shapes.append(("model.norm.weight", [hidden]))
    header, offset = {}, 0
    for name, shape in shapes:
        size = 4
        for d in shape:
            size *= d
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    # Random N(0, 0.02) values: one 1 MiB block repeated (what they are does not matter to RSS).
    rng = random.Random(7)
    block = array.array("f", (rng.gauss(0.0, 0.02) for _ in range(1 << 18))).tobytes()
    ones = array.array("f", [1.0]).tobytes()
    with open(folder / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for name, shape in shapes:
            size = header[name]["data_offsets"][1] - header[name]["data_offsets"][0]
            if name.endswith("norm.weight"):
                f.write(ones * (size // 4))
                continue
            while size > 0:
                chunk = block[:size]
                f.write(chunk)
                size -= len(chunk)
    return offset


@pytest.fixture(scope="module")
def echo_rss(tmp_path_factory):
    for path, what in ((BINARY, "moat binary"), (ECHO_PLUGIN, "echo plugin"), (CPU_PLUGIN, "cpu plugin")):
        if not path.is_file():
            pytest.skip(f"{what} not found at {path} (build it, or set MOAT_BUILD)")
    if not (FIXTURE / "model.safetensors").is_file():
        pytest.skip(f"fixture model missing at {FIXTURE} (see ../shared/fixtures/README.md)")
    return baseline_rss(tmp_path_factory.mktemp("rss-echo"))


def check(name: str, rss: tuple[int, int, str], echo: tuple[int, int], planned: dict) -> None:
    d = planned["per_gpu"]
    # The plan counts the allocator of the binary it ran in; the server measured must be on the same.
    assert planned["allocator"] == rss[2], f"planned for {planned['allocator']}, the server ran on {rss[2]}"
    measured = rss[0] - echo[0]
    libraries = rss[1] - echo[1]  # reported, not subtracted: the comparison is the whole RSS delta
    estimate = d["weights_bytes"] + d["kv_bytes"] + d["activation_bytes"] + d["allocator_bytes"]
    error = (estimate - measured) / measured
    print(f"\n{name}: measured {measured / 2**20:.2f} MiB (of which shared-library code {libraries / 2**20:.2f}), "
          f"planned {estimate / 2**20:.2f} MiB (weights {d['weights_bytes'] / 2**20:.2f}, "
          f"KV {d['kv_bytes'] / 2**20:.2f} in {planned['kv_blocks']} blocks, "
          f"activations {d['activation_bytes'] / 2**20:.2f}, allocator {rss[2]} {d['allocator_bytes'] / 2**20:.2f}), "
          f"error {error:+.1%}")
    assert abs(error) <= TOLERANCE, f"{name}: planner {estimate} bytes vs measured {measured} ({error:+.1%})"


def test_fixture_model_within_10_percent(echo_rss, tmp_path):
    n, ctx = 16, 512
    rss, prompt, positions = measure(tmp_path, "rss-fixture", FIXTURE, n=n, words=50, max_tokens=300, ctx=ctx,
                                     kv_cache_mb=64)
    planned = plan(FIXTURE, prompt, positions, n)
    assert planned["weights_bytes"] == 4 * 656_000  # every parameter at 4 bytes
    # One prompt of ~200 tokens shared by 16 choices of 300 tokens each (docs/planning.md).
    assert planned["kv_blocks"] == prompt // BLOCK_SIZE + n * -(-(positions - prompt // BLOCK_SIZE * BLOCK_SIZE) // BLOCK_SIZE)
    check("tinystories-656K", rss, echo_rss, planned)


@pytest.fixture(scope="module")
def synthetic(echo_rss, tmp_path_factory) -> tuple[Path, int]:
    folder = tmp_path_factory.mktemp("rss-synthetic") / "synthetic-fp32"
    size = write_synthetic_model(folder)
    assert 60 << 20 < size < 100 << 20
    return folder, size


def test_synthetic_75mb_model_within_10_percent(echo_rss, synthetic, tmp_path):
    folder, size = synthetic
    n = 4
    rss, prompt, positions = measure(tmp_path, "rss-synthetic", folder, n=n, words=50, max_tokens=16, ctx=512,
                                     kv_cache_mb=32)
    planned = plan(folder, prompt, positions, n)
    assert planned["weights_bytes"] == size
    check("synthetic fp32", rss, echo_rss, planned)


def test_n_choices_share_their_prompt_blocks(echo_rss, synthetic, tmp_path):
    """What 15 more choices of one request cost: the same request with n = 16 against n = 1.

    Weights, code and fixed buffers cancel, so this checks the paged-KV arithmetic alone: each
    extra choice holds a copy of the partly filled prompt block and its answer's blocks (4 of
    192 KiB here), never its own copy of the 402-token prompt (every choice 29 blocks). The
    answers end on a block boundary (402 + 62 = 29 blocks of 16): RSS counts pages, and a block's
    run of one layer's K (or V) is 16 KiB here, so a partly written last block would be resident
    only in part while the pool (and the planner) counts it whole.
    """
    folder, _ = synthetic
    one, prompt, positions = measure(tmp_path, "rss-n1", folder, n=1, words=100, max_tokens=62, ctx=512,
                                     kv_cache_mb=32)
    many, prompt_many, _ = measure(tmp_path, "rss-n16", folder, n=16, words=100, max_tokens=62, ctx=512,
                                   kv_cache_mb=32)
    assert prompt_many == prompt
    assert positions % BLOCK_SIZE == 0, f"{prompt} prompt tokens: the answers no longer end on a block boundary"
    alone, shared = plan(folder, prompt, positions, 1), plan(folder, prompt, positions, 16)

    def planned(p: dict) -> float:
        return p["per_gpu"]["kv_bytes"] + p["per_gpu"]["activation_bytes"]

    measured = many[0] - one[0]
    estimate = planned(shared) - planned(alone)
    copied = 15 * positions * shared["kv_bytes_per_token"]  # the KV of 15 private prompts and answers
    error = (estimate - measured) / measured
    print(f"\nn=16 vs n=1: measured +{measured / 2**20:.2f} MiB, planned +{estimate / 2**20:.2f} MiB "
          f"(KV {alone['kv_blocks']} -> {shared['kv_blocks']} blocks), error {error:+.1%}; "
          f"copying the prompt per choice would be +{copied / 2**20:.2f} MiB")
    assert abs(error) <= TOLERANCE, f"planner +{estimate} bytes vs measured +{measured} ({error:+.1%})"
