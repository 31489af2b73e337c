"""Throughput of the HaMeR-size tracker network (ViT-H backbone + MANO transformer head).

Random weights: speed does not depend on the weights, so this measures what a user's real
`hamer.ckpt` will run at. Crops of 256x192, one forward pass per batch, no MANO layer.

    python benchmarks/hamer_net.py [--batch 64] [--iters 20] [--dtypes float32,bfloat16]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from annotators.hamer_net import HamerConfig, HamerNet


def measure(net: HamerNet, batch: int, iters: int, dtype: torch.dtype, device: str) -> float:
    """Crops per second of net(crops) at this batch size and dtype (autocast for half types)."""
    x = torch.randn(batch, 3, 256, 192, device=device)
    use_amp = dtype != torch.float32
    with torch.inference_mode(), torch.autocast(device, dtype=dtype, enabled=use_amp):
        for _ in range(3):  # warm-up (kernel selection)
            net(x)
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(iters):
            net(x)
        if device == "cuda":
            torch.cuda.synchronize()
    return batch * iters / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    net = HamerNet(HamerConfig()).to(a.device).eval()
    params = sum(p.numel() for p in net.parameters())
    res = {"device": torch.cuda.get_device_name() if a.device == "cuda" else "cpu", "params_m": round(params / 1e6, 1),
           "batch": a.batch, "torch": torch.__version__}
    for name in a.dtypes.split(","):
        res[f"crops_per_s_{name}"] = round(measure(net, a.batch, a.iters, getattr(torch, name), a.device), 1)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
