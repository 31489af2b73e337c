"""Files a trainer writes: atomic writes, tensor files that check their own bytes, training state.

Every tensor file carries the sha256 of its tensor bytes in its metadata; a file that does
not read back whole or fails that sum is damaged (DamagedCheckpoint) and never loaded.
A training state (model, optimizer moments, RNG, step and the caller's metadata) replaces
the previous one atomically; the one before it is kept (layout.run.PREVIOUS_CHECKPOINT), so
a damaged newest checkpoint costs one interval, not the stage.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from layout.run import PREVIOUS_CHECKPOINT

log = logging.getLogger(__name__)

DIGEST_KEY = "tensors_sha256"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary name (never matched by a reader's glob), fsync, then rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def remove_stale_temps(folder: Path) -> None:
    """Temporary files of writes cut short by a kill (atomic_write_bytes' names)."""
    for stale in folder.glob(".*.tmp-*"):
        stale.unlink(missing_ok=True)


class DamagedCheckpoint(ValueError):
    """A tensor file that does not read back as written."""


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors' names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Tensors + JSON metadata (each value JSON-encoded) + the tensors' digest, atomically."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    data = save(tensors, metadata={**{k: json.dumps(v) for k, v in meta.items()},
                                   DIGEST_KEY: json.dumps(tensors_digest(tensors))})
    atomic_write_bytes(path, data)


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, metadata) of a file written by save_tensors; DamagedCheckpoint when it is not whole."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # a foreign, truncated or damaged file: say which
        raise DamagedCheckpoint(f"{path}: not a readable tensor file ({e})") from e
    want = meta.pop(DIGEST_KEY, None)
    if want is not None and tensors_digest(tensors) != want:
        raise DamagedCheckpoint(f"{path}: damaged (its tensors' sha256 differs from the one written)")
    return tensors, meta


def save_training_state(path: Path, step: int, model, optimizer: torch.optim.Optimizer,
                        meta: dict[str, Any], file_format: str) -> None:
    """Write the training state atomically; the one it replaces is kept as PREVIOUS_CHECKPOINT.

    `model` is anything with state_dict()/load_state_dict() (a module, or an adapter such as
    the language model's, which saves tied weights once)."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for i, st in opt["state"].items():
        for name, v in st.items():
            tensors[f"optim.{i}.{name}"] = v if torch.is_tensor(v) else torch.tensor(v)
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    if path.exists():
        os.replace(path, path.with_name(PREVIOUS_CHECKPOINT))
    save_tensors(path, tensors, {**meta, "step": step, "param_groups": opt["param_groups"], "format": file_format})


def load_training_state(path: Path, model, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model, optimizer and RNG in place; returns the metadata (with 'step')."""
    tensors, meta = load_tensors(path)
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


def resume_training_state(path: Path, model, optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
    """Load the newest good checkpoint (`path`, else the previous one); None: start the stage over.

    A damaged file is renamed to <name>.damaged (kept, never loaded again) with a warning, so
    a truncated checkpoint costs at most one checkpoint interval and never stops training.
    """
    for p in (path, path.with_name(PREVIOUS_CHECKPOINT)):
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
