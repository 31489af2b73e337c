"""The stages of train-clutch, in one table: name -> function and the config section it reads.

A stage added here is a flow task, a valid `stages` value of `clutch train` and of the
train-clutch deployment, and a row of docs/shift.md's stage table. Each stage skips
itself when its output is complete and resumes from its last checkpoint when it is not.

`run_stages` is the one stage runner: the flow calls it with each stage wrapped in a task;
under torchrun the ranks other than 0 call it directly (see clutch_cli/train.py).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[str, str, Any, bool], dict]  # (dataset, out, section, progress) -> summary
    section: Callable[[Any], Any]  # flows.config.TrainClutchConfig -> the config this stage reads
    every_rank: bool = True  # False: rank 0 only under torchrun (e.g. a single writer)
    doc: str = ""


SHIFT_SUMMARY = ("tokenizer", "steps", "val_mpjpe_mm", "val_mpjpe_traj_mm", "val_mpjpe_pose_mm", "perplexity",
                 "codebook_usage")


def _shift(dataset: str, out: str, cfg, progress: bool) -> dict:
    from clutch_core.shift.train import train_tokenizer

    m = train_tokenizer(dataset, out, cfg, progress=progress)
    if not m:  # a rank other than 0
        return {}
    log.info("shift (%s, %d steps): val MPJPE %.2f mm", m["tokenizer"], m["steps"], m["val_mpjpe_mm"])
    return {k: m[k] for k in SHIFT_SUMMARY if k in m}


def _tokenize(dataset: str, out: str, _section, progress: bool) -> dict:
    from clutch_core.shift.tokenize import tokenize_dataset

    s = tokenize_dataset(out, dataset, progress=progress)
    log.info("tokenize: %d clips written, %d already there -> %s", s["written"], s["skipped"], s["dir"])
    return s


def _lm(stage: str) -> Callable[[str, str, Any, bool], dict]:
    def run(dataset: str, out: str, cfg, progress: bool) -> dict:
        from clutch_core.lm.train import run_stage

        m = run_stage(stage, dataset, out, cfg, progress=progress)
        if m.get("val_ce") is not None:
            log.info("%s (%d steps): val CE %.3f, code-token accuracy %.3f, teacher-forced MPJPE %.1f mm", stage,
                     m["steps"], m["val_ce"], m["val_motion_token_acc"], m["val_tf_mpjpe_mm"])
        return {k: m[k] for k in LM_SUMMARY if k in m}

    return run


def _eval(dataset: str, out: str, cfg, progress: bool) -> dict:
    from pathlib import Path

    from clutch_core.eval.data import TooFewClips
    from clutch_core.eval.report import ReportConfig, write_report

    report = Path(out) / "eval"
    try:  # the defaults of `clutch eval`, so the stage's report and a later `clutch eval` agree
        table = write_report(Path(out), Path(dataset), report, ReportConfig(split=cfg.eval_split, final=cfg.final,
                                                                                seed=cfg.seed or 0, progress=progress))
    except TooFewClips as e:  # a small dataset: the training is done, only its scoring is not possible
        log.warning("eval: skipped: %s", e)
        return {"skipped": str(e)}
    keys = ("r_precision_top3", "fid", "kid", "mpjpe_mm")
    summary = {name: {k: row[k] for k in keys if row.get(k) is not None} for name, row in table.items()}
    log.info("eval: %s -> %s", summary, report / "report.md")
    return {"report": str(report / "report.md"), "rows": summary}


LM_SUMMARY = ("stage", "steps", "val_ce", "val_motion_token_acc", "val_tf_mpjpe_mm", "train_tokens_per_s")

STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("shift", _shift, lambda c: c.shift_config(),
          doc="train the motion tokenizer (SHIFT, or a baseline); writes RUN/shift/ (model, config, checkpoint, "
              "metrics.json, train_log.jsonl)"),
    Stage("tokenize", _tokenize, lambda c: None, every_rank=False,
          doc="write the motion tokens of every clip to DATASET/tokens/"),
    Stage("pretrain", _lm("pretrain"), lambda c: c.lm_config(), every_rank=False,
          doc="language model: T5 + motion tokens on text-to-motion and motion-to-text (the paper preset "
              "mixes in span corruption); writes RUN/pretrain/"),
    Stage("refine", _lm("refine"), lambda c: c.lm_config(), every_rank=False,
          doc="geometric refinement: cross-entropy + a loss on motion decoded through the frozen SHIFT; "
              "writes RUN/refine/"),
    Stage("instruct", _lm("instruct"), lambda c: c.lm_config(), every_rank=False,
          doc="instruction tuning on instruction templates of every task; writes RUN/instruct/"),
    Stage("eval", _eval, lambda c: c, every_rank=False,
          doc="the run's evaluation report on DATASET (as `clutch eval RUN --dataset DATASET --out RUN/eval`): "
              "tokenizer reconstruction, text-to-motion and motion-to-text rows, one shared evaluator"),
)}
DEFAULT_STAGES = tuple(STAGES)  # all of them


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's share), not the machine's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def run_stages(cfg, call: Callable[[Stage, Callable[[], dict]], dict] | None = None) -> dict[str, dict]:
    """Run cfg.stages in order; `call(stage, thunk)` runs one (default: directly). -> {stage: summary}."""
    call = call or (lambda stage, thunk: thunk())
    dataset, out = os.path.abspath(cfg.dataset), os.path.abspath(cfg.out)
    if cfg.threads or "OMP_NUM_THREADS" not in os.environ:  # else torch already follows OMP_NUM_THREADS
        import torch

        torch.set_num_threads(cfg.threads or available_cores())
    result: dict[str, dict] = {}
    for name in cfg.stages:
        stage = STAGES[name]
        if not stage.every_rank and rank() != 0:
            continue
        section = stage.section(cfg)
        result[name] = call(stage, lambda stage=stage, section=section: stage.run(dataset, out, section, cfg.progress))
    return result
