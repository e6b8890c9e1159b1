"""API keys on a real `moat serve`: missing, wrong and right keys, the model allow-list, rpm and
tpm limits with their headers, every route probed for being open, and the key never logged.

The keys are made here; the config holds only their SHA-256, as `moat key new` prints it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import signal
import time

import openai
import pytest

import http_raw
from conftest import default_models, server_section


def make_key() -> str:
    return "sk-moat-" + secrets.token_urlsafe(32).replace("-", "a").replace("_", "b")


KEYS = {name: make_key() for name in ("full", "narrow", "rpm", "tpm", "tpm_stream", "conc")}


def key_entry(name: str, **extra) -> dict:
    entry = {"name": name, "sha256": hashlib.sha256(KEYS[name].encode()).hexdigest()}
    entry.update(extra)
    return entry


def auth_config(metrics_public: bool = False) -> dict:
    return {
        "server": server_section(),
        "models": default_models(),
        "auth": {
            "api_keys": [
                key_entry("full", models=["*"]),
                key_entry("narrow", models=["echo"]),
                key_entry("rpm", rpm=2),
                key_entry("tpm", tpm=12),
                key_entry("tpm_stream", tpm=12),
                key_entry("conc", max_concurrent=1),
            ],
            "metrics_public": metrics_public,
        },
    }


# Every route the gateway serves, with a body that would succeed given a key (method, path, body).
ROUTES = [
    ("POST", "/v1/chat/completions", {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}),
    ("POST", "/v1/completions", {"model": "echo", "prompt": "hi"}),
    ("POST", "/v1/embeddings", {"model": "echo", "input": "hi"}),
    ("GET", "/v1/models", None),
    ("GET", "/v1/models/echo", None),
    ("POST", "/tokenize", {"model": "echo", "prompt": "hi"}),
    ("POST", "/detokenize", {"model": "echo", "tokens": [1, 2]}),
    ("GET", "/metrics", None),
    ("GET", "/health", None),
    # Not routes: still 401 without a key (a 404 would tell a scanner what exists).
    ("GET", "/nope", None),
    ("GET", "/v1/chat/completions", None),
    ("POST", "/v1/models", {}),
]


def bearer(name: str) -> dict:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def chat(server, key: str | None, model: str = "echo", content: str = "hello there"):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return http_raw.request_json(server, "POST", "/v1/chat/completions",
                                 {"model": model, "messages": [{"role": "user", "content": content}]},
                                 headers=headers)


@pytest.fixture(scope="module")
def keyed(start_server, tmp_path_factory):
    audit = tmp_path_factory.mktemp("auth-audit") / "audit.jsonl"
    config = auth_config()
    config["audit"] = {"path": str(audit)}
    srv = start_server(config, name="keyed")
    srv.audit_path = audit
    return srv


@pytest.fixture(scope="module")
def keyed_public_metrics(start_server):
    return start_server(auth_config(metrics_public=True), name="public-metrics")


def assert_invalid_key(status, body):
    assert status == 401, body
    assert body["error"]["code"] == "invalid_api_key"
    assert body["error"]["type"] == "invalid_request_error"


def test_missing_key_is_401(keyed):
    assert_invalid_key(*[chat(keyed, None)[i] for i in (0, 2)])


def test_wrong_key_is_401_and_not_echoed(keyed):
    wrong = make_key()
    status, _, body = chat(keyed, wrong)
    assert_invalid_key(status, body)
    assert wrong not in str(body)
    status, _, body = http_raw.request_json(keyed, "GET", "/v1/models", headers={"Authorization": "Basic abc"})
    assert_invalid_key(status, body)


def test_right_key_answers(keyed):
    status, _, body = chat(keyed, KEYS["full"], content="right key")
    assert status == 200, body
    assert body["choices"][0]["message"]["content"] == "right key"


def test_openai_sdk_with_key(keyed):
    with openai.OpenAI(base_url=keyed.base_url, api_key=KEYS["full"], max_retries=0, timeout=30) as c:
        out = c.chat.completions.create(model="echo", messages=[{"role": "user", "content": "sdk"}])
        assert out.choices[0].message.content == "sdk"
    with openai.OpenAI(base_url=keyed.base_url, api_key=make_key(), max_retries=0, timeout=30) as c:
        with pytest.raises(openai.AuthenticationError):
            c.chat.completions.create(model="echo", messages=[{"role": "user", "content": "sdk"}])


def test_model_not_allowed_is_403(keyed):
    status, _, body = chat(keyed, KEYS["narrow"], model="echo-slow")
    assert status == 403, body
    assert body["error"]["code"] == "model_not_allowed"
    status, _, body = chat(keyed, KEYS["narrow"], model="echo")
    assert status == 200, body
    # The model in the path counts too.
    status, _, body = http_raw.request_json(keyed, "GET", "/v1/models/echo-ctx", headers=bearer("narrow"))
    assert status == 403, body
    status, _, body = http_raw.request_json(keyed, "GET", "/v1/models/echo", headers=bearer("narrow"))
    assert status == 200, body


def test_model_list_shows_only_allowed_models(keyed):
    status, _, body = http_raw.request_json(keyed, "GET", "/v1/models", headers=bearer("narrow"))
    assert status == 200, body
    assert [m["id"] for m in body["data"]] == ["echo"]
    assert body["object"] == "list" and body["data"][0]["object"] == "model"
    status, _, body = http_raw.request_json(keyed, "GET", "/v1/models", headers=bearer("full"))
    assert status == 200, body
    assert sorted(m["id"] for m in body["data"]) == sorted(m["name"] for m in default_models())


def test_key_name_reaches_the_audit_line(keyed):
    status, _, body = chat(keyed, KEYS["narrow"], content="audit me")
    assert status == 200, body
    for _ in range(100):
        lines = [json.loads(x) for x in keyed.audit_path.read_text().splitlines() if x.strip()] \
            if keyed.audit_path.exists() else []
        if any(line.get("key") == "narrow" for line in lines):
            break
        time.sleep(0.05)
    assert any(line.get("key") == "narrow" for line in lines), lines[-3:]
    assert all(KEYS["narrow"] not in json.dumps(line) for line in lines)


def test_over_rpm_is_429_with_headers(keyed):
    statuses = []
    for _ in range(4):
        status, headers, body = chat(keyed, KEYS["rpm"])
        statuses.append(status)
        if status == 200:
            assert headers["x-ratelimit-limit-requests"] == "2"
            assert "x-ratelimit-remaining-requests" in headers
            assert "x-ratelimit-reset-requests" in headers
        else:
            assert status == 429, body
            assert body["error"]["code"] == "rate_limit_exceeded"
            assert body["error"]["type"] == "requests"
            assert int(headers["retry-after"]) >= 1
            assert len(headers.get_all("retry-after")) == 1
    assert statuses[:2] == [200, 200], statuses
    assert statuses[2:] == [429, 429], statuses


def test_over_tpm_is_429_after_actual_usage(keyed):
    # The first request is admitted (bucket full), and charged with its real usage, which is
    # more than the 12 tokens a minute this key has: the next one is refused for tokens.
    status, headers, body = chat(keyed, KEYS["tpm"], content=" ".join(["word"] * 20))
    assert status == 200, body
    assert body["usage"]["total_tokens"] > 12
    assert headers["x-ratelimit-limit-tokens"] == "12"
    status, headers, body = chat(keyed, KEYS["tpm"], content="again")
    assert status == 429, body
    assert body["error"]["type"] == "tokens"
    assert int(headers["retry-after"]) >= 1


def test_over_tpm_after_a_stream_without_usage(keyed):
    # A streamed answer is charged with the backend's usage even when the client did not ask
    # for a usage chunk (no stream_options): the stream itself carries no count.
    body = {"model": "echo", "stream": True,
            "messages": [{"role": "user", "content": " ".join(["word"] * 20)}]}
    status, headers, raw = http_raw.request(keyed, "POST", "/v1/chat/completions", body,
                                            headers=bearer("tpm_stream"))
    assert status == 200, raw
    text = raw.decode()
    assert "data: [DONE]" in text
    assert "total_tokens" not in text
    status, headers, answer = chat(keyed, KEYS["tpm_stream"], content="again")
    assert status == 429, answer
    assert answer["error"]["type"] == "tokens"


def test_max_concurrent_released_when_request_ends(keyed):
    sock = http_raw.connect(keyed)
    try:
        body = ('{"model":"echo-slow","stream":true,"messages":[{"role":"user","content":"'
                + " ".join(["slow"] * 40) + '"}]}').encode()
        sock.sendall(http_raw.http_post("/v1/chat/completions", body,
                                        f"Authorization: Bearer {KEYS['conc']}\r\n"))
        time.sleep(0.2)  # the stream is running (40 deltas at 20 ms each)
        status, _, err = chat(keyed, KEYS["conc"])
        assert status == 429, err
        reply = http_raw.read_response(sock, timeout=20)
        assert reply.status == 200
    finally:
        sock.close()
    for _ in range(50):  # the slot is freed when the stream's last chunk is written
        status, _, out = chat(keyed, KEYS["conc"])
        if status == 200:
            break
        time.sleep(0.05)
    assert status == 200, out


@pytest.mark.parametrize("method,path,body", ROUTES)
def test_every_route_needs_a_key(keyed, method, path, body):
    status, _, data = http_raw.request(keyed, method, path, body)
    if path == "/health":
        assert status == 200, data
    else:
        assert status == 401, f"{method} {path} is open without a key: {status} {data[:200]!r}"


@pytest.mark.parametrize("method,path,body", ROUTES[:9])
def test_every_route_works_with_a_key(keyed, method, path, body):
    status, _, data = http_raw.request(keyed, method, path, body, headers=bearer("full"))
    assert status == 200, f"{method} {path}: {status} {data[:300]!r}"


def test_metrics_public_only_when_configured(keyed_public_metrics):
    status, _, data = http_raw.request(keyed_public_metrics, "GET", "/metrics")
    assert status == 200, data
    status, _, _ = http_raw.request(keyed_public_metrics, "GET", "/v1/models")
    assert status == 401


def test_key_never_in_the_log(keyed):
    chat(keyed, KEYS["full"], content="log check")
    chat(keyed, make_key())
    log = keyed.log_path.read_text(errors="replace")
    for key in KEYS.values():
        assert key not in log
        assert key[8:] not in log


def test_keys_file_reloaded_on_sighup(start_server, tmp_path_factory):
    from moat_process import to_yaml

    keys_dir = tmp_path_factory.mktemp("keys-file")
    keys_file = keys_dir / "keys.yaml"
    keys_file.write_text(to_yaml({"api_keys": [key_entry("full")]}) + "\n")
    config = {"server": server_section(), "models": default_models(),
              "auth": {"keys_file": str(keys_file)}}
    srv = start_server(config, name="keys-file")
    assert chat(srv, KEYS["full"])[0] == 200
    assert chat(srv, KEYS["narrow"])[0] == 401

    keys_file.write_text(to_yaml({"api_keys": [key_entry("narrow", models=["echo"])]}) + "\n")
    srv.proc.send_signal(signal.SIGHUP)
    for _ in range(100):
        if chat(srv, KEYS["narrow"])[0] == 200:
            break
        time.sleep(0.05)
    assert chat(srv, KEYS["narrow"])[0] == 200
    assert chat(srv, KEYS["full"])[0] == 401  # removed from the file: refused from now on

    # A broken file keeps the keys in force.
    keys_file.write_text("api_keys: [ {name: x, sha256: nothex} ]\n")
    srv.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert srv.alive()
    assert chat(srv, KEYS["narrow"])[0] == 200
