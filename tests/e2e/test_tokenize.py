"""POST /tokenize and /detokenize (vLLM's shape) over raw HTTP.

    /tokenize   {"model", "prompt"} or {"model", "messages"} -> {"tokens", "count", "max_model_len"}
    /detokenize {"model", "tokens"}                          -> {"prompt"}
"""

import pytest

import http_raw
import openapi_schema

pytestmark = pytest.mark.usefixtures("openapi_file")

TEXT = "tokenize these five words"


def tokenize(server, body):
    status, headers, reply = http_raw.request_json(server, "POST", "/tokenize", body)
    assert headers["content-type"].startswith("application/json")
    return status, reply


def test_tokenize_prompt(server):
    status, reply = tokenize(server, {"model": "echo", "prompt": TEXT})
    assert status == 200, reply
    assert isinstance(reply["tokens"], list) and reply["tokens"]
    assert all(isinstance(t, int) for t in reply["tokens"])
    assert reply["count"] == len(reply["tokens"])
    assert isinstance(reply["max_model_len"], int)


def test_tokenize_is_deterministic_and_text_dependent(server):
    _, first = tokenize(server, {"model": "echo", "prompt": TEXT})
    _, again = tokenize(server, {"model": "echo", "prompt": TEXT})
    _, other = tokenize(server, {"model": "echo", "prompt": "something else entirely"})
    assert first["tokens"] == again["tokens"]
    assert first["tokens"] != other["tokens"]


def test_tokenize_messages(server):
    status, reply = tokenize(server, {"model": "echo",
                                      "messages": [{"role": "user", "content": TEXT}]})
    assert status == 200, reply
    assert reply["count"] == len(reply["tokens"]) > 0


def test_detokenize_round_trip(server):
    _, tokens = tokenize(server, {"model": "echo", "prompt": TEXT, "add_special_tokens": False})
    status, _, reply = http_raw.request_json(server, "POST", "/detokenize",
                                             {"model": "echo", "tokens": tokens["tokens"]})
    assert status == 200, reply
    assert reply["prompt"] == TEXT


def test_max_model_len_reflects_max_context(server):
    _, reply = tokenize(server, {"model": "echo-ctx", "prompt": "a b"})
    assert reply["max_model_len"] == 16


@pytest.mark.parametrize("path,body,param", [
    ("/tokenize", {"model": "echo"}, None),
    ("/tokenize", {"model": "echo", "prompt": 12}, "prompt"),
    ("/detokenize", {"model": "echo"}, "tokens"),
    ("/detokenize", {"model": "echo", "tokens": ["a"]}, "tokens"),
])
def test_tokenize_bad_requests(server, path, body, param):
    status, _, reply = http_raw.request_json(server, "POST", path, body)
    assert status == 400, reply
    openapi_schema.validate("ErrorResponse", reply)
    if param is not None:
        assert reply["error"]["param"].startswith(param), reply


def test_tokenize_unknown_model(server):
    status, _, reply = http_raw.request_json(server, "POST", "/tokenize",
                                             {"model": "nope", "prompt": "x"})
    assert status == 404
    openapi_schema.validate("ErrorResponse", reply)
    assert reply["error"]["code"] == "model_not_found"
