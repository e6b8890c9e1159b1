"""Reading llama2.c checkpoints and tokenizers (standard library only), shared by
llama2c_to_hf.py and llama2c_to_gguf.py.

    ckpt = read_checkpoint("stories260K.bin")      # ckpt.config, ckpt.tensors[name] -> array('f')
    vocab = read_tokenizer("tok512.bin", ckpt.config["vocab_size"])   # [(piece, score, type)]

Layout (legacy "version 0"): 7 little-endian int32 (dim, hidden_dim, n_layers, n_heads,
n_kv_heads, vocab_size, seq_len; a negative vocab_size means an untied classifier follows), then
float32 arrays: token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
freq_cis_real, freq_cis_imag, [wcls]. Weights stay in Meta's layout: RoPE on adjacent pairs.
"""
import struct
import sys
from array import array

# SentencePiece piece types (sentencepiece_model.proto), also GGUF's tokenizer.ggml.token_type.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


class Checkpoint:
    def __init__(self, config, tensors):
        self.config = config      # dict: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len, tied
        self.tensors = tensors    # name -> (shape tuple, array('f')) per layer, PyTorch order


def _floats(f, n, what):
    a = array("f")
    try:
        a.fromfile(f, n)
    except EOFError:
        sys.exit(f"error: checkpoint truncated while reading {what}")
    if sys.byteorder != "little":
        a.byteswap()
    return a


def read_checkpoint(path):
    with open(path, "rb") as f:
        head = f.read(28)
        if len(head) != 28:
            sys.exit(f"error: {path}: truncated header")
        dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("<7i", head)
        tied = vocab > 0
        vocab = abs(vocab)
        if min(dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len) <= 0 or dim % n_heads:
            sys.exit(f"error: {path}: implausible header {dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len}")
        hd = dim // n_heads
        kv_dim = n_kv * hd
        t = {}

        def stacked(name, rows, cols):
            data = _floats(f, n_layers * rows * cols, name)
            per = rows * cols
            for l in range(n_layers):
                shape = (rows, cols) if cols > 1 else (rows,)
                t[f"{name}.{l}"] = (shape, data[l * per:(l + 1) * per])

        t["token_embedding"] = ((vocab, dim), _floats(f, vocab * dim, "token_embedding"))
        stacked("rms_att", dim, 1)
        stacked("wq", dim, dim)
        stacked("wk", kv_dim, dim)
        stacked("wv", kv_dim, dim)
        stacked("wo", dim, dim)
        stacked("rms_ffn", dim, 1)
        stacked("w1", hidden, dim)
        stacked("w2", dim, hidden)
        stacked("w3", hidden, dim)
        t["rms_final"] = ((dim,), _floats(f, dim, "rms_final"))
        _floats(f, seq_len * hd // 2 * 2, "freq_cis")  # legacy RoPE tables, unused
        if not tied:
            t["wcls"] = ((vocab, dim), _floats(f, vocab * dim, "wcls"))
    cfg = dict(dim=dim, hidden_dim=hidden, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv,
               vocab_size=vocab, seq_len=seq_len, tied=tied)
    return Checkpoint(cfg, t)


def read_tokenizer(path, vocab_size):
    """Returns [(piece, score, type)] with SentencePiece spelling: '\u2581' for spaces,
    '<0xAB>' byte pieces, '<unk>', '<s>', '</s>' for ids 0..2 (llama2.c stores those as
    '<unk>', '\\n<s>\\n', '\\n</s>\\n')."""
    out = []
    with open(path, "rb") as f:
        f.read(4)  # max_token_length
        for i in range(vocab_size):
            rec = f.read(8)
            if len(rec) != 8:
                sys.exit(f"error: {path}: truncated at token {i}")
            score, n = struct.unpack("<fi", rec)
            raw = f.read(n)
            text = raw.decode("utf-8", errors="surrogateescape")
            if i == 0:
                out.append(("<unk>", 0.0, UNKNOWN))
            elif i in (1, 2):
                out.append(("<s>" if i == 1 else "</s>", 0.0, CONTROL))
            elif len(text) == 6 and text.startswith("<0x") and text.endswith(">"):
                out.append((text, score, BYTE))
            else:
                out.append((text.replace(" ", "\u2581"), score, NORMAL))
    return out


def permute_for_rotate_half(data, n_heads, rows, cols):
    """Reorders q/k rows the way the Hugging Face Llama converter does, so rotate-half RoPE on
    the result equals adjacent-pair RoPE on the input: within each head, row 2i goes to i and
    row 2i+1 goes to i + head_dim/2."""
    hd = rows // n_heads
    out = array("f", bytes(4 * rows * cols))
    for h in range(n_heads):
        for i in range(hd // 2):
            for a in range(2):
                src = (h * hd + 2 * i + a) * cols
                dst = (h * hd + a * (hd // 2) + i) * cols
                out[dst:dst + cols] = data[src:src + cols]
    return out
