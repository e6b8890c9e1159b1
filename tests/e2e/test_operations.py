"""What an operator relies on: /health, /metrics, the ready line, config errors, graceful drain."""

import signal
import socket
import subprocess
import threading
import time

import pytest

import checks
import http_raw
from prometheus import scrape, total
from conftest import echo_model, server_section
from moat_process import moat_server, to_yaml

pytestmark = pytest.mark.usefixtures("openapi_file")


def test_health(server):
    status, _, _ = http_raw.request(server, "GET", "/health")
    assert status == 200


def test_ready_line_names_the_bound_port(server):
    assert server.ready_line == f"moat: listening on {server.host}:{server.port}"
    assert server.host == "127.0.0.1"


def test_metrics_build_info_and_names(server):
    samples = scrape(server)
    info = [k for k in samples if k.startswith("moat_build_info")]
    assert info, "moat_build_info missing"
    assert 'version="' in info[0] and samples[info[0]] == 1
    for name in ("moat:num_requests_running", "moat:num_requests_waiting"):
        assert any(k.startswith(name) for k in samples), f"{name} missing"


def test_metrics_count_requests_and_tokens(server, client):
    before = scrape(server)
    prompt = "count these six words right now"
    reply = client.completions.create(model="echo", prompt=prompt)
    assert reply.choices[0].text == prompt
    chunks = list(client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "two words"}], stream=True))
    assert chunks
    after = scrape(server)

    def delta(name):
        return total(after, name) - total(before, name)

    assert delta("moat:prompt_tokens_total") == 6 + 2
    assert delta("moat:generation_tokens_total") == 6 + 2
    assert delta("moat:request_success_total") == 2
    assert delta("moat:e2e_request_latency_seconds_count") == 2
    assert delta("moat:time_to_first_token_seconds_count") >= 1
    buckets = [k for k in after if k.startswith("moat:e2e_request_latency_seconds_bucket")]
    assert any('le="+Inf"' in k for k in buckets), "latency histogram without +Inf bucket"


def test_metrics_count_errors(server, client):
    before = scrape(server)
    status, _, _ = http_raw.request(server, "POST", "/v1/chat/completions",
                                    {"model": "nope", "messages": []})
    assert status in (400, 404)
    after = scrape(server)
    changed = {k for k in after if after[k] != before.get(k, 0)}
    assert changed, "/metrics did not change after an error response"


# ---- config errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("config,must_name", [
    ({"server": server_section(), "models": [{"name": "a", "backend": "echo",
                                              "max_queue": "lots"}]}, "max_queue"),
    ({"server": server_section(max_body_bytes="huge"), "models": [echo_model("a")]},
     "max_body_bytes"),
    ({"server": server_section(), "models": [{"name": "a", "backend": "no-such-plugin"}]},
     "no-such-plugin"),
    ({"server": server_section(), "models": [echo_model("dup"), echo_model("dup")]},
     "models[1].name"),
])
def test_bad_config_is_refused_with_a_clear_message(moat_binary, tmp_path, config, must_name):
    path = tmp_path / "bad.yaml"
    path.write_text(to_yaml(config) + "\n")
    proc = subprocess.run([str(moat_binary), "serve", "--config", str(path), "--listen",
                           "127.0.0.1:0"], capture_output=True, timeout=30)
    assert proc.returncode > 0, f"exit {proc.returncode} (negative: killed by a signal)"
    assert b"moat: listening" not in proc.stdout
    assert must_name.encode() in proc.stderr, proc.stderr[-500:]


def test_missing_config_file(moat_binary, tmp_path):
    proc = subprocess.run([str(moat_binary), "serve", "--config", str(tmp_path / "none.yaml")],
                          capture_output=True, timeout=30)
    assert proc.returncode > 0
    assert b"none.yaml" in proc.stderr


# ---- graceful shutdown ------------------------------------------------------------------------

def _drain_server(moat_binary, tmp_path, **server) -> moat_server:
    config = {"server": server_section(**server),
              "models": [echo_model("echo-slow", delay_ms=100), echo_model("echo-hang",
                                                                           fault="hang")]}
    return moat_server(moat_binary, tmp_path, config, "drain").start()


def test_sigterm_drains_in_flight_stream_and_exits_0(moat_binary, tmp_path):
    srv = _drain_server(moat_binary, tmp_path, drain_timeout_s=10)
    try:
        text = " ".join(f"w{i}" for i in range(15))  # about 1.5 s of deltas
        sock = http_raw.connect(srv)
        sock.sendall(http_raw.http_post("/v1/chat/completions", (
            '{"model":"echo-slow","stream":true,"messages":[{"role":"user","content":"%s"}]}'
            % text).encode()))
        kept_alive = http_raw.connect(srv)  # opened before the signal
        kept_alive.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert http_raw.read_response(kept_alive, 5).status == 200
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first[:100]
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        # While draining /health says 503 (to a connection that was already open) ...
        kept_alive.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert http_raw.read_response(kept_alive, 5).status == 503
        kept_alive.close()
        # ... and new connections are refused or told 503.
        try:
            status, _, _ = http_raw.request(srv, "GET", "/health", timeout=3)
            assert status == 503, f"/health -> {status} while draining"
        except (ConnectionError, socket.timeout, OSError):
            pass
        closed, rest = http_raw.wait_closed(sock, 15)
        sock.close()
        assert closed, "connection still open 15 s after SIGTERM"
        parsed = http_raw.parse_response(first + rest, eof=True)
        assert parsed is not None, "incomplete response after SIGTERM"
        events, done = http_raw.sse_json(parsed[0].body)
        assert done, "in-flight stream cut off by SIGTERM"
        assert checks.chat_text(events) == text
        srv.proc.wait(timeout=15)
        assert srv.proc.returncode == 0
        assert srv.extra_stdout() == "", "stdout must hold only the ready line"
    finally:
        srv.kill()


def test_sigterm_with_a_hung_request_exits_after_drain_timeout(moat_binary, tmp_path):
    srv = _drain_server(moat_binary, tmp_path, drain_timeout_s=1, request_timeout_s=60)
    try:
        result = {}

        def hang():
            try:
                result["status"] = http_raw.request(
                    srv, "POST", "/v1/chat/completions",
                    {"model": "echo-hang", "messages": [{"role": "user", "content": "x"}]},
                    timeout=20)[0]
            except Exception as exc:  # a closed connection is an acceptable end here
                result["error"] = exc

        thread = threading.Thread(target=hang)
        thread.start()
        time.sleep(0.5)
        started = time.monotonic()
        assert srv.stop(signal.SIGTERM, timeout_s=15) == 0
        assert time.monotonic() - started < 6, "drain_timeout_s 1 not honoured"
        thread.join(timeout=20)
        assert not thread.is_alive(), "the client was left hanging after the server exited"
        if "status" in result:
            assert result["status"] in (503, 504), result
    finally:
        srv.kill()


def test_sigint_also_exits_0(moat_binary, tmp_path):
    srv = _drain_server(moat_binary, tmp_path)
    try:
        status, _, _ = http_raw.request(srv, "GET", "/health")
        assert status == 200
        assert srv.stop(signal.SIGINT, timeout_s=15) == 0
    finally:
        srv.kill()


def test_port_in_use_is_a_clear_error(moat_binary, tmp_path, server):
    path = tmp_path / "second.yaml"
    path.write_text(to_yaml({"server": server_section(), "models": [echo_model("echo")]}) + "\n")
    proc = subprocess.run([str(moat_binary), "serve", "--config", str(path), "--listen",
                           f"{server.host}:{server.port}"], capture_output=True, timeout=30)
    assert proc.returncode > 0, f"exit {proc.returncode}"
    assert str(server.port).encode() in proc.stderr, proc.stderr[-500:]
    assert server.alive()


def test_serve_help(moat_binary):
    proc = subprocess.run([str(moat_binary), "serve", "--help"], capture_output=True, timeout=30)
    assert proc.returncode == 0
    assert b"--config" in proc.stdout + proc.stderr
    assert b"--listen" in proc.stdout + proc.stderr
