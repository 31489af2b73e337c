"""Tokenizer files (RUN/shift/, names in layout.run); tensor files and writes from clutch_core.training.

RUN/shift/
  checkpoint.safetensors       training state (model incl. EMA codebook buffers, AdamW moments,
                               RNG); metadata: step, train config, normalization stats, precision
  checkpoint.prev.safetensors  the checkpoint before it
  model.safetensors            final weights + codebooks (the tokenizer users load)
  config.json                  tokenizer config, MotionStats, streams, steps (written last; docs/shift.md)

The tokenizer's identity is the sha256 of model.safetensors (`shift_weights_id`): the tokens
folder of a run and every language-model stage trained on those tokens carry it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from clutch_core.hands.motion import MotionStats
from clutch_core.shift.model import MotionTokenizer, TokenizerConfig, build_tokenizer
from clutch_core.training.checkpoint import atomic_write_json, load_tensors, save_tensors
from layout.run import SHIFT_DIR, TOKENIZER_CONFIG, TOKENIZER_WEIGHTS
from storage.integrity import file_sha256

FORMAT = "clutch-shift/1"
WEIGHTS_ID_LENGTH = 10  # hex digits of the sha256 kept in names (tokens folders, LM metadata)


def shift_folder(run: str | os.PathLike) -> Path:
    """RUN (or RUN/shift itself) -> RUN/shift."""
    d = Path(run)
    return d if (d / TOKENIZER_CONFIG).exists() and not (d / SHIFT_DIR / TOKENIZER_CONFIG).exists() else d / SHIFT_DIR


def shift_weights_id(run: str | os.PathLike) -> str:
    """Identity of RUN's trained tokenizer: the first hex digits of its weights file's sha256."""
    weights = shift_folder(run) / TOKENIZER_WEIGHTS
    if not weights.exists():
        raise FileNotFoundError(f"{weights}: no trained tokenizer (run `clutch train ... --stages shift` first)")
    return file_sha256(weights)[:WEIGHTS_ID_LENGTH]


def save_tokenizer(run_shift: Path, model: MotionTokenizer, stats: MotionStats, extra: dict[str, Any]) -> None:
    """Final weights then config.json (written last: its presence means the pair is complete)."""
    save_tensors(run_shift / TOKENIZER_WEIGHTS, model.state_dict(), {"format": FORMAT})
    atomic_write_json(run_shift / TOKENIZER_CONFIG, {
        "format": FORMAT,
        "tokenizer": model.cfg.to_dict(),
        "stats": stats.to_dict(),
        "streams": list(model.streams),
        "codebooks": {name: model.cfg.codes for name in model.codebooks},
        "frames_per_step": model.cfg.stride,
        **extra,
    })


def load_tokenizer(run: str | os.PathLike, device: str | torch.device = "cpu"):
    """RUN (or RUN/shift) -> (model in eval mode, MotionStats, config dict)."""
    d = shift_folder(run)
    cfg_path = d / TOKENIZER_CONFIG
    if not cfg_path.exists():
        raise FileNotFoundError(f"{cfg_path}: no trained tokenizer here (run `clutch train ... --stages shift`)")
    config = json.loads(cfg_path.read_text())
    if config.get("format") != FORMAT:
        raise ValueError(f"{cfg_path}: format {config.get('format')!r}, expected {FORMAT!r}")
    model = build_tokenizer(TokenizerConfig(**config["tokenizer"]))
    tensors, _ = load_tensors(d / TOKENIZER_WEIGHTS)
    model.load_state_dict(tensors)
    return model.to(device).eval(), MotionStats.from_dict(config["stats"]), config
