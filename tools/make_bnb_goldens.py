#!/usr/bin/env python3
"""Goldens for moat's NF4 format: what bitsandbytes' own CPU path makes of random tensors.

For each case it quantizes a float32 tensor with `bitsandbytes.functional.quantize_4bit`
(nf4, blocks of 64), once plain and once with double quantization (compress_statistics=True:
absmax minus its mean, 8-bit dynamic map in blocks of 256), and dequantizes both with
`dequantize_4bit`. tests/unit/quant/nf4_golden_test.cpp checks moat's quantize and dequantize
against every array to the bit, and reads the checkpoint form (QuantState.as_dict(packed=True),
what transformers saves) with engine/quant/bnb_checkpoint.h. Also the 256-entry dynamic map.
Small files (~700 KB in all);
run outside CI, in a throwaway venv that has torch and bitsandbytes:

    python3 -m venv /tmp/quantvenv && /tmp/quantvenv/bin/pip install torch bitsandbytes
    /tmp/quantvenv/bin/python tools/make_bnb_goldens.py   # writes tests/golden/quant/*.bin

blockwise8.bin checks the 8-bit second level alone across every boundary of the dynamic map;
int8_rowwise.bin is bitsandbytes' 8-bit (LLM.int8) row-wise format.

File format (little-endian), read by tests/unit/quant/golden_file.h:
    "MQG1", u32 array count, then per array: u32 name length, name bytes, u8 dtype (0 = f32,
    1 = u8), u64 element count, the elements.
"""
import os
import struct

import bitsandbytes.functional as F
import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "golden", "quant")


def write(path, arrays):
    with open(path, "wb") as f:
        f.write(b"MQG1")
        f.write(struct.pack("<I", len(arrays)))
        for name, a in arrays:
            a = a.detach().cpu().contiguous().reshape(-1)
            if a.dtype == torch.float32:
                dtype, raw = 0, a.numpy().astype("<f4").tobytes()
            elif a.dtype == torch.uint8:
                dtype, raw = 1, a.numpy().tobytes()
            else:
                raise TypeError(f"{name}: {a.dtype}")
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)) + nb + struct.pack("<BQ", dtype, a.numel()) + raw)


def case(name, x):
    q, s = F.quantize_4bit(x, blocksize=64, quant_type="nf4", compress_statistics=False)
    y = F.dequantize_4bit(q, s)
    qd, sd = F.quantize_4bit(x, blocksize=64, quant_type="nf4", compress_statistics=True)
    yd = F.dequantize_4bit(qd, sd)
    assert torch.equal(q, qd)
    arrays = [
        ("shape", torch.tensor(list(x.shape), dtype=torch.float32)),
        ("input", x),
        ("packed", q),
        ("absmax", s.absmax),
        ("dequant", y),
        ("dq_absmax", sd.absmax),            # u8 codes of (absmax - offset)
        ("dq_absmax2", sd.state2.absmax),    # fp32 second-level scales, one per 256
        ("dq_offset", sd.offset.reshape(1)),
        ("dq_code", sd.state2.code),         # the dynamic map as saved in a checkpoint
        ("dq_dequant", yd),
        # What transformers writes beside the weight: the quant_state JSON and the NF4 table.
        ("ckpt_quant_state", sd.as_dict(packed=True)["quant_state.bitsandbytes__nf4"]),
        ("ckpt_quant_map", sd.as_dict(packed=True)["quant_map"]),
    ]
    write(os.path.join(OUT, f"nf4_{name}.bin"), arrays)
    print(name, tuple(x.shape), "blocks", s.absmax.numel(), "nested blocks", sd.state2.absmax.numel())


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(8)
    case("64x64", torch.randn(64, 64))
    case("7x100", torch.randn(7, 100) * 3.0)          # 700 values: a partial last block
    case("3x33", torch.randn(3, 33) * 0.02)           # odd last dim: bitsandbytes' fallback path
    x = torch.randn(40, 520)                          # 325 blocks: two nested blocks, the last partial
    x[:, :64] *= 10.0                                 # a spread of absmax values
    x[5, 128:192] = 0.0                               # an all-zero block
    case("40x520", x)
    case("1x17000", torch.randn(1, 17000) * torch.linspace(0.01, 4.0, 17000))  # 266 blocks: 10 in the last nested
    write(os.path.join(OUT, "dynamic_map.bin"), [("code", F.create_dynamic_map())])
    # The 8-bit blockwise quantizer alone (the second level of double quantization): a sweep
    # of [-1, 1] in blocks of 256 whose first value is 1.0, so absmax = 1 and every decision
    # boundary of the dynamic map is crossed, with values a hair either side of it.
    z = torch.linspace(-1.0, 1.0, 255 * 128)
    a = torch.zeros(128, 256)
    a[:, 0] = 1.0
    a[:, 1:] = z.view(128, 255)
    a = a.flatten() * 0.37  # absmax 0.37: the reciprocal is not exact
    codes, st = F.quantize_blockwise(a, blocksize=256)
    write(os.path.join(OUT, "blockwise8.bin"), [("input", a), ("codes", codes), ("absmax", st.absmax)])
    # bitsandbytes 8-bit (LLM.int8): row-wise int8 and the row absmax (SCB), and its dequantization.
    w8 = torch.randn(13, 70) * torch.linspace(0.01, 3.0, 13).unsqueeze(1)
    w8[4, 0] = 127.0  # row 4: absmax 127, so 62.5 and -3.5 land exactly on .5 steps (half to even)
    w8[4, 7] = 62.5
    w8[4, 8] = -3.5
    cb, scb, _ = F.int8_vectorwise_quant(w8.clone())
    write(os.path.join(OUT, "int8_rowwise.bin"), [
        ("shape", torch.tensor([13.0, 70.0])), ("input", w8), ("cb", cb.view(torch.uint8)), ("scb", scb),
        ("dequant", F.int8_vectorwise_dequant(cb, scb))])


if __name__ == "__main__":
    main()
