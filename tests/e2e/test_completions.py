"""POST /v1/completions through the SDK: echo answers with the prompt."""

import json

import pytest

import checks
import http_raw
import openapi_schema

pytestmark = pytest.mark.usefixtures("openapi_file")

PROMPT = "once upon a time there was a gateway"


def test_completion(client):
    reply, body, _ = checks.completion(client, model="echo", prompt=PROMPT)
    assert body["object"] == "text_completion"
    assert body["id"].startswith("cmpl-")
    assert body["model"] == "echo"
    assert len(reply.choices) == 1
    assert reply.choices[0].text == PROMPT
    assert reply.choices[0].index == 0
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens == checks.words(PROMPT)
    assert reply.usage.completion_tokens == checks.words(PROMPT)
    assert reply.usage.total_tokens == 2 * checks.words(PROMPT)


def test_completion_several_prompts_and_n(client):
    prompts = ["first prompt", "the second one here"]
    reply, _, _ = checks.completion(client, model="echo", prompt=prompts, n=2)
    assert len(reply.choices) == 4
    by_index = {c.index: c.text for c in reply.choices}
    # OpenAI orders choices prompt by prompt: index = prompt_index * n + i.
    assert by_index == {0: prompts[0], 1: prompts[0], 2: prompts[1], 3: prompts[1]}
    assert reply.usage.prompt_tokens == 2 + 4
    assert reply.usage.completion_tokens == 2 * (2 + 4)


def test_completion_echo_prepends_prompt(client):
    reply, _, _ = checks.completion(client, model="echo", prompt="say it", echo=True)
    assert reply.choices[0].text == "say it" + "say it"


def test_completion_max_tokens_and_stop(client):
    reply, _, _ = checks.completion(client, model="echo", prompt=PROMPT, max_tokens=4)
    assert reply.choices[0].text.split() == PROMPT.split()[:4]
    assert PROMPT.startswith(reply.choices[0].text)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 4
    reply, _, _ = checks.completion(client, model="echo", prompt=PROMPT, stop=["was", "time"])
    assert reply.choices[0].text == PROMPT[:PROMPT.index("time")]
    assert reply.choices[0].finish_reason == "stop"


def test_completion_stream(client):
    chunks = checks.completion_stream(client, model="echo", prompt=PROMPT)
    checks.assert_one_identity(chunks, "cmpl-", "text_completion", "echo")
    assert checks.completion_text(chunks) == PROMPT
    assert checks.finish_reasons(chunks) == {0: ["stop"]}
    assert all(c.get("usage") is None for c in chunks)


def test_completion_stream_include_usage_and_n(client):
    chunks = checks.completion_stream(client, model="echo-chunk1", prompt="ab cd", n=2,
                                      stream_options={"include_usage": True})
    *body, last = chunks
    assert last["choices"] == []
    assert last["usage"]["prompt_tokens"] == 2
    assert last["usage"]["completion_tokens"] == 4
    assert last["usage"]["total_tokens"] == 6
    assert checks.completion_text(body, 0) == "ab cd"
    assert checks.completion_text(body, 1) == "ab cd"
    assert checks.finish_reasons(body) == {0: ["stop"], 1: ["stop"]}


def test_completion_stream_raw(server):
    status, headers, body = http_raw.request(
        server, "POST", "/v1/completions", {"model": "echo", "prompt": PROMPT, "stream": True})
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    events, done = http_raw.sse_json(body)
    assert done
    for event in events:
        openapi_schema.validate("CreateCompletionStreamResponse", event)
    assert checks.completion_text(events) == PROMPT


@pytest.mark.parametrize("body,param", [
    ({"model": "echo"}, "prompt"),
    ({"model": "echo", "prompt": 5}, "prompt"),
    ({"model": "echo", "prompt": "x", "suffix": "tail"}, "suffix"),
    ({"model": "echo", "prompt": "x", "logprobs": 9}, "logprobs"),
    ({"model": "echo", "prompt": "x", "max_tokens": "many"}, "max_tokens"),
])
def test_completion_bad_requests_name_their_param(server, body, param):
    status, _, reply = http_raw.request_json(server, "POST", "/v1/completions", body)
    assert status == 400, reply
    openapi_schema.validate("ErrorResponse", reply)
    assert reply["error"]["type"] == "invalid_request_error"
    assert reply["error"]["param"] == param


def test_completion_logprobs(client):
    reply, body, _ = checks.completion(client, model="echo", prompt=PROMPT, logprobs=1)
    logprobs = body["choices"][0]["logprobs"]
    tokens = logprobs["tokens"]
    assert len(tokens) == checks.words(PROMPT)
    assert "".join(tokens) == reply.choices[0].text == PROMPT
    assert len(logprobs["token_logprobs"]) == len(tokens)
    assert all(lp <= 0 for lp in logprobs["token_logprobs"])
    offsets = logprobs["text_offset"]
    assert offsets[0] == 0 and offsets == sorted(offsets)
    assert [PROMPT[o:o + len(t)] for o, t in zip(offsets, tokens)] == tokens
    assert len(logprobs["top_logprobs"]) == len(tokens)


def test_streamed_completion_logprobs_text_offset_continues_across_chunks(server):
    # One chunk per word (echo-slow spaces the deltas, so they are not coalesced): each chunk's
    # text_offset must continue where the previous chunk's text ended, as in the whole answer.
    body = {"model": "echo-slow", "prompt": PROMPT, "logprobs": 1, "stream": True, "max_tokens": 50}
    status, _, raw = http_raw.request(server, "POST", "/v1/completions", body)
    assert status == 200
    text, tokens, offsets = "", [], []
    for data in http_raw.sse_data(raw):
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        for choice in chunk["choices"]:
            text += choice["text"]
            if choice.get("logprobs"):
                tokens += choice["logprobs"]["tokens"]
                offsets += choice["logprobs"]["text_offset"]
    assert text == PROMPT
    assert len(tokens) == checks.words(PROMPT) > 2
    assert [PROMPT[o:o + len(t)] for o, t in zip(offsets, tokens)] == tokens
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)


def test_completion_token_prompt(client, server):
    status, _, tokenized = http_raw.request_json(server, "POST", "/tokenize",
                                                 {"model": "echo", "prompt": "alpha beta gamma",
                                                  "add_special_tokens": False})
    assert status == 200
    reply, _, _ = checks.completion(client, model="echo", prompt=tokenized["tokens"])
    # Echo answers a token prompt with the ids as decimal words.
    assert reply.choices[0].text == " ".join(str(t) for t in tokenized["tokens"])
    assert reply.usage.prompt_tokens == 3
