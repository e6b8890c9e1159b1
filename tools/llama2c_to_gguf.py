#!/usr/bin/env python3
"""Converts a llama2.c checkpoint and its tokenizer into a GGUF v3 file with llama.cpp's
conventions: llama.* metadata, tokenizer.ggml.* (SentencePiece-style "llama" vocabulary with
scores and token types), tensors named token_embd / blk.N.attn_q / ... / output_norm, q/k in
Meta's layout (adjacent-pair RoPE; llama.cpp's converter un-permutes HF weights back to it).
Standard library only, so tests can run it.

    python3 tools/llama2c_to_gguf.py stories260K.bin tok512.bin out/stories260K.gguf [--dtype f16|q8_0|q4_0]

q8_0 / q4_0 write ggml's block formats with the same rounding as ggml's reference quantizers
(quantize_row_q8_0_ref / quantize_row_q4_0_ref), so tests can make quantized GGUF files at run
time without the `gguf` package; matrices whose rows are not a multiple of 32 fall back to F16.
"""
import argparse
import math
import os
import struct
import sys
from array import array

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama2c_format import read_checkpoint, read_tokenizer  # noqa: E402

ALIGN = 32
GGUF_U32, GGUF_F32, GGUF_BOOL, GGUF_STRING, GGUF_ARRAY, GGUF_I32 = 4, 6, 7, 8, 9, 5
GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q8_0 = 0, 1, 2, 8


def quantize_q8_0(data):
    """ggml's Q8_0: blocks of 32 values as an f16 scale d = max|x| / 127 and 32 int8 round(x / d)
    (round half away from zero, like C roundf)."""
    out = bytearray()
    for b in range(0, len(data), 32):
        block = data[b:b + 32]
        d = max(abs(v) for v in block) / 127.0
        inv = 1.0 / d if d else 0.0
        out += struct.pack("<e", d)
        out += struct.pack("<32b", *(int(math.copysign(math.floor(abs(v) * inv + 0.5), v)) for v in block))
    return bytes(out)


def quantize_q4_0(data):
    """ggml's Q4_0: blocks of 32 values as an f16 scale d = m / -8, m the value of largest
    magnitude (sign kept), and 16 bytes: byte j holds min(15, trunc(x[j]/d + 8.5)) in its low
    nibble and the same of x[j+16] in its high nibble."""
    out = bytearray()
    for b in range(0, len(data), 32):
        block = data[b:b + 32]
        m = max(block, key=abs)
        d = m / -8.0
        inv = 1.0 / d if d else 0.0
        q = [min(15, int(v * inv + 8.5)) for v in block]
        out += struct.pack("<e", d)
        out += bytes(q[j] | (q[j + 16] << 4) for j in range(16))
    return bytes(out)


def _str(s):
    b = s.encode("utf-8", errors="surrogateescape")
    return struct.pack("<Q", len(b)) + b


class Writer:
    def __init__(self):
        self.kv = []       # encoded key/value records
        self.tensors = []  # (name, shape (PyTorch order), ggml type, bytes)

    def add(self, key, vtype, value):
        rec = _str(key) + struct.pack("<I", vtype)
        if vtype == GGUF_STRING:
            rec += _str(value)
        elif vtype == GGUF_U32:
            rec += struct.pack("<I", value)
        elif vtype == GGUF_I32:
            rec += struct.pack("<i", value)
        elif vtype == GGUF_F32:
            rec += struct.pack("<f", value)
        elif vtype == GGUF_BOOL:
            rec += struct.pack("<B", 1 if value else 0)
        self.kv.append(rec)

    def add_array(self, key, etype, values):
        rec = _str(key) + struct.pack("<IIQ", GGUF_ARRAY, etype, len(values))
        if etype == GGUF_STRING:
            rec += b"".join(_str(v) for v in values)
        elif etype == GGUF_F32:
            rec += struct.pack(f"<{len(values)}f", *values)
        elif etype == GGUF_I32:
            rec += struct.pack(f"<{len(values)}i", *values)
        self.kv.append(rec)

    def add_tensor(self, name, shape, data, dtype):
        if dtype == "q8_0" and len(shape) > 1 and shape[-1] % 32 == 0:
            raw, gtype = quantize_q8_0(data), GGML_Q8_0
        elif dtype == "q4_0" and len(shape) > 1 and shape[-1] % 32 == 0:
            raw, gtype = quantize_q4_0(data), GGML_Q4_0
        elif dtype in ("f16", "q8_0", "q4_0") and len(shape) > 1:  # norms stay F32, as llama.cpp writes them;
            raw, gtype = struct.pack(f"<{len(data)}e", *data), GGML_F16  # rows not in 32s fall back to F16
        else:
            raw, gtype = data.tobytes() if sys.byteorder == "little" else _swapped(data), GGML_F32
        self.tensors.append((name, shape, gtype, raw))

    def write(self, path):
        out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(self.tensors), len(self.kv)))
        for rec in self.kv:
            out += rec
        offset = 0
        for name, shape, gtype, raw in self.tensors:
            out += _str(name) + struct.pack("<I", len(shape))
            for d in reversed(shape):  # GGML ne[0] is the innermost dimension
                out += struct.pack("<Q", d)
            out += struct.pack("<IQ", gtype, offset)
            offset += len(raw) + (-len(raw) % ALIGN)
        out += b"\0" * (-len(out) % ALIGN)
        for _, _, _, raw in self.tensors:
            out += raw + b"\0" * (-len(raw) % ALIGN)
        with open(path, "wb") as f:
            f.write(out)


def _swapped(data):
    a = array("f", data)
    a.byteswap()
    return a.tobytes()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("tokenizer")
    ap.add_argument("out_file")
    ap.add_argument("--dtype", choices=["f32", "f16", "q8_0", "q4_0"], default="f32",
                    help="matrix storage type (norms stay f32; q8_0/q4_0 rows not a multiple of 32 use f16)")
    args = ap.parse_args()

    ck = read_checkpoint(args.checkpoint)
    c = ck.config
    vocab = read_tokenizer(args.tokenizer, c["vocab_size"])
    dim, hd = c["dim"], c["dim"] // c["n_heads"]
    kv_dim = c["n_kv_heads"] * hd

    w = Writer()
    w.add("general.architecture", GGUF_STRING, "llama")
    w.add("general.name", GGUF_STRING, os.path.splitext(os.path.basename(args.checkpoint))[0])
    w.add("general.alignment", GGUF_U32, ALIGN)
    w.add("general.file_type", GGUF_U32, {"f32": 0, "f16": 1, "q8_0": 7, "q4_0": 2}[args.dtype])
    w.add("llama.context_length", GGUF_U32, c["seq_len"])
    w.add("llama.embedding_length", GGUF_U32, dim)
    w.add("llama.block_count", GGUF_U32, c["n_layers"])
    w.add("llama.feed_forward_length", GGUF_U32, c["hidden_dim"])
    w.add("llama.attention.head_count", GGUF_U32, c["n_heads"])
    w.add("llama.attention.head_count_kv", GGUF_U32, c["n_kv_heads"])
    w.add("llama.attention.layer_norm_rms_epsilon", GGUF_F32, 1e-5)
    w.add("llama.rope.dimension_count", GGUF_U32, hd)
    w.add("llama.rope.freq_base", GGUF_F32, 10000.0)
    w.add("llama.vocab_size", GGUF_U32, c["vocab_size"])
    w.add("tokenizer.ggml.model", GGUF_STRING, "llama")
    w.add_array("tokenizer.ggml.tokens", GGUF_STRING, [p for p, _, _ in vocab])
    w.add_array("tokenizer.ggml.scores", GGUF_F32, [s for _, s, _ in vocab])
    w.add_array("tokenizer.ggml.token_type", GGUF_I32, [t for _, _, t in vocab])
    w.add("tokenizer.ggml.bos_token_id", GGUF_U32, 1)
    w.add("tokenizer.ggml.eos_token_id", GGUF_U32, 2)
    w.add("tokenizer.ggml.unknown_token_id", GGUF_U32, 0)
    w.add("tokenizer.ggml.add_bos_token", GGUF_BOOL, True)
    w.add("tokenizer.ggml.add_eos_token", GGUF_BOOL, False)

    t = ck.tensors
    w.add_tensor("token_embd.weight", (c["vocab_size"], dim), t["token_embedding"][1], args.dtype)
    for l in range(c["n_layers"]):
        b = f"blk.{l}."
        w.add_tensor(b + "attn_norm.weight", (dim,), t[f"rms_att.{l}"][1], args.dtype)
        w.add_tensor(b + "attn_q.weight", (dim, dim), t[f"wq.{l}"][1], args.dtype)
        w.add_tensor(b + "attn_k.weight", (kv_dim, dim), t[f"wk.{l}"][1], args.dtype)
        w.add_tensor(b + "attn_v.weight", (kv_dim, dim), t[f"wv.{l}"][1], args.dtype)
        w.add_tensor(b + "attn_output.weight", (dim, dim), t[f"wo.{l}"][1], args.dtype)
        w.add_tensor(b + "ffn_norm.weight", (dim,), t[f"rms_ffn.{l}"][1], args.dtype)
        w.add_tensor(b + "ffn_gate.weight", (c["hidden_dim"], dim), t[f"w1.{l}"][1], args.dtype)
        w.add_tensor(b + "ffn_down.weight", (dim, c["hidden_dim"]), t[f"w2.{l}"][1], args.dtype)
        w.add_tensor(b + "ffn_up.weight", (c["hidden_dim"], dim), t[f"w3.{l}"][1], args.dtype)
    w.add_tensor("output_norm.weight", (dim,), t["rms_final"][1], args.dtype)
    if not c["tied"]:
        w.add_tensor("output.weight", (c["vocab_size"], dim), t["wcls"][1], args.dtype)
    os.makedirs(os.path.dirname(os.path.abspath(args.out_file)), exist_ok=True)
    w.write(args.out_file)
    print(f"wrote {args.out_file}: {len(w.tensors)} tensors, {len(w.kv)} metadata keys")


if __name__ == "__main__":
    main()
