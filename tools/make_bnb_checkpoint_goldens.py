#!/usr/bin/env python3
"""Goldens for loading bitsandbytes checkpoints as they are: a tiny random Llama (random
weights, no fixture data) saved by transformers itself with load_in_4bit (NF4, double
quantization) and with load_in_8bit (LLM.int8), plus the logits transformers computes with
each and with the unquantized model. tests/unit/quantized_checkpoints/bnb_checkpoint_test.cpp
loads both folders with moat and compares.

Run outside CI, in a throwaway venv with torch, transformers, accelerate and bitsandbytes
(their CPU paths; see tools/make_bnb_goldens.py):

    /tmp/quantvenv/bin/python tools/make_bnb_checkpoint_goldens.py   # writes tests/golden/bnb/

Writes tests/golden/bnb/nf4/{config.json, model.safetensors}, tests/golden/bnb/int8/{...} and
tests/golden/bnb/logits.json: {"prompt": [...], "vocab": V, "f32": [...], "nf4": [...],
"int8": [...], "nf4_weights": [...], "int8_weights": [...]}, each the logits of every prompt
position, row-major [len(prompt)][V]:
  f32           the unquantized model;
  nf4, int8     transformers running the quantized model (bitsandbytes' CPU matmuls: int8 casts
                activations to fp16, and neither is exactly "dequantize, then f32");
  *_weights     the unquantized model's code with the saved checkpoint's weights dequantized by
                bitsandbytes itself (dequantize_4bit from the saved QuantState; int8 * SCB / 127
                by int8_vectorwise_dequant): what the checkpoint's values give in f32, the
                reference moat's forward pass must reproduce.
About 250 KB in all.
"""
import json
import os
import tempfile

import bitsandbytes.functional as F
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "golden", "bnb")
PROMPT = [1, 5, 9, 20, 33, 7, 60, 2]


def logits_of(model):
    with torch.no_grad():
        out = model(torch.tensor([PROMPT])).logits[0].float()
    return [round(float(v), 7) for v in out.reshape(-1)]


def dequantized_logits(f32_model, folder):
    """f32_model's logits with its linear weights replaced by the checkpoint's, as bitsandbytes
    dequantizes them."""
    sd = load_file(os.path.join(folder, "model.safetensors"))
    weights = {}
    for name, v in sd.items():
        if name + ".quant_state.bitsandbytes__nf4" in sd:
            parts = {k[len(name) + 1:]: t for k, t in sd.items() if k.startswith(name + ".")}
            weights[name] = F.dequantize_4bit(v, F.QuantState.from_dict(parts, device=torch.device("cpu"))).float()
        elif v.dtype == torch.int8:
            scb = sd[name[:-len(".weight")] + ".SCB"]
            weights[name] = F.int8_vectorwise_dequant(v, scb).float()
    model = f32_model
    saved = {k: p.detach().clone() for k, p in model.state_dict().items()}
    with torch.no_grad():
        for name, w in weights.items():
            model.get_parameter(name).copy_(w)
        out = logits_of(model)
        model.load_state_dict(saved)
    return out


def keep_small(folder):
    """transformers also writes generation_config.json; the test needs config and weights only."""
    for name in os.listdir(folder):
        if name not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(folder, name))


def main():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(cfg).float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))
    golden = {"prompt": PROMPT, "vocab": cfg.vocab_size, "f32": logits_of(model)}
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        for mode, q in (("nf4", BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                   bnb_4bit_use_double_quant=True,
                                                   bnb_4bit_compute_dtype=torch.float32)),
                        ("int8", BitsAndBytesConfig(load_in_8bit=True))):
            qm = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=q, device_map="cpu",
                                                      dtype=torch.float32).eval()
            golden[mode] = logits_of(qm)
            out = os.path.join(OUT, mode)
            os.makedirs(out, exist_ok=True)
            qm.save_pretrained(out)
            keep_small(out)
            golden[mode + "_weights"] = dequantized_logits(model, out)
    with open(os.path.join(OUT, "logits.json"), "w") as f:
        json.dump(golden, f)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
