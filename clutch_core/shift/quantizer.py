"""EMA vector quantizer with dead-code reset (the SHIFT / T2M-GPT recipe, our implementation).

The codebook is not trained by gradients: each code follows an exponential moving
average (decay `mu`) of the latents assigned to it; codes whose EMA usage falls under
one assignment per step are replaced by random latents of the current batch. The
encoder is pulled towards its codes by the commitment loss; gradients reach it
through the straight-through estimator.

Cost choices (see BENCHMARKS.md, "SHIFT"):
- nearest code: argmin_k ||c_k||^2 - 2 z.c_k as one fused addmm; ||z||^2 is the
  same for every code of a row, so it is never computed;
- EMA statistics with bincount/index_add (O(N*D)), not a dense [K, N] one-hot matmul;
- distances and statistics always in float32, also under bf16 autocast.

Latents flagged absent (a hand out of view) are quantized but neither update the
codebook nor count in the commitment loss or the perplexity.
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from clutch_core.shift.distributed import gather_rows, global_sum


class EMAQuantizer(nn.Module):
    def __init__(self, num_codes: int, dim: int, mu: float = 0.99, reset_below: float = 1.0):
        super().__init__()
        self.num_codes, self.dim, self.mu, self.reset_below = num_codes, dim, mu, reset_below
        self.register_buffer("codebook", torch.zeros(num_codes, dim))  # [K, D]
        self.register_buffer("code_sum", torch.zeros(num_codes, dim))  # EMA of assigned latent sums
        self.register_buffer("code_count", torch.zeros(num_codes))  # EMA of assignment counts
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """z [N, D] -> index [N] of the closest code (squared Euclidean)."""
        cb = self.codebook
        d = torch.addmm((cb * cb).sum(1), z.float(), cb.t(), alpha=-2.0)  # [N, K], ||z||^2 omitted
        return d.argmin(1)

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        """idx [...] -> code vectors [..., D]."""
        return F.embedding(idx, self.codebook)

    def forward(self, z: torch.Tensor, mask: torch.Tensor | None = None):
        """z [B, D, S] (encoder output), mask [B, S] bool (True = real latent).

        Returns (zq [B, D, S] straight-through, idx [B, S], commit loss, perplexity of this batch).
        """
        b, d, s = z.shape
        flat = z.transpose(1, 2).reshape(b * s, d)  # [N, D]
        keep = torch.ones(b * s, dtype=torch.bool, device=z.device) if mask is None else mask.reshape(-1)
        with torch.autocast(z.device.type, enabled=False):
            flat32 = flat.float()
            if self.training and not bool(self.initialized):
                self._init_codebook(gather_rows(flat32.detach()[keep]))
            idx = self.nearest(flat32.detach())
            zq = self.lookup(idx)  # [N, D]
            counts = self._update(flat32.detach(), idx, keep) if self.training else None
            if counts is None:
                counts = torch.bincount(idx[keep], minlength=self.num_codes).float()
            w = keep.float()
            n = global_sum(w.sum()) if self.training else w.sum()  # kept latents of all ranks
            commit = (((flat32 - zq) ** 2).mean(1) * w).sum() / n.clamp_min(1.0)
            zq = flat32 + (zq - flat32).detach()
        zq = zq.to(z.dtype).view(b, s, d).transpose(1, 2)
        return zq, idx.view(b, s), commit, perplexity(counts)

    @torch.no_grad()
    def _init_codebook(self, x: torch.Tensor) -> None:
        if x.shape[0] == 0:
            return
        self.codebook.copy_(self._random_latents(x, self.num_codes))
        self.code_sum.copy_(self.codebook)
        self.code_count.fill_(1.0)
        self.initialized.fill_(True)
        self._sync_codebook()

    @torch.no_grad()
    def _update(self, x: torch.Tensor, idx: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """EMA step on the kept latents; returns this step's per-code counts [K] (summed over ranks)."""
        x, idx = x[keep], idx[keep]
        counts = global_sum(torch.bincount(idx, minlength=self.num_codes).float())
        sums = global_sum(torch.zeros_like(self.code_sum).index_add_(0, idx, x))
        self.code_sum.mul_(self.mu).add_(sums, alpha=1 - self.mu)
        self.code_count.mul_(self.mu).add_(counts, alpha=1 - self.mu)
        live = self.code_count >= self.reset_below
        mean = self.code_sum / self.code_count.clamp_min(1e-6)[:, None]
        dead = int((~live).sum())
        if dead:
            x = gather_rows(x)  # replacements are drawn from the latents of every rank
        if dead and x.shape[0]:
            mean[~live] = self._random_latents(x, dead)
        elif dead:
            mean[~live] = self.codebook[~live]
        self.codebook.copy_(mean)
        if dead:
            self._sync_codebook()  # replacements are random: every rank takes rank 0's
        return counts

    def _random_latents(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """n rows drawn from x [M, D] (with replacement when M < n) plus small noise.

        x is put in a canonical order first (by its projection on a fixed direction), so the
        draw does not depend on how the batch was split between ranks: N processes draw the
        rows one process drawing from the whole batch would.
        """
        direction = torch.randn(x.shape[1], generator=torch.Generator().manual_seed(0)).to(x)
        x = x[torch.sort(x @ direction, stable=True).indices]
        pick = torch.randperm(x.shape[0], device=x.device)[:n] if x.shape[0] >= n else \
            torch.randint(0, x.shape[0], (n,), device=x.device)
        return x[pick] + torch.randn(n, self.dim, device=x.device) * (0.01 / math.sqrt(self.dim))

    def _sync_codebook(self) -> None:
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.broadcast(self.codebook, 0)


def perplexity(counts: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of the code histogram: the effective number of codes in use."""
    p = counts / counts.sum().clamp_min(1.0)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
