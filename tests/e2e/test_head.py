"""HEAD on every GET route answers as GET would, without a body (RFC 9110 9.3.2), and the
connection stays usable; HEAD on a POST route is 405 naming the allowed method."""

from __future__ import annotations

import http.client

import pytest

GET_ROUTES = ["/health", "/v1/models", "/v1/models/echo", "/metrics"]


@pytest.mark.parametrize("path", GET_ROUTES)
def test_head_is_get_without_a_body_on_a_kept_alive_connection(server, path):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("GET", path)
        get = conn.getresponse()
        get_body = get.read()
        assert get.status == 200
        conn.request("HEAD", path)
        head = conn.getresponse()
        assert head.status == 200
        assert head.read() == b""
        assert head.getheader("Content-Type") == get.getheader("Content-Type")
        if path != "/metrics":  # /metrics counts requests: its length moves between the two
            assert int(head.getheader("Content-Length")) == len(get_body)
        assert head.getheader("x-request-id")
        # The same connection answers the next request correctly: no stray body bytes in between.
        conn.request("GET", "/health")
        again = conn.getresponse()
        assert again.status == 200
        assert again.read()
    finally:
        conn.close()


def test_head_on_a_post_route_is_405(server):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("HEAD", "/v1/chat/completions")
        res = conn.getresponse()
        assert res.status == 405
        assert res.read() == b""
        assert res.getheader("Allow") == "POST"
    finally:
        conn.close()
