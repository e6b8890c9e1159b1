"""Abuse on a raw socket: whatever a client sends or does, the server answers the next request.

After every test an autouse check asserts that the process is alive, /health is 200 and a chat
request is answered correctly. Timeouts here are short (read_timeout_s 2, idle_timeout_s 3) so the
slow-client tests stay fast.
"""

import asyncio
import json
import random
import socket
import struct
import time

import pytest

import checks
import http_raw
import openapi_schema
from conftest import assert_serving, default_models, server_section
from prometheus import scrape, total

pytestmark = pytest.mark.usefixtures("openapi_file")

READ_TIMEOUT_S = 2
IDLE_TIMEOUT_S = 3
MAX_BODY = 64 * 1024
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def server(start_server):
    section = server_section(read_timeout_s=READ_TIMEOUT_S, idle_timeout_s=IDLE_TIMEOUT_S,
                             max_body_bytes="64KiB", max_header_bytes="8KiB")
    # 500 concurrent streams all come from 127.0.0.1: lift the per-address connection cap
    # (server.max_connections_per_ip, default 256) where the gateway has it.
    try:
        return start_server({"server": section | {"max_connections_per_ip": 2000},
                             "models": default_models()}, name="abuse")
    except RuntimeError as exc:
        if "max_connections_per_ip" not in str(exc):
            raise
    return start_server({"server": section, "models": default_models()}, name="abuse-nocap")


@pytest.fixture(autouse=True)
def still_serving_after(server):
    yield
    assert_serving(server)


def chat_body(text: str, model: str = "echo", stream: bool = False) -> bytes:
    return json.dumps({"model": model, "stream": stream,
                       "messages": [{"role": "user", "content": text}]}).encode()


def send_and_read(server, raw: bytes, timeout: float = 10.0) -> http_raw.raw_response:
    with http_raw.connect(server) as sock:
        sock.sendall(raw)
        return http_raw.read_response(sock, timeout)


def assert_error(resp: http_raw.raw_response, status: int) -> None:
    assert resp.status == status, (resp.status, resp.body[:300])
    body = json.loads(resp.body)
    openapi_schema.validate("ErrorResponse", body)


# ---- malformed requests -----------------------------------------------------------------------

GOOD = chat_body("fine")
MALFORMED = [
    b"{",
    b'{"model": "echo", "messages": [{"role": "user", "content": "x"}]',
    b'{"model": "echo", "messages": [{"role": "user", "content": "x"}]} trailing',
    b'{"model": "echo", "messages": [{"role": "user", "content": "\xff\xfe\xfd"}]}',
    b'{"model": "echo", "messages": [{"role": "user", "content": "x\x00y"}]}',
    b'{"model": "echo", "temperature": 1e999999, "messages": [{"role":"user","content":"x"}]}',
    b'{"model": "echo", "n": 99999999999999999999999, "messages": []}',
    b"[" * 30000 + b"]" * 30000,
    b'{"a":' * 5000 + b"1" + b"}" * 5000,
    b"\x00\x01\x02\x03",
    b"null",
    b'"just a string"',
    b"{'single': 'quotes'}",
]


@pytest.mark.parametrize("body", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_json_is_400(server, body):
    assert_error(send_and_read(server, http_raw.http_post(CHAT, body)), 400)


def test_truncated_json_at_every_cut_is_400(server):
    for cut in range(1, len(GOOD), 5):
        assert_error(send_and_read(server, http_raw.http_post(CHAT, GOOD[:cut])), 400)


def test_body_shorter_than_content_length_then_close(server):
    with http_raw.connect(server) as sock:
        raw = http_raw.http_post(CHAT, GOOD)
        sock.sendall(raw[:-10])  # the last 10 bytes never come


def test_body_shorter_than_content_length_times_out(server):
    with http_raw.connect(server) as sock:
        sock.sendall(http_raw.http_post(CHAT, GOOD)[:-10])
        started = time.monotonic()
        closed, got = http_raw.wait_closed(sock, READ_TIMEOUT_S + 5)
        assert closed, "server kept a stalled request body open past read_timeout_s"
        assert time.monotonic() - started < READ_TIMEOUT_S + 4
        if got:
            assert got.startswith(b"HTTP/1.1 4"), got[:100]


@pytest.mark.parametrize("headers", [
    "Content-Length: abc\r\n",
    "Content-Length: -5\r\n",
    "Content-Length: 5\r\nContent-Length: 7\r\n",
    "Transfer-Encoding: gzip\r\n",
])
def test_bad_framing_headers_are_refused(server, headers):
    raw = (f"POST {CHAT} HTTP/1.1\r\nHost: x\r\n{headers}\r\n").encode() + GOOD
    with http_raw.connect(server) as sock:
        sock.sendall(raw)
        closed, got = http_raw.wait_closed(sock, READ_TIMEOUT_S + 5)
        assert closed
        assert not got or got.startswith(b"HTTP/1.1 4"), got[:100]


# ---- size limits ------------------------------------------------------------------------------

def test_declared_oversized_body_is_413_without_reading_it(server):
    raw = (f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           f"Content-Length: {100 * MAX_BODY}\r\n\r\n").encode()
    resp = send_and_read(server, raw, timeout=5)
    assert_error(resp, 413)


def test_sent_oversized_body_is_413(server):
    body = chat_body("x" * (2 * MAX_BODY))
    with http_raw.connect(server) as sock:
        try:
            sock.sendall(http_raw.http_post(CHAT, body))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading it all
        resp = http_raw.read_response(sock, 10)
    assert_error(resp, 413)


def test_chunked_oversized_body_is_413(server):
    with http_raw.connect(server) as sock:
        sock.sendall(f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        try:
            for _ in range(40):
                sock.sendall(b"1000\r\n" + b"a" * 0x1000 + b"\r\n")  # 160 KiB in total
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = http_raw.read_response(sock, 10)
    assert_error(resp, 413)


def test_chunked_body_within_limit_is_served(server):
    body = GOOD
    half = len(body) // 2
    raw = (f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Transfer-Encoding: chunked\r\n\r\n").encode()
    raw += f"{half:x}\r\n".encode() + body[:half] + b"\r\n"
    raw += f"{len(body) - half:x}\r\n".encode() + body[half:] + b"\r\n0\r\n\r\n"
    resp = send_and_read(server, raw)
    assert resp.status == 200, resp.body[:200]
    assert json.loads(resp.body)["choices"][0]["message"]["content"] == "fine"


@pytest.mark.parametrize("extra", [
    "X-Big: " + "a" * 20000 + "\r\n",
    "".join(f"X-H{i}: {'v' * 20}\r\n" for i in range(1000)),
    "Cookie: " + "c" * 100000 + "\r\n",
])
def test_oversized_headers_are_refused(server, extra):
    with http_raw.connect(server) as sock:
        try:
            sock.sendall(http_raw.http_post(CHAT, GOOD, extra_headers=extra))
        except (BrokenPipeError, ConnectionResetError):
            return
        closed, got = http_raw.wait_closed(sock, READ_TIMEOUT_S + 5)
    assert closed
    assert got, "connection closed without a response"
    assert got.split(b" ", 2)[1] in (b"431", b"400"), got[:100]


# ---- garbage and odd HTTP ---------------------------------------------------------------------

GARBAGE = [
    random.Random(7).randbytes(4096),
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64),  # a TLS ClientHello's start
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    b"BREW /coffee HTCPCP/1.0\r\n\r\n",
    b"GET " + b"/a" * 40000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
    b"\r\n\r\n\r\n\r\n",
    b"GET /health\x00 HTTP/1.1\r\n\r\n",
]


@pytest.mark.parametrize("raw", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_bytes(server, raw):
    with http_raw.connect(server) as sock:
        try:
            sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            return
        closed, got = http_raw.wait_closed(sock, READ_TIMEOUT_S + 5)
    assert closed, "server kept a garbage connection open"
    if got:
        status = got.split(b" ", 2)[1]
        assert status.startswith(b"4") or status == b"505", got[:100]


def test_http10_without_host(server):
    with http_raw.connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        closed, got = http_raw.wait_closed(sock, 5)
    assert closed, "HTTP/1.0 without keep-alive must be closed after the response"
    assert got.startswith(b"HTTP/1.") and b" 200 " in got.split(b"\r\n")[0], got[:100]


def test_pipelined_requests_answered_in_order(server):
    raw = (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
           + http_raw.http_post(CHAT, chat_body("first one"))
           + http_raw.http_post(CHAT, chat_body("second one"))
           + b"GET /v1/models/echo HTTP/1.1\r\nHost: x\r\n\r\n")
    with http_raw.connect(server) as sock:
        sock.sendall(raw)
        buffered = bytearray()
        replies = [http_raw.read_response(sock, 10, buffered) for _ in range(4)]
    assert [r.status for r in replies] == [200, 200, 200, 200]
    assert json.loads(replies[1].body)["choices"][0]["message"]["content"] == "first one"
    assert json.loads(replies[2].body)["choices"][0]["message"]["content"] == "second one"
    assert json.loads(replies[3].body)["id"] == "echo"


def test_expect_100_continue(server):
    body = chat_body("expecting")
    head = (f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n").encode()
    with http_raw.connect(server) as sock:
        sock.sendall(head)
        sock.settimeout(1.0)
        try:
            interim = sock.recv(4096)  # curl waits up to 1 s for this, then sends anyway
        except socket.timeout:
            interim = b""
        assert not interim or interim.startswith(b"HTTP/1.1 100"), interim[:100]
        buffered = bytearray(interim.split(b"\r\n\r\n", 1)[1] if interim else b"")
        sock.sendall(body)
        resp = http_raw.read_response(sock, 10, buffered)
    assert resp.status == 200
    assert json.loads(resp.body)["choices"][0]["message"]["content"] == "expecting"


# ---- slow and vanishing clients ---------------------------------------------------------------

def test_slowloris_headers_are_cut_after_read_timeout(server):
    started = time.monotonic()
    with http_raw.connect(server) as sock:
        head = f"POST {CHAT} HTTP/1.1\r\nHost: x\r\n" + "X-Slow: " + "s" * 200
        closed_by_server = False
        for byte in head.encode():
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed_by_server = True
                break
            closed, _ = http_raw.wait_closed(sock, 0.2)
            if closed:
                closed_by_server = True
                break
            if time.monotonic() - started > READ_TIMEOUT_S + 6:
                break
    elapsed = time.monotonic() - started
    assert closed_by_server, f"a client trickling header bytes was still open after {elapsed:.1f}s"
    assert elapsed < READ_TIMEOUT_S + 4, f"closed only after {elapsed:.1f}s"


def test_slow_body_is_cut_after_read_timeout(server):
    body = chat_body("slow " * 200)
    started = time.monotonic()
    closed_by_server = False
    with http_raw.connect(server) as sock:
        sock.sendall(http_raw.http_post(CHAT, body)[:-len(body)])
        for byte in body:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed_by_server = True
                break
            closed, got = http_raw.wait_closed(sock, 0.2)
            if closed:
                closed_by_server = True
                break
            if time.monotonic() - started > READ_TIMEOUT_S + 6:
                break
    assert closed_by_server
    assert time.monotonic() - started < READ_TIMEOUT_S + 4


def test_silent_connection_is_closed(server):
    started = time.monotonic()
    with http_raw.connect(server) as sock:
        closed, got = http_raw.wait_closed(sock, max(READ_TIMEOUT_S, IDLE_TIMEOUT_S) + 5)
    assert closed, "a connection that never sent a byte was kept open"
    assert time.monotonic() - started < max(READ_TIMEOUT_S, IDLE_TIMEOUT_S) + 4


def test_idle_keep_alive_is_closed(server):
    with http_raw.connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert http_raw.read_response(sock, 5).status == 200
        started = time.monotonic()
        closed, _ = http_raw.wait_closed(sock, IDLE_TIMEOUT_S + 5)
    assert closed, "idle keep-alive connection kept past idle_timeout_s"
    assert time.monotonic() - started < IDLE_TIMEOUT_S + 4


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN, as a crashed client would."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_clients_vanishing_mid_stream_are_cancelled(server):
    text = " ".join(f"w{i}" for i in range(300))  # 300 deltas x 20 ms: 6 s if not cancelled
    socks = []
    for i in range(30):
        sock = http_raw.connect(server)
        sock.sendall(http_raw.http_post(CHAT, chat_body(text, "echo-slow", stream=True)))
        socks.append(sock)
    for i, sock in enumerate(socks):
        first = sock.recv(4096)
        assert first.startswith(b"HTTP/1.1 200"), first[:100]
        if i % 2:
            _reset(sock)
        else:
            sock.close()
    # The server notices on its next write and cancels the backend request.
    deadline = time.monotonic() + 4
    running = None
    while time.monotonic() < deadline:
        running = total(scrape(server), "moat:num_requests_running")
        if running == 0:
            break
        time.sleep(0.2)
    assert running == 0, f"{running} requests still running 4 s after their clients vanished"


def test_reader_that_stops_reading_does_not_stall_others(server):
    # 60000 one-character deltas (about 14 MB of SSE) to a client with a tiny receive window
    # that reads nothing: the gateway must bound what it holds for it and keep serving others.
    sock = http_raw.connect(server)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(http_raw.http_post(CHAT, chat_body("x" * 60000, "echo-chunk1", stream=True)))
    try:
        time.sleep(1)
        assert_serving(server)
        deadline = time.monotonic() + 5
        running = None
        while time.monotonic() < deadline:
            running = total(scrape(server), "moat:num_requests_running")
            if running == 0:
                break
            time.sleep(0.2)
        assert running == 0, "the request of a client that stopped reading is still running"
    finally:
        _reset(sock)


def test_fast_reader_gets_a_long_stream_in_full(server):
    # 4 choices x 50000 one-character deltas: about 48 MB of SSE, read as fast as http.client can.
    # The backend outruns loopback; the gateway must neither cancel nor buffer it all (it may
    # coalesce deltas while the client is behind).
    text = "x" * 50000
    body = json.loads(chat_body(text, "echo-chunk1", stream=True)) | {"n": 4}
    status, _, reply = http_raw.request(server, "POST", CHAT, body, timeout=120)
    assert status == 200
    events, done = http_raw.sse_json(reply)
    assert done
    assert "error" not in events[-1], events[-1]
    for index in range(4):
        assert checks.chat_text(events, index) == text


def test_client_vanishing_before_response(server):
    for _ in range(20):
        sock = http_raw.connect(server)
        sock.sendall(http_raw.http_post(CHAT, chat_body("a b c d e f", "echo-slow")))
        _reset(sock)


def test_backend_failing_mid_stream_ends_with_error_event(server):
    resp = send_and_read(server, http_raw.http_post(
        CHAT, chat_body("a b c d e f g", "echo-fail-mid", stream=True)))
    assert resp.status == 200
    events, done = http_raw.sse_json(resp.body)
    assert done, "stream did not end with data: [DONE]"
    *deltas, last = events
    assert "error" in last, last
    openapi_schema.validate("ErrorResponse", last)
    for event in deltas:
        openapi_schema.validate("CreateChatCompletionStreamResponse", event)
        assert all(c.get("finish_reason") is None for c in event["choices"])
    assert checks.chat_text(deltas).split() == ["a", "b"]
    # The same model keeps failing the same way; the next request to it is served the same.
    resp = send_and_read(server, http_raw.http_post(
        CHAT, chat_body("x y z", "echo-fail-mid", stream=True)))
    assert resp.status == 200 and b'"error"' in resp.body


# ---- many streams at once ---------------------------------------------------------------------

async def _one_stream(server, i: int) -> str | None:
    """Runs one streamed chat on a raw asyncio socket; returns None when all was right."""
    text = f"stream {i} " + " ".join(f"t{i}x{j}" for j in range(i % 9))
    body = chat_body(text, "echo-slow", stream=True)
    try:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(http_raw.http_post(CHAT, body, extra_headers="Connection: close\r\n"))
        await writer.drain()
        raw = await reader.read(-1)
        writer.close()
    except OSError as exc:
        return f"stream {i}: {exc!r}"
    parsed = http_raw.parse_response(raw, eof=True)
    if parsed is None:
        return f"stream {i}: incomplete response {raw[:120]!r}"
    resp = parsed[0]
    if resp.status != 200:
        return f"stream {i}: status {resp.status} {resp.body[:200]!r}"
    try:
        events, done = http_raw.sse_json(resp.body)
        for event in events:
            openapi_schema.validate("CreateChatCompletionStreamResponse", event)
    except Exception as exc:  # report, not raise: one summary for all 500
        return f"stream {i}: {exc}"
    if not done:
        return f"stream {i}: no [DONE]"
    got = checks.chat_text(events)
    if got != text:
        return f"stream {i}: got {got!r}, expected {text!r}"
    if checks.finish_reasons(events) != {0: ["stop"]}:
        return f"stream {i}: finish reasons {checks.finish_reasons(events)}"
    return None


def test_500_concurrent_streams(server):
    async def main():
        return await asyncio.wait_for(
            asyncio.gather(*[_one_stream(server, i) for i in range(500)]), timeout=120)

    started = time.monotonic()
    problems = [p for p in asyncio.run(main()) if p]
    elapsed = time.monotonic() - started
    assert not problems, f"{len(problems)} of 500 streams wrong, e.g.:\n" + "\n".join(problems[:5])
    print(f"500 concurrent streams in {elapsed:.2f}s")
