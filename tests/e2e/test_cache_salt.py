"""cache_salt: the body the backend receives carries a salt derived from the caller's API key, so
tenants cannot probe each other's prefix cache; without keys the client's salt passes unchanged.

The echo model here answers with the body it received (`answer: body`), so the tests read what
the gateway forwarded.
"""

from __future__ import annotations

import hashlib
import json
import secrets

import pytest

import http_raw
from conftest import echo_model, server_section

KEYS = {name: "sk-moat-" + secrets.token_hex(24) for name in ("team-a", "team-b")}


def keyed_config() -> dict:
    return {
        "server": server_section(),
        "models": [echo_model("echo-body", answer="body")],
        "auth": {"api_keys": [{"name": name, "sha256": hashlib.sha256(key.encode()).hexdigest()}
                              for name, key in KEYS.items()]},
    }


@pytest.fixture(scope="module")
def keyed(start_server):
    return start_server(keyed_config(), name="cache-salt-keyed")


@pytest.fixture(scope="module")
def open_server(start_server):
    return start_server({"server": server_section(), "models": [echo_model("echo-body", answer="body")]},
                        name="cache-salt-open")


def forwarded(server, key: str | None, path: str = "/v1/chat/completions", **extra) -> dict:
    """The JSON body the backend received for a request with `extra` fields."""
    if path == "/v1/chat/completions":
        body = {"model": "echo-body", "messages": [{"role": "user", "content": "same prompt"}], **extra}
    else:
        body = {"model": "echo-body", "prompt": "same prompt", **extra}
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    status, _, answer = http_raw.request_json(server, "POST", path, body, headers=headers)
    assert status == 200, answer
    choice = answer["choices"][0]
    return json.loads(choice["message"]["content"] if "message" in choice else choice["text"])


def test_two_keys_get_different_salts_and_one_key_a_stable_one(keyed):
    a1 = forwarded(keyed, KEYS["team-a"])["cache_salt"]
    a2 = forwarded(keyed, KEYS["team-a"])["cache_salt"]
    b = forwarded(keyed, KEYS["team-b"])["cache_salt"]
    assert a1 == a2
    assert a1 != b
    assert len(a1) == 64 and all(c in "0123456789abcdef" for c in a1)


def test_a_client_cannot_choose_another_keys_salt(keyed):
    b = forwarded(keyed, KEYS["team-b"])["cache_salt"]
    # team-a sends team-b's salt as its own: it is mixed with team-a's key, never used as is.
    a_sending_b = forwarded(keyed, KEYS["team-a"], cache_salt=b)["cache_salt"]
    assert a_sending_b != b
    # The client's salt still partitions within one key (vLLM's meaning of the field).
    a_plain = forwarded(keyed, KEYS["team-a"])["cache_salt"]
    assert a_sending_b != a_plain
    assert forwarded(keyed, KEYS["team-a"], cache_salt=b)["cache_salt"] == a_sending_b


def test_completions_and_streams_are_salted_too(keyed):
    chat_salt = forwarded(keyed, KEYS["team-a"])["cache_salt"]
    assert forwarded(keyed, KEYS["team-a"], path="/v1/completions")["cache_salt"] == chat_salt
    body = {"model": "echo-body", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    status, _, raw = http_raw.request(keyed, "POST", "/v1/chat/completions", body,
                                      headers={"Authorization": f"Bearer {KEYS['team-b']}"})
    assert status == 200
    text = "".join(json.loads(d)["choices"][0]["delta"].get("content", "")
                   for d in http_raw.sse_data(raw) if d != "[DONE]" and json.loads(d)["choices"])
    assert json.loads(text)["cache_salt"] == forwarded(keyed, KEYS["team-b"])["cache_salt"]


def test_without_keys_the_clients_salt_passes_unchanged(open_server):
    assert "cache_salt" not in forwarded(open_server, None)
    assert forwarded(open_server, None, cache_salt="tenant-7")["cache_salt"] == "tenant-7"
    assert forwarded(open_server, None, cache_salt=None)["cache_salt"] is None  # null: not given


def test_a_null_salt_counts_as_none_with_keys(keyed):
    assert forwarded(keyed, KEYS["team-a"], cache_salt=None)["cache_salt"] == forwarded(keyed, KEYS["team-a"])["cache_salt"]


@pytest.mark.parametrize("bad", [12, "", ["a"], {"a": "b"}])
def test_a_cache_salt_that_is_not_a_non_empty_string_is_400(open_server, bad):
    body = {"model": "echo-body", "messages": [{"role": "user", "content": "x"}], "cache_salt": bad}
    status, _, answer = http_raw.request_json(open_server, "POST", "/v1/chat/completions", body)
    assert status == 400, answer
    assert answer["error"]["param"] == "cache_salt"
    assert answer["error"]["type"] == "invalid_request_error"
