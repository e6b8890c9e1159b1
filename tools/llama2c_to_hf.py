#!/usr/bin/env python3
"""Converts a llama2.c checkpoint and its tokenizer into a Hugging Face Llama folder:
config.json, model.safetensors (F32, q/k rows permuted for rotate-half RoPE, as the HF
converter does), tokenizer.model (SentencePiece BPE with byte fallback), tokenizer_config.json,
generation_config.json. Standard library only, so tests can run it.

    python3 tools/llama2c_to_hf.py stories260K.bin tok512.bin out/stories260K-hf

The result loads in moat (engine::load_model) and in transformers (LlamaForCausalLM,
LlamaTokenizer) and gives the same tokens as the .bin.
"""
import argparse
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama2c_format import (BYTE, CONTROL, NORMAL, UNKNOWN, permute_for_rotate_half,  # noqa: E402
                            read_checkpoint, read_tokenizer)


def write_safetensors(path, tensors):
    """tensors: list of (name, shape, array('f')) written as F32, in order."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, data in tensors:
        n = len(data) * 4
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for _, _, data in tensors:
            data.tofile(f)


# --- a SentencePiece ModelProto, protobuf-encoded by hand (field numbers from
# sentencepiece_model.proto) -----------------------------------------------------------------

def _varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _key(field, wire):
    return _varint(field << 3 | wire)


def _bytes_field(field, payload):
    return _key(field, 2) + _varint(len(payload)) + payload


def _int_field(field, value):
    return _key(field, 0) + _varint(value)


def _float_field(field, value):
    return _key(field, 5) + struct.pack("<f", value)


def sentencepiece_model(vocab):
    out = bytearray()
    for piece, score, ptype in vocab:  # ModelProto.pieces = 1
        sp = _bytes_field(1, piece.encode("utf-8", errors="surrogateescape")) + _float_field(2, score)
        if ptype != NORMAL:
            sp += _int_field(3, ptype)
        out += _bytes_field(1, sp)
    trainer = (_int_field(3, 2)            # model_type = BPE
               + _int_field(4, len(vocab))  # vocab_size
               + _int_field(35, 1)          # byte_fallback
               + _int_field(40, 0)          # unk_id
               + _int_field(41, 1)          # bos_id
               + _int_field(42, 2)          # eos_id
               + _int_field(43, -1))        # pad_id (none)
    out += _bytes_field(2, trainer)
    normalizer = (_bytes_field(1, b"identity")
                  + _int_field(3, 1)       # add_dummy_prefix
                  + _int_field(4, 0)       # remove_extra_whitespaces
                  + _int_field(5, 1))      # escape_whitespaces
    out += _bytes_field(3, normalizer)
    return bytes(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("tokenizer")
    ap.add_argument("out_dir")
    args = ap.parse_args()

    ck = read_checkpoint(args.checkpoint)
    c = ck.config
    vocab = read_tokenizer(args.tokenizer, c["vocab_size"])
    os.makedirs(args.out_dir, exist_ok=True)
    t = ck.tensors
    dim, kv_dim = c["dim"], c["n_kv_heads"] * (c["dim"] // c["n_heads"])

    out = [("model.embed_tokens.weight", (c["vocab_size"], dim), t["token_embedding"][1])]
    for l in range(c["n_layers"]):
        p = f"model.layers.{l}."
        out += [
            (p + "input_layernorm.weight", (dim,), t[f"rms_att.{l}"][1]),
            (p + "self_attn.q_proj.weight", (dim, dim), permute_for_rotate_half(t[f"wq.{l}"][1], c["n_heads"], dim, dim)),
            (p + "self_attn.k_proj.weight", (kv_dim, dim),
             permute_for_rotate_half(t[f"wk.{l}"][1], c["n_kv_heads"], kv_dim, dim)),
            (p + "self_attn.v_proj.weight", (kv_dim, dim), t[f"wv.{l}"][1]),
            (p + "self_attn.o_proj.weight", (dim, dim), t[f"wo.{l}"][1]),
            (p + "post_attention_layernorm.weight", (dim,), t[f"rms_ffn.{l}"][1]),
            (p + "mlp.gate_proj.weight", (c["hidden_dim"], dim), t[f"w1.{l}"][1]),
            (p + "mlp.down_proj.weight", (dim, c["hidden_dim"]), t[f"w2.{l}"][1]),
            (p + "mlp.up_proj.weight", (c["hidden_dim"], dim), t[f"w3.{l}"][1]),
        ]
    out.append(("model.norm.weight", (dim,), t["rms_final"][1]))
    if not c["tied"]:
        out.append(("lm_head.weight", (c["vocab_size"], dim), t["wcls"][1]))
    write_safetensors(os.path.join(args.out_dir, "model.safetensors"), out)

    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": c["vocab_size"], "hidden_size": dim, "intermediate_size": c["hidden_dim"],
        "num_hidden_layers": c["n_layers"], "num_attention_heads": c["n_heads"],
        "num_key_value_heads": c["n_kv_heads"], "max_position_embeddings": c["seq_len"],
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "rope_scaling": None, "hidden_act": "silu",
        "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": c["tied"],
        "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32",
    }
    with open(os.path.join(args.out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(args.out_dir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 1, "eos_token_id": 2}, f, indent=2)
    with open(os.path.join(args.out_dir, "tokenizer.model"), "wb") as f:
        f.write(sentencepiece_model(vocab))
    with open(os.path.join(args.out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
                   "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False,
                   "legacy": True, "clean_up_tokenization_spaces": False,
                   "model_max_length": c["seq_len"]}, f, indent=2)
    print(f"wrote {args.out_dir}: {c['n_layers']} layers, dim {dim}, vocab {c['vocab_size']}")


if __name__ == "__main__":
    main()
