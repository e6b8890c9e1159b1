"""TLS and mTLS on a real `moat serve`, with certificates made here by the openssl CLI: Python's ssl
and the openai SDK (custom CA) work; plain HTTP to the TLS port, TLS 1.0/1.1, and under mTLS a
client without a certificate or with one from another CA are refused; the client subject reaches
the audit line.
"""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import openai
import pytest

from conftest import default_models, server_section

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl CLI is needed")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
            cwd=d)


def make_cert(d: Path, name: str, ca: str, subject: str, san: str, usage: str) -> None:
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)
    (d / f"{name}.ext").write_text(f"subjectAltName={san}\nextendedKeyUsage={usage}\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    make_ca(d, "server-ca")
    make_ca(d, "client-ca")
    make_ca(d, "other-ca")
    make_cert(d, "server", "server-ca", "/CN=localhost", "DNS:localhost,IP:127.0.0.1", "serverAuth")
    make_cert(d, "alice", "client-ca", "/CN=alice/O=Example", "email:alice@example.com", "clientAuth")
    make_cert(d, "mallory", "other-ca", "/CN=mallory", "email:mallory@example.com", "clientAuth")
    return d


def tls_config(certs: Path, mtls: bool, audit_path: Path | None = None) -> dict:
    tls = {"cert": str(certs / "server.pem"), "key": str(certs / "server.key")}
    if mtls:
        tls["client_ca"] = str(certs / "client-ca.pem")
        tls["require_client_cert"] = True
    config = {"server": server_section(tls=tls), "models": default_models()}
    if audit_path is not None:
        config["audit"] = {"path": str(audit_path)}
    return config


@pytest.fixture(scope="module")
def tls_server(start_server, certs):
    return start_server(tls_config(certs, mtls=False), name="tls")


@pytest.fixture(scope="module")
def mtls_server(start_server, certs, tmp_path_factory):
    audit = tmp_path_factory.mktemp("mtls-audit") / "audit.jsonl"
    srv = start_server(tls_config(certs, True, audit), name="mtls")
    srv.audit_path = audit
    return srv


def client_context(certs: Path, cert: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs / "server-ca.pem"))
    if cert:
        ctx.load_cert_chain(str(certs / f"{cert}.pem"), str(certs / f"{cert}.key"))
    return ctx


def https_chat(server, ctx: ssl.SSLContext, content: str = "over tls") -> tuple[int, dict]:
    conn = http.client.HTTPSConnection(server.host, server.port, context=ctx, timeout=10)
    try:
        body = json.dumps({"model": "echo", "messages": [{"role": "user", "content": content}]})
        conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def handshake_fails(server, ctx: ssl.SSLContext) -> bool:
    """True when the handshake, or the first exchange right after it, is refused."""
    try:
        with socket.create_connection((server.host, server.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                # TLS 1.3 reports a refused client certificate only after the handshake.
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                return s.recv(1024) == b""
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError, socket.timeout):
        return True


def test_python_ssl_client(tls_server, certs):
    status, body = https_chat(tls_server, client_context(certs))
    assert status == 200, body
    assert body["choices"][0]["message"]["content"] == "over tls"


def test_openai_sdk_with_custom_ca(tls_server, certs):
    with httpx.Client(verify=ssl.create_default_context(cafile=str(certs / "server-ca.pem"))) as http_client:
        with openai.OpenAI(base_url=f"https://localhost:{tls_server.port}/v1", api_key="unused",
                           http_client=http_client, max_retries=0, timeout=30) as c:
            out = c.chat.completions.create(model="echo", messages=[{"role": "user", "content": "sdk tls"}])
            assert out.choices[0].message.content == "sdk tls"
            stream = c.chat.completions.create(model="echo-chunk1", stream=True,
                                               messages=[{"role": "user", "content": "abc"}])
            assert "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices) == "abc"


def test_untrusted_server_cert_is_rejected_by_clients(tls_server, certs):
    ctx = ssl.create_default_context(cafile=str(certs / "other-ca.pem"))
    with pytest.raises(ssl.SSLCertVerificationError):
        https_chat(tls_server, ctx)


def test_plain_http_to_tls_port_is_refused(tls_server):
    with socket.create_connection((tls_server.host, tls_server.port), timeout=10) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(10)
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
        assert not data.startswith(b"HTTP/"), data[:100]


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_old_tls_versions_are_refused(tls_server, certs, version):
    ctx = client_context(certs)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = version
    ctx.maximum_version = version
    assert handshake_fails(tls_server, ctx)


def test_tls12_and_tls13_are_accepted(tls_server, certs):
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = client_context(certs)
        ctx.minimum_version = version
        ctx.maximum_version = version
        assert https_chat(tls_server, ctx)[0] == 200


def test_mtls_without_a_client_cert_is_refused(mtls_server, certs):
    assert handshake_fails(mtls_server, client_context(certs))


def test_mtls_with_a_cert_from_another_ca_is_refused(mtls_server, certs):
    assert handshake_fails(mtls_server, client_context(certs, "mallory"))


def test_mtls_client_subject_reaches_the_audit_line(mtls_server, certs):
    status, body = https_chat(mtls_server, client_context(certs, "alice"), content="audited")
    assert status == 200, body
    for _ in range(100):
        text = mtls_server.audit_path.read_text() if mtls_server.audit_path.exists() else ""
        if "alice" in text:
            break
        time.sleep(0.05)
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert lines, "no audit line was written"
    subjects = [line.get("client") for line in lines]
    assert any(s and "CN=alice" in s for s in subjects), lines[-1]


def test_sighup_reloads_the_certificate_without_dropping_connections(start_server, certs):
    make_cert(certs, "server2", "server-ca", "/CN=reloaded", "DNS:localhost,IP:127.0.0.1", "serverAuth")
    shutil.copy(certs / "server.pem", certs / "live.pem")
    shutil.copy(certs / "server.key", certs / "live.key")
    config = {"server": server_section(tls={"cert": str(certs / "live.pem"), "key": str(certs / "live.key")}),
              "models": default_models()}
    srv = start_server(config, name="tls-reload")

    def peer_cn(conn: http.client.HTTPSConnection) -> str:
        subject = dict(x[0] for x in conn.sock.getpeercert()["subject"])
        return subject["commonName"]

    kept = http.client.HTTPSConnection(srv.host, srv.port, context=client_context(certs), timeout=10)
    kept.request("GET", "/health")
    assert kept.getresponse().read() and peer_cn(kept) == "localhost"

    shutil.copy(certs / "server2.pem", certs / "live.pem")
    shutil.copy(certs / "server2.key", certs / "live.key")
    srv.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)

    fresh = http.client.HTTPSConnection(srv.host, srv.port, context=client_context(certs), timeout=10)
    fresh.request("GET", "/health")
    assert fresh.getresponse().status == 200
    assert peer_cn(fresh) == "reloaded"
    fresh.close()
    # The connection opened before the reload still serves.
    kept.request("GET", "/health")
    assert kept.getresponse().status == 200
    kept.close()


def test_silent_client_is_cut_during_the_handshake(tls_server):
    import http_raw

    with socket.create_connection((tls_server.host, tls_server.port), timeout=10) as s:
        start = time.monotonic()
        closed, got = http_raw.wait_closed(s, timeout=8)
        assert closed and got == b"", "a client that never starts the handshake kept its connection"
        assert time.monotonic() - start < 3 + 2  # read_timeout_s of server_section()
