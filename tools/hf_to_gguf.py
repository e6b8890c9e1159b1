#!/usr/bin/env python3
"""Converts a Hugging Face Llama folder (config.json, model.safetensors in F32/F16/BF16) into GGUF
files for llama.cpp, so a benchmark runs the same weights on both engines (bench/engine/).

    python3 tools/hf_to_gguf.py MODEL_DIR OUT_PREFIX [--types f16,q8_0,q4_0] [--vocab-gguf FILE]

writes OUT_PREFIX-f16.gguf, OUT_PREFIX-q8_0.gguf, OUT_PREFIX-q4_0.gguf. Every 2-D linear weight
(q/k/v/o, gate/up/down and the output head) gets the one type named, blocks made by the `gguf`
package's own quantizers (the same code llama.cpp's Python tooling uses); token_embd stays F16
(moat keeps the embedding as stored too; it is read one row per token) and norms F32. Note that
llama.cpp's own llama-quantize would put the output head in Q6_K for Q4_0; here it is Q4_0 so
both engines read the same bytes per token.

q_proj / k_proj rows are permuted from HF's rotate-half RoPE layout back to the interleaved
layout GGUF llama models use (as llama.cpp's converter does). The vocabulary comes from
tokenizer.json (BPE pieces, scores by rank), or, with --vocab-gguf or for a 32000-token model
with no tokenizer.json, from the Llama 2 vocabulary of ../shared/fixtures/llama2-tiny-random-gguf.
Needs numpy and the `gguf` package (a venv outside CI, see bench/engine/run_llamacpp.sh).
"""
import argparse
import json
import os
import sys

import numpy as np
import gguf

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "fixtures")
DEFAULT_VOCAB = os.path.join(FIXTURES, "llama2-tiny-random-gguf", "llama-2-tiny-random.gguf")

QTYPES = {"f16": gguf.GGMLQuantizationType.F16, "q8_0": gguf.GGMLQuantizationType.Q8_0,
          "q4_0": gguf.GGMLQuantizationType.Q4_0}
FTYPES = {"f16": 1, "q8_0": 7, "q4_0": 2}  # llama_ftype: MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_Q4_0


def read_safetensors(path):
    """name -> float32-convertible numpy view (memory-mapped; BF16 widened on demand)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    base = 8 + n
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = mm[base + a: base + b]
        dt = info["dtype"]
        if dt == "F32":
            arr = raw.view(np.float32)
        elif dt == "F16":
            arr = raw.view(np.float16)
        elif dt == "BF16":
            arr = raw.view(np.uint16)
        else:
            raise SystemExit(f"{path}: tensor {name} has dtype {dt}, not F32/F16/BF16")
        out[name] = (arr.reshape(info["shape"]), dt)
    return out


def as_f32(entry):
    arr, dt = entry
    if dt == "BF16":
        return (arr.astype(np.uint32) << 16).view(np.float32)
    return arr.astype(np.float32)


def permute_rope(w, n_head):
    """HF rotate-half rows -> interleaved pairs (llama.cpp convert_hf_to_gguf's permute)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def vocab_from_tokenizer_json(path, n_vocab):
    with open(path) as f:
        tj = json.load(f)
    tokens = [None] * n_vocab
    for piece, i in tj["model"]["vocab"].items():
        if i < n_vocab:
            tokens[i] = piece
    special = set()
    for t in tj.get("added_tokens", []):
        if t["id"] < n_vocab:
            tokens[t["id"]] = t["content"]
            if t.get("special"):
                special.add(t["id"])
    types, scores = [], []
    for i, t in enumerate(tokens):
        if t is None:
            tokens[i] = f"[PAD{i}]"
            types.append(5)  # unused
        elif i in special:
            types.append(2 if t == "<unk>" else 3)  # unknown / control
        elif len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
            types.append(6)  # byte
        else:
            types.append(1)  # normal
        scores.append(-float(i))  # earlier pieces merge first, as in SentencePiece BPE scores
    return tokens, scores, types


def vocab_from_gguf(path):
    r = gguf.GGUFReader(path)
    f = r.fields
    return (f["tokenizer.ggml.tokens"].contents(), f["tokenizer.ggml.scores"].contents(),
            f["tokenizer.ggml.token_type"].contents())


def convert(model_dir, out_path, qname, vocab):
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    t = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    d, L = c["hidden_size"], c["num_hidden_layers"]
    nh, nkv = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
    w = gguf.GGUFWriter(out_path, "llama")
    w.add_name(os.path.basename(os.path.normpath(model_dir)))
    w.add_block_count(L)
    w.add_context_length(c.get("max_position_embeddings", 2048))
    w.add_embedding_length(d)
    w.add_feed_forward_length(c["intermediate_size"])
    w.add_head_count(nh)
    w.add_head_count_kv(nkv)
    w.add_rope_dimension_count(d // nh)
    w.add_rope_freq_base(float(c.get("rope_theta", 10000.0)))
    w.add_layer_norm_rms_eps(float(c.get("rms_norm_eps", 1e-5)))
    w.add_file_type(FTYPES[qname])
    tokens, scores, types = vocab
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(c.get("bos_token_id", 1))
    w.add_eos_token_id(c.get("eos_token_id", 2))
    w.add_unk_token_id(0)

    qtype = QTYPES[qname]

    def linear(name, arr):
        if qtype != gguf.GGMLQuantizationType.F16 and arr.shape[-1] % 32 == 0:
            w.add_tensor(name, gguf.quants.quantize(arr, qtype), raw_dtype=qtype)
        else:  # rows not in whole blocks stay F16, as llama.cpp does
            w.add_tensor(name, arr.astype(np.float16))

    embed = t.get("model.embed_tokens.weight", t.get("lm_head.weight"))
    w.add_tensor("token_embd.weight", as_f32(embed).astype(np.float16))
    w.add_tensor("output_norm.weight", as_f32(t["model.norm.weight"]))
    if "lm_head.weight" in t and "model.embed_tokens.weight" in t and not c.get("tie_word_embeddings", False):
        linear("output.weight", as_f32(t["lm_head.weight"]))
    for i in range(L):
        p = f"model.layers.{i}."
        b = f"blk.{i}."
        w.add_tensor(b + "attn_norm.weight", as_f32(t[p + "input_layernorm.weight"]))
        w.add_tensor(b + "ffn_norm.weight", as_f32(t[p + "post_attention_layernorm.weight"]))
        linear(b + "attn_q.weight", permute_rope(as_f32(t[p + "self_attn.q_proj.weight"]), nh))
        linear(b + "attn_k.weight", permute_rope(as_f32(t[p + "self_attn.k_proj.weight"]), nkv))
        linear(b + "attn_v.weight", as_f32(t[p + "self_attn.v_proj.weight"]))
        linear(b + "attn_output.weight", as_f32(t[p + "self_attn.o_proj.weight"]))
        linear(b + "ffn_gate.weight", as_f32(t[p + "mlp.gate_proj.weight"]))
        linear(b + "ffn_up.weight", as_f32(t[p + "mlp.up_proj.weight"]))
        linear(b + "ffn_down.weight", as_f32(t[p + "mlp.down_proj.weight"]))
        if sys.stderr.isatty():
            print(f"\r{qname}: layer {i + 1}/{L}", end="", file=sys.stderr, flush=True)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("out_prefix")
    ap.add_argument("--types", default="f16,q8_0,q4_0")
    ap.add_argument("--vocab-gguf", help="copy tokenizer.ggml.* from this GGUF")
    args = ap.parse_args()
    with open(os.path.join(args.model_dir, "config.json")) as f:
        n_vocab = json.load(f)["vocab_size"]
    tj = os.path.join(args.model_dir, "tokenizer.json")
    if args.vocab_gguf:
        vocab = vocab_from_gguf(args.vocab_gguf)
    elif os.path.exists(tj):
        vocab = vocab_from_tokenizer_json(tj, n_vocab)
    elif n_vocab == 32000 and os.path.exists(DEFAULT_VOCAB):
        vocab = vocab_from_gguf(DEFAULT_VOCAB)
    else:
        raise SystemExit(f"{args.model_dir}: no tokenizer.json; pass --vocab-gguf")
    if len(vocab[0]) != n_vocab:
        raise SystemExit(f"vocabulary has {len(vocab[0])} tokens, config says {n_vocab}")
    for qname in args.types.split(","):
        if qname not in QTYPES:
            raise SystemExit(f"unknown type {qname}; one of {', '.join(QTYPES)}")
        out = f"{args.out_prefix}-{qname}.gguf"
        convert(args.model_dir, out, qname, vocab)
        print(f"{out}: {os.path.getsize(out) / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
