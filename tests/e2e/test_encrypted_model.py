"""Encrypted checkpoints end to end: `moat keygen` and `moat encrypt` make an encrypted copy of
the tinystories-656K fixture's model.safetensors in a temp model folder (the small json files
copied beside it, in the temp dir only), `moat serve` loads it with `key_file:` (and `key_env:`)
and answers a temperature-0 chat exactly as the plaintext model does, logprobs included. A wrong
key, a missing key and a key for a plaintext model each make `moat serve` exit non-zero with a
message naming the weights file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import openai
import pytest

from conftest import BUILD, REPO, server_section
from moat_process import moat_server

FIXTURE = Path(os.environ.get("MOAT_FIXTURES_DIR", REPO.parent / "shared" / "fixtures")) / "tinystories-656K-hf"
CPU_PLUGIN = BUILD / "lib" / "moat" / "libmoat_cpu.so"
KEY_ENV = "MOAT_E2E_CHECKPOINT_KEY"


def cpu_model(name: str, path: Path, **options) -> dict:
    opts = {"path": str(path), "ctx": 256, "threads": 1, "kv_cache_mb": 16}
    opts.update(options)
    return {"name": name, "backend": "cpu", "max_queue": 16, "options": opts}


def run_moat(binary: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def encrypted(moat_binary, tmp_path_factory) -> dict:
    if not CPU_PLUGIN.is_file():
        pytest.skip(f"cpu plugin not found at {CPU_PLUGIN}")
    if not (FIXTURE / "model.safetensors").is_file():
        pytest.skip(f"fixture model missing at {FIXTURE} (see ../shared/fixtures/README.md)")
    base = tmp_path_factory.mktemp("encrypted-model")
    key, other_key = base / "model.key", base / "other.key"
    for k in (key, other_key):
        done = run_moat(moat_binary, "keygen", str(k))
        assert done.returncode == 0, done.stderr
        assert (k.stat().st_mode & 0o777) == 0o600
    folder = base / "model"
    folder.mkdir()
    for f in FIXTURE.iterdir():
        if f.suffix == ".json":
            shutil.copyfile(f, folder / f.name)
    weights = folder / "model.safetensors"
    done = run_moat(moat_binary, "encrypt", "--key-file", str(key), str(FIXTURE / "model.safetensors"),
                    str(weights))
    assert done.returncode == 0, done.stderr
    plain_bytes = (FIXTURE / "model.safetensors").read_bytes()
    cipher_bytes = weights.read_bytes()
    assert cipher_bytes != plain_bytes and cipher_bytes[:8] == b"MOATCKPT"
    return {"folder": folder, "weights": weights, "key": key, "other_key": other_key, "base": base}


@pytest.fixture(scope="module")
def enc_server(start_server, encrypted):
    os.environ[KEY_ENV] = encrypted["key"].read_text().strip()
    config = {
        "server": server_section(request_timeout_s=120),
        "models": [
            cpu_model("plain", FIXTURE),
            cpu_model("encrypted", encrypted["folder"], key_file=str(encrypted["key"])),
            cpu_model("encrypted-env", encrypted["folder"], key_env=KEY_ENV),
        ],
    }
    try:
        yield start_server(config, name="encrypted")
    finally:
        os.environ.pop(KEY_ENV, None)


@pytest.fixture(scope="module")
def client(enc_server):
    with openai.OpenAI(base_url=enc_server.base_url, api_key="unused", max_retries=0, timeout=120) as c:
        yield c


def chat(client, model: str, text: str):
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], max_tokens=24, temperature=0,
        logprobs=True, top_logprobs=4)


def logprob_rows(reply) -> list:
    return [(e.token, e.logprob, [(t.token, t.logprob) for t in e.top_logprobs])
            for e in reply.choices[0].logprobs.content]


@pytest.mark.parametrize("model", ["encrypted", "encrypted-env"])
def test_encrypted_copy_answers_exactly_as_the_plaintext(client, model):
    for text in ("Once upon a time", "The dog"):
        want = chat(client, "plain", text)
        got = chat(client, model, text)
        assert want.choices[0].message.content, want
        assert got.choices[0].message.content == want.choices[0].message.content
        assert got.choices[0].finish_reason == want.choices[0].finish_reason
        assert got.usage.completion_tokens == want.usage.completion_tokens
        assert logprob_rows(got) == logprob_rows(want)  # bit-identical logits give equal logprobs


def failed_start(binary: Path, workdir: Path, name: str, model: dict) -> tuple[int, str]:
    """Starts `moat serve` with one model that must fail to load; returns (exit status, stderr)."""
    srv = moat_server(binary, workdir, {"server": server_section(), "models": [model]}, name)
    with pytest.raises(RuntimeError):
        srv.start()
    assert srv.proc is not None and srv.proc.poll() is not None
    return srv.proc.returncode, srv.log_path.read_text(encoding="utf-8", errors="replace")


def test_wrong_key_makes_serve_exit_naming_the_file(moat_binary, encrypted):
    status, log = failed_start(moat_binary, encrypted["base"] / "wrong-key", "wrong-key",
                               cpu_model("encrypted", encrypted["folder"], key_file=str(encrypted["other_key"])))
    assert status != 0
    assert str(encrypted["weights"]) in log, log
    assert "chunk 0" in log, log
    assert encrypted["other_key"].read_text().strip() not in log  # the key never reaches a log


def test_no_key_for_an_encrypted_model_is_refused(moat_binary, encrypted):
    status, log = failed_start(moat_binary, encrypted["base"] / "no-key", "no-key",
                               cpu_model("encrypted", encrypted["folder"]))
    assert status != 0
    assert str(encrypted["weights"]) in log and "is encrypted; set key_file or key_env" in log, log


def test_key_for_a_plaintext_model_is_refused(moat_binary, encrypted):
    status, log = failed_start(moat_binary, encrypted["base"] / "plain-key", "plain-key",
                               cpu_model("plain", FIXTURE, key_file=str(encrypted["key"])))
    assert status != 0
    assert "model.safetensors" in log and "not an encrypted checkpoint" in log, log
