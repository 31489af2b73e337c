"""What data-parallel training needs beyond DDP's gradient averaging, so N processes train as one.

DDP averages gradients; a loss normalized by each rank's own count (present frames, kept
latents) would weight ranks with fewer present hands more than one process would. Here each
rank normalizes by the count summed over all ranks, and random choices over a batch (codebook
init, dead-code reset) are made on the latents gathered from all ranks. Without a process
group (one process) every function is the identity.
"""
from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def global_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of a tensor over ranks, outside autograd (a count, a histogram)."""
    t = t.detach().clone()
    if world_size() > 1:
        dist.all_reduce(t)
    return t


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """x [M_r, D] on each rank -> [sum M_r, D], rows of rank 0 first (ranks may hold different M_r)."""
    if world_size() == 1:
        return x
    sizes = [torch.zeros((), dtype=torch.int64) for _ in range(world_size())]
    dist.all_gather(sizes, torch.tensor(x.shape[0], dtype=torch.int64))
    most = int(max(sizes))
    padded = x.new_zeros(most, *x.shape[1:])
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[: int(n)] for p, n in zip(parts, sizes)])
