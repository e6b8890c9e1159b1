"""POST /v1/embeddings: deterministic unit vectors, float and base64."""

import math

import openai
import pytest

import checks
import openapi_schema
from conftest import EMBEDDING_DIM

pytestmark = pytest.mark.usefixtures("openapi_file")


def norm(vector):
    return math.sqrt(sum(x * x for x in vector))


def test_embeddings_float(client):
    inputs = ["alpha beta", "gamma", "alpha beta"]
    reply, body = checks.embeddings(client, model="echo", input=inputs)
    assert body["object"] == "list"
    assert body["model"] == "echo"
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    assert all(d["object"] == "embedding" for d in body["data"])
    vectors = [d["embedding"] for d in body["data"]]
    assert all(len(v) == EMBEDDING_DIM for v in vectors)
    assert all(abs(norm(v) - 1.0) < 1e-4 for v in vectors)
    assert vectors[0] == vectors[2], "same text, same vector"
    assert vectors[0] != vectors[1], "different text, different vector"
    assert reply.usage.prompt_tokens == sum(checks.words(t) for t in inputs)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens


def test_embeddings_are_deterministic_across_requests(client):
    first, _ = checks.embeddings(client, model="echo", input="same text")
    second, _ = checks.embeddings(client, model="echo", input="same text")
    assert first.data[0].embedding == second.data[0].embedding


def test_embeddings_base64_matches_float(client):
    text = ["base64 please", "and another"]
    _, as_float = checks.embeddings(client, model="echo", input=text)
    _, as_b64 = checks.embeddings(client, "base64", model="echo", input=text)
    for f, b in zip(as_float["data"], as_b64["data"]):
        assert isinstance(b["embedding"], str)
        decoded = openapi_schema.decode_base64_embedding(b["embedding"])
        assert len(decoded) == EMBEDDING_DIM
        assert decoded == pytest.approx(f["embedding"], rel=1e-6, abs=1e-7)


def test_embeddings_sdk_default_path(client):
    # Without encoding_format the SDK asks for base64 and decodes it itself.
    reply = client.embeddings.create(model="echo", input="sdk default")
    vector = reply.data[0].embedding
    assert len(vector) == EMBEDDING_DIM
    assert abs(norm(vector) - 1.0) < 1e-4


def test_embeddings_dimensions(client):
    reply, _ = checks.embeddings(client, model="echo", input="x", dimensions=EMBEDDING_DIM)
    assert len(reply.data[0].embedding) == EMBEDDING_DIM
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="echo", input="x", dimensions=EMBEDDING_DIM + 1,
                                 encoding_format="float")
    assert info.value.param == "dimensions"
    openapi_schema.validate("ErrorResponse", info.value.response.json())


@pytest.mark.parametrize("kwargs,param", [
    ({"input": "x", "encoding_format": "hex"}, "encoding_format"),
    ({"input": 3.5}, "input"),
    ({"input": "x", "extra_body": {"input": None}}, "input"),
])
def test_embeddings_bad_requests(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="echo", **kwargs)
    assert info.value.status_code == 400
    assert info.value.param == param
    openapi_schema.validate("ErrorResponse", info.value.response.json())
