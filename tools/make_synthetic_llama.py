#!/usr/bin/env python3
"""Writes a Hugging Face-style Llama model folder with random weights and a real model's exact
shape, for benchmarks where sizes must be realistic but values do not matter (bench/engine/).

    python3 tools/make_synthetic_llama.py [OUT_DIR] [--shape tinyllama-1.1b] [--dtype f16|bf16]
                                          [--seed 1] [--layers N]

OUT_DIR defaults to bench/out/synthetic-<shape> (git-ignored: never commit weights). The folder
gets config.json, generation_config.json, model.safetensors (weights drawn from N(0, 0.02),
norms 1.0, seeded, written one tensor at a time so memory stays at one tensor), and the Llama 2
SentencePiece tokenizer (32000 pieces) copied from ../shared/fixtures/llama2-tokenizer when the
shape's vocabulary is 32000. Needs numpy; not part of CI.
"""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FIXTURES = os.path.join(os.path.dirname(REPO), "shared", "fixtures")

# Shapes of real checkpoints (from their config.json).
SHAPES = {
    # TinyLlama/TinyLlama-1.1B-Chat-v1.0
    "tinyllama-1.1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                           num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048, rope_theta=10000.0,
                           rms_norm_eps=1e-5, tie_word_embeddings=False),
    # meta-llama/Llama-3.2-1B (vocab 128256, tied embeddings); no 128k tokenizer is copied for it
    "llama3.2-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                        num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072, rope_theta=500000.0,
                        rms_norm_eps=1e-5, tie_word_embeddings=True),
}


def tensor_shapes(c):
    """(name, shape) for every tensor, in HF names and PyTorch (out, in) order."""
    d, ff, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    hd = d // c["num_attention_heads"]
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    out = [("model.embed_tokens.weight", (v, d))]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (d,)), (p + "self_attn.q_proj.weight", (q, d)),
                (p + "self_attn.k_proj.weight", (kv, d)), (p + "self_attn.v_proj.weight", (kv, d)),
                (p + "self_attn.o_proj.weight", (d, q)), (p + "post_attention_layernorm.weight", (d,)),
                (p + "mlp.gate_proj.weight", (ff, d)), (p + "mlp.up_proj.weight", (ff, d)),
                (p + "mlp.down_proj.weight", (d, ff))]
    out.append(("model.norm.weight", (d,)))
    if not c["tie_word_embeddings"]:
        out.append(("lm_head.weight", (v, d)))
    return out


def to_dtype(a, dtype):
    """float32 array -> raw bytes in f16 or bf16 (bf16 rounded to nearest even)."""
    if dtype == "f16":
        return a.astype(np.float16).tobytes()
    u = a.astype(np.float32).view(np.uint32)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16).tobytes()


def write_safetensors(path, shapes, dtype, seed):
    """The safetensors layout: u64 header length, JSON header (offsets relative to the data),
    then the tensors back to back. Each tensor is generated, converted and written in turn."""
    st_dtype = {"f16": "F16", "bf16": "BF16"}[dtype]
    header, offset = {"__metadata__": {"format": "pt", "generator": "moat tools/make_synthetic_llama.py"}}, 0
    for name, shape in shapes:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": st_dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # keep the data 8-byte aligned, as the reference writer does
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for i, (name, shape) in enumerate(shapes):
            if len(shape) == 1:
                a = np.ones(shape, dtype=np.float32)
            else:
                a = rng.standard_normal(shape, dtype=np.float32)
                a *= 0.02
            f.write(to_dtype(a, dtype))
            if sys.stderr.isatty():
                print(f"\r{i + 1}/{len(shapes)} tensors", end="", file=sys.stderr, flush=True)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    return offset


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", help="output folder (default bench/out/synthetic-SHAPE)")
    ap.add_argument("--shape", default="tinyllama-1.1b", choices=sorted(SHAPES))
    ap.add_argument("--dtype", default="f16", choices=["f16", "bf16"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--layers", type=int, help="override the layer count (smaller test models)")
    args = ap.parse_args()

    c = dict(SHAPES[args.shape])
    if args.layers:
        c["num_hidden_layers"] = args.layers
    out = args.out or os.path.join(REPO, "bench", "out", "synthetic-" + args.shape)
    os.makedirs(out, exist_ok=True)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
              "attention_bias": False, "mlp_bias": False, "bos_token_id": 1, "eos_token_id": 2,
              "rope_scaling": None, "torch_dtype": {"f16": "float16", "bf16": "bfloat16"}[args.dtype], **c}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 1, "eos_token_id": 2}, f, indent=2)
    tok = os.path.join(FIXTURES, "llama2-tokenizer", "tokenizer.model")
    if c["vocab_size"] == 32000 and os.path.exists(tok):
        shutil.copyfile(tok, os.path.join(out, "tokenizer.model"))
        with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
            json.dump({"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
                       "unk_token": "<unk>", "tokenizer_class": "LlamaTokenizer"}, f, indent=2)
    else:
        print(f"no tokenizer copied (vocab {c['vocab_size']} or {tok} absent)", file=sys.stderr)
    shapes = tensor_shapes(c)
    n_bytes = write_safetensors(os.path.join(out, "model.safetensors"), shapes, args.dtype, args.seed)
    n_params = sum(int(np.prod(s)) for _, s in shapes)
    print(f"{out}: {args.shape}, {c['num_hidden_layers']} layers, {n_params / 1e9:.3f} B parameters, "
          f"{n_bytes / 2**30:.2f} GiB of {args.dtype} weights")


if __name__ == "__main__":
    main()
