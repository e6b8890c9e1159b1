"""Raw HTTP helpers for the tests that need the exact bytes (headers, SSE framing, errors).

    status, headers, body = request(server, "POST", "/v1/chat/completions", {"model": "echo", ...})
    events = sse_data(body)                 # the `data:` payloads in order, "[DONE]" included
    reply = read_response(sock)             # one HTTP/1.1 response from a raw socket
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any


def request(server, method: str, path: str, body: Any = None, headers: dict | None = None,
            timeout: float = 30.0) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request on a fresh connection; a dict/list body is sent as JSON."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        all_headers = dict(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            all_headers.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=all_headers)
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def request_json(server, method: str, path: str, body: Any = None, headers: dict | None = None,
                 timeout: float = 30.0) -> tuple[int, http.client.HTTPMessage, Any]:
    status, hdrs, data = request(server, method, path, body, headers, timeout)
    try:
        parsed = json.loads(data)
    except ValueError as exc:
        raise AssertionError(f"{method} {path} -> {status}: body is not JSON: {data[:200]!r}") from exc
    return status, hdrs, parsed


def sse_data(body: bytes) -> list[str]:
    """The data payloads of a text/event-stream body, in order ("[DONE]" included).

    Events are separated by a blank line; several `data:` lines of one event are joined with "\n"
    as the SSE spec says. Comment lines (":") and other fields are ignored.
    """
    text = body.decode("utf-8")
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = [line[5:].lstrip(" ") if line.startswith("data:") else None
                 for line in block.split("\n")]
        data = [line for line in lines if line is not None]
        if data:
            events.append("\n".join(data))
    return events


def sse_json(body: bytes) -> tuple[list[Any], bool]:
    """Parsed JSON events before [DONE], and whether [DONE] ended the stream (and came last)."""
    events = sse_data(body)
    done = bool(events) and events[-1] == "[DONE]"
    if done:
        events = events[:-1]
    assert "[DONE]" not in events, "data: [DONE] in the middle of a stream"
    return [json.loads(e) for e in events], done


# ---- raw sockets ------------------------------------------------------------------------------

@dataclass
class raw_response:
    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""


def connect(server, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _dechunk(data: bytes) -> tuple[bytes, bytes] | None:
    """Decodes a complete chunked body; returns (body, rest) or None when incomplete."""
    out = bytearray()
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(data[pos:eol].split(b";")[0].strip() or b"0", 16)
        start = eol + 2
        if size == 0:  # the last chunk; optional trailer lines end with an empty line
            if len(data) < start + 2:
                return None
            if data[start:start + 2] == b"\r\n":
                return bytes(out), data[start + 2:]
            end = data.find(b"\r\n\r\n", start)
            if end < 0:
                return None
            return bytes(out), data[end + 4:]
        if len(data) < start + size + 2:
            return None
        out += data[start:start + size]
        pos = start + size + 2


def parse_response(buf: bytes, eof: bool) -> tuple[raw_response, bytes] | None:
    """Parses one response from buf; None when more bytes are needed."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = buf[:head_end].decode("latin-1").split("\r\n")
    version, status, *reason = head[0].split(" ", 2)
    assert version.startswith("HTTP/1."), f"not an HTTP response: {head[0]!r}"
    resp = raw_response(int(status), reason[0] if reason else "")
    for line in head[1:]:
        name, _, value = line.partition(":")
        resp.headers[name.strip().lower()] = value.strip()
    rest = buf[head_end + 4:]
    if resp.headers.get("transfer-encoding", "").lower() == "chunked":
        decoded = _dechunk(rest)
        if decoded is None:
            return None
        resp.body, rest = decoded
    elif "content-length" in resp.headers:
        length = int(resp.headers["content-length"])
        if len(rest) < length:
            return None
        resp.body, rest = rest[:length], rest[length:]
    elif resp.status in (204, 304) or 100 <= resp.status < 200:
        resp.body = b""
    else:  # delimited by the end of the connection
        if not eof:
            return None
        resp.body, rest = rest, b""
    return resp, rest


def read_response(sock: socket.socket, timeout: float = 10.0,
                  buffered: bytearray | None = None) -> raw_response:
    """Reads exactly one response (bytes past it are kept in `buffered` when given)."""
    buf = bytes(buffered or b"")
    deadline = time.monotonic() + timeout
    eof = False
    while True:
        parsed = parse_response(buf, eof)
        if parsed is not None:
            if buffered is not None:
                buffered[:] = parsed[1]
            return parsed[0]
        if eof:
            raise ConnectionError(f"connection closed after {len(buf)} bytes: {buf[:200]!r}")
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        eof = not chunk
        buf += chunk


def wait_closed(sock: socket.socket, timeout: float) -> tuple[bool, bytes]:
    """Reads until the peer closes; (closed, what was received). A reset counts as closed."""
    deadline = time.monotonic() + timeout
    got = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            return True, got
        if not chunk:
            return True, got
        got += chunk
    return False, got


def http_post(path: str, body: bytes, extra_headers: str = "", host: str = "127.0.0.1",
              content_type: str = "application/json") -> bytes:
    """The bytes of a POST request with a correct Content-Length."""
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{extra_headers}\r\n").encode("latin-1") + body
