"""`moat serve` with the cpu backend's `quant: int8` option (weights quantized on load) answers
chat and completions on the tinystories-656K fixture, close to the unquantized model: the
first greedy tokens agree with the fixture's f32 reference continuation. Skips, saying why,
when the plugin or the fixture is missing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import openai
import pytest

from conftest import BUILD, REPO, server_section

FIXTURE = Path(os.environ.get("MOAT_FIXTURES_DIR", REPO.parent / "shared" / "fixtures")) / "tinystories-656K-hf"
CPU_PLUGIN = BUILD / "lib" / "moat" / "libmoat_cpu.so"


def model(name: str, **options) -> dict:
    opts = {"path": str(FIXTURE), "ctx": 256, "threads": 2, "kv_cache_mb": 16, "max_batch": 4}
    opts.update(options)
    return {"name": name, "backend": "cpu", "options": opts}


@pytest.fixture(scope="module")
def quant_server(start_server):
    if not CPU_PLUGIN.is_file():
        pytest.skip(f"cpu plugin not found at {CPU_PLUGIN}")
    if not (FIXTURE / "model.safetensors").is_file():
        pytest.skip(f"fixture model missing at {FIXTURE} (see ../shared/fixtures/README.md)")
    config = {
        "server": server_section(request_timeout_s=60),
        "models": [model("tiny-int8", quant="int8"), model("tiny-nf4", quant="nf4")],
    }
    return start_server(config, name="quant")


@pytest.fixture(scope="module")
def client(quant_server):
    with openai.OpenAI(base_url=quant_server.base_url, api_key="unused", max_retries=0, timeout=60) as c:
        yield c


def test_int8_answers_a_chat(client):
    reply = client.chat.completions.create(
        model="tiny-int8", messages=[{"role": "user", "content": "Tell me a story about a dog."}],
        max_tokens=24, temperature=0)
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content.strip(), "empty answer"
    assert reply.usage.completion_tokens > 0
    assert choice.finish_reason in ("stop", "length")


def test_int8_greedy_starts_like_the_f32_reference(client):
    # tests/unit/quant_forward measures int8 agreeing with f32 on the first 7 greedy tokens of
    # this prompt (then a near-tie flips); the first 5 are asserted here through the server.
    ref = json.loads((FIXTURE / "expected_greedy.json").read_text())
    reply = client.completions.create(model="tiny-int8", prompt=ref["prompt_ids"], max_tokens=5, temperature=0,
                                      logprobs=1)
    assert reply.usage.completion_tokens == 5
    ref_text = ref["text"]
    got = reply.choices[0].text
    assert got and ref_text.startswith(got), f"{got!r} is not a prefix of the f32 reference {ref_text[:80]!r}"


def test_nf4_model_serves_too(client):
    reply = client.completions.create(model="tiny-nf4", prompt="Once upon a time", max_tokens=8, temperature=0)
    assert reply.usage.completion_tokens > 0
    assert reply.choices[0].text


def test_unknown_quant_is_refused_at_startup(start_server):
    if not CPU_PLUGIN.is_file() or not (FIXTURE / "model.safetensors").is_file():
        pytest.skip("cpu plugin or fixture missing")
    with pytest.raises(Exception):
        start_server({"server": server_section(), "models": [model("bad", quant="int5")]}, name="quant-bad")
