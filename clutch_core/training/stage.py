"""A training stage's folder: where it runs, whether it is finished, what a resume must redo.

A stage is finished when its metrics.json records the same settings (`train_config`, the
trainer's identity dict) and step count, and the file it needs to be usable exists. A
resumed stage trims its logs back to the checkpoint's step: those lines are produced again.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from clutch_core.training.checkpoint import atomic_write_bytes, remove_stale_temps
from layout.run import METRICS


def local_device() -> torch.device:
    """This process's GPU (LOCAL_RANK under torchrun) when there is one, else the CPU."""
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def setup_device() -> tuple[torch.device, int, int]:
    """(device, rank, world size) of a trainer whose every rank trains; initializes torch.distributed
    under torchrun (WORLD_SIZE / RANK / LOCAL_RANK from the environment; NCCL on GPUs, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = local_device()
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, rank, world


def is_complete(folder: Path, identity: dict[str, Any], steps: int, needs: str) -> bool:
    """True when `folder` holds a finished run of exactly these settings (and its file `needs`)."""
    p = folder / METRICS
    if not p.exists() or not (folder / needs).exists():
        return False
    m = json.loads(p.read_text())
    return m.get("train_config") == identity and m.get("steps") == steps


def prepare(folder: Path, clean: bool = True) -> None:
    """Create the stage folder; remove temporary files of writes a kill cut short."""
    folder.mkdir(parents=True, exist_ok=True)
    if clean:
        remove_stale_temps(folder)


def trim_log(path: Path, step: int) -> None:
    """Drop log lines past the checkpoint being resumed (they will be produced again)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
    atomic_write_bytes(path, "".join(ln + "\n" for ln in keep).encode())
