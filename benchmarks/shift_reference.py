"""The SHIFT training step as the reference code builds it, for the speed benchmark only.

Written from the facts of the public T2M-GPT / MotionGPT VQ-VAE code that the authors'
SHIFT follows (not copied): what matters here is where that step spends its time.
  - quantizer: float32 distances to all codes as x^2 - 2xy + y^2 (three [N, K] terms
    materialised), EMA statistics through a dense one-hot [K, N] matrix and a matmul,
    the whole batch tiled (+ noise) to K rows every step for dead-code reset, a
    permute/contiguous copy before and after;
  - decoder: nearest x2 upsampling materialised, then conv3;
  - one pass per hand and per part (left-traj, left-pose, right-traj, right-pose):
    four encoder/quantizer/decoder passes of batch B instead of two of batch 2B;
  - float32 throughout.
Same architecture and parameter shapes as clutch_core.shift.model.SHIFT (weights can be
copied across with `copy_weights`), same losses.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clutch_core.shift.model import HAND_DIM, POSE_IDX, TRAJ_IDX, TokenizerConfig


class RefQuantizer(nn.Module):
    def __init__(self, num_codes: int, dim: int, mu: float = 0.99):
        super().__init__()
        self.num_codes, self.dim, self.mu = num_codes, dim, mu
        self.register_buffer("codebook", torch.zeros(num_codes, dim))
        self.code_sum = self.code_count = None

    def _tile(self, x):
        n = x.shape[0]
        if n < self.num_codes:
            out = x.repeat((self.num_codes + n - 1) // n, 1)
            return out + torch.randn_like(out) * (0.01 / np.sqrt(self.dim))
        return x

    @torch.no_grad()
    def _update(self, x, idx):
        onehot = torch.zeros(self.num_codes, x.shape[0])
        onehot.scatter_(0, idx.view(1, -1), 1)
        code_sum = onehot @ x
        code_count = onehot.sum(-1)
        rand = self._tile(x)[: self.num_codes]
        self.code_sum = self.mu * self.code_sum + (1 - self.mu) * code_sum
        self.code_count = self.mu * self.code_count + (1 - self.mu) * code_count
        usage = (self.code_count.view(-1, 1) >= 1.0).float()
        self.codebook = usage * (self.code_sum / self.code_count.view(-1, 1)) + (1 - usage) * rand
        prob = code_count / code_count.sum()
        return torch.exp(-(prob * torch.log(prob + 1e-7)).sum())

    def forward(self, z):  # [B, D, S]
        b, d, s = z.shape
        x = z.permute(0, 2, 1).contiguous().view(-1, d)
        if self.code_sum is None:
            self.codebook = self._tile(x)[: self.num_codes]
            self.code_sum, self.code_count = self.codebook.clone(), torch.ones(self.num_codes)
        kt = self.codebook.t()
        dist = (x ** 2).sum(-1, keepdim=True) - 2 * (x @ kt) + (kt ** 2).sum(0, keepdim=True)
        _, idx = torch.min(dist, dim=-1)
        xd = F.embedding(idx, self.codebook)
        ppl = self._update(x.detach(), idx)
        commit = F.mse_loss(x, xd.detach())
        xd = x + (xd - x).detach()
        return xd.view(b, s, d).permute(0, 2, 1).contiguous(), commit, ppl


class _Res(nn.Module):
    def __init__(self, w, dil):
        super().__init__()
        self.conv = nn.Conv1d(w, w, 3, padding=dil, dilation=dil)
        self.proj = nn.Conv1d(w, w, 1)

    def forward(self, x):
        return x + self.proj(F.relu(self.conv(F.relu(x))))


def _stack(w, depth, growth, reverse):
    d = [growth ** i for i in range(depth)]
    return nn.Sequential(*[_Res(w, x) for x in (d[::-1] if reverse else d)])


class _Up(nn.Module):  # same parameter layout as Upsample2Conv
    def __init__(self, w):
        super().__init__()
        self.conv = nn.Conv1d(w, w, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def _encoder(in_dim, c: TokenizerConfig):
    layers = [nn.Conv1d(in_dim, c.width, 3, padding=1), nn.ReLU()]
    for _ in range(c.down):
        layers += [nn.Conv1d(c.width, c.width, 4, 2, 1), _stack(c.width, c.depth, c.growth, False)]
    return nn.Sequential(*layers, nn.Conv1d(c.width, c.code_dim, 3, padding=1))


def _decoder(out_dim, c: TokenizerConfig):
    layers = [nn.Conv1d(c.code_dim, c.width, 3, padding=1), nn.ReLU()]
    for _ in range(c.down):
        layers += [_stack(c.width, c.depth, c.growth, True), _Up(c.width)]
    return nn.Sequential(*layers, nn.Conv1d(c.width, c.width, 3, padding=1), nn.ReLU(),
                         nn.Conv1d(c.width, out_dim, 3, padding=1))


class RefSHIFT(nn.Module):
    """Parameter order matches SHIFT: encoders (traj, pose), decoders (traj, pose)."""

    def __init__(self, c: TokenizerConfig):
        super().__init__()
        self.encoders = nn.ModuleDict({"traj": _encoder(HAND_DIM, c), "pose": _encoder(HAND_DIM, c)})
        self.quantizers = nn.ModuleDict({"traj": RefQuantizer(c.codes, c.code_dim), "pose": RefQuantizer(c.codes, c.code_dim)})
        self.decoders = nn.ModuleDict({"traj": _decoder(len(TRAJ_IDX), c), "pose": _decoder(len(POSE_IDX), c)})

    def forward(self, x):  # [B, T, 198] -> recon [B, T, 198], commit
        hands, commit = [], 0.0
        for h in range(2):  # one pass per hand ...
            hx = x[..., h * HAND_DIM:(h + 1) * HAND_DIM].permute(0, 2, 1)  # [B, 99, T]
            out = {}
            for part in ("traj", "pose"):  # ... and per part
                zq, c, _ = self.quantizers[part](self.encoders[part](hx))
                out[part] = self.decoders[part](zq)
                commit = commit + c
            hand = torch.cat([out["traj"][:, :6], out["pose"], out["traj"][:, 6:]], 1)  # [B, 99, T]
            hands.append(hand.permute(0, 2, 1))
        return torch.cat(hands, -1), commit


def copy_weights(src: nn.Module, dst: RefSHIFT) -> None:
    """Same initial weights for both implementations (parameters in the same order and shapes)."""
    ps, pd = list(src.parameters()), list(dst.parameters())
    assert len(ps) == len(pd) and all(a.shape == b.shape for a, b in zip(ps, pd))
    with torch.no_grad():
        for a, b in zip(ps, pd):
            b.copy_(a)
