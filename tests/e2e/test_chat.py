"""POST /v1/chat/completions through the official SDK (sync and async), streamed and not.

Echo answers with the last user message; usage counts whitespace-separated words.
"""

import asyncio
import json

import pytest

import checks
import http_raw
import openapi_schema
from conftest import async_client

pytestmark = pytest.mark.usefixtures("openapi_file")

TEXT = "the quick brown fox jumps over the lazy dog"


def user(text):
    return [{"role": "user", "content": text}]


def test_chat_answers_with_last_user_message(client):
    reply, body, _ = checks.chat(client, model="echo", messages=user(TEXT))
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "echo"
    assert isinstance(body["created"], int) and body["created"] > 1_600_000_000
    assert body.get("system_fingerprint"), "system_fingerprint missing (DESIGN.md section 3)"
    assert len(reply.choices) == 1
    choice = reply.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content == TEXT
    assert choice.finish_reason == "stop"
    assert "logprobs" in body["choices"][0] and body["choices"][0]["logprobs"] is None
    assert reply.usage.completion_tokens == checks.words(TEXT)
    assert reply.usage.prompt_tokens == checks.words(TEXT)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_chat_ids_are_unique(client):
    ids = {checks.chat(client, model="echo", messages=user("x"))[1]["id"] for _ in range(5)}
    assert len(ids) == 5


def test_chat_uses_last_user_message_of_a_conversation(client):
    messages = [
        {"role": "system", "content": "you are a parrot"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question here"},
    ]
    reply, _, _ = checks.chat(client, model="echo", messages=messages)
    assert reply.choices[0].message.content == "second question here"
    assert reply.usage.completion_tokens == 3
    assert reply.usage.prompt_tokens >= 3


def test_chat_text_content_parts_are_joined(client):
    parts = [{"type": "text", "text": "alpha beta"}, {"type": "text", "text": "gamma"}]
    reply, _, _ = checks.chat(client, model="echo", messages=[{"role": "user", "content": parts}])
    assert reply.choices[0].message.content == "alpha beta\ngamma"


def test_chat_unicode_round_trips(client):
    text = "héllo wörld 日本語 テキスト 🙂 end"
    reply, _, _ = checks.chat(client, model="echo", messages=user(text))
    assert reply.choices[0].message.content == text


def test_chat_n_returns_equal_choices(client):
    reply, _, _ = checks.chat(client, model="echo", messages=user(TEXT), n=3)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert {c.message.content for c in reply.choices} == {TEXT}
    assert {c.finish_reason for c in reply.choices} == {"stop"}
    assert reply.usage.completion_tokens == 3 * checks.words(TEXT)


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_chat_max_tokens_cuts_in_words(client, field):
    reply, _, _ = checks.chat(client, model="echo", messages=user(TEXT), **{field: 3})
    choice = reply.choices[0]
    assert choice.finish_reason == "length"
    assert choice.message.content.split() == TEXT.split()[:3]
    assert TEXT.startswith(choice.message.content)
    assert reply.usage.completion_tokens == 3


def test_chat_max_tokens_larger_than_answer_stops_normally(client):
    reply, _, _ = checks.chat(client, model="echo", messages=user(TEXT), max_tokens=100)
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.content == TEXT


def test_chat_stop_string_cuts_and_is_not_emitted(client):
    reply, _, _ = checks.chat(client, model="echo", messages=user(TEXT), stop=["jumps"])
    assert reply.choices[0].message.content == TEXT[:TEXT.index("jumps")]
    assert reply.choices[0].finish_reason == "stop"
    reply, _, _ = checks.chat(client, model="echo", messages=user(TEXT), stop="lazy")
    assert reply.choices[0].message.content == TEXT[:TEXT.index("lazy")]


def test_chat_unknown_fields_are_ignored(client):
    reply, _, _ = checks.chat(client, model="echo", messages=user("ok then"),
                              extra_body={"not_an_openai_field": {"x": [1, 2]},
                                          "another_one": True})
    assert reply.choices[0].message.content == "ok then"


# ---- streaming --------------------------------------------------------------------------------

def test_chat_stream(client):
    chunks = checks.chat_stream(client, model="echo", messages=user(TEXT))
    checks.assert_one_identity(chunks, "chatcmpl-", "chat.completion.chunk", "echo")
    assert checks.chat_text(chunks) == TEXT
    assert chunks[0]["choices"][0]["delta"].get("role") == "assistant"
    assert checks.finish_reasons(chunks) == {0: ["stop"]}
    # The finish_reason comes on the last chunk, nothing after it.
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    # Without include_usage no chunk carries counts.
    assert all(c.get("usage") is None for c in chunks)
    assert len(chunks) >= 3, "echo streams one word per delta by default"


def test_chat_stream_include_usage(client):
    chunks = checks.chat_stream(client, model="echo", messages=user(TEXT),
                                stream_options={"include_usage": True})
    *body, last = chunks
    assert last["choices"] == []
    usage = last["usage"]
    assert usage["prompt_tokens"] == checks.words(TEXT)
    assert usage["completion_tokens"] == checks.words(TEXT)
    assert usage["total_tokens"] == 2 * checks.words(TEXT)
    for chunk in body:
        assert "usage" in chunk and chunk["usage"] is None, chunk
    assert checks.chat_text(body) == TEXT


def test_chat_stream_chunk_chars_one(client):
    text = "abc déf 日本 🙂!"
    chunks = checks.chat_stream(client, model="echo-chunk1", messages=user(text))
    deltas = [c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]]
    assert "".join(deltas) == text
    assert all(len(d) <= 1 for d in deltas), deltas
    assert sum(1 for d in deltas if d) == len(text)


def test_chat_stream_n(client):
    chunks = checks.chat_stream(client, model="echo", messages=user(TEXT), n=2)
    assert checks.chat_text(chunks, 0) == TEXT
    assert checks.chat_text(chunks, 1) == TEXT
    assert checks.finish_reasons(chunks) == {0: ["stop"], 1: ["stop"]}
    for index in (0, 1):
        first = next(ch for c in chunks for ch in c["choices"] if ch["index"] == index)
        assert first["delta"].get("role") == "assistant"


def test_chat_stream_max_tokens_and_stop(client):
    chunks = checks.chat_stream(client, model="echo", messages=user(TEXT), max_tokens=2)
    assert checks.chat_text(chunks).split() == TEXT.split()[:2]
    assert checks.finish_reasons(chunks) == {0: ["length"]}
    chunks = checks.chat_stream(client, model="echo-chunk1", messages=user(TEXT), stop=["over"])
    assert checks.chat_text(chunks) == TEXT[:TEXT.index("over")]
    assert checks.finish_reasons(chunks) == {0: ["stop"]}


def test_chat_stream_stop_split_across_deltas_is_never_emitted(client):
    # One character per delta: the gateway or the backend must hold back "qu" until it knows.
    chunks = checks.chat_stream(client, model="echo-chunk1", messages=user(TEXT), stop=["quick"])
    assert checks.chat_text(chunks) == "the "


def test_chat_stream_raw_sse(server):
    status, headers, body = http_raw.request(
        server, "POST", "/v1/chat/completions",
        {"model": "echo", "messages": user(TEXT), "stream": True,
         "stream_options": {"include_usage": True}})
    assert status == 200, body
    assert headers["content-type"].startswith("text/event-stream")
    assert body.endswith(b"data: [DONE]\n\n")
    events, done = http_raw.sse_json(body)
    assert done
    for event in events:
        openapi_schema.validate("CreateChatCompletionStreamResponse", event)
    assert checks.chat_text(events) == TEXT
    assert events[-1]["usage"]["completion_tokens"] == checks.words(TEXT)
    # Each event is exactly one `data:` line followed by a blank line.
    for block in body.decode().split("\n\n")[:-1]:
        assert block.startswith("data: ") and "\n" not in block, block


# ---- async ------------------------------------------------------------------------------------

def test_chat_async_concurrent(server):
    async def main():
        async with async_client(server) as aclient:
            texts = [f"request {i} says {'word ' * (i % 7)}done" for i in range(40)]
            replies = await asyncio.gather(*[
                aclient.chat.completions.with_raw_response.create(
                    model="echo-slow", messages=user(t)) for t in texts])
            for text, raw in zip(texts, replies):
                openapi_schema.validate("CreateChatCompletionResponse", raw.http_response.json())
                assert raw.parse().choices[0].message.content == text
    asyncio.run(main())


def test_chat_async_stream(server):
    async def one(aclient, text):
        stream = await aclient.chat.completions.create(
            model="echo-slow", messages=user(text), stream=True,
            stream_options={"include_usage": True})
        got, usage = [], None
        async for chunk in stream:
            as_sent = chunk.to_dict()
            openapi_schema.validate("CreateChatCompletionStreamResponse", as_sent)
            got.extend(c["delta"].get("content") or "" for c in as_sent["choices"])
            usage = as_sent.get("usage") or usage
        return "".join(got), usage

    async def main():
        async with async_client(server) as aclient:
            texts = [f"stream {i} " + "x " * i for i in range(20)]
            results = await asyncio.gather(*[one(aclient, t) for t in texts])
            for text, (got, usage) in zip(texts, results):
                assert got == text
                assert usage["completion_tokens"] == checks.words(text)
    asyncio.run(main())


def test_request_id_is_echoed_or_made(server):
    body = {"model": "echo", "messages": user("id please")}
    status, headers, _ = http_raw.request(server, "POST", "/v1/chat/completions", body,
                                          {"x-request-id": "e2e-req-42"})
    assert status == 200
    assert headers.get("x-request-id") == "e2e-req-42"
    status, headers, _ = http_raw.request(server, "POST", "/v1/chat/completions", body)
    made = headers.get("x-request-id")
    assert made, "x-request-id not set when the client sent none"
    status, headers2, _ = http_raw.request(server, "POST", "/v1/chat/completions", body)
    assert headers2.get("x-request-id") != made


def test_request_id_on_errors_and_streams(server):
    status, headers, _ = http_raw.request(
        server, "POST", "/v1/chat/completions", {"model": "nope", "messages": user("x")},
        {"x-request-id": "e2e-err-1"})
    assert status == 404 and headers.get("x-request-id") == "e2e-err-1"
    status, headers, _ = http_raw.request(
        server, "POST", "/v1/chat/completions",
        {"model": "echo", "messages": user("x"), "stream": True}, {"x-request-id": "e2e-sse-1"})
    assert status == 200 and headers.get("x-request-id") == "e2e-sse-1"


def test_non_ascii_body_is_utf8(server):
    status, headers, body = http_raw.request(
        server, "POST", "/v1/chat/completions",
        {"model": "echo", "messages": user("naïve ☃")})
    assert status == 200
    parsed = json.loads(body.decode("utf-8"))
    assert parsed["choices"][0]["message"]["content"] == "naïve ☃"


def test_chat_logprobs(client):
    reply, body, _ = checks.chat(client, model="echo", messages=user(TEXT), logprobs=True,
                                 top_logprobs=2)
    content = reply.choices[0].logprobs.content
    assert len(content) == checks.words(TEXT)
    assert "".join(entry.token for entry in content) == TEXT
    for entry in content:
        assert entry.logprob <= 0
        assert bytes(entry.bytes) == entry.token.encode("utf-8")
        assert 1 <= len(entry.top_logprobs) <= 2
        assert entry.top_logprobs[0].token == entry.token
    # Without logprobs the field is there and null.
    _, body, _ = checks.chat(client, model="echo", messages=user(TEXT))
    assert body["choices"][0]["logprobs"] is None


def test_chat_stream_logprobs(client):
    chunks = checks.chat_stream(client, model="echo", messages=user(TEXT), logprobs=True)
    tokens = [entry["token"] for c in chunks for ch in c["choices"]
              if ch.get("logprobs") for entry in ch["logprobs"]["content"]]
    assert "".join(tokens) == checks.chat_text(chunks) == TEXT


def test_chat_body_close_to_the_limit_is_served(client):
    # 60 KiB of content under max_body_bytes 64KiB, in fewer words than echo's 8192 context.
    text = "abcdefghijklmnopqrs " * (60 * 1024 // 20)
    reply, _, _ = checks.chat(client, model="echo", messages=user(text.strip()))
    assert reply.choices[0].message.content == text.strip()
    assert reply.usage.completion_tokens == checks.words(text)


def test_request_id_header_name_is_case_insensitive(server):
    status, headers, _ = http_raw.request(server, "POST", "/v1/chat/completions",
                                          {"model": "echo", "messages": user("x")},
                                          {"X-Request-ID": "MiXeD-Case-7"})
    assert status == 200
    assert headers.get("x-request-id") == "MiXeD-Case-7"
