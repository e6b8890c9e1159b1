"""Fixtures for the end-to-end tests: the moat binary, servers with echo models, SDK clients.

One server per test module (module-scoped `server`); modules that need other settings build their
own with `start_server(config)`. Every server is stopped with SIGTERM at the end of its scope and
must exit 0: a crash or a hang in shutdown fails the module.

    def test_x(server, client):                     # the default server and a sync openai client
        client.chat.completions.create(model="echo", messages=[...])
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import openai  # noqa: E402

import http_raw  # noqa: E402
import openapi_schema  # noqa: E402
from moat_process import moat_server  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("MOAT_BUILD", REPO / "build")).resolve()
BINARY = BUILD / "bin" / "moat"
ECHO_PLUGIN = BUILD / "lib" / "moat" / "libmoat_echo.so"

EMBEDDING_DIM = 32
MAX_CONTEXT = 16  # echo-ctx: prompts longer than this many words are refused


# I/O threads of the servers the suite starts. `make test` runs the suite twice: with 2 (Asio's
# reactor, shared by the threads) and with 1 (plain connections on the gateway's own
# edge-triggered epoll set, gateway/http/edge_socket.h).
E2E_THREADS = int(os.environ.get("MOAT_E2E_THREADS", "2"))


def server_section(**overrides) -> dict:
    section = {
        "listen": "127.0.0.1:0",
        "threads": E2E_THREADS,
        "max_body_bytes": "64KiB",
        "max_header_bytes": "8KiB",
        "read_timeout_s": 3,
        "idle_timeout_s": 10,
        "request_timeout_s": 30,
        "drain_timeout_s": 5,
    }
    section.update(overrides)
    return section


def echo_model(name: str, max_queue: int | None = None, **options) -> dict:
    model: dict = {"name": name, "backend": "echo"}
    if max_queue is not None:
        model["max_queue"] = max_queue
    model["options"] = options
    return model


def default_models() -> list[dict]:
    """The models every default server offers (see docs/testing.md for what each is for)."""
    return [
        echo_model("echo", embedding_dim=EMBEDDING_DIM),
        echo_model("echo-chunk1", chunk_chars=1),
        echo_model("echo-slow", delay_ms=20),
        echo_model("echo-queue1", max_queue=1, delay_ms=200),
        echo_model("echo-fail-first", fault="fail_before_first"),
        echo_model("echo-fail-mid", fault="fail_mid_stream", fault_after_deltas=2),
        echo_model("echo-ctx", max_context=MAX_CONTEXT),
    ]


def default_config(**server_overrides) -> dict:
    return {"server": server_section(**server_overrides), "models": default_models()}


@pytest.fixture(scope="session")
def moat_binary() -> Path:
    if not BINARY.is_file() or not os.access(BINARY, os.X_OK):
        pytest.skip(f"moat binary not found at {BINARY} (build it, or set MOAT_BUILD)")
    if not ECHO_PLUGIN.is_file():
        pytest.skip(f"echo plugin not found at {ECHO_PLUGIN}")
    return BINARY


@pytest.fixture(scope="session")
def openapi_file():
    """Modules that validate against ../shared/openai/openapi.json use this to skip without it:
    pytestmark = pytest.mark.usefixtures("openapi_file")."""
    if not openapi_schema.available():
        pytest.skip(f"OpenAPI file missing at {openapi_schema.SCHEMA_PATH}")
    return openapi_schema.SCHEMA_PATH


@pytest.fixture(scope="module")
def start_server(moat_binary, tmp_path_factory, request):
    """Factory: start_server(config, name=...) -> a started moat_server, stopped at module end."""
    started: list[moat_server] = []

    def start(config: dict, name: str = "moat") -> moat_server:
        workdir = tmp_path_factory.mktemp(f"{request.module.__name__.rsplit('.', 1)[-1]}-{name}")
        srv = moat_server(moat_binary, workdir, config, name)
        started.append(srv)
        return srv.start()

    yield start
    failures = []
    for srv in started:
        if srv.stopped:
            continue
        if not srv.alive():
            failures.append(f"{srv.name}: died during the tests with status "
                            f"{srv.proc.returncode}\n{srv.log_tail()}")
            continue
        status = srv.stop()
        if status != 0:
            failures.append(f"{srv.name}: exit status {status} after SIGTERM\n{srv.log_tail()}")
    if failures:
        pytest.fail("\n".join(failures))


@pytest.fixture(scope="module")
def server(start_server) -> moat_server:
    return start_server(default_config())


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0,
                       timeout=30) as c:
        yield c


def async_client(server) -> openai.AsyncOpenAI:
    """A fresh async client (create it inside the event loop that uses it)."""
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="unused", max_retries=0,
                              timeout=60)


def assert_serving(server) -> None:
    """The process is alive, /health says 200 and a chat request is answered correctly."""
    assert server.alive(), f"moat exited with status {server.proc.returncode}\n{server.log_tail()}"
    status, _, body = http_raw.request(server, "GET", "/health", timeout=10)
    assert status == 200, f"/health -> {status} {body[:200]!r}"
    status, _, body = http_raw.request_json(
        server, "POST", "/v1/chat/completions",
        {"model": "echo", "messages": [{"role": "user", "content": "still here"}]}, timeout=10)
    assert status == 200, body
    openapi_schema.validate("CreateChatCompletionResponse", body)
    assert body["choices"][0]["message"]["content"] == "still here"
