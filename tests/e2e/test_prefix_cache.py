"""Prefix caching of the cpu backend's paged KV cache through `moat serve`, with the openai SDK.

A prompt sent twice is computed once: the second request's prompt blocks come from the cache
(`moat:prefix_cache_hits_total` grows by its full blocks) and its greedy answer is the same. The
cache is partitioned by salt: with API keys the gateway derives a salt per key, so two keys
sending the same prompt share nothing; without keys, requests with different `cache_salt` values
share nothing. The real tinystories-656K fixture model; skips, saying why, when the plugin or the
fixture is missing.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

import openai
import pytest

import prometheus
from conftest import BUILD, REPO, server_section

FIXTURE = Path(os.environ.get("MOAT_FIXTURES_DIR", REPO.parent / "shared" / "fixtures")) / "tinystories-656K-hf"
CPU_PLUGIN = BUILD / "lib" / "moat" / "libmoat_cpu.so"
MODEL = "tinystories"
BLOCK = 16
KEYS = {name: "sk-moat-" + secrets.token_hex(24) for name in ("team-a", "team-b")}
FAMILIES = ("moat:prefix_cache_queries_total", "moat:prefix_cache_hits_total", "moat:num_preemptions_total",
            "moat_kv_blocks_used", "moat_kv_blocks_total")


def cpu_config(auth: dict | None = None) -> dict:
    options = {"path": str(FIXTURE), "ctx": 512, "threads": 2, "kv_cache_mb": 16, "max_batch": 8,
               "kv_block_size": BLOCK, "prefix_caching": True}
    config = {"server": server_section(request_timeout_s=120, max_body_bytes="1MiB"),
              "models": [{"name": MODEL, "backend": "cpu", "max_queue": 64, "options": options}]}
    if auth:
        config["auth"] = auth
    return config


def require_cpu_backend() -> None:
    if not CPU_PLUGIN.is_file():
        pytest.skip(f"cpu plugin not found at {CPU_PLUGIN} (build it, or set MOAT_BUILD)")
    if not (FIXTURE / "model.safetensors").is_file():
        pytest.skip(f"fixture model missing at {FIXTURE} (see ../shared/fixtures/README.md)")


@pytest.fixture(scope="module")
def open_server(start_server):
    require_cpu_backend()
    return start_server(cpu_config(), name="prefix-open")


@pytest.fixture(scope="module")
def keyed_server(start_server):
    require_cpu_backend()
    auth = {"api_keys": [{"name": name, "sha256": hashlib.sha256(key.encode()).hexdigest()}
                         for name, key in KEYS.items()],
            "metrics_public": True}
    return start_server(cpu_config(auth), name="prefix-keyed")


def client(server, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0, timeout=120)


def counters(server) -> tuple[float, float]:
    """(prompt tokens looked up, prompt tokens found) so far."""
    samples = prometheus.scrape(server)
    return (prometheus.total(samples, "moat:prefix_cache_queries_total"),
            prometheus.total(samples, "moat:prefix_cache_hits_total"))


def long_prompt(opening: str) -> str:
    # A distinct first word starts a distinct hash chain, so tests never hit each other's blocks.
    return opening + " " + "Once upon a time there was a little girl who liked to play in the park. " * 12


def complete(c: openai.OpenAI, prompt: str, **extra) -> tuple[str, int]:
    """(greedy answer, prompt tokens) of one completion."""
    r = c.completions.create(model=MODEL, prompt=prompt, max_tokens=24, temperature=0, **extra)
    return r.choices[0].text, r.usage.prompt_tokens


def cached_tokens(prompt_tokens: int) -> int:
    # Every full block before the one holding the last prompt token (that one is always computed
    # so its logits exist).
    return (prompt_tokens - 1) // BLOCK * BLOCK


def test_the_backend_exports_its_kv_families(open_server):
    samples = prometheus.scrape(open_server)
    for family in FAMILIES:
        assert f'{family}{{model_name="{MODEL}"}}' in samples, family
    # 16 MiB at 1 KiB a token (2 layers x 2 x 64 f32) in blocks of 16 positions.
    assert samples[f'moat_kv_blocks_total{{model_name="{MODEL}"}}'] == 16 * 1024 // BLOCK


def test_the_same_prompt_twice_is_computed_once_with_the_same_answer(open_server):
    c = client(open_server)
    prompt = long_prompt("Twice")
    q0, h0 = counters(open_server)
    first, tokens = complete(c, prompt)
    q1, h1 = counters(open_server)
    assert tokens > 4 * BLOCK
    assert q1 - q0 == tokens
    assert h1 == h0  # nothing cached yet for this prompt
    second, tokens2 = complete(c, prompt)
    q2, h2 = counters(open_server)
    assert tokens2 == tokens
    assert q2 - q1 == tokens
    assert h2 - h1 == cached_tokens(tokens)
    assert second == first
    # Nothing runs now: no block is referenced any more (the cached ones wait for later hits).
    samples = prometheus.scrape(open_server)
    assert samples[f'moat_kv_blocks_used{{model_name="{MODEL}"}}'] == 0


def test_a_shared_prefix_hits_only_its_full_blocks(open_server):
    c = client(open_server)
    prompt = long_prompt("Prefix")
    _, tokens = complete(c, prompt)
    _, h1 = counters(open_server)
    # The same prompt with another ending: the leading full blocks are the same.
    _, longer = complete(c, prompt + " The end of the story is near.")
    _, h2 = counters(open_server)
    assert longer > tokens
    assert h2 - h1 >= cached_tokens(tokens) - BLOCK
    assert h2 - h1 <= cached_tokens(longer)


def test_different_cache_salts_share_nothing(open_server):
    c = client(open_server)
    prompt = long_prompt("Salted")
    first, tokens = complete(c, prompt, extra_body={"cache_salt": "tenant-1"})
    _, h1 = counters(open_server)
    other, _ = complete(c, prompt, extra_body={"cache_salt": "tenant-2"})
    _, h2 = counters(open_server)
    assert h2 == h1  # another salt: a fresh hash chain, no block found
    again, _ = complete(c, prompt, extra_body={"cache_salt": "tenant-1"})
    _, h3 = counters(open_server)
    assert h3 - h2 == cached_tokens(tokens)
    assert first == other == again  # the salt changes what is shared, never the answer


def test_two_api_keys_share_nothing(keyed_server):
    a, b = client(keyed_server, KEYS["team-a"]), client(keyed_server, KEYS["team-b"])
    prompt = long_prompt("Keyed")
    first, tokens = complete(a, prompt)
    _, h1 = counters(keyed_server)
    from_b, _ = complete(b, prompt)
    _, h2 = counters(keyed_server)
    assert h2 == h1  # team-b's salt differs: team-a's blocks are invisible to it
    again, _ = complete(a, prompt)
    _, h3 = counters(keyed_server)
    assert h3 - h2 == cached_tokens(tokens)  # one key's requests still share
    b_again, _ = complete(b, prompt)
    _, h4 = counters(keyed_server)
    assert h4 - h3 == cached_tokens(tokens)  # and team-b now hits its own blocks
    assert first == from_b == again == b_again


def test_a_key_cannot_reach_another_keys_blocks_by_sending_its_salt(keyed_server):
    a, b = client(keyed_server, KEYS["team-a"]), client(keyed_server, KEYS["team-b"])
    prompt = long_prompt("Probe")
    complete(a, prompt, extra_body={"cache_salt": "shared"})
    _, h1 = counters(keyed_server)
    complete(b, prompt, extra_body={"cache_salt": "shared"})
    _, h2 = counters(keyed_server)
    assert h2 == h1  # the client's salt is mixed with the key, never used as is
    _, tokens = complete(a, prompt, extra_body={"cache_salt": "shared"})
    _, h3 = counters(keyed_server)
    assert h3 - h2 == cached_tokens(tokens)  # while team-a with the same salt finds its blocks
