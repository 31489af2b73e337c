"""train-clutch: the training DAG. Stages so far: shift (tokenizer) -> tokenize (tokens next to the shards).

Wiring only: each stage is a task calling clutch_core; each skips itself when its
output is complete and resumes from its last checkpoint when it is not.
"""
from __future__ import annotations

import os
from typing import Literal, Optional

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

STAGES = ("shift", "tokenize")


@task(name="shift", cache_policy=NO_CACHE)
def shift_stage(dataset: str, out: str, cfg) -> dict:
    from clutch_core.shift.train import train_tokenizer

    m = train_tokenizer(dataset, out, cfg, progress=False)
    get_run_logger().info("shift (%s, %d steps): val MPJPE %.2f mm", m["tokenizer"], m["steps"], m["val_mpjpe_mm"])
    return {k: m[k] for k in ("tokenizer", "steps", "val_mpjpe_mm", "val_mpjpe_traj_mm", "val_mpjpe_pose_mm",
                              "perplexity", "codebook_usage")}


@task(name="tokenize", cache_policy=NO_CACHE)
def tokenize_stage(dataset: str, out: str) -> dict:
    from clutch_core.shift.tokenize import tokenize_dataset

    s = tokenize_dataset(out, dataset, progress=False)
    get_run_logger().info("tokenize: %d clips written, %d already there -> %s", s["written"], s["skipped"], s["dir"])
    return s


@flow(name="train-clutch")
def train_clutch(
    dataset: str,
    out: str,
    preset: Literal["tiny", "paper"] = "tiny",
    stages: list[str] = ["shift", "tokenize"],  # noqa: B006 (Prefect parameter default)
    max_steps: Optional[int] = None,
    tokenizer: Literal["shift", "vqvae"] = "shift",
    batch: Optional[int] = None,
    seed: Optional[int] = None,
) -> dict:
    """Train CLUTCH on a 3D-HIW dataset: SHIFT tokenizer, then token extraction."""
    from clutch_core.shift.train import preset_config

    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise ValueError(f"train-clutch: unknown or no stage(s) {unknown}; available: {list(STAGES)}")
    dataset, out = os.path.abspath(dataset), os.path.abspath(out)
    cfg = preset_config(preset, tokenizer=tokenizer, max_steps=max_steps, batch=batch, seed=seed)
    result: dict = {}
    if "shift" in stages:
        result["shift"] = shift_stage(dataset, out, cfg)
    if "tokenize" in stages:
        result["tokenize"] = tokenize_stage(dataset, out)
    return result
