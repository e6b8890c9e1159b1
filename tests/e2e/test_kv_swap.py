"""KV swap preemption of the cpu backend through `moat serve` (issue 9), with the openai SDK.

A pool of 1 MiB (64 blocks of 16 positions) serves four concurrent greedy answers of 400
tokens (about 27 blocks each): the scheduler preempts by swapping KV blocks to the runner's host
store (`options.host_kv_mb`) and back. Every answer equals the one a roomy pool gives, the swap
counters grow, nothing is recomputed, and the host blocks are all returned. The real
tinystories-656K fixture model; skips, saying why, when the plugin or the fixture is missing, or
when the plugin does not hand `host_kv_mb` to its runner (no host blocks in /metrics).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

import prometheus
from conftest import BUILD, REPO, server_section

FIXTURE = Path(os.environ.get("MOAT_FIXTURES_DIR", REPO.parent / "shared" / "fixtures")) / "tinystories-656K-hf"
CPU_PLUGIN = BUILD / "lib" / "moat" / "libmoat_cpu.so"
MODEL = "tinystories"
EOS = 2  # biased away so every answer runs max_tokens
OPENINGS = ("Lily found a ball.", "Tom had a red car.", "The cat sat on a mat.", "A bird sang in a tree.")


def cpu_config(**options) -> dict:
    opts = {"path": str(FIXTURE), "ctx": 512, "threads": 2, "max_batch": 4, "kv_block_size": 16, **options}
    return {"server": server_section(request_timeout_s=300, max_body_bytes="1MiB"),
            "models": [{"name": MODEL, "backend": "cpu", "max_queue": 64, "options": opts}]}


def require_cpu_backend() -> None:
    if not CPU_PLUGIN.is_file():
        pytest.skip(f"cpu plugin not found at {CPU_PLUGIN} (build it, or set MOAT_BUILD)")
    if not (FIXTURE / "model.safetensors").is_file():
        pytest.skip(f"fixture model missing at {FIXTURE} (see ../shared/fixtures/README.md)")


def metric(server, name: str) -> float:
    return prometheus.scrape(server)[f'{name}{{model_name="{MODEL}"}}']


def four_answers(server) -> list[str]:
    c = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=300)

    def one(opening: str) -> str:
        r = c.completions.create(model=MODEL, prompt=opening, max_tokens=400, temperature=0,
                                 logit_bias={str(EOS): -100})
        assert r.usage.completion_tokens == 400
        return r.choices[0].text

    with ThreadPoolExecutor(len(OPENINGS)) as pool:
        return list(pool.map(one, OPENINGS))


def test_a_small_pool_swaps_to_host_memory_and_answers_as_a_roomy_one(start_server):
    require_cpu_backend()
    tight = start_server(cpu_config(kv_cache_mb=1, host_kv_mb=1), name="swap-tight")
    if metric(tight, "moat_kv_host_blocks_total") == 0:
        pytest.skip("the cpu plugin does not pass host_kv_mb to its runner (backends/cpu/cpu_backend.cpp)")
    assert metric(tight, "moat_kv_blocks_total") == 64
    got = four_answers(tight)
    roomy = start_server(cpu_config(kv_cache_mb=16), name="swap-roomy")
    assert got == four_answers(roomy)
    assert metric(tight, "moat:kv_swap_out_total") > 0
    assert metric(tight, "moat:kv_swap_in_total") == metric(tight, "moat:kv_swap_out_total")
    assert metric(tight, "moat:num_preemptions_recompute_total") == 0
    assert metric(tight, "moat:num_requests_swapped") == 0
    assert metric(tight, "moat_kv_host_blocks_used") == 0
    assert metric(roomy, "moat:kv_swap_out_total") == 0
