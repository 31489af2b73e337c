"""HaMeR-style network: a ViT backbone and a MANO transformer-decoder head (torch).

Module and parameter names and shapes follow the public HaMeR release (``backbone.*`` a ViTPose
ViT, ``mano_head.*`` the cross-attention decoder head), so the ``state_dict`` of a HaMeR
Lightning checkpoint (``hamer.ckpt``) loads with strict key matching. Sizes come from a
`HamerConfig`, read from HaMeR's ``model_config.yaml`` (beside the checkpoint or one folder up)
and/or given as arguments; HaMeR's own config fixes the ViT at ViT-H (1280 wide, 32 deep, 16
heads), so the backbone keys below are our extension with ViT-H as the default.

Forward: image crops [B, 3, 256, 192] (normalised RGB) -> dict
    global_orient [B, 1, 3, 3], hand_pose [B, 15, 3, 3] (rotation matrices, right-hand MANO),
    betas [B, 10], cam [B, 3] weak perspective (scale, tx, ty) of the crop.
"""
from __future__ import annotations

import copy
import logging
import pickle
from collections import OrderedDict
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clutch_core.hands.rotations import rot6d_to_matrix

log = logging.getLogger(__name__)

CHECKPOINT_PARTS = ("backbone.", "mano_head.")  # what we load; the rest (MANO buffers, discriminator) is training-only


@dataclass
class HamerConfig:
    """Sizes and conventions of one HaMeR model (defaults: the released ViT-H HaMeR)."""

    image_size: int = 256  # square crop side; the backbone sees its middle 192 columns
    image_mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    image_std: tuple[float, ...] = (0.229, 0.224, 0.225)
    focal_length: float = 5000.0  # pixels at image_size
    # backbone (ViT)
    embed_dim: int = 1280
    depth: int = 32
    num_heads: int = 16
    mlp_ratio: float = 4.0
    patch_size: int = 16
    # MANO head (transformer decoder)
    head_dim: int = 1024
    head_depth: int = 6
    head_heads: int = 8
    head_dim_head: int = 64
    head_mlp_dim: int = 1024
    ief_iters: int = 1
    num_hand_joints: int = 15

    @classmethod
    def from_hamer_yaml(cls, cfg: dict[str, Any]) -> "HamerConfig":
        """From HaMeR's model_config.yaml (a nested dict with MODEL / EXTRA / MANO sections)."""
        model, extra = cfg.get("MODEL", {}) or {}, cfg.get("EXTRA", {}) or {}
        bb, head = model.get("BACKBONE", {}) or {}, model.get("MANO_HEAD", {}) or {}
        if bb.get("TYPE", "vit") != "vit":
            raise ValueError(f"HaMeR backbone {bb.get('TYPE')!r} is not supported (only 'vit')")
        if head.get("TYPE", "transformer_decoder") != "transformer_decoder":
            raise ValueError(f"HaMeR MANO head {head.get('TYPE')!r} is not supported (only 'transformer_decoder')")
        if head.get("JOINT_REP", "6d") != "6d" or head.get("TRANSFORMER_INPUT", "zero") != "zero":
            raise ValueError("HaMeR MANO head: only JOINT_REP '6d' with TRANSFORMER_INPUT 'zero' is supported")
        dec = head.get("TRANSFORMER_DECODER", {}) or {}
        if dec.get("norm", "layer") != "layer":
            raise ValueError(f"HaMeR MANO head norm {dec.get('norm')!r} is not supported (only 'layer')")
        d = cls()
        kw = dict(
            image_size=model.get("IMAGE_SIZE", d.image_size),
            image_mean=tuple(model.get("IMAGE_MEAN", d.image_mean)),
            image_std=tuple(model.get("IMAGE_STD", d.image_std)),
            focal_length=extra.get("FOCAL_LENGTH", d.focal_length),
            embed_dim=bb.get("EMBED_DIM", d.embed_dim), depth=bb.get("DEPTH", d.depth),
            num_heads=bb.get("NUM_HEADS", d.num_heads), mlp_ratio=bb.get("MLP_RATIO", d.mlp_ratio),
            head_dim=dec.get("dim", d.head_dim), head_depth=dec.get("depth", d.head_depth),
            head_heads=dec.get("heads", d.head_heads), head_dim_head=dec.get("dim_head", d.head_dim_head),
            head_mlp_dim=dec.get("mlp_dim", d.head_mlp_dim), ief_iters=head.get("IEF_ITERS", d.ief_iters),
            num_hand_joints=(cfg.get("MANO", {}) or {}).get("NUM_HAND_JOINTS", d.num_hand_joints),
        )
        ctx = dec.get("context_dim", kw["embed_dim"])
        if ctx != kw["embed_dim"]:
            raise ValueError(f"HaMeR config: MANO head context_dim {ctx} != backbone width {kw['embed_dim']}")
        return cls(**kw)

    def to_hamer_yaml(self) -> dict[str, Any]:
        """The model_config.yaml layout (with our BACKBONE size keys), inverse of from_hamer_yaml."""
        return {
            "MODEL": {
                "IMAGE_SIZE": self.image_size, "IMAGE_MEAN": list(self.image_mean), "IMAGE_STD": list(self.image_std),
                "BACKBONE": {"TYPE": "vit", "EMBED_DIM": self.embed_dim, "DEPTH": self.depth,
                             "NUM_HEADS": self.num_heads, "MLP_RATIO": self.mlp_ratio},
                "MANO_HEAD": {"TYPE": "transformer_decoder", "IEF_ITERS": self.ief_iters, "TRANSFORMER_DECODER": {
                    "dim": self.head_dim, "depth": self.head_depth, "heads": self.head_heads,
                    "dim_head": self.head_dim_head, "mlp_dim": self.head_mlp_dim, "context_dim": self.embed_dim}},
            },
            "EXTRA": {"FOCAL_LENGTH": self.focal_length},
            "MANO": {"NUM_HAND_JOINTS": self.num_hand_joints},
        }

    def replace(self, **overrides: Any) -> "HamerConfig":
        names = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"unknown HaMeR config key(s) {unknown}; known: {sorted(names)}")
        out = copy.deepcopy(self)
        for k, v in overrides.items():
            setattr(out, k, tuple(v) if k in ("image_mean", "image_std") else v)
        return out


# ---------------------------------------------------------------- backbone (ViT, ViTPose layout)

class _ViTAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.num_heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):  # [B, N, C]
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = nn.functional.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class _ViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=1e-6), _ViTAttention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=1e-6), _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int):
        super().__init__()
        # ViTPose pads the 16x16 stride-16 convolution by 2: 256x192 -> 16x12 tokens
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch, padding=2)

    def forward(self, x):  # [B, 3, H, W] -> [B, Hp*Wp, C], (Hp, Wp)
        x = self.proj(x)
        return x.flatten(2).transpose(1, 2), x.shape[2:]


class ViTBackbone(nn.Module):
    """ViTPose-style ViT: patch tokens + learned positions (one extra class-token slot, added to
    every token as in ViTPose), pre-norm blocks, last norm -> feature map [B, C, Hp, Wp]."""

    def __init__(self, cfg: HamerConfig):
        super().__init__()
        h, w = cfg.image_size, cfg.image_size * 3 // 4
        n = (h // cfg.patch_size) * (w // cfg.patch_size)
        self.patch_embed = _PatchEmbed(cfg.embed_dim, cfg.patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, cfg.embed_dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(_ViTBlock(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.last_norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)

    def forward(self, x):  # [B, 3, 256, 192]
        b = x.shape[0]
        x, (hp, wp) = self.patch_embed(x)
        x = x + self.pos_embed[:, 1:] + self.pos_embed[:, :1]
        for blk in self.blocks:
            x = blk(x)
        return self.last_norm(x).transpose(1, 2).reshape(b, -1, hp, wp)


# ---------------------------------------------------------------- MANO head (transformer decoder)

class _PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm, self.fn = nn.LayerNorm(dim), fn

    def forward(self, x, **kw):
        return self.fn(self.norm(x), **kw)


class _HeadAttention(nn.Module):
    """Multi-head attention; self-attention (to_qkv) or cross-attention (to_q, to_kv)."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int | None = None):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.scale = dim_head ** -0.5
        if context_dim is None:
            self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        else:
            self.to_kv = nn.Linear(context_dim, 2 * inner, bias=False)
            self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(0.0)) if (heads, dim_head) != (1, dim) \
            else nn.Identity()

    def forward(self, x, context=None):  # x [B, N, D], context [B, M, Dc]
        if context is None:
            q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        else:
            q, (k, v) = self.to_q(x), self.to_kv(context).chunk(2, dim=-1)
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))
        out = nn.functional.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.to_out(out.transpose(1, 2).flatten(2))


class _FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.0), nn.Linear(hidden, dim),
                                 nn.Dropout(0.0))

    def forward(self, x):
        return self.net(x)


class _CrossAttnStack(nn.Module):
    def __init__(self, cfg: HamerConfig):
        super().__init__()
        d, h, dh = cfg.head_dim, cfg.head_heads, cfg.head_dim_head
        self.layers = nn.ModuleList(nn.ModuleList([
            _PreNorm(d, _HeadAttention(d, h, dh)),
            _PreNorm(d, _HeadAttention(d, h, dh, context_dim=cfg.embed_dim)),
            _PreNorm(d, _FeedForward(d, cfg.head_mlp_dim)),
        ]) for _ in range(cfg.head_depth))

    def forward(self, x, context):
        for sa, ca, ff in self.layers:
            x = sa(x) + x
            x = ca(x, context=context) + x
            x = ff(x) + x
        return x


class _TransformerDecoder(nn.Module):
    def __init__(self, cfg: HamerConfig):
        super().__init__()
        self.to_token_embedding = nn.Linear(1, cfg.head_dim)  # the query token is a single zero
        self.pos_embedding = nn.Parameter(torch.randn(1, 1, cfg.head_dim))
        self.transformer = _CrossAttnStack(cfg)

    def forward(self, token, context):  # [B, 1, 1], [B, M, C] -> [B, 1, D]
        return self.transformer(self.to_token_embedding(token) + self.pos_embedding, context)


class ManoHead(nn.Module):
    """One zero query token cross-attends the backbone tokens; linear read-outs add residuals to
    the mean pose (6D per joint), betas and camera, IEF-style, `ief_iters` times."""

    def __init__(self, cfg: HamerConfig):
        super().__init__()
        self.ief_iters, self.joints = cfg.ief_iters, cfg.num_hand_joints + 1
        npose = 6 * self.joints
        self.transformer = _TransformerDecoder(cfg)
        self.decpose = nn.Linear(cfg.head_dim, npose)
        self.decshape = nn.Linear(cfg.head_dim, 10)
        self.deccam = nn.Linear(cfg.head_dim, 3)
        # mean parameters (HaMeR fills them from mano_mean_params.npz; a checkpoint carries them)
        self.register_buffer("init_hand_pose", torch.tensor([1.0, 0, 0, 0, 1, 0]).repeat(self.joints)[None])
        self.register_buffer("init_betas", torch.zeros(1, 10))
        self.register_buffer("init_cam", torch.tensor([[1.0, 0.0, 0.0]]))

    def forward(self, feats):  # [B, C, Hp, Wp]
        b = feats.shape[0]
        ctx = feats.flatten(2).transpose(1, 2)  # [B, Hp*Wp, C]
        pose, betas, cam = (p.expand(b, -1) for p in (self.init_hand_pose, self.init_betas, self.init_cam))
        token = ctx.new_zeros(b, 1, 1)
        for _ in range(self.ief_iters):
            out = self.transformer(token, ctx)[:, 0]  # [B, D]
            pose, betas, cam = self.decpose(out) + pose, self.decshape(out) + betas, self.deccam(out) + cam
        rot = rot6d_to_matrix(pose.reshape(b, self.joints, 6))  # [B, 16, 3, 3]; HaMeR's 6D = first two columns, as ours
        return {"global_orient": rot[:, :1], "hand_pose": rot[:, 1:], "betas": betas, "cam": cam}


class HamerNet(nn.Module):
    """backbone + mano_head under HaMeR's names."""

    def __init__(self, cfg: HamerConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = ViTBackbone(cfg)
        self.mano_head = ManoHead(cfg)

    def forward(self, crops):  # [B, 3, 256, 192] normalised RGB
        return self.mano_head(self.backbone(crops))


# ---------------------------------------------------------------- checkpoint files

def find_model_config(checkpoint: Path) -> Path | None:
    """HaMeR keeps model_config.yaml one folder above checkpoints/hamer.ckpt; also accept it beside."""
    for cand in (checkpoint.parent / "model_config.yaml", checkpoint.parent.parent / "model_config.yaml"):
        if cand.is_file():
            return cand
    return None


def resolve_config(checkpoint: Path, config: dict[str, Any] | None = None) -> HamerConfig:
    """model_config.yaml next to the checkpoint (if any), then `config` overrides (HamerConfig keys)."""
    import yaml

    cfg = HamerConfig()
    path = find_model_config(checkpoint)
    if path is not None:
        try:
            data = yaml.safe_load(path.read_text()) or {}
            cfg = HamerConfig.from_hamer_yaml(data)
        except (yaml.YAMLError, ValueError, AttributeError, TypeError) as e:
            raise ValueError(f"{path}: not a usable HaMeR model config: {e}") from None
    return cfg.replace(**(config or {}))


class _PickledConfig:
    """Stands in for the config classes a HaMeR checkpoint pickles (yacs' CfgNode, a dict subclass, in
    Lightning's hyper_parameters). Creating one yields an OrderedDict, which weights_only unpickling fills
    item by item; we only need the tensors, so the config's contents stay plain data."""

    def __new__(cls, *args, **kwargs):
        return OrderedDict()


# The only non-tensor classes HaMeR's released checkpoint is known to hold, by their pickled names.
KNOWN_GLOBALS = [(_PickledConfig, "yacs.config.CfgNode")]


def read_state_dict(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The `state_dict` of a Lightning checkpoint (or a bare state_dict), on the CPU.

    Always weights_only=True: a checkpoint never runs pickled code. Besides tensors and
    containers, only KNOWN_GLOBALS are allowed; any other class is refused, naming it and the file."""
    try:
        with torch.serialization.safe_globals(KNOWN_GLOBALS):
            obj = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(checkpoint)
        except Exception:  # noqa: BLE001 (only used for the message)
            names = []
        known = {name for _, name in KNOWN_GLOBALS}
        refused = [n for n in names if n not in known] or ["(unknown)"]
        raise ValueError(f"{checkpoint}: refused: it pickles {', '.join(refused)}, not a class a HaMeR checkpoint "
                         f"holds (allowed besides tensors: {', '.join(sorted(known))})") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise ValueError(f"{checkpoint}: not a readable torch checkpoint: {e}") from None
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{checkpoint}: no state_dict of tensors (expected a HaMeR Lightning checkpoint)")
    return sd


def load_weights(net: HamerNet, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Strictly load the backbone.* and mano_head.* entries; say exactly what does not match."""
    sd = {k: v for k, v in state_dict.items() if k.startswith(CHECKPOINT_PARTS)}
    own = net.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = [f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(sd) & set(own)) if sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        def few(xs):
            return ", ".join(xs[:5]) + (f" (+{len(xs) - 5} more)" if len(xs) > 5 else "")

        parts = [f"missing {len(missing)} key(s): {few(missing)}" if missing else "",
                 f"unexpected {len(unexpected)} key(s): {few(unexpected)}" if unexpected else "",
                 f"shape mismatch: {few(shapes)}" if shapes else ""]
        raise ValueError(f"{source}: weights do not match the HaMeR model (config: depth {net.cfg.depth}, "
                         f"width {net.cfg.embed_dim}, head depth {net.cfg.head_depth}); "
                         + "; ".join(p for p in parts if p)
                         + ". Check model_config.yaml beside the checkpoint or the `config` argument.")
    net.load_state_dict(sd, strict=True)


def save_checkpoint(net: HamerNet, folder: str | Path) -> Path:
    """Write `net` in HaMeR's release layout: FOLDER/model_config.yaml and
    FOLDER/checkpoints/hamer.ckpt (a Lightning-style dict with `state_dict`)."""
    import yaml

    folder = Path(folder)
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    (folder / "model_config.yaml").write_text(yaml.safe_dump(net.cfg.to_hamer_yaml(), sort_keys=False))
    path = folder / "checkpoints" / "hamer.ckpt"
    sd = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch.save({"state_dict": sd, "epoch": 0, "global_step": 0}, path)
    return path
