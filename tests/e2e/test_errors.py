"""Every error as the SDK's typed exception, with the status, type, param and code OpenAI uses.

DESIGN.md section 3: 400 invalid_request_error (naming its param), 404 model_not_found, 413 body
too large, 429 queue full (with Retry-After), 500/504 for backend faults. Every error body
validates as ErrorResponse.
"""

import asyncio
import time

import openai
import pytest

import checks
import http_raw
import openapi_schema
from conftest import MAX_CONTEXT, async_client, echo_model, server_section

pytestmark = pytest.mark.usefixtures("openapi_file")

MSG = [{"role": "user", "content": "hello there"}]


def assert_error_body(exc: openai.APIStatusError, status: int) -> dict:
    assert exc.status_code == status
    body = exc.response.json()
    openapi_schema.validate("ErrorResponse", body)
    assert body["error"]["message"], "empty error message"
    assert exc.response.headers["content-type"].startswith("application/json")
    return body["error"]


@pytest.mark.parametrize("kwargs,param", [
    ({"messages": []}, "messages"),
    ({"messages": "hello"}, "messages"),
    ({"messages": MSG, "extra_body": {"messages": None}}, "messages"),
    ({"messages": MSG, "extra_body": {"model": None}}, "model"),
    ({"messages": MSG, "temperature": "hot"}, "temperature"),
    ({"messages": MSG, "temperature": 2.5}, "temperature"),
    ({"messages": MSG, "top_p": 1.5}, "top_p"),
    ({"messages": MSG, "n": 0}, "n"),
    ({"messages": MSG, "n": "two"}, "n"),
    ({"messages": MSG, "n": 129}, "n"),
    ({"messages": MSG, "max_tokens": 0}, "max_tokens"),
    ({"messages": MSG, "stream_options": {"include_usage": True}}, "stream_options"),
    ({"messages": MSG, "logit_bias": {"5": 200}}, "logit_bias"),
    ({"messages": MSG, "max_tokens": -1}, "max_tokens"),
    ({"messages": MSG, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"messages": MSG, "stop": 7}, "stop"),
    ({"messages": MSG, "presence_penalty": 3}, "presence_penalty"),
    ({"messages": MSG, "frequency_penalty": -3}, "frequency_penalty"),
    ({"messages": MSG, "logprobs": True, "top_logprobs": 25}, "top_logprobs"),
    ({"messages": MSG, "extra_body": {"stream": "yes"}}, "stream"),
])
def test_chat_bad_request_names_param(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="echo", **kwargs)
    error = assert_error_body(info.value, 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param, error
    assert info.value.param == param


def test_null_optional_params_mean_defaults(client):
    reply, _, _ = checks.chat(client, model="echo", messages=MSG, temperature=None, top_p=None,
                              n=None, stop=None, max_tokens=None, seed=None)
    assert reply.choices[0].message.content == "hello there"


@pytest.mark.parametrize("message", [
    {"role": "wizard", "content": "x"},
    {"content": "no role"},
    {"role": "user", "content": 42},
    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]},
])
def test_chat_bad_message_names_messages(client, message):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="echo", messages=[message])
    error = assert_error_body(info.value, 400)
    assert error["param"] and error["param"].startswith("messages"), error


def test_malformed_json_is_400(server):
    for body in (b'{"model": "echo", "messages": [', b"not json at all", b"[1, 2]", b""):
        status, _, reply = http_raw.request_json(
            server, "POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        assert status == 400, (body, reply)
        openapi_schema.validate("ErrorResponse", reply)
        assert reply["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("call", ["chat", "completion", "embedding"])
def test_unknown_model_is_not_found(client, call):
    with pytest.raises(openai.NotFoundError) as info:
        if call == "chat":
            client.chat.completions.create(model="gpt-unknown", messages=MSG)
        elif call == "completion":
            client.completions.create(model="gpt-unknown", prompt="x")
        else:
            client.embeddings.create(model="gpt-unknown", input="x", encoding_format="float")
    error = assert_error_body(info.value, 404)
    assert error["code"] == "model_not_found"
    assert "gpt-unknown" in error["message"]


def test_unknown_model_in_stream_is_404_before_streaming(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-unknown", messages=MSG, stream=True)


def test_oversized_body_is_413(client):
    big = "word " * (80 * 1024 // 5)  # 80 KiB against max_body_bytes 64KiB
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="echo", messages=[{"role": "user", "content": big}])
    assert_error_body(info.value, 413)


def test_context_length_exceeded(client):
    long = " ".join(["w"] * (MAX_CONTEXT + 5))
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="echo-ctx", messages=[{"role": "user",
                                                                    "content": long}])
    error = assert_error_body(info.value, 400)
    assert error["code"] == "context_length_exceeded"
    fits = " ".join(["w"] * (MAX_CONTEXT // 2))
    reply, _, _ = checks.chat(client, model="echo-ctx", messages=[{"role": "user",
                                                                   "content": fits}])
    assert reply.choices[0].message.content == fits


def test_queue_full_is_429_with_retry_after(server, client):
    text = "one two three four five"  # 5 deltas x 200 ms on echo-queue1 (max_queue 1)

    async def one(aclient):
        try:
            raw = await aclient.chat.completions.with_raw_response.create(
                model="echo-queue1", messages=[{"role": "user", "content": text}])
            return raw.parse()
        except openai.RateLimitError as exc:
            return exc

    async def main():
        async with async_client(server) as aclient:
            return await asyncio.gather(*[one(aclient) for _ in range(8)])

    results = asyncio.run(main())
    limited = [r for r in results if isinstance(r, openai.RateLimitError)]
    served = [r for r in results if not isinstance(r, Exception)]
    assert limited, "8 concurrent requests on a max_queue 1 model: none got 429"
    assert served, "every request was refused: the queue never admits anything"
    for exc in limited:
        assert_error_body(exc, 429)
        assert exc.response.headers.get("retry-after"), "429 without Retry-After"
    for reply in served:
        assert reply.choices[0].message.content == text
    # The queue drains: a lone request later is served.
    reply, _, _ = checks.chat(client, model="echo-queue1", messages=MSG)
    assert reply.choices[0].message.content == "hello there"


def test_backend_failing_before_first_delta_is_500(client):
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="echo-fail-first", messages=MSG)
    assert_error_body(info.value, 500)
    with pytest.raises(openai.InternalServerError) as info:
        client.completions.create(model="echo-fail-first", prompt="x y")
    assert_error_body(info.value, 500)


def test_backend_failing_before_first_delta_in_stream(client):
    # Either the gateway waits for the first event and answers 500, or it has already sent
    # 200 and the stream carries an error event: the SDK raises in both cases.
    with pytest.raises(openai.APIError) as info:
        for _ in client.chat.completions.create(model="echo-fail-first", messages=MSG,
                                                stream=True):
            pass
    if isinstance(info.value, openai.APIStatusError):
        assert_error_body(info.value, 500)


def test_backend_failing_mid_stream(client):
    got = []
    with pytest.raises(openai.APIError) as info:
        stream = client.chat.completions.create(
            model="echo-fail-mid", messages=[{"role": "user", "content": "a b c d e f g"}],
            stream=True)
        for chunk in stream:
            openapi_schema.validate("CreateChatCompletionStreamResponse", chunk.to_dict())
            got.extend(c.delta.content or "" for c in chunk.choices)
            assert all(c.finish_reason is None for c in chunk.choices), "finished despite fault"
    assert not isinstance(info.value, openai.APIStatusError), "expected an in-stream error"
    assert "".join(got).split() == ["a", "b"], "fault_after_deltas 2: two deltas, then error"
    assert info.value.message


def test_backend_failing_mid_stream_without_streaming_is_500(client):
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="echo-fail-mid",
                                       messages=[{"role": "user", "content": "a b c d e"}])
    assert_error_body(info.value, 500)


@pytest.mark.parametrize("method,path,statuses", [
    ("GET", "/v1/no-such-endpoint", (404,)),
    ("POST", "/v2/chat/completions", (404,)),
    ("GET", "/v1/chat/completions", (404, 405)),
    ("DELETE", "/v1/models/echo", (404, 405)),
])
def test_unknown_routes(server, method, path, statuses):
    status, _, body = http_raw.request(server, method, path)
    assert status in statuses, (status, body[:200])


# ---- a hanging backend: 504 after request_timeout_s --------------------------------------------

@pytest.fixture(scope="module")
def hang_server(start_server):
    return start_server({
        "server": server_section(request_timeout_s=2, drain_timeout_s=2),
        "models": [echo_model("echo"), echo_model("echo-hang", fault="hang")],
    }, name="hang")


def test_hanging_backend_is_504(hang_server):
    with openai.OpenAI(base_url=hang_server.base_url, api_key="unused", max_retries=0,
                       timeout=30) as hclient:
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as info:
            hclient.chat.completions.create(model="echo-hang", messages=MSG)
        elapsed = time.monotonic() - started
        assert_error_body(info.value, 504)
        assert 1.5 <= elapsed < 10, f"504 after {elapsed:.1f}s with request_timeout_s 2"
        # The stream variant ends too: a 504 before the first byte, or an error event.
        started = time.monotonic()
        with pytest.raises(openai.APIError):
            for _ in hclient.chat.completions.create(model="echo-hang", messages=MSG,
                                                     stream=True):
                pass
        assert time.monotonic() - started < 10
        # Other models on the same server are unaffected.
        reply, _, _ = checks.chat(hclient, model="echo", messages=MSG)
        assert reply.choices[0].message.content == "hello there"
