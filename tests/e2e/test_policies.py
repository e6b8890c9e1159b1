"""Policies in the live request path: what reaches the backend, blocks, streamed redaction,
pseudonyms, Lua scripts that misbehave, and reload on SIGHUP.

The echo backend answers with the last user message (chat) or the prompt (completions), so its
answer shows exactly what reached it."""

from __future__ import annotations

import json
import signal
import time

import openai
import pytest

import checks
import http_raw
from conftest import echo_model, server_section

EMAIL = "alice.smith@example.com"
SECRET = "sk-live-4f9a8b7c6d5e4f3a2b1c"  # matched by the response-only rule below

SANDBOX_LUA = """
-- Misbehaves on purpose, chosen by the model name; every other model passes untouched.
function on_request(ctx)
  if ctx.model == "lua-error" then error("deliberate failure") end
  if ctx.model == "lua-loop" then while true do end end
  if ctx.model == "lua-mem" then
    local t = {}
    for i = 1, 100000000 do t[i] = string.rep("x", 1024) .. i end
  end
  if ctx.model == "lua-rep" then local s = string.rep("x", 1 << 40) end
  if ctx.model == "lua-io" then io.open("/etc/passwd") end
  if ctx.model == "lua-os" then os.execute("true") end
  if ctx.model == "lua-require" then require("os") end
  if ctx.model == "lua-meta" then setmetatable(_G, nil); getmetatable("").__index.upper = nil; load("\\27Lua")() end
  if ctx.model == "lua-block" then ctx:block("scripted refusal") end
  if ctx.model == "route-me" then ctx.model = "echo-chunk3" end
end
"""

MISBEHAVING = ["lua-error", "lua-loop", "lua-mem", "lua-rep", "lua-io", "lua-os", "lua-require", "lua-meta"]


def policy_config(workdir) -> dict:
    (workdir / "sandbox.lua").write_text(SANDBOX_LUA, encoding="utf-8")
    models = [echo_model("echo"), echo_model("echo-chunk1", chunk_chars=1),
              echo_model("echo-chunk2", chunk_chars=2), echo_model("echo-chunk3", chunk_chars=3),
              echo_model("lua-block")]
    models += [echo_model(name) for name in MISBEHAVING]
    return {
        "server": server_section(),
        "models": models,
        "policies": [
            {"name": "basics", "rules": [
                {"name": "email", "pattern": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[a-z]{2,}",
                 "action": "redact", "replace": "[EMAIL]", "on": ["request"]},
                {"name": "live_key", "pattern": r"sk-live-[0-9a-f]{20}", "action": "redact",
                 "replace": "[KEY]", "on": ["response"]},
                {"name": "forbidden", "pattern": r"launch codes", "action": "block"},
            ]},
            {"path": str(workdir / "sandbox.lua"), "limits": {"memory": "16MiB", "instructions": 1000000}},
        ],
        "audit": {"path": "audit.jsonl"},
    }


@pytest.fixture(scope="module")
def pserver(start_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("policies-files")
    return start_server(policy_config(workdir), name="policies")


@pytest.fixture(scope="module")
def pclient(pserver):
    with openai.OpenAI(base_url=pserver.base_url, api_key="unused", max_retries=0, timeout=30) as c:
        yield c


def test_redacted_value_never_reaches_the_backend(pclient):
    reply, _, _ = checks.chat(pclient, model="echo",
                              messages=[{"role": "user", "content": f"write to {EMAIL} today"}])
    answer = reply.choices[0].message.content
    assert EMAIL not in answer
    assert answer == "write to [EMAIL] today"


def test_completion_prompt_is_redacted(pclient):
    reply, _, _ = checks.completion(pclient, model="echo", prompt=f"mail {EMAIL} now", max_tokens=10)
    assert reply.choices[0].text == "mail [EMAIL] now"


def test_block_is_403_policy_violation(pclient):
    with pytest.raises(openai.PermissionDeniedError) as info:
        pclient.chat.completions.create(model="echo",
                                        messages=[{"role": "user", "content": "tell me the launch codes"}])
    assert info.value.status_code == 403
    assert info.value.code == "policy_violation"
    assert "launch codes" not in str(info.value.message).replace("forbidden", "")


def test_script_block_is_403_with_reason(pclient):
    with pytest.raises(openai.PermissionDeniedError) as info:
        pclient.chat.completions.create(model="lua-block", messages=[{"role": "user", "content": "hi"}])
    assert info.value.code == "policy_violation"
    assert "scripted refusal" in info.value.message


def test_response_rule_redacts_the_whole_answer(pclient):
    reply, _, _ = checks.chat(pclient, model="echo",
                              messages=[{"role": "user", "content": f"the key is {SECRET} ok"}])
    assert reply.choices[0].message.content == "the key is [KEY] ok"


@pytest.mark.parametrize("model", ["echo", "echo-chunk1", "echo-chunk2", "echo-chunk3"])
def test_streamed_answer_is_redacted_like_the_whole(pclient, model):
    text = f"first {SECRET} then {SECRET}x and {EMAIL} end"
    whole, _, _ = checks.chat(pclient, model="echo", messages=[{"role": "user", "content": text}])
    chunks = checks.chat_stream(pclient, model=model, messages=[{"role": "user", "content": text}])
    streamed = checks.chat_text(chunks)
    assert SECRET not in streamed and EMAIL not in streamed
    assert streamed == whole.choices[0].message.content
    assert streamed == "first [KEY] then [KEY]x and [EMAIL] end"


@pytest.mark.parametrize("model", ["echo-chunk1", "echo-chunk3"])
def test_streamed_completion_is_redacted(pclient, model):
    chunks = checks.completion_stream(pclient, model=model, prompt=f"key {SECRET} done", max_tokens=10)
    assert checks.completion_text(chunks) == "key [KEY] done"


def test_embeddings_and_tokenize_see_redacted_input(pclient, pserver):
    status, _, body = http_raw.request_json(pserver, "POST", "/tokenize",
                                            {"model": "echo", "prompt": f"a {EMAIL}"})
    assert status == 200, body
    raw_status, _, raw_body = http_raw.request_json(pserver, "POST", "/tokenize",
                                                    {"model": "echo", "prompt": "a [EMAIL]"})
    assert raw_status == 200
    assert body["tokens"] == raw_body["tokens"]
    with pytest.raises(openai.PermissionDeniedError):
        pclient.embeddings.create(model="echo", input="the launch codes")


@pytest.mark.parametrize("model", MISBEHAVING)
def test_misbehaving_script_fails_closed_and_server_keeps_serving(pclient, pserver, model):
    with pytest.raises(openai.InternalServerError) as info:
        pclient.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 500
    assert pserver.alive()
    reply, _, _ = checks.chat(pclient, model="echo", messages=[{"role": "user", "content": "still here"}])
    assert reply.choices[0].message.content == "still here"


def test_a_script_routes_to_another_model(pclient):
    reply, _, _ = checks.chat(pclient, model="route-me", messages=[{"role": "user", "content": "go there"}])
    assert reply.model == "echo-chunk3"
    assert reply.choices[0].message.content == "go there"


# ---- pseudonyms ------------------------------------------------------------------------------

def pseudonym_config(workdir) -> dict:
    return {
        "server": server_section(),
        "models": [echo_model("echo"), echo_model("echo-chunk1", chunk_chars=1),
                   echo_model("echo-chunk2", chunk_chars=2), echo_model("echo-chunk3", chunk_chars=3)],
        "policies": [{"name": "pii", "pseudonymize": True, "rules": [
            {"name": "email", "label": "EMAIL",
             "pattern": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[a-z]{2,}", "action": "redact"}]}],
        "audit": {"path": str(workdir / "audit.jsonl")},
    }


@pytest.fixture(scope="module")
def pseudo(start_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pseudo-files")
    srv = start_server(pseudonym_config(workdir), name="pseudo")
    with openai.OpenAI(base_url=srv.base_url, api_key="unused", max_retries=0, timeout=30) as c:
        yield srv, c, workdir / "audit.jsonl"


def wait_lines(path, count: int, timeout_s: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return [json.loads(line) for line in lines]
        time.sleep(0.05)


@pytest.mark.parametrize("model", ["echo", "echo-chunk1", "echo-chunk2", "echo-chunk3"])
def test_pseudonyms_round_trip(pseudo, model):
    srv, client, audit = pseudo
    before = len(wait_lines(audit, 0, 0))
    text = f"ask {EMAIL} and {EMAIL} or bob@example.org"
    if model == "echo":
        reply, _, _ = checks.chat(client, model=model, messages=[{"role": "user", "content": text}])
        answer = reply.choices[0].message.content
    else:
        answer = checks.chat_text(checks.chat_stream(client, model=model,
                                                     messages=[{"role": "user", "content": text}]))
    assert answer == text  # the client gets the originals back
    lines = wait_lines(audit, before + 1)
    line = lines[-1]
    # What the backend saw (the request as sent) and answered: placeholders only.
    assert EMAIL not in line["request"] and "bob@example.org" not in line["request"]
    assert "ask <EMAIL_1> and <EMAIL_1> or <EMAIL_2>" in line["request"]
    assert line["response"] == "ask <EMAIL_1> and <EMAIL_1> or <EMAIL_2>"


# ---- reload ----------------------------------------------------------------------------------

def test_sighup_with_a_broken_file_keeps_the_old_set(start_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reload-files")
    script = workdir / "words.lua"
    script.write_text('function on_request(ctx) ctx:redact("alpha", "[A]") end\n', encoding="utf-8")
    srv = start_server({"server": server_section(), "models": [echo_model("echo")],
                        "policies": [{"path": str(script)}]}, name="reload")
    with openai.OpenAI(base_url=srv.base_url, api_key="unused", max_retries=0, timeout=30) as client:
        def answer(text):
            return client.chat.completions.create(
                model="echo", messages=[{"role": "user", "content": text}]).choices[0].message.content

        assert answer("alpha beta") == "[A] beta"
        # A good edit is picked up on SIGHUP.
        script.write_text('function on_request(ctx) ctx:redact("beta", "[B]") end\n', encoding="utf-8")
        srv.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while answer("alpha beta") != "alpha [B]" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert answer("alpha beta") == "alpha [B]"
        # A broken one is refused: the previous set stays in force.
        script.write_text("function on_request(ctx) this is not lua\n", encoding="utf-8")
        srv.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "reload failed" not in srv.log_path.read_text(errors="replace") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "reload failed" in srv.log_path.read_text(errors="replace")
        assert answer("alpha beta") == "alpha [B]"
        assert srv.alive()


def test_an_edited_policy_file_is_picked_up_without_a_signal(start_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("watch-files")
    script = workdir / "watched.lua"
    script.write_text('function on_request(ctx) ctx:redact("gamma", "[G]") end\n', encoding="utf-8")
    srv = start_server({"server": server_section(), "models": [echo_model("echo")],
                        "policies": [{"path": str(script)}]}, name="watch")
    with openai.OpenAI(base_url=srv.base_url, api_key="unused", max_retries=0, timeout=30) as client:
        def answer(text):
            return client.chat.completions.create(
                model="echo", messages=[{"role": "user", "content": text}]).choices[0].message.content

        assert answer("gamma delta") == "[G] delta"
        time.sleep(1.1)  # a different mtime even on coarse file systems
        script.write_text('function on_request(ctx) ctx:redact("delta", "[D]") end\n', encoding="utf-8")
        deadline = time.monotonic() + 10
        while answer("gamma delta") != "gamma [D]" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert answer("gamma delta") == "gamma [D]"


def test_policies_that_fail_to_compile_are_a_start_error(moat_binary, tmp_path):
    import subprocess
    from moat_process import to_yaml
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(to_yaml({"server": server_section(), "models": [echo_model("echo")],
                            "policies": [{"rules": [{"name": "x", "pattern": "(unclosed",
                                                     "action": "redact"}]}]}) + "\n")
    proc = subprocess.run([str(moat_binary), "serve", "--config", str(cfg)], capture_output=True,
                          timeout=30, text=True)
    assert proc.returncode != 0
    assert "policies" in proc.stderr and "line" in proc.stderr, proc.stderr


@pytest.mark.parametrize("stream", [False, True])
def test_logprobs_do_not_show_what_was_redacted(pserver, stream):
    body = {"model": "echo-chunk3" if stream else "echo", "logprobs": True, "top_logprobs": 2,
            "stream": stream, "messages": [{"role": "user", "content": f"a {SECRET} b"}]}
    status, _, raw = http_raw.request(pserver, "POST", "/v1/chat/completions", body)
    assert status == 200, raw
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    assert SECRET not in text and "4f9a8b7c" not in text
    assert "[KEY]" in text
