"""The audit trail of a live server: one line per request (errors and blocks included), no raw
value in it, and `moat audit verify` passing on it and catching an edited or a deleted line."""

from __future__ import annotations

import json
import subprocess
import time

import openai
import pytest

import http_raw
from conftest import echo_model, server_section

EMAIL = "carol.jones@example.net"
SECRET = "sk-live-0a1b2c3d4e5f6a7b8c9d"


@pytest.fixture(scope="module")
def audited(start_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("audit-files")
    audit = workdir / "audit.jsonl"
    tagger = workdir / "tagger.lua"
    tagger.write_text('function on_request(ctx) ctx:tag("asked", ctx.model) end\n'
                      'function on_response(ctx) ctx:tag("answer_chars", tostring(#ctx.text)) end\n',
                      encoding="utf-8")
    config = {
        "server": server_section(),
        "models": [echo_model("echo", embedding_dim=8), echo_model("echo-chunk2", chunk_chars=2),
                   echo_model("echo-fail-first", fault="fail_before_first")],
        "policies": [{"name": "basics", "rules": [
            {"name": "email", "pattern": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[a-z]{2,}",
             "action": "redact", "replace": "[EMAIL]"},
            {"name": "live_key", "pattern": r"sk-live-[0-9a-f]{20}", "action": "redact",
             "replace": "[KEY]"},
            {"name": "forbidden", "pattern": r"launch codes", "action": "block"},
        ]}, {"path": str(tagger)}],
        "audit": {"path": str(audit)},
    }
    srv = start_server(config, name="audited")
    with openai.OpenAI(base_url=srv.base_url, api_key="unused", max_retries=0, timeout=30) as client:
        client.chat.completions.create(model="echo", messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": f"mail {EMAIL} the key {SECRET}"}])
        with client.chat.completions.create(model="echo-chunk2", stream=True, messages=[
                {"role": "user", "content": f"stream {SECRET} and {EMAIL}"}]) as stream:
            for _ in stream:
                pass
        client.completions.create(model="echo", prompt=f"complete {EMAIL}", max_tokens=5)
        client.embeddings.create(model="echo", input=f"embed {EMAIL}")
        with pytest.raises(openai.PermissionDeniedError):
            client.chat.completions.create(model="echo", messages=[
                {"role": "user", "content": f"{EMAIL} wants the launch codes"}])
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="no-such-model",
                                           messages=[{"role": "user", "content": f"hi {EMAIL}"}])
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="echo", temperature=9,
                                           messages=[{"role": "user", "content": f"hot {EMAIL}"}])
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model="echo-fail-first",
                                           messages=[{"role": "user", "content": f"fail {EMAIL}"}])
    status = srv.stop()
    assert status == 0, srv.log_tail()
    return workdir, audit


EXPECTED = [  # (model, status) in request order
    ("echo", 200), ("echo-chunk2", 200), ("echo", 200), ("echo", 200), ("echo", 403),
    ("no-such-model", 404), ("echo", 400), ("echo-fail-first", None),
]


def read_lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_one_line_per_request_with_status(audited):
    _, audit = audited
    lines = read_lines(audit)
    assert len(lines) == len(EXPECTED)
    # A line is written when its request is over, so a stream's end may trail the next request.
    seen = sorted((l["model"], l["status"]) for l in lines if l["model"] != "echo-fail-first")
    assert seen == sorted((m, s) for m, s in EXPECTED if s is not None)
    failed = [l for l in lines if l["model"] == "echo-fail-first"]
    assert len(failed) == 1 and failed[0]["status"] >= 500
    for i, line in enumerate(lines):
        assert line["seq"] == i
        for field in ("id", "time", "key", "client", "latency_ms", "tokens", "decisions", "tags",
                      "prev", "hash"):
            assert field in line, (field, line)
        assert line["latency_ms"] >= 0
    chat = next(l for l in lines if l["id"].startswith("chatcmpl-") and l["model"] == "echo")
    assert chat["tokens"]["prompt"] > 0 and chat["tokens"]["completion"] > 0
    rules = {(d["rule"], d["action"]) for d in chat["decisions"]}
    assert ("email", "redact") in rules
    # Tags from on_request and, for whole and streamed answers alike, on_response.
    answered = [l for l in lines if l["status"] == 200 and "response" in l]
    assert len(answered) == 3  # chat, streamed chat, completion
    for line in answered:
        assert line["tags"].get("asked") == line["model"], line
        assert int(line["tags"].get("answer_chars", "-1")) == len(line["response"]), line
    invalid = next(l for l in lines if l["status"] == 400)
    assert invalid.get("request") is None and invalid.get("response") is None
    blocked = next(l for l in lines if l["status"] == 403)
    assert any(d["action"] == "block" for d in blocked["decisions"])


def test_no_raw_value_in_the_audit_file(audited):
    _, audit = audited
    text = audit.read_text(encoding="utf-8")
    assert EMAIL not in text
    assert SECRET not in text
    assert "[EMAIL]" in text and "[KEY]" in text


def verify(moat_binary, path):
    return subprocess.run([str(moat_binary), "audit", "verify", str(path)], capture_output=True,
                          text=True, timeout=30)


def test_verify_passes_then_catches_an_edit_and_a_deletion(audited, moat_binary):
    workdir, audit = audited
    ok = verify(moat_binary, audit)
    assert ok.returncode == 0, ok.stdout + ok.stderr

    lines = audit.read_text(encoding="utf-8").splitlines(keepends=True)
    edited = workdir / "edited.jsonl"
    changed = lines[2].replace('"status":200', '"status":201')
    assert changed != lines[2]
    edited.write_text("".join(lines[:2] + [changed] + lines[3:]), encoding="utf-8")
    bad = verify(moat_binary, edited)
    assert bad.returncode != 0
    assert "3" in (bad.stdout + bad.stderr)  # names the first bad line

    deleted = workdir / "deleted.jsonl"
    deleted.write_text("".join(lines[:3] + lines[4:]), encoding="utf-8")
    bad = verify(moat_binary, deleted)
    assert bad.returncode != 0
