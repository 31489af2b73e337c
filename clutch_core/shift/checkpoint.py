"""Tokenizer files: safetensors for tensors, JSON for everything else; every write is atomic.

RUN/shift/
  checkpoint.safetensors  training state (model incl. EMA codebook buffers, AdamW moments,
                          RNG); JSON metadata: step, train config, normalization stats
  checkpoint.prev.safetensors  the checkpoint before it, kept so a damaged newest one
                          (truncated copy, bad disk) costs one interval, not the stage

Every tensor file carries the sha256 of its tensor bytes in its metadata; a file that does
not read back whole or fails that sum is damaged (DamagedCheckpoint), never loaded.
  model.safetensors       final weights + codebooks (the tokenizer users load)
  config.json             tokenizer config, MotionStats, streams, steps (see docs/shift.md)
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from clutch_core.hands.motion import MotionStats
from clutch_core.shift.model import MotionTokenizer, TokenizerConfig, build_tokenizer

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.safetensors"
PREVIOUS = "checkpoint.prev.safetensors"
DIGEST_KEY = "tensors_sha256"
MODEL = "model.safetensors"
CONFIG = "config.json"
FORMAT = "clutch-shift/1"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


class DamagedCheckpoint(ValueError):
    """A tensor file that does not read back as written."""


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors' names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    data = save(tensors, metadata={**{k: json.dumps(v) for k, v in meta.items()},
                                   DIGEST_KEY: json.dumps(_digest(tensors))})
    atomic_write_bytes(path, data)


def _load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # a foreign, truncated or damaged file: say which
        raise DamagedCheckpoint(f"{path}: not a readable tokenizer file ({e})") from e
    want = meta.pop(DIGEST_KEY, None)
    if want is not None and _digest(tensors) != want:
        raise DamagedCheckpoint(f"{path}: damaged (its tensors' sha256 differs from the one written)")
    return tensors, meta


def save_training_state(path: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        meta: dict[str, Any]) -> None:
    """Write the training state atomically; the one it replaces is kept as checkpoint.prev.safetensors."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for i, st in opt["state"].items():
        for name, v in st.items():
            tensors[f"optim.{i}.{name}"] = v if torch.is_tensor(v) else torch.tensor(v)
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    if path.exists():
        os.replace(path, path.with_name(PREVIOUS))
    _save_tensors(path, tensors, {**meta, "step": step, "param_groups": opt["param_groups"], "format": FORMAT})


def load_training_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model, optimizer and RNG in place; returns the metadata (with 'step')."""
    tensors, meta = _load_tensors(path)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    torch.set_rng_state(tensors["rng.cpu"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return meta


def resume_training_state(path: Path, model: torch.nn.Module,
                          optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
    """Load the newest good checkpoint (`path`, else the previous one); None: start the stage over.

    A damaged file is renamed to <name>.damaged (kept, never loaded again) with a warning, so
    a truncated checkpoint costs at most one checkpoint interval and never stops training.
    """
    for p in (path, path.with_name(PREVIOUS)):
        if not p.exists():
            continue
        try:
            meta = load_training_state(p, model, optimizer)
        except DamagedCheckpoint as e:
            os.replace(p, p.with_name(p.name + ".damaged"))
            log.warning("%s; moved to %s", e, p.name + ".damaged")
            continue
        if p != path:
            log.warning("resuming from the previous checkpoint %s (step %s)", p, meta.get("step"))
        return meta
    if path.with_name(path.name + ".damaged").exists():
        log.warning("no good checkpoint in %s: the stage starts over from step 0", path.parent)
    return None


def save_tokenizer(run_shift: Path, model: MotionTokenizer, stats: MotionStats, extra: dict[str, Any]) -> None:
    """Final weights then config.json (written last: its presence means the pair is complete)."""
    _save_tensors(run_shift / MODEL, model.state_dict(), {"format": FORMAT})
    atomic_write_json(run_shift / CONFIG, {
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
    d = Path(run)
    d = d / "shift" if not (d / CONFIG).exists() and (d / "shift" / CONFIG).exists() else d
    cfg_path = d / CONFIG
    if not cfg_path.exists():
        raise FileNotFoundError(f"{cfg_path}: no trained tokenizer here (run `clutch train ... --stages shift`)")
    config = json.loads(cfg_path.read_text())
    if config.get("format") != FORMAT:
        raise ValueError(f"{cfg_path}: format {config.get('format')!r}, expected {FORMAT!r}")
    model = build_tokenizer(TokenizerConfig(**config["tokenizer"]))
    tensors, _ = _load_tensors(d / MODEL)
    model.load_state_dict(tensors)
    return model.to(device).eval(), MotionStats.from_dict(config["stats"]), config
