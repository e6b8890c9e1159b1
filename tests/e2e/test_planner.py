"""`moat plan` end to end: the real binary, its --json contract, its errors and its chart.

Runs $MOAT_BUILD/bin/moat (default build/bin/moat); skips with the reason when it is absent.
The figures are recomputed here from the model shapes, independently of the C++ arithmetic.
"""

from __future__ import annotations

import json
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("MOAT_BUILD", REPO / "build")).resolve()
BINARY = BUILD / "bin" / "moat"
FIXTURES = REPO.parent / "shared" / "fixtures"

pytestmark = pytest.mark.skipif(not BINARY.exists(), reason=f"no moat binary at {BINARY} (build first)")

CONTRACT_FIELDS = [
    "weights_bytes", "kv_bytes_per_token", "total_bytes", "fits", "gpus_needed", "tensor_parallel",
    "kv_offload_bytes", "decode_tokens_per_s", "cost_per_month", "cost_per_million_tokens",
    "break_even_tokens_per_month",
]
PRESETS = ["llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "llama-2-7b", "llama-2-13b", "llama-2-70b",
           "mistral-7b", "mixtral-8x7b", "tinyllama-1.1b"]
GPUS = ["h100-80g", "h200-141g", "a100-40g", "a100-80g", "l40s", "rtx-4090", "cpu-2s"]


def plan(*args: str, expect_rc: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BINARY), "plan", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == expect_rc, f"rc {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def plan_json(*args: str) -> dict:
    return json.loads(plan(*args, "--json").stdout)


def llama_params(hidden, layers, heads, kv_heads, inter, vocab, tied=False):
    hd = hidden // heads
    block = 2 * hidden * heads * hd + 2 * hidden * kv_heads * hd + 3 * hidden * inter + 2 * hidden
    return layers * block + vocab * hidden * (1 if tied else 2) + hidden


@pytest.mark.parametrize("model", PRESETS)
@pytest.mark.parametrize("gpu", ["h100-80g", "cpu-2s"])
def test_contract_fields_for_every_preset(model, gpu):
    out = plan_json("--model", model, "--weights", "int8", "--kv", "fp16", "--context", "4096",
                    "--concurrency", "4", "--gpu", gpu)
    for key in CONTRACT_FIELDS:
        assert key in out, key
    assert isinstance(out["fits"], bool)
    assert out["fits"] is True  # without --gpus the plan takes the smallest split that fits
    assert out["gpus_needed"] >= 1 and out["tensor_parallel"] >= 1
    assert out["decode_tokens_per_s"] > 0 and out["cost_per_month"] > 0
    assert out["kv_offload_bytes"] == 0


def test_every_gpu_name_is_known():
    for gpu in GPUS:
        out = plan_json("--model", "llama-3.1-8b", "--weights", "fp16", "--kv", "fp16", "--context", "2048",
                        "--concurrency", "1", "--gpu", gpu)
        assert out["gpu"] == gpu


@pytest.mark.parametrize("model,expected_b", [("llama-3.1-8b", 8.03), ("llama-3.1-70b", 70.6),
                                              ("llama-3.1-405b", 405.9)])
def test_fp16_weights_are_two_bytes_per_parameter(model, expected_b):
    out = plan_json("--model", model, "--weights", "fp16", "--kv", "fp16", "--context", "1024",
                    "--concurrency", "1", "--gpu", "h100-80g")
    assert abs(out["model"]["params_total"] / 1e9 - expected_b) < 0.05
    assert out["weights_bytes"] == 2 * out["model"]["params_total"]


def test_weights_and_kv_match_the_formulas_for_405b():
    m = dict(hidden=16384, layers=126, heads=128, kv_heads=8, inter=53248, vocab=128256)
    p = llama_params(**m)
    assert p == 405_853_388_800
    out = plan_json("--model", "llama-3.1-405b", "--weights", "nf4-dq", "--kv", "int8", "--context", "8192",
                    "--concurrency", "2", "--gpu", "h100-80g")
    # Blocks and LM head at 4 + 8/64 + 32/(64*256) bits; embedding and norms at 16.
    emb = m["vocab"] * m["hidden"]
    norms = m["layers"] * 2 * m["hidden"] + m["hidden"]
    expected = (p - emb - norms) * (4 + 8 / 64 + 32 / (64 * 256)) / 8 + (emb + norms) * 2
    assert abs(out["weights_bytes"] - expected) <= 1
    # int8 KV: 2 * L * kv_heads * (head_dim bytes + a 2-byte scale).
    assert out["kv_bytes_per_token"] == 2 * 126 * 8 * (128 + 2)
    assert out["kv_bytes_total"] == out["kv_bytes_per_token"] * 8192 * 2


def test_given_gpus_that_do_not_fit_advise_and_offload():
    out = plan_json("--model", "llama-3.1-405b", "--weights", "int4", "--kv", "fp16", "--context", "32768",
                    "--concurrency", "16", "--gpu", "a100-40g", "--gpus", "8")
    assert out["fits"] is False
    assert out["tensor_parallel"] == 8
    assert out["kv_offload_bytes"] > 0
    assert out["gpus_needed"] > 8
    assert any("host memory" in a for a in out["advice"])


def test_break_even_is_cost_over_cloud_price(tmp_path):
    costs = tmp_path / "costs.yaml"
    costs.write_text("amortization_years: 4\nelectricity_usd_per_kwh: 0.1\npue: 1.2\n"
                     "rack_network_usd_per_month: 800\nsoftware_usd_per_month: 200\nstaff_usd_per_month: 3000\n"
                     "utilization: 0.6\ncloud: {input_usd_per_million: 3, output_usd_per_million: 15, "
                     "input_output_ratio: 4}\n")
    out = plan_json("--model", "llama-3.1-70b", "--weights", "int8", "--kv", "fp16", "--context", "8192",
                    "--concurrency", "32", "--gpu", "h100-80g", "--gpus", "2", "--costs", str(costs))
    # h100-80g in config/hardware.yaml: 30,000 a card, 60,000 a server, 700 W a card, 3,000 W a server.
    monthly = (2 * 30000 + 60000) / 48 + (2 * 700 + 3000) / 1000 * 1.2 * 730 * 0.1 + 800 + 200 + 3000
    assert abs(out["cost_per_month"] - monthly) < 1e-6
    blended = (4 * 3 + 15) / 5
    assert out["cloud_usd_per_million_tokens"] == pytest.approx(blended)
    assert out["break_even_tokens_per_month"] == pytest.approx(monthly / blended * 1e6)
    assert out["cost_per_million_tokens"] == pytest.approx(monthly / (out["tokens_per_month"] / 1e6))


@pytest.mark.parametrize("args,needle", [
    (["--gpu", "b300"], "unknown device"),
    (["--gpu", "h100-80g", "--gpus", "3"], "does not divide"),
    (["--gpu", "h100-80g", "--tp", "16"], "8 KV heads"),
    (["--gpu", "h100-80g", "--weights", "int3"], "--weights"),
    (["--gpu", "h100-80g", "--kv", "fp8"], "--kv"),
    (["--gpu", "h100-80g", "--context", "0"], "--context"),
    (["--gpu", "h100-80g", "--bogus"], "bogus"),
    ([], "--gpu is required"),
])
def test_usage_errors_exit_2(args, needle):
    proc = plan("--model", "llama-3.1-8b", *args, expect_rc=2)
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr and "terminate" not in proc.stderr


def test_negative_price_and_non_decoder_are_clear_errors(tmp_path):
    costs = tmp_path / "costs.yaml"
    costs.write_text("cloud:\n  input_usd_per_million: -1\n")
    proc = plan("--model", "llama-3.1-8b", "--gpu", "l40s", "--costs", str(costs), expect_rc=2)
    assert "input_usd_per_million" in proc.stderr and "negative" in proc.stderr
    bert = tmp_path / "config.json"
    bert.write_text(json.dumps({"architectures": ["BertForMaskedLM"], "hidden_size": 768, "num_hidden_layers": 12,
                                "num_attention_heads": 12, "intermediate_size": 3072, "vocab_size": 30522}))
    proc = plan("--model", str(bert), "--gpu", "l40s", expect_rc=2)
    assert "not a decoder" in proc.stderr


def test_fixture_config_and_checkpoint():
    cfg = FIXTURES / "tinystories-656K-hf" / "config.json"
    ckpt = FIXTURES / "llama2c-stories260K" / "stories260K.bin"
    if not cfg.exists() or not ckpt.exists():
        pytest.skip(f"fixtures absent at {FIXTURES}")
    out = plan_json("--model", str(cfg), "--weights", "fp16", "--kv", "fp16", "--context", "512",
                    "--concurrency", "1", "--gpu", "cpu-2s")
    assert out["model"]["params_total"] == 656_000
    assert out["kv_bytes_per_token"] == 2 * 2 * 4 * 16 * 2
    out = plan_json("--model", str(ckpt), "--weights", "fp16", "--kv", "fp16", "--context", "512",
                    "--concurrency", "1", "--gpu", "cpu-2s")
    assert out["model"]["params_total"] == 260_032
    gguf = FIXTURES / "llama2-tiny-random-gguf" / "llama-2-tiny-random.gguf"
    if gguf.exists():
        out = plan_json("--model", str(gguf), "--weights", "fp16", "--kv", "fp16", "--context", "512",
                        "--concurrency", "1", "--gpu", "cpu-2s")
        assert out["model"]["params_total"] == 513_048
        assert out["model"]["tie_word_embeddings"] is False


def test_chart_is_valid_svg(tmp_path):
    chart = tmp_path / "cost.svg"
    plan("--model", "llama-3.1-8b", "--weights", "int8", "--kv", "fp16", "--context", "4096", "--concurrency", "16",
         "--gpu", "l40s", "--gpus", "1", "--chart", str(chart))
    root = ET.parse(chart).getroot()
    assert root.tag.endswith("svg")
    lines = [e for e in root.iter() if e.tag.endswith("polyline")]
    assert len(lines) == 2
    assert "break-even" in chart.read_text()


def test_table_names_the_efficiency_source():
    proc = plan("--model", "llama-3.1-8b", "--gpu", "h100-80g", "--bench-results", "/nonexistent")
    assert "default factor" in proc.stdout
    assert "decode, aggregate" in proc.stdout


def test_docs_show_the_planners_real_output():
    """Every `$ moat plan ...` block in docs/planning.md is what the binary prints today."""
    import re
    import shlex

    results = REPO / "bench" / "results"
    if results.is_dir() and any(p.suffix in (".json", ".md") for p in results.iterdir()):
        pytest.skip("bench/results holds measured factors; docs/planning.md shows the default-factor output")
    doc = (REPO / "docs" / "planning.md").read_text()
    blocks = re.findall(r"```\n\$ moat plan ([^\n]*)\n(.*?)\n\(exit status (\d+)\)\n```", doc, re.S)
    assert len(blocks) >= 10
    for args, expected, rc in blocks:
        proc = subprocess.run([str(BINARY), "plan", *shlex.split(args)], capture_output=True, text=True, timeout=60)
        assert str(proc.returncode) == rc, args
        assert (proc.stdout + proc.stderr).rstrip() == expected.rstrip(), f"docs/planning.md is stale for: {args}"
