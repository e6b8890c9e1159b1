"""Validate moat's response bodies and stream chunks against OpenAI's published OpenAPI file.

    from openapi_schema import validate, schema_errors
    validate("CreateChatCompletionResponse", body)          # raises jsonschema.ValidationError
    assert schema_errors("ErrorResponse", {"error": {}})    # a list of messages, empty when valid

The file (../shared/openai/openapi.json, OpenAPI 3.1) is loaded once and every component is
registered as a resource under its JSON pointer, so `#/components/schemas/X` refs resolve with
`referencing` and Draft 2020-12. Two quirks of the published file are patched (its README lists
them), and one that its README does not:
  1. `nullable: true` (an OpenAPI 3.0 leftover) means null is allowed as well;
  2. a stream chunk's `choices[].finish_reason` is null on every chunk but the last (for
     completions, whose chunks reuse CreateCompletionResponse, validate chunks against the
     added `CreateCompletionStreamResponse`);
  3. `Embedding.embedding` is a base64 string when the request asked for encoding_format base64
     (the published file only types the float array); `validate_embeddings` handles that case by
     decoding and validating the float form, so the schema itself stays strict.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import os
import struct
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMA_PATH = Path(
    os.environ.get(
        "MOAT_OPENAPI",
        Path(__file__).resolve().parents[2] / ".." / "shared" / "openai" / "openapi.json",
    )
).resolve()

# The document's base URI; refs inside it are fragments (`#/components/schemas/X`).
_BASE_URI = "urn:openai:openapi.json"


def _allow_null(node: Any) -> Any:
    """Rewrites every `{..., nullable: true}` into `anyOf: [{...}, {type: null}]`, recursively.

    Wrapping rather than editing `type` also covers nodes with `enum` (whose list would otherwise
    reject null) and nodes that are only a `$ref`.
    """
    if isinstance(node, list):
        return [_allow_null(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _allow_null(value) for key, value in node.items()}
    if out.pop("nullable", False) is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def _patch_stream_finish_reason(schemas: dict) -> None:
    """Quirk 2: a chunk's finish_reason accepts null (whatever the file says).

    Completions stream chunks share CreateCompletionResponse's shape, so a copy of it with a
    nullable finish_reason (and usage) is added as `CreateCompletionStreamResponse` (a name the
    published file does not use) and the original stays strict for whole responses.
    """
    chunk = copy.deepcopy(schemas["CreateCompletionResponse"])
    # With stream_options.include_usage every chunk but the last carries "usage": null, as the
    # chat chunk schema already allows.
    chunk["properties"]["usage"] = {"anyOf": [chunk["properties"]["usage"], {"type": "null"}]}
    schemas["CreateCompletionStreamResponse"] = chunk
    for name in ("CreateChatCompletionStreamResponse", "CreateCompletionStreamResponse"):
        props = schemas[name]["properties"]["choices"]["items"]["properties"]
        props["finish_reason"] = {"anyOf": [props["finish_reason"], {"type": "null"}]}


@functools.lru_cache(maxsize=1)
def _registry_and_document() -> tuple[Registry, dict]:
    if not SCHEMA_PATH.is_file():
        raise FileNotFoundError(f"OpenAPI file not found at {SCHEMA_PATH}")
    with SCHEMA_PATH.open(encoding="utf-8") as f:
        document = json.load(f)
    document = _allow_null(document)
    _patch_stream_finish_reason(document["components"]["schemas"])
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry = Registry().with_resource(_BASE_URI, resource)
    return registry, document


def available() -> bool:
    return SCHEMA_PATH.is_file()


def component_names() -> list[str]:
    return sorted(_registry_and_document()[1]["components"]["schemas"])


@functools.lru_cache(maxsize=None)
def _validator(component: str) -> jsonschema.protocols.Validator:
    registry, document = _registry_and_document()
    if component not in document["components"]["schemas"]:
        raise KeyError(f"no component schema named {component!r}")
    # A tiny root schema that points into the registered document, so the component's own
    # fragment refs resolve against the document's base URI.
    root = {"$ref": f"{_BASE_URI}#/components/schemas/{component}"}
    cls = jsonschema.Draft202012Validator
    return cls(root, registry=registry)


def validate(component: str, instance: Any) -> None:
    """Raises jsonschema.ValidationError (the most relevant one) when instance is not valid."""
    error = jsonschema.exceptions.best_match(_validator(component).iter_errors(instance))
    if error is not None:
        raise error


def schema_errors(component: str, instance: Any) -> list[str]:
    """All validation errors as readable lines (path: message); empty when valid."""
    lines = []
    for error in _validator(component).iter_errors(instance):
        path = "/".join(str(p) for p in error.absolute_path) or "<root>"
        lines.append(f"{path}: {error.message}")
    return lines


def decode_base64_embedding(text: str) -> list[float]:
    """OpenAI's base64 form: little-endian float32 values, concatenated."""
    raw = base64.b64decode(text, validate=True)
    if len(raw) % 4:
        raise ValueError(f"base64 embedding is {len(raw)} bytes, not a multiple of 4")
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def validate_embeddings(body: Any, encoding_format: str = "float") -> None:
    """CreateEmbeddingResponse, with base64 strings decoded first (quirk 3)."""
    if encoding_format == "base64":
        body = copy.deepcopy(body)
        for item in body.get("data", []) if isinstance(body, dict) else []:
            if not isinstance(item, dict) or not isinstance(item.get("embedding"), str):
                raise jsonschema.ValidationError(
                    f"base64 embedding expected as a string, got {item!r:.80}")
            item["embedding"] = decode_base64_embedding(item["embedding"])
    validate("CreateEmbeddingResponse", body)
