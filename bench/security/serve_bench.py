"""TLS through `moat serve`: handshakes/s and kept-alive requests/s against one TLS server and one
plaintext server (echo backend), the same Python client for both. Prints markdown table rows.

  python3 bench/security/serve_bench.py BUILD_DIR CERT_DIR [SECONDS]

CERT_DIR holds ca.pem, server.pem and server.key (bench/security/run.sh makes them). The client is
one thread of Python: the figures compare TLS with plaintext through the same gateway; they are
not the gateway's ceiling (a Python client costs more per request than the gateway does).
"""

from __future__ import annotations

import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "e2e"))
from moat_process import moat_server  # noqa: E402

BODY = b'{"model":"echo","messages":[{"role":"user","content":"' + b"x" * 200 + b'"}]}'
CHAT = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
HEALTH = b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def config(cert_dir: Path | None) -> dict:
    server = {"listen": "127.0.0.1:0", "threads": 2, "max_connections_per_ip": 0}
    if cert_dir is not None:
        server["tls"] = {"cert": str(cert_dir / "server.pem"), "key": str(cert_dir / "server.key")}
    return {"server": server, "models": [{"name": "echo", "backend": "echo", "options": {}}],
            "logging": {"level": "warn"}}


def read_response(sock) -> bytes:
    """One Content-Length response (the gateway's non-streamed answers all have one)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed before the response head")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"unexpected response: {head[:80]!r}")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed mid-body")
        rest += chunk
    return rest[:length]


def connect(port: int, ctx: ssl.SSLContext | None):
    raw = socket.create_connection(("127.0.0.1", port))
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return ctx.wrap_socket(raw, server_hostname="localhost") if ctx else raw


def new_connections_per_s(port: int, ctx: ssl.SSLContext | None, seconds: float) -> float:
    n = 0
    end = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < end:
        s = connect(port, ctx)
        try:
            s.sendall(HEALTH)
            read_response(s)
        finally:
            s.close()
        n += 1
    return n / (time.perf_counter() - start)


def kept_alive_per_s(port: int, ctx: ssl.SSLContext | None, seconds: float) -> float:
    s = connect(port, ctx)
    try:
        for _ in range(50):  # warm up
            s.sendall(CHAT)
            read_response(s)
        n = 0
        end = time.perf_counter() + seconds
        start = time.perf_counter()
        while time.perf_counter() < end:
            s.sendall(CHAT)
            read_response(s)
            n += 1
        return n / (time.perf_counter() - start)
    finally:
        s.close()


def main() -> int:
    build, cert_dir = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
    binary = build / "bin" / "moat"
    ctx = ssl.create_default_context(cafile=str(cert_dir / "ca.pem"))
    with tempfile.TemporaryDirectory() as work:
        tls_srv = moat_server(binary, Path(work) / "tls", config(cert_dir), "tls").start()
        plain_srv = moat_server(binary, Path(work) / "plain", config(None), "plain").start()
        try:
            rows = [
                ("moat serve, TLS 1.3: new connection + handshake + GET /health", "connections",
                 new_connections_per_s(tls_srv.port, ctx, seconds)),
                ("moat serve, plaintext: new connection + GET /health", "connections",
                 new_connections_per_s(plain_srv.port, None, seconds)),
                ("moat serve, kept-alive TLS: POST /v1/chat/completions (echo)", "requests",
                 kept_alive_per_s(tls_srv.port, ctx, seconds)),
                ("moat serve, kept-alive plaintext: POST /v1/chat/completions (echo)", "requests",
                 kept_alive_per_s(plain_srv.port, None, seconds)),
            ]
        finally:
            tls_srv.stop()
            plain_srv.stop()
    for what, unit, rate in rows:
        print(f"| {what} | {rate:.0f} {unit}/s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
