#!/usr/bin/env python3
"""A tiny GGUF whose Q8_0 / Q4_0 / F16 / BF16 tensors were quantized by the `gguf` package
(llama.cpp's own Python library), each beside an F32 tensor holding what that library
dequantizes it to. tests/unit/engine_model/gguf_test.cpp checks moat's block decoding against
it value for value. Random data, a few KB; outside CI:

    /tmp/refvenv/bin/pip install gguf numpy
    /tmp/refvenv/bin/python tools/make_quant_golden.py   # writes tests/golden/engine_model/quant_blocks.gguf
"""
import os

import gguf
import numpy as np
from gguf import quants

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "golden", "engine_model", "quant_blocks.gguf")


def main():
    rng = np.random.default_rng(5)
    data = (rng.standard_normal((8, 64)) * np.array([[0.01], [0.1], [1], [3], [0.5], [10], [0.02], [2]])).astype(np.float32)
    data[2, :32] = 0.0  # an all-zero block (scale 0)
    w = gguf.GGUFWriter(OUT, "quant_blocks")
    for name, qt in (("q8_0", gguf.GGMLQuantizationType.Q8_0), ("q4_0", gguf.GGMLQuantizationType.Q4_0),
                     ("f16", gguf.GGMLQuantizationType.F16), ("bf16", gguf.GGMLQuantizationType.BF16)):
        q = quants.quantize(data, qt)
        w.add_tensor(name, q, raw_dtype=qt)
        w.add_tensor(name + ".expected", quants.dequantize(q, qt).astype(np.float32).reshape(data.shape))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes), gguf {gguf.__version__ if hasattr(gguf, '__version__') else ''}")


if __name__ == "__main__":
    main()
