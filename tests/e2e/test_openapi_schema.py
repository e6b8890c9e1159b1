"""The validator itself: good bodies pass, broken ones fail, the quirks are handled as documented.

These need no server, only ../shared/openai/openapi.json.
"""

import base64
import copy
import struct

import jsonschema
import pytest

import openapi_schema as schema

pytestmark = pytest.mark.usefixtures("openapi_file")

CHAT = {
    "id": "chatcmpl-abc", "object": "chat.completion", "created": 1700000000, "model": "echo",
    "system_fingerprint": "fp_moat",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi", "refusal": None},
                 "finish_reason": "stop", "logprobs": None}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}
CHUNK = {
    "id": "chatcmpl-abc", "object": "chat.completion.chunk", "created": 1700000000,
    "model": "echo", "system_fingerprint": "fp_moat",
    "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"},
                 "finish_reason": None, "logprobs": None}],
}
COMPLETION = {
    "id": "cmpl-abc", "object": "text_completion", "created": 1700000000, "model": "echo",
    "choices": [{"index": 0, "text": "hi", "finish_reason": "length", "logprobs": None}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}
EMBEDDINGS = {
    "object": "list", "model": "echo",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.6, 0.8]}],
    "usage": {"prompt_tokens": 1, "total_tokens": 1},
}
ERROR = {"error": {"message": "bad", "type": "invalid_request_error", "param": "n", "code": None}}
MODELS = {"object": "list",
          "data": [{"id": "echo", "object": "model", "created": 0, "owned_by": "moat"}]}


@pytest.mark.parametrize("component,body", [
    ("CreateChatCompletionResponse", CHAT),
    ("CreateChatCompletionStreamResponse", CHUNK),
    ("CreateCompletionResponse", COMPLETION),
    ("CreateEmbeddingResponse", EMBEDDINGS),
    ("ErrorResponse", ERROR),
    ("ListModelsResponse", MODELS),
    ("Model", MODELS["data"][0]),
])
def test_valid_bodies_pass(component, body):
    assert schema.schema_errors(component, body) == []


def _broken(body, edit):
    body = copy.deepcopy(body)
    edit(body)
    return body


@pytest.mark.parametrize("component,body,where", [
    ("CreateChatCompletionResponse", _broken(CHAT, lambda b: b.pop("id")), "<root>"),
    ("CreateChatCompletionResponse", _broken(CHAT, lambda b: b.update(object="chat")), "object"),
    ("CreateChatCompletionResponse",
     _broken(CHAT, lambda b: b["choices"][0].update(finish_reason="done")), "finish_reason"),
    ("CreateChatCompletionResponse",
     _broken(CHAT, lambda b: b["choices"][0].pop("logprobs")), "choices/0"),
    ("CreateChatCompletionResponse",
     _broken(CHAT, lambda b: b["choices"][0]["message"].update(role="user")), "role"),
    ("CreateChatCompletionResponse",
     _broken(CHAT, lambda b: b["usage"].update(total_tokens="2")), "total_tokens"),
    ("CreateChatCompletionResponse",
     _broken(CHAT, lambda b: b["choices"][0].update(finish_reason=None)), "finish_reason"),
    ("CreateChatCompletionStreamResponse",
     _broken(CHUNK, lambda b: b["choices"][0]["delta"].update(content=5)), "content"),
    ("CreateChatCompletionStreamResponse",
     _broken(CHUNK, lambda b: b.update(object="chat.completion")), "object"),
    ("CreateChatCompletionStreamResponse",
     _broken(CHUNK, lambda b: b["choices"][0].pop("delta")), "choices/0"),
    ("CreateCompletionResponse", _broken(COMPLETION, lambda b: b["choices"][0].pop("text")),
     "choices/0"),
    ("CreateEmbeddingResponse",
     _broken(EMBEDDINGS, lambda b: b["data"][0].update(embedding="AAAA")), "embedding"),
    ("CreateEmbeddingResponse", _broken(EMBEDDINGS, lambda b: b.pop("usage")), "<root>"),
    ("ErrorResponse", _broken(ERROR, lambda b: b["error"].pop("param")), "error"),
    ("ErrorResponse", {"message": "flat, not nested"}, "<root>"),
    ("ListModelsResponse", _broken(MODELS, lambda b: b["data"][0].pop("owned_by")), "data/0"),
])
def test_broken_bodies_fail(component, body, where):
    errors = schema.schema_errors(component, body)
    assert errors, f"{component} accepted a broken body: {body}"
    assert any(line.startswith(where) or where in line for line in errors), errors
    with pytest.raises(jsonschema.ValidationError):
        schema.validate(component, body)


def test_nullable_quirk_allows_null():
    # `usage` on a chunk is `$ref: CompletionUsage` with `nullable: true` in the published file.
    chunk = dict(CHUNK, usage=None)
    assert schema.schema_errors("CreateChatCompletionStreamResponse", chunk) == []
    # ...and still checks the object when it is present.
    chunk = dict(CHUNK, usage={"prompt_tokens": 1})
    assert schema.schema_errors("CreateChatCompletionStreamResponse", chunk)


def test_stream_finish_reason_null_and_enum():
    last = _broken(CHUNK, lambda b: b["choices"][0].update(finish_reason="stop", delta={}))
    assert schema.schema_errors("CreateChatCompletionStreamResponse", last) == []
    wrong = _broken(CHUNK, lambda b: b["choices"][0].update(finish_reason="eos"))
    assert schema.schema_errors("CreateChatCompletionStreamResponse", wrong)


def test_completion_chunks_allow_null_finish_reason_whole_responses_do_not():
    chunk = _broken(COMPLETION, lambda b: b["choices"][0].update(finish_reason=None))
    assert schema.schema_errors("CreateCompletionStreamResponse", chunk) == []
    assert schema.schema_errors("CreateCompletionResponse", chunk)
    chunk["usage"] = None
    assert schema.schema_errors("CreateCompletionStreamResponse", chunk) == []
    assert schema.schema_errors("CreateCompletionResponse", chunk)
    wrong = _broken(COMPLETION, lambda b: b["choices"][0].update(finish_reason="eos"))
    assert schema.schema_errors("CreateCompletionStreamResponse", wrong)


def test_usage_only_chunk_with_empty_choices():
    final = dict(CHUNK, choices=[],
                 usage={"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5})
    assert schema.schema_errors("CreateChatCompletionStreamResponse", final) == []


def test_base64_embeddings_decoded_then_validated():
    raw = struct.pack("<2f", 0.6, 0.8)
    body = _broken(EMBEDDINGS, lambda b: b["data"][0].update(
        embedding=base64.b64encode(raw).decode()))
    schema.validate_embeddings(body, "base64")
    assert schema.decode_base64_embedding(body["data"][0]["embedding"]) == pytest.approx([0.6, 0.8])
    with pytest.raises(jsonschema.ValidationError):
        schema.validate_embeddings(EMBEDDINGS, "base64")  # floats where base64 was asked for
    with pytest.raises(ValueError):
        schema.decode_base64_embedding(base64.b64encode(b"\x00\x01\x02").decode())


def test_unknown_component_is_an_error():
    with pytest.raises(KeyError):
        schema.validate("NoSuchComponent", {})
