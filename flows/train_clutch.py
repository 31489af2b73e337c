"""train-clutch: the training DAG. Its stages and their order are flows.stages.STAGES.

Wiring only: each stage runs as a task named after it; its logic is in clutch_core.
"""
from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.config import TrainClutchConfig
from flows.params import takes_config
from flows.stages import run_stages


@task(cache_policy=NO_CACHE)
def stage_task(thunk) -> dict:
    return thunk()


@flow(name="train-clutch")
@takes_config(TrainClutchConfig)
def train_clutch(cfg: TrainClutchConfig) -> dict:
    """Train CLUTCH on a 3D-HIW dataset: the stages of flows.stages in order (so far SHIFT tokenizer, tokens)."""
    return run_stages(cfg, lambda stage, thunk: stage_task.with_options(name=stage.name)(thunk))
