"""train-clutch: the training DAG. Its stages and their order are flows.stages.STAGES.

Wiring only: each stage runs as a task named after it; its logic is in clutch_core. Each
stage's step, loss and ETA reach the run's logs and a progress artifact (flows.run_progress);
a failure is logged through the run logger with its type and message, so `--watch` shows the
cause, and the failed state's message carries it too.
"""
from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.config import TrainClutchConfig
from flows.params import takes_config
from flows.run_progress import forward_progress
from flows.stages import run_stages


@task(cache_policy=NO_CACHE)
def stage_task(name: str, thunk) -> dict:
    with forward_progress(name):
        return thunk()


@flow(name="train-clutch")
@takes_config(TrainClutchConfig)
def train_clutch(cfg: TrainClutchConfig) -> dict:
    """Train CLUTCH on a 3D-HIW dataset: the stages of flows.stages in order (SHIFT tokenizer, tokens, language model)."""
    try:
        return run_stages(cfg, lambda stage, thunk: stage_task.with_options(name=stage.name)(stage.name, thunk))
    except Exception as e:
        get_run_logger().error("train-clutch failed: %s", failure_cause(e))
        raise


def failure_cause(e: BaseException) -> str:
    """'Type: message', as a failed state's message carries it."""
    return f"{type(e).__name__}: {e}"
