"""SHIFT and the plain VQ-VAE baseline: 1D convolutional encoders/decoders around EMA quantizers.

Layout of one hand's 99 numbers (layout): 6D global orientation [0:6],
15 joints x 6D [6:96], wrist translation [96:99].

- SHIFT: two VQ-VAEs. The trajectory one decodes orientation + translation (9 numbers),
  the pose one the 15 joint rotations (90); both encoders see the whole 99-number hand.
  Left and right hands share the networks: they are stacked on the batch axis, so one
  pass serves both. Tokens per latent step: [left-traj, left-pose, right-traj, right-pose].
- VQVAE (MotionGPT / T2M-GPT tokenizer): one VQ-VAE over the whole 198-number frame,
  one token per latent step.
- RVQ (equal-bits baseline): the VQVAE's networks with a 4-level residual quantizer, so
  it emits 4 tokens per latent step from 4 codebooks of `codes` entries, the same bits
  per step as SHIFT. SHIFT vs RVQ isolates the decomposition; SHIFT vs VQVAE mixes it
  with 4x the bits.

Time is downsampled by 2**down (x4 by default): latent step s covers frames [4s, 4s+4).
A latent step counts as present for a hand when that hand is present in any of its
frames; an absent hand's tokens are still produced (so every clip has the same
token layout) and the presence mask travels with them.

Absent latent steps have one defined latent, the zero vector, everywhere the decoders run:
in training (forward), in `decode` of tokens and in `decode_vectors` (the language model's
refinement and teacher forcing), given the same latent presence. So the frames beside a
gap are decoded exactly as SHIFT learnt to reconstruct them, whatever code an absent
step's token holds. (Whole-frame tokenizers: a step is absent when both hands are.)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from clutch_core.shift.presets import TOKENIZERS
from clutch_core.shift.quantizer import EMAQuantizer
from layout import HAND_DIM
from layout import POSE_IDX as _POSE
from layout import TRAJ_IDX as _TRAJ

TRAJ_IDX, POSE_IDX = list(_TRAJ), list(_POSE)  # 9: orientation 6D + wrist translation; 90: 15 joints x 6D
STREAM_BOOK = ("traj", "pose", "traj", "pose")  # SHIFT's codebook of each stream
RVQ_LEVELS = 4  # tokens per latent step of the equal-bits baseline, as SHIFT's 4 streams


@dataclass
class TokenizerConfig:
    kind: str = "shift"  # shift | vqvae | rvq
    width: int = 512  # conv channels
    depth: int = 3  # residual blocks per resolution
    growth: int = 3  # dilation growth: 1, 3, 9
    down: int = 2  # stride-2 stages: temporal downsampling 2**down
    codes: int = 4096  # codebook size (each codebook)
    code_dim: int = 512
    mu: float = 0.99  # EMA decay of the codebooks

    def __post_init__(self):
        if self.kind not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {TOKENIZERS}, got {self.kind!r}")

    @property
    def stride(self) -> int:
        return 2 ** self.down

    def to_dict(self) -> dict:
        return asdict(self)


class ResBlock(nn.Module):
    """relu -> dilated conv3 -> relu -> conv1, added to the input."""

    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation)
        self.proj = nn.Conv1d(width, width, 1)

    def forward(self, x):
        return x + self.proj(F.relu(self.conv(F.relu(x))))


def _res_stack(width: int, depth: int, growth: int, reverse: bool) -> nn.Sequential:
    dilations = [growth ** i for i in range(depth)]
    return nn.Sequential(*[ResBlock(width, d) for d in (dilations[::-1] if reverse else dilations)])


class Upsample2Conv(nn.Module):
    """Nearest x2 upsampling followed by conv3, computed without materialising the upsampled signal.

    With y = conv3(up2(x)) and kernel (w0, w1, w2): y[2t] = w0 x[t-1] + (w1+w2) x[t] and
    y[2t+1] = (w0+w1) x[t] + w2 x[t+1]: one conv2 with 2C outputs on the low-rate signal,
    2/3 of the multiply-adds, same parameters and same result as the two-step form.
    """

    def __init__(self, width: int):
        super().__init__()
        self.conv = nn.Conv1d(width, width, 3, padding=1)

    def forward(self, x):  # [B, C, T] -> [B, C, 2T]
        w0, w1, w2 = self.conv.weight.unbind(-1)
        w = torch.cat([torch.stack([w0, w1 + w2], -1), torch.stack([w0 + w1, w2], -1)], 0)  # [2C, C, 2]
        y = F.conv1d(F.pad(x, (1, 1)), w, self.conv.bias.repeat(2))  # [B, 2C, T+1]
        c, t = x.shape[1], x.shape[2]
        even, odd = y[:, :c, :t], y[:, c:, 1:]
        return torch.stack([even, odd], -1).reshape(x.shape[0], c, 2 * t)


class Encoder(nn.Module):
    def __init__(self, in_dim: int, cfg: TokenizerConfig):
        super().__init__()
        w = cfg.width
        layers: list[nn.Module] = [nn.Conv1d(in_dim, w, 3, padding=1), nn.ReLU()]
        for _ in range(cfg.down):
            layers += [nn.Conv1d(w, w, 4, stride=2, padding=1), _res_stack(w, cfg.depth, cfg.growth, False)]
        layers.append(nn.Conv1d(w, cfg.code_dim, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):  # [B, in_dim, T] -> [B, code_dim, T / stride]
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, out_dim: int, cfg: TokenizerConfig):
        super().__init__()
        w = cfg.width
        layers: list[nn.Module] = [nn.Conv1d(cfg.code_dim, w, 3, padding=1), nn.ReLU()]
        for _ in range(cfg.down):
            layers += [_res_stack(w, cfg.depth, cfg.growth, True), Upsample2Conv(w)]
        layers += [nn.Conv1d(w, w, 3, padding=1), nn.ReLU(), nn.Conv1d(w, out_dim, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z):  # [B, code_dim, S] -> [B, out_dim, S * stride]
        return self.net(z)


class TokenizerOutput(NamedTuple):
    recon: torch.Tensor  # [B, T, 198] (normalized space)
    tokens: torch.Tensor  # [B, S, n_streams] int64
    latent_presence: torch.Tensor  # [B, S, 2] bool
    commit: torch.Tensor  # scalar, summed over codebooks
    perplexity: dict[str, torch.Tensor]  # per codebook, on this batch's present latents


def latent_presence(presence: torch.Tensor, stride: int) -> torch.Tensor:
    """presence [B, T, 2] (T a multiple of stride) -> [B, T / stride, 2]: hand seen in any frame of the step."""
    b, t, h = presence.shape
    return presence.view(b, t // stride, stride, h).any(2)


def absent_to_zero(z: torch.Tensor, present: torch.Tensor | None) -> torch.Tensor:
    """z [N, D, S] latents, present [N, S] bool (None: all present) -> the absent steps' latent set to 0."""
    return z if present is None else z * present[:, None, :].to(z.dtype)


class MotionTokenizer(nn.Module):
    """Common interface: forward for training, encode -> tokens, decode tokens -> motion."""

    streams: tuple[str, ...]
    codebooks: tuple[str, ...]

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.cfg = cfg

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[-1] != 2 * HAND_DIM or x.shape[1] % self.cfg.stride:
            raise ValueError(f"motion must be [B, T, 198] with T a multiple of {self.cfg.stride}, got {tuple(x.shape)}")

    @torch.no_grad()
    def encode(self, x: torch.Tensor, presence: torch.Tensor) -> torch.Tensor:
        """x [B, T, 198] normalized -> tokens [B, T / stride, n_streams]."""
        return self.forward(x, presence).tokens


class SHIFT(MotionTokenizer):
    streams = ("left_traj", "left_pose", "right_traj", "right_pose")
    codebooks = ("traj", "pose")

    def __init__(self, cfg: TokenizerConfig):
        super().__init__(cfg)
        dims = {"traj": len(TRAJ_IDX), "pose": len(POSE_IDX)}
        self.encoders = nn.ModuleDict({p: Encoder(HAND_DIM, cfg) for p in self.codebooks})
        self.quantizers = nn.ModuleDict({p: EMAQuantizer(cfg.codes, cfg.code_dim, cfg.mu) for p in self.codebooks})
        self.decoders = nn.ModuleDict({p: Decoder(dims[p], cfg) for p in self.codebooks})
        self.register_buffer("_traj_idx", torch.tensor(TRAJ_IDX), persistent=False)
        self.register_buffer("_pose_idx", torch.tensor(POSE_IDX), persistent=False)

    def forward(self, x: torch.Tensor, presence: torch.Tensor) -> TokenizerOutput:
        self._check(x)
        b, t, _ = x.shape
        hands = x.view(b, t, 2, HAND_DIM).permute(2, 0, 3, 1).reshape(2 * b, HAND_DIM, t)  # [2B, 99, T] left first
        lp = latent_presence(presence, self.cfg.stride)  # [B, S, 2]
        mask = lp.permute(2, 0, 1).reshape(2 * b, -1)  # [2B, S]
        out = x.new_empty(2 * b, HAND_DIM, t)
        idx, commit, ppl = {}, 0.0, {}
        for part, cols in (("traj", self._traj_idx), ("pose", self._pose_idx)):
            zq, idx[part], c, ppl[part] = self.quantizers[part](self.encoders[part](hands), mask)
            out[:, cols] = self.decoders[part](absent_to_zero(zq, mask)).to(out.dtype)
            commit = commit + c
        recon = out.view(2, b, HAND_DIM, t).permute(1, 3, 0, 2).reshape(b, t, 2 * HAND_DIM)
        tr, po = idx["traj"].view(2, b, -1), idx["pose"].view(2, b, -1)
        tokens = torch.stack([tr[0], po[0], tr[1], po[1]], -1)  # [B, S, 4]
        return TokenizerOutput(recon, tokens, lp, commit, ppl)

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor, presence: torch.Tensor | None = None) -> torch.Tensor:
        """tokens [B, S, 4], latent presence [B, S, 2] (None: all present) -> motion [B, S * stride, 198]
        (normalized space)."""
        vectors = torch.stack([self.quantizers[STREAM_BOOK[k]].lookup(tokens[..., k]) for k in range(4)], 2)
        return self.decode_vectors(vectors, presence)

    def decode_vectors(self, z: torch.Tensor, presence: torch.Tensor | None = None) -> torch.Tensor:
        """Differentiable decode of code vectors (e.g. soft mixtures of codes, for the LM's geometric
        refinement): z [B, S, 4, D] in stream order, latent presence [B, S, 2] (None: all present)
        -> motion [B, S * stride, 198] (normalized)."""
        b, s = z.shape[:2]
        mask = None if presence is None else presence.permute(2, 0, 1).reshape(2 * b, s)  # [2B, S] left first
        parts = []
        for part, (l, r) in (("traj", (0, 2)), ("pose", (1, 3))):
            zz = torch.cat([z[:, :, l], z[:, :, r]], 0).transpose(1, 2)  # [2B, D, S]
            parts.append(self.decoders[part](absent_to_zero(zz, mask)).float())  # [2B, 9 | 90, T]
        traj, pose = parts
        hands = torch.cat([traj[:, :6], pose, traj[:, 6:]], 1)  # [2B, 99, T] in hand layout
        t = hands.shape[-1]
        return hands.view(2, b, HAND_DIM, t).permute(1, 3, 0, 2).reshape(b, t, 2 * HAND_DIM)


class VQVAE(MotionTokenizer):
    streams = ("frame",)
    codebooks = ("frame",)

    def __init__(self, cfg: TokenizerConfig):
        super().__init__(cfg)
        self.encoder = Encoder(2 * HAND_DIM, cfg)
        self.quantizer = EMAQuantizer(cfg.codes, cfg.code_dim, cfg.mu)
        self.decoder = Decoder(2 * HAND_DIM, cfg)

    def forward(self, x: torch.Tensor, presence: torch.Tensor) -> TokenizerOutput:
        self._check(x)
        lp = latent_presence(presence, self.cfg.stride)
        zq, idx, commit, ppl = self.quantizer(self.encoder(x.transpose(1, 2)), lp.any(-1))
        recon = self.decoder(absent_to_zero(zq, lp.any(-1))).transpose(1, 2).float()
        return TokenizerOutput(recon, idx.unsqueeze(-1), lp, commit, {"frame": ppl})

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor, presence: torch.Tensor | None = None) -> torch.Tensor:
        """tokens [B, S, 1], latent presence [B, S, 2] (None: all present) -> motion [B, S * stride, 198]."""
        return self.decode_vectors(self.quantizer.lookup(tokens), presence)

    def decode_vectors(self, z: torch.Tensor, presence: torch.Tensor | None = None) -> torch.Tensor:
        """Differentiable decode of code vectors: z [B, S, 1, D] -> motion [B, S * stride, 198] (normalized)."""
        mask = None if presence is None else presence.any(-1)
        return self.decoder(absent_to_zero(z[:, :, 0].transpose(1, 2), mask)).transpose(1, 2).float()


class RVQ(MotionTokenizer):
    """Whole-frame VQ-VAE with a residual quantizer: level k quantizes what levels < k left over."""

    streams = tuple(f"level{k}" for k in range(RVQ_LEVELS))
    codebooks = streams

    def __init__(self, cfg: TokenizerConfig):
        super().__init__(cfg)
        self.encoder = Encoder(2 * HAND_DIM, cfg)
        self.quantizers = nn.ModuleDict({c: EMAQuantizer(cfg.codes, cfg.code_dim, cfg.mu) for c in self.codebooks})
        self.decoder = Decoder(2 * HAND_DIM, cfg)

    def forward(self, x: torch.Tensor, presence: torch.Tensor) -> TokenizerOutput:
        self._check(x)
        lp = latent_presence(presence, self.cfg.stride)
        mask = lp.any(-1)  # [B, S]
        z = self.encoder(x.transpose(1, 2))  # [B, D, S]
        residual, hard = z, torch.zeros_like(z)
        idx, commit, ppl = [], 0.0, {}
        for c in self.codebooks:
            q, i, cl, ppl[c] = self.quantizers[c](residual, mask)  # q equals the chosen codes
            q = q.detach()
            hard, residual = hard + q, residual - q
            idx.append(i)
            commit = commit + cl
        zq = z + (hard - z).detach()  # straight-through on the sum
        recon = self.decoder(absent_to_zero(zq, mask)).transpose(1, 2).float()
        return TokenizerOutput(recon, torch.stack(idx, -1), lp, commit, ppl)

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor, presence: torch.Tensor | None = None) -> torch.Tensor:
        """tokens [B, S, 4], latent presence [B, S, 2] (None: all present) -> motion [B, S * stride, 198]."""
        vectors = torch.stack([self.quantizers[c].lookup(tokens[..., k]) for k, c in enumerate(self.codebooks)], 2)
        return self.decode_vectors(vectors, presence)

    def decode_vectors(self, z: torch.Tensor, presence: torch.Tensor | None = None) -> torch.Tensor:
        """Differentiable decode of per-level code vectors: z [B, S, 4, D] (summed) -> motion [B, S * stride, 198]."""
        mask = None if presence is None else presence.any(-1)
        return self.decoder(absent_to_zero(z.sum(2).transpose(1, 2), mask)).transpose(1, 2).float()


def build_tokenizer(cfg: TokenizerConfig) -> MotionTokenizer:
    return {"shift": SHIFT, "vqvae": VQVAE, "rvq": RVQ}[cfg.kind](cfg)


def quantizers(model: MotionTokenizer) -> dict[str, EMAQuantizer]:
    """Codebook name -> quantizer, for statistics and checkpoints."""
    return dict(model.quantizers) if isinstance(model, (SHIFT, RVQ)) else {"frame": model.quantizer}
