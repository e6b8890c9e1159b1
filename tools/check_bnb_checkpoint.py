#!/usr/bin/env python3
"""Checks a folder written by `moat quantize --format nf4` against bitsandbytes itself, outside CI:
every quantized weight is read back with bitsandbytes' own QuantState.from_dict and
dequantize_4bit (as transformers loads it), and compared with bitsandbytes quantizing the
original weight: packed codes and dequantized values must be identical to the bit. Other
tensors must be byte-identical to the original.

    build/bin/moat quantize --format nf4 ../shared/fixtures/tinystories-656K-hf /tmp/q
    /tmp/quantvenv/bin/python tools/check_bnb_checkpoint.py ../shared/fixtures/tinystories-656K-hf /tmp/q

(a venv with torch, bitsandbytes and safetensors; see tools/make_bnb_goldens.py). Exit 0 when all match.
"""
import os
import sys

import bitsandbytes.functional as F
import torch
from safetensors.torch import load_file


def load_dir(path):
    out = {}
    for name in sorted(os.listdir(path)):
        if name.endswith(".safetensors"):
            out.update(load_file(os.path.join(path, name)))
    return out


def main(src, dst):
    orig, out = load_dir(src), load_dir(dst)
    quantized = identical = 0
    for name, w in orig.items():
        if name + ".quant_state.bitsandbytes__nf4" not in out:
            if not torch.equal(out[name], w):
                print(f"{name}: changed but not quantized")
                return 1
            continue
        quantized += 1
        parts = {k[len(name) + 1:]: v for k, v in out.items() if k.startswith(name + ".")}
        ours = F.dequantize_4bit(out[name], F.QuantState.from_dict(parts, device=torch.device("cpu")))
        q, s = F.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=True)
        theirs = F.dequantize_4bit(q, s)
        if torch.equal(q, out[name]) and torch.equal(ours, theirs):
            identical += 1
        else:
            print(f"{name}: differs (packed equal: {torch.equal(q, out[name])}, "
                  f"max |diff| {(ours.float() - theirs.float()).abs().max().item():.3g})")
    print(f"{identical}/{quantized} quantized tensors identical to bitsandbytes' own")
    return 0 if identical == quantized and quantized > 0 else 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
