"""The cpu backend end to end: the openai SDK against `moat serve` running the real
tinystories-656K fixture model (../shared/fixtures/tinystories-656K-hf).

Covers streaming and non-streaming chat and completions, n > 1, logprobs, stop strings, seeds,
32 concurrent requests each identical to the same request alone (temperature 0), a cancelled
stream freeing its batch slot, context overflow (400 context_length_exceeded), embeddings and
/tokenize + /detokenize. Skips, saying why, when the plugin or the fixture is missing.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from pathlib import Path

import openai
import pytest

import checks
import http_raw
from conftest import BUILD, REPO, async_client, server_section

FIXTURE = Path(os.environ.get("MOAT_FIXTURES_DIR", REPO.parent / "shared" / "fixtures")) / "tinystories-656K-hf"
CPU_PLUGIN = BUILD / "lib" / "moat" / "libmoat_cpu.so"
CTX = 512
EOS = 2  # <|end_story|>


def cpu_model(name: str, **options) -> dict:
    opts = {"path": str(FIXTURE), "ctx": CTX, "threads": 2, "kv_cache_mb": 64}
    opts.update(options)
    return {"name": name, "backend": "cpu", "max_queue": 256, "options": opts}


@pytest.fixture(scope="module")
def cpu_server(start_server):
    if not CPU_PLUGIN.is_file():
        pytest.skip(f"cpu plugin not found at {CPU_PLUGIN}")
    if not (FIXTURE / "model.safetensors").is_file():
        pytest.skip(f"fixture model missing at {FIXTURE} (see ../shared/fixtures/README.md)")
    config = {
        "server": server_section(request_timeout_s=120, max_body_bytes="1MiB"),
        "models": [
            cpu_model("tinystories", max_batch=32, max_queue=128),
            cpu_model("tinystories-one-slot", max_batch=1, max_queue=16),
        ],
    }
    return start_server(config, name="cpu")


@pytest.fixture(scope="module")
def cpu(cpu_server):
    with openai.OpenAI(base_url=cpu_server.base_url, api_key="unused", max_retries=0,
                       timeout=120) as c:
        yield c


def reference_greedy() -> dict:
    return json.loads((FIXTURE / "expected_greedy.json").read_text())


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


# ---- completions -----------------------------------------------------------------------------

def test_completion_from_bos_matches_the_reference(cpu):
    ref = reference_greedy()
    reply, body, _ = checks.completion(cpu, model="tinystories", prompt=ref["prompt_ids"],
                                       max_tokens=64, temperature=0)
    choice = reply.choices[0]
    assert choice.finish_reason == "length"
    assert reply.usage.completion_tokens == 64
    assert reply.usage.prompt_tokens == 1
    # The reference decodes its 64 ids in one piece; the stream must give the same text.
    assert choice.text == ref["text"]


def test_completion_stream_equals_non_stream(cpu):
    kwargs = dict(model="tinystories", prompt="Once upon a time, there was a dog",
                  max_tokens=30, temperature=0)
    reply, _, _ = checks.completion(cpu, **kwargs)
    chunks = checks.completion_stream(cpu, **kwargs)
    assert checks.completion_text(chunks) == reply.choices[0].text
    assert checks.finish_reasons(chunks) == {0: [reply.choices[0].finish_reason]}


def test_completion_continues_the_prompt_with_its_leading_space(cpu):
    # This tokenizer merges across words ("▁a▁little▁"), so the prompt ends where a word ends.
    reply, _, _ = checks.completion(cpu, model="tinystories", prompt="Once upon a time, there was",
                                    max_tokens=1, temperature=0)
    assert reply.choices[0].text.startswith(" an"), reply.choices[0].text


def test_completion_list_of_prompts_with_n(cpu):
    reply, _, _ = checks.completion(cpu, model="tinystories", prompt=["The cat", "The sun"],
                                    n=2, max_tokens=8, temperature=0)
    assert sorted(c.index for c in reply.choices) == [0, 1, 2, 3]
    by_index = {c.index: c.text for c in reply.choices}
    assert by_index[0] == by_index[1]  # greedy: both choices of one prompt agree
    assert by_index[2] == by_index[3]
    assert by_index[0] != by_index[2]


def test_completion_echo(cpu):
    reply, _, _ = checks.completion(cpu, model="tinystories", prompt="Once upon a time",
                                    echo=True, max_tokens=5, temperature=0)
    assert reply.choices[0].text.startswith("Once upon a time")
    assert len(reply.choices[0].text) > len("Once upon a time")


# ---- chat ------------------------------------------------------------------------------------

def test_chat_non_streaming(cpu):
    reply, body, _ = checks.chat(cpu, model="tinystories", messages=user("Once upon a time"),
                                 max_tokens=40, temperature=0)
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 1
    assert 0 < reply.usage.completion_tokens <= 40
    if choice.finish_reason == "length":
        assert reply.usage.completion_tokens == 40


def test_chat_stream_equals_non_stream(cpu):
    kwargs = dict(model="tinystories", messages=user("Tom had a red ball"), max_tokens=40,
                  temperature=0)
    reply, _, _ = checks.chat(cpu, **kwargs)
    chunks = checks.chat_stream(cpu, **kwargs)
    assert checks.chat_text(chunks) == reply.choices[0].message.content
    assert checks.finish_reasons(chunks) == {0: [reply.choices[0].finish_reason]}


def test_chat_n_choices_with_seed_are_reproducible(cpu):
    kwargs = dict(model="tinystories", messages=user("Once upon a time"), n=3, max_tokens=24,
                  temperature=1.0, seed=1234)
    first, _, _ = checks.chat(cpu, **kwargs)
    again, _, _ = checks.chat(cpu, **kwargs)
    texts = {c.index: c.message.content for c in first.choices}
    assert sorted(texts) == [0, 1, 2]
    assert texts == {c.index: c.message.content for c in again.choices}
    assert len(set(texts.values())) > 1  # each choice draws from its own generator
    other, _, _ = checks.chat(cpu, **{**kwargs, "seed": 4321})
    assert {c.index: c.message.content for c in other.choices} != texts


def test_chat_logprobs(cpu):
    reply, body, _ = checks.chat(cpu, model="tinystories", messages=user("The dog"), max_tokens=10,
                                 temperature=0, logprobs=True, top_logprobs=3)
    content = reply.choices[0].logprobs.content
    assert content, body
    for entry in content:
        assert entry.logprob <= 0.0
        assert len(entry.top_logprobs) == 3
        # Greedy: the chosen token is the most likely one.
        assert math.isclose(entry.logprob, entry.top_logprobs[0].logprob, abs_tol=1e-5)
        assert [t.logprob for t in entry.top_logprobs] == sorted(
            (t.logprob for t in entry.top_logprobs), reverse=True)
    # Token texts are the tokens' bytes: the first keeps the leading space the answer drops.
    assert "".join(e.token for e in content).lstrip() == reply.choices[0].message.content.lstrip()


def test_stop_string_cuts_and_is_not_emitted(cpu):
    ref = reference_greedy()
    kwargs = dict(model="tinystories", prompt=ref["prompt_ids"], max_tokens=64, temperature=0,
                  stop=["Lily."])
    reply, _, _ = checks.completion(cpu, **kwargs)
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].text == ref["text"][:ref["text"].index("Lily.")]
    chunks = checks.completion_stream(cpu, **kwargs)
    assert checks.completion_text(chunks) == reply.choices[0].text
    assert checks.finish_reasons(chunks) == {0: ["stop"]}


# ---- batching, cancellation, limits ----------------------------------------------------------

PROMPTS = [f"{name} went to the {place}" for name in ("Tom", "Lily", "Sam", "Mia", "Ben", "Sue",
                                                       "Max", "Amy")
           for place in ("park", "shop", "sea", "farm")]


def test_32_concurrent_requests_equal_the_same_requests_alone(cpu, cpu_server):
    assert len(PROMPTS) == 32
    kwargs = dict(model="tinystories", max_tokens=32, temperature=0)
    alone = [checks.completion(cpu, prompt=p, **kwargs)[0].choices[0].text for p in PROMPTS]

    async def together():
        aclient = async_client(cpu_server)
        async with aclient:
            replies = await asyncio.gather(*(aclient.completions.create(prompt=p, **kwargs)
                                             for p in PROMPTS))
        return [r.choices[0].text for r in replies]

    concurrent = asyncio.run(together())
    assert concurrent == alone


def test_cancelled_stream_frees_its_slot(cpu):
    # One slot only. A stream that would run to the end of the context is dropped after a few
    # chunks; the next request must get the slot at once instead of waiting for it to finish.
    long_kwargs = dict(model="tinystories-one-slot", prompt="Once upon a time", max_tokens=CTX,
                       temperature=1.0, seed=3, logit_bias={str(EOS): -100})
    start = time.monotonic()
    full, _, _ = checks.completion(cpu, **long_kwargs)
    full_time = time.monotonic() - start
    assert full.choices[0].finish_reason == "length"

    stream = cpu.completions.create(stream=True, **long_kwargs)
    for i, _ in enumerate(stream):
        if i == 2:
            break
    stream.close()
    start = time.monotonic()
    reply, _, _ = checks.completion(cpu, model="tinystories-one-slot", prompt="The cat",
                                    max_tokens=4, temperature=0)
    waited = time.monotonic() - start
    assert reply.usage.completion_tokens == 4
    print(f"cancel test: full run {full_time:.3f}s, next request after cancel {waited:.3f}s")
    assert waited < max(0.5 * full_time, 0.05), (waited, full_time)


def test_context_overflow_is_400(cpu):
    long = " ".join(["dog"] * (CTX + 50))
    with pytest.raises(openai.BadRequestError) as info:
        cpu.completions.create(model="tinystories", prompt=long, max_tokens=4)
    body = info.value.response.json()
    assert body["error"]["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError):
        cpu.chat.completions.create(model="tinystories", messages=user(long), max_tokens=4)


def test_max_tokens_is_cut_by_the_context(cpu):
    # A long prompt leaves little room: the answer ends with "length" at the context limit.
    prompt = " ".join(["dog"] * (CTX - 20))
    reply, _, _ = checks.completion(cpu, model="tinystories", prompt=prompt, max_tokens=200,
                                    temperature=0, logit_bias={str(EOS): -100})
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.prompt_tokens + reply.usage.completion_tokens == CTX


# ---- embeddings and tokenization -------------------------------------------------------------

def test_embeddings_are_unit_vectors(cpu):
    reply, _ = checks.embeddings(cpu, model="tinystories",
                                 input=["a happy dog", "a happy dog", "the moon at night"])
    vectors = [d.embedding for d in reply.data]
    assert [len(v) for v in vectors] == [128, 128, 128]
    for v in vectors:
        assert math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-4)
    assert vectors[0] == vectors[1]
    assert vectors[0] != vectors[2]


def test_tokenize_and_detokenize_round_trip(cpu_server):
    status, _, reply = http_raw.request_json(cpu_server, "POST", "/tokenize",
                                             {"model": "tinystories", "prompt": "Once upon a time"})
    assert status == 200, reply
    tokens = reply["tokens"]
    assert tokens[0] == 1  # BOS
    assert reply["max_model_len"] == CTX
    status, _, back = http_raw.request_json(cpu_server, "POST", "/detokenize",
                                            {"model": "tinystories", "tokens": tokens[1:]})
    assert status == 200, back
    assert back["prompt"] == "Once upon a time"
