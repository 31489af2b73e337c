"""The optimizer of every trainer: AdamW with weight decay on matrices only.

Biases, norms' gains and other vectors get no decay (decaying them only fights the
normalisation). The fused kernel (one pass over the parameters instead of ~10 elementwise
passes; a large share of a CPU step, BENCHMARKS.md "SHIFT") is used where torch has it.
"""
from __future__ import annotations

import torch


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """[{matrices, weight_decay}, {vectors, 0.0}], each parameter once (tied weights too)."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def adamw(model: torch.nn.Module, lr: float, betas: tuple[float, float], weight_decay: float,
          fused: bool = True) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=tuple(betas), fused=fused)
