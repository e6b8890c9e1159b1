#!/usr/bin/env python3
"""Logit goldens for moat's forward passes, made with Hugging Face transformers in fp32 on CPU.

Run OUTSIDE CI, in a throw-away venv (torch/transformers never enter .venv or CI):

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch transformers tokenizers sentencepiece safetensors gguf numpy
    /tmp/refvenv/bin/python tools/make_logit_goldens.py          # writes tests/golden/engine_model/*.json

For each model and prompt it records: the prompt's token ids (from the reference tokenizer),
the last-position logits (top 64 as [id, logit]; all of them when the vocabulary has at most
4096 entries) and 64 greedy tokens (argmax, no EOS stop, full re-forward each step, no cache).
tests/unit/engine_model/goldens_test.cpp compares moat's reference and batched paths with them:
relative error max|a - b| / max|b| under 1e-4 and identical greedy ids.

Models (from ../shared/fixtures, beside the repo):
  tinystories-656K-hf       the HF folder as is (LlamaForCausalLM + tokenizer.json)
  stories260K               tools/llama2c_to_hf.py output (a temp dir); moat checks it against
                            the .bin, the HF copy and the GGUF copy
  llama2-tiny-random-gguf   transformers' GGUF loader (dequantizes F16, un-permutes q/k)
  synthetic-llama3          a random 2-layer Llama written here (tests/golden/engine_model/
                            synthetic-llama3/, BF16, ~100 KB): Llama-3 rope_scaling, rope_theta
                            500000, GQA, untied head, explicit head_dim; run in fp32
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import transformers
from transformers import AutoTokenizer, LlamaForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(os.path.dirname(ROOT), "shared", "fixtures")
GOLD = os.path.join(ROOT, "tests", "golden", "engine_model")
TOPK = 64
FULL_VOCAB_MAX = 4096
STEPS = 64

STORY_PROMPTS = [
    "Once upon a time",
    "Lily and Tom went to the park. They saw a big",
    "The little dog was sad because",
    "One day, a girl named Sue found a shiny red ball in the garden. She wanted to show it to her mom, so she",
]


@torch.no_grad()
def run(model, ids):
    x = torch.tensor([ids], dtype=torch.long)
    last = model(x).logits[0, -1].float().numpy()
    out, seq = [], list(ids)
    for _ in range(STEPS):
        nxt = int(torch.argmax(model(torch.tensor([seq])).logits[0, -1]))
        out.append(nxt)
        seq.append(nxt)
    return last, out


def record(prompt_text, ids, last, greedy):
    order = np.argsort(-last, kind="stable")[:TOPK]
    rec = {"text": prompt_text, "ids": [int(i) for i in ids],
           "top_logits": [[int(i), float(last[i])] for i in order], "greedy": greedy}
    if last.shape[0] <= FULL_VOCAB_MAX:
        rec["last_logits"] = [float(v) for v in last]
    return rec


def write(name, model_ref, how, prompts):
    os.makedirs(GOLD, exist_ok=True)
    doc = {"model": model_ref, "how": how, "transformers": transformers.__version__, "torch": torch.__version__,
           "dtype": "float32", "prompts": prompts}
    path = os.path.join(GOLD, name + ".json")
    # Compact, one prompt per line: small in git, still diffable per prompt.
    body = json.dumps({k: v for k, v in doc.items() if k != "prompts"}, indent=1)[:-2]
    lines = ",\n".join(json.dumps(p, separators=(",", ":")) for p in prompts)
    with open(path, "w") as f:
        f.write(body + ',\n "prompts": [\n' + lines + "\n ]\n}\n")
    print(f"wrote {path}")


def load(path, **kw):
    m = LlamaForCausalLM.from_pretrained(path, torch_dtype=torch.float32, **kw)
    m.eval()
    return m


def tinystories():
    path = os.path.join(FIX, "tinystories-656K-hf")
    model, tok = load(path), AutoTokenizer.from_pretrained(path)
    prompts = []
    for text in [""] + STORY_PROMPTS:
        ids = tok(text)["input_ids"] if text else [tok.bos_token_id]
        prompts.append(record(text, ids, *run(model, ids)))
    write("tinystories-656K-hf", "tinystories-656K-hf", "transformers LlamaForCausalLM on the fixture folder; "
          "prompt ids from its tokenizer.json (BOS prepended)", prompts)


def stories260k():
    src = os.path.join(FIX, "llama2c-stories260K")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "llama2c_to_hf.py"),
                        os.path.join(src, "stories260K.bin"), os.path.join(src, "tok512.bin"), tmp], check=True)
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor(model_file=os.path.join(tmp, "tokenizer.model"))
        model = load(tmp)
        prompts = []
        for text in [""] + STORY_PROMPTS:
            ids = [1] + sp.encode(text)
            prompts.append(record(text, ids, *run(model, ids)))
    write("stories260K", "llama2c-stories260K/stories260K.bin",
          "tools/llama2c_to_hf.py output run by transformers LlamaForCausalLM; prompt ids from its "
          "tokenizer.model via sentencepiece, BOS 1 prepended", prompts)


def random_gguf():
    d = os.path.join(FIX, "llama2-tiny-random-gguf")
    model = load(d, gguf_file="llama-2-tiny-random.gguf")
    tok = AutoTokenizer.from_pretrained(d, gguf_file="llama-2-tiny-random.gguf")
    prompts = []
    for text in STORY_PROMPTS[:2]:
        ids = tok(text)["input_ids"]
        prompts.append(record(text, ids, *run(model, ids)))
    write("llama-2-tiny-random-gguf", "llama2-tiny-random-gguf/llama-2-tiny-random.gguf",
          "transformers LlamaForCausalLM.from_pretrained(gguf_file=...) (F16 dequantized to fp32, q/k "
          "un-permuted back to rotate-half); prompt ids from the GGUF's tokenizer", prompts)


def synthetic_llama3():
    out = os.path.join(GOLD, "synthetic-llama3")
    cfg = transformers.LlamaConfig(
        vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, max_position_embeddings=256, rms_norm_eps=1e-5,
        rope_theta=500000.0, tie_word_embeddings=False, bos_token_id=1, eos_token_id=[2, 3],
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 64})
    torch.manual_seed(3)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():  # larger weights than the default init, so logits are far from uniform
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.15)
    model = model.to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(out, extra)):
            os.remove(os.path.join(out, extra))
    model = load(out)  # BF16 on disk, fp32 compute, as moat runs it
    rng = np.random.default_rng(11)
    prompts = []
    for n in (1, 9, 40):
        ids = [1] + [int(i) for i in rng.integers(4, 96, n - 1)]
        prompts.append(record("", ids, *run(model, ids)))
    write("synthetic-llama3", "tests/golden/engine_model/synthetic-llama3",
          "random LlamaForCausalLM made by this script (seed 3, llama3 rope_scaling), saved in BF16, run in fp32; "
          "random prompt ids", prompts)


if __name__ == "__main__":
    torch.manual_seed(0)
    torch.set_num_threads(1)
    for fn in (tinystories, stories260k, random_gguf, synthetic_llama3):
        fn()
