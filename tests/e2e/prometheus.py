"""Scrape /metrics and check the Prometheus text format on the way.

    samples = scrape(server)                       # {'moat:prompt_tokens_total{model_name="echo"}': 8.0}
    total(samples, "moat:num_requests_running")    # summed over label sets
"""

import re

import http_raw

# One sample line: name{labels} value [timestamp]
SAMPLE_RE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})?'
    r' (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)( -?[0-9]+)?$')


def scrape(server) -> dict[str, float]:
    """name{labels} -> value, asserting that every line is valid text format."""
    status, headers, body = http_raw.request(server, "GET", "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain"), headers["content-type"]
    samples = {}
    for line in body.decode("utf-8").splitlines():
        if not line or line.startswith("#"):
            assert not line or line.startswith("# "), line
            continue
        match = SAMPLE_RE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


def total(samples: dict[str, float], name: str) -> float:
    """Sum of one metric over all its label sets (0 when absent)."""
    return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))
