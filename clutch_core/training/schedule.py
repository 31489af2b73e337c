"""The learning rate at a step: linear warm-up from lr / warmup to lr, then constant.

Constant after warm-up on purpose: a finished stage can be extended (300 + 700 steps train
as 1000 steps would), which a schedule tied to the total step count would break.
"""
from __future__ import annotations


def lr_at(lr: float, warmup_steps: int, step: int) -> float:
    """Learning rate of (0-based) `step`."""
    return lr * min(1.0, (step + 1) / max(warmup_steps, 1))
