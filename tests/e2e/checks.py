"""Shared assertions: call through the SDK, validate the raw body against the schema, return both.

    reply, body, headers = checks.chat(client, model="echo", messages=[...])
    chunks = checks.chat_stream(client, model="echo", messages=[...])   # each validated
"""

from __future__ import annotations

from typing import Any

import openapi_schema


def words(text: str) -> int:
    """Echo's token count: whitespace-separated words."""
    return len(text.split())


def chat(client, **kwargs) -> tuple[Any, dict, Any]:
    raw = client.chat.completions.with_raw_response.create(**kwargs)
    body = raw.http_response.json()
    openapi_schema.validate("CreateChatCompletionResponse", body)
    assert raw.http_response.headers["content-type"].startswith("application/json")
    return raw.parse(), body, raw.http_response.headers


def completion(client, **kwargs) -> tuple[Any, dict, Any]:
    raw = client.completions.with_raw_response.create(**kwargs)
    body = raw.http_response.json()
    openapi_schema.validate("CreateCompletionResponse", body)
    return raw.parse(), body, raw.http_response.headers


def embeddings(client, encoding_format: str = "float", **kwargs) -> tuple[Any, dict]:
    raw = client.embeddings.with_raw_response.create(encoding_format=encoding_format, **kwargs)
    body = raw.http_response.json()
    openapi_schema.validate_embeddings(body, encoding_format)
    return raw.parse(), body


def _validated(chunks, component: str) -> list[dict]:
    out = []
    for chunk in chunks:
        as_sent = chunk.to_dict()  # only the fields the server sent (exclude_unset)
        openapi_schema.validate(component, as_sent)
        out.append(as_sent)
    return out


def chat_stream(client, **kwargs) -> list[dict]:
    with client.chat.completions.create(stream=True, **kwargs) as stream:
        return _validated(stream, "CreateChatCompletionStreamResponse")


def completion_stream(client, **kwargs) -> list[dict]:
    with client.completions.create(stream=True, **kwargs) as stream:
        return _validated(stream, "CreateCompletionStreamResponse")


def chat_text(chunks: list[dict], index: int = 0) -> str:
    return "".join(choice["delta"].get("content") or ""
                   for c in chunks for choice in c["choices"] if choice["index"] == index)


def completion_text(chunks: list[dict], index: int = 0) -> str:
    return "".join(choice["text"]
                   for c in chunks for choice in c["choices"] if choice["index"] == index)


def finish_reasons(chunks: list[dict]) -> dict[int, list[str]]:
    """index -> the non-null finish_reasons seen for that choice (exactly one when correct)."""
    seen: dict[int, list[str]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            if choice.get("finish_reason") is not None:
                seen.setdefault(choice["index"], []).append(choice["finish_reason"])
    return seen


def assert_one_identity(chunks: list[dict], prefix: str, obj: str, model: str) -> None:
    """All chunks of one stream share id, created and model, with the right object type."""
    assert chunks, "empty stream"
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1, f"chunk ids differ: {ids}"
    assert next(iter(ids)).startswith(prefix), ids
    assert {c["created"] for c in chunks} == {chunks[0]["created"]}
    assert {c["model"] for c in chunks} == {model}
    assert {c["object"] for c in chunks} == {obj}
