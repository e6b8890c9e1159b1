"""The hardened edge of a real `moat serve`: request smuggling shapes and obs-fold are 400, too many
headers 431, a slowloris client is cut at read_timeout_s, a per-IP connection cap, and error
bodies that never show internal paths or stack traces.
"""

from __future__ import annotations

import json
import re
import socket
import time

import pytest

import http_raw
from conftest import default_models, server_section

READ_TIMEOUT_S = 2
PER_IP = 3


@pytest.fixture(scope="module")
def edge(start_server):
    config = {"server": server_section(read_timeout_s=READ_TIMEOUT_S, max_connections_per_ip=PER_IP),
              "models": default_models()}
    return start_server(config, name="edge")


BODY = b'{"model":"echo","messages":[{"role":"user","content":"hi"}]}'


def send_raw(server, data: bytes) -> http_raw.raw_response:
    sock = http_raw.connect(server)
    try:
        sock.sendall(data)
        return http_raw.read_response(sock, timeout=10)
    finally:
        sock.close()


def head(extra: str, length: int | None = len(BODY)) -> bytes:
    lines = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    if length is not None:
        lines += f"Content-Length: {length}\r\n"
    return (lines + extra + "\r\n").encode("latin-1")


def assert_clean_error(reply: http_raw.raw_response, status: int) -> None:
    assert reply.status == status, (reply.status, reply.body[:300])
    body = json.loads(reply.body)
    assert "error" in body
    text = reply.body.decode("utf-8", "replace")
    assert not re.search(r"/work/|/home/|\.cpp|\.h:|std::|terminate|boost::", text), text


def test_well_formed_request_passes(edge):
    reply = send_raw(edge, head("Connection: close\r\n") + BODY)
    assert reply.status == 200, reply.body


def test_content_length_with_transfer_encoding_is_400(edge):
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)
    assert_clean_error(send_raw(edge, head("Transfer-Encoding: chunked\r\n") + chunked), 400)


def test_duplicate_content_length_is_400(edge):
    # Equal values too: RFC 9112 lets a server refuse, and a proxy in front may have picked either.
    assert_clean_error(send_raw(edge, head(f"Content-Length: {len(BODY)}\r\n") + BODY), 400)
    assert_clean_error(send_raw(edge, head("Content-Length: 3\r\n") + BODY), 400)


def test_obs_fold_is_400(edge):
    assert_clean_error(send_raw(edge, head("X-Folded: a\r\n  b\r\n") + BODY), 400)


def test_too_many_headers_is_431(edge):
    many = "".join(f"X-H{i}: v\r\n" for i in range(150))
    assert_clean_error(send_raw(edge, head(many) + BODY), 431)


def test_max_headers_is_configurable(start_server):
    # server.max_headers lowered to 8: 10 fields (3 of them the request's own) are refused,
    # 6 in all still pass.
    srv = start_server({"server": server_section(max_headers=8), "models": default_models()},
                       name="few-headers")
    some = "".join(f"X-H{i}: v\r\n" for i in range(7))
    assert_clean_error(send_raw(srv, head(some) + BODY), 431)
    reply = send_raw(srv, head("X-H: v\r\nConnection: close\r\n") + BODY)
    assert reply.status == 200, reply.body


def refused_per_ip(server) -> float:
    status, _, body = http_raw.request(server, "GET", "/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith("moat_http_connections_refused_per_ip_total "):
            return float(line.split()[1])
    raise AssertionError("moat_http_connections_refused_per_ip_total is not in /metrics")


def test_unknown_transfer_encoding_is_400(edge):
    assert_clean_error(send_raw(edge, head("Transfer-Encoding: gzip, chunked\r\n", length=None)), 400)


def test_error_bodies_hold_no_internals(edge):
    for data in (b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                 head("Connection: close\r\n", length=5) + b"{not json"):
        sock = http_raw.connect(edge)
        try:
            sock.sendall(data)
            try:
                reply = http_raw.read_response(sock, timeout=10)
            except ConnectionError:
                continue  # closed without an answer: nothing leaked either
            text = reply.body.decode("utf-8", "replace")
            assert not re.search(r"/work/|/home/|\.cpp|std::|terminate|boost::", text), text
        finally:
            sock.close()


def test_slowloris_is_cut_at_read_timeout(edge):
    sock = http_raw.connect(edge)
    try:
        start = time.monotonic()
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\n")
        closed = False
        # One header byte every 0.3 s: each read makes progress, the deadline must still hold.
        for _ in range(int(READ_TIMEOUT_S / 0.3) * 4):
            try:
                sock.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sock.settimeout(0.3)
            try:
                if sock.recv(4096) == b"":
                    closed = True
                    break
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed = True
                break
        elapsed = time.monotonic() - start
        assert closed, "a client trickling header bytes held the connection past read_timeout_s"
        assert elapsed < READ_TIMEOUT_S + 2, elapsed
    finally:
        sock.close()


def test_per_ip_connection_cap(edge):
    time.sleep(0.3)  # earlier tests' sessions release their slots
    refused_before = refused_per_ip(edge)
    time.sleep(0.3)  # and so does that one
    held = [http_raw.connect(edge) for _ in range(PER_IP)]
    try:
        time.sleep(0.2)  # let the server accept them all
        extra = http_raw.connect(edge)
        closed, _ = http_raw.wait_closed(extra, timeout=3)
        extra.close()
        assert closed, f"connection {PER_IP + 1} from one address was kept"
        # The held ones still work.
        held[0].sendall(head("") + BODY)
        assert http_raw.read_response(held[0], timeout=10).status == 200
    finally:
        for s in held:
            s.close()
    time.sleep(0.3)  # the slots are released when the sessions end
    reply = send_raw(edge, head("Connection: close\r\n") + BODY)
    assert reply.status == 200
    assert refused_per_ip(edge) == refused_before + 1
