"""PyTorch bf16 baseline for bench/cuda: decode tokens/s of a Llama-3.1-8B-shaped model with
random weights on the device, at the batch sizes and context the moat bench uses.

    python bench/cuda/torch_baseline.py --batches 1,8,64,256 --ctx 512 [--compile]

One decode step: 32 layers of RMSNorm, q/k/v projections, RoPE, attention over `ctx` cached
positions (scaled_dot_product_attention, GQA by repeating kv heads), o projection, SwiGLU MLP;
then the final norm and the LM head. The KV cache is a static tensor (no writes), as in the moat
bench. Needs torch with CUDA; not part of CI.
"""
import argparse
import time

import torch
import torch.nn.functional as F

HIDDEN, INTER, VOCAB, LAYERS, HEADS, KV_HEADS, HEAD_DIM = 4096, 14336, 128256, 32, 32, 8, 128


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def make_layers(dev):
    def w(o, i):
        return (torch.rand(o, i, device=dev, dtype=torch.bfloat16) - 0.5) * 0.1
    return [dict(wq=w(HEADS * HEAD_DIM, HIDDEN), wk=w(KV_HEADS * HEAD_DIM, HIDDEN), wv=w(KV_HEADS * HEAD_DIM, HIDDEN),
                 wo=w(HIDDEN, HEADS * HEAD_DIM), gate=w(INTER, HIDDEN), up=w(INTER, HIDDEN), down=w(HIDDEN, INTER),
                 n1=torch.ones(HIDDEN, device=dev, dtype=torch.bfloat16),
                 n2=torch.ones(HIDDEN, device=dev, dtype=torch.bfloat16)) for _ in range(LAYERS)]


def step(x, layers, head, kc, vc, cos, sin):
    b = x.shape[0]
    for l in layers:
        h = rms(x, l["n1"])
        q = (h @ l["wq"].T).view(b, HEADS, 1, HEAD_DIM)
        k = (h @ l["wk"].T).view(b, KV_HEADS, 1, HEAD_DIM)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        kk = torch.cat((kc[:, :, :-1], k), dim=2).repeat_interleave(HEADS // KV_HEADS, dim=1)
        vv = vc.repeat_interleave(HEADS // KV_HEADS, dim=1)
        a = F.scaled_dot_product_attention(q, kk, vv).reshape(b, HEADS * HEAD_DIM)
        x = x + a @ l["wo"].T
        h = rms(x, l["n2"])
        x = x + (F.silu(h @ l["gate"].T) * (h @ l["up"].T)) @ l["down"].T
    return rms(x, layers[0]["n1"]) @ head.T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,8,64,256")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    dev = "cuda"
    torch.manual_seed(0)
    layers = make_layers(dev)
    head = (torch.rand(VOCAB, HIDDEN, device=dev, dtype=torch.bfloat16) - 0.5) * 0.1
    fn = torch.compile(step) if args.compile else step
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, bf16, compile={args.compile}")
    print("batch  ctx  step_ms  tok_s")
    for b in [int(s) for s in args.batches.split(",")]:
        x = torch.randn(b, HIDDEN, device=dev, dtype=torch.bfloat16)
        kc = torch.randn(b, KV_HEADS, args.ctx, HEAD_DIM, device=dev, dtype=torch.bfloat16)
        vc = torch.randn_like(kc)
        ang = torch.rand(1, 1, 1, HEAD_DIM // 2, device=dev, dtype=torch.bfloat16)
        cos, sin = ang.cos(), ang.sin()
        with torch.no_grad():
            for _ in range(2):
                fn(x, layers, head, kc, vc, cos, sin)
            torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(args.steps):
                fn(x, layers, head, kc, vc, cos, sin)
            torch.cuda.synchronize()
        ms = (time.perf_counter() - t) / args.steps * 1e3
        print(f"{b:5d}  {args.ctx:4d}  {ms:7.2f}  {b / ms * 1e3:6.0f}", flush=True)
        del kc, vc


if __name__ == "__main__":
    main()
