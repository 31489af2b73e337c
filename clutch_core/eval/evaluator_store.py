"""One evaluator per dataset, shared by every run: FID, KID and R-precision of two runs are
comparable only when the same evaluator scored them.

DATASET/evaluators/<hash>/ holds the evaluator trained on DATASET's train split with one
EvaluatorConfig. <hash> digests the config (text model by folder name) and the ids of the
training clips, so the same settings on the same data always land in the same folder, and
every metrics.json and report carries it. `--evaluator PATH` uses (or trains into) another
folder, e.g. when the dataset is read-only.

Public API (the language-model rows use it too):
    ev, h = load_or_train_evaluator(dataset, cfg)   # Evaluator, its hash
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from clutch_core.eval.evaluator_model import Evaluator, EvaluatorConfig, exists, train_evaluator

log = logging.getLogger(__name__)

EVALUATORS_DIR = "evaluators"


def evaluator_hash(cfg: EvaluatorConfig, train_ids: list[str]) -> str:
    """12 hex digits of (config, training clip ids); machine paths reduced to file names."""
    c = dataclasses.asdict(cfg)
    for k in ("text_model", "glove"):
        c[k] = Path(c[k]).name if c[k] else None
    blob = json.dumps({"config": c, "train": sorted(train_ids)}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def train_split(dataset: Path) -> list[dict]:
    """Clips of the train split; an error that says what to do when there are none."""
    from clutch_core.eval.data import load_clips

    rows = load_clips(dataset, "train")
    if not rows:
        raise ValueError(
            f"{dataset}: no clips in the train split, and the evaluator is trained on the train split only "
            f"(never on the clips it scores). Build the dataset with a train split, or pass --evaluator PATH "
            f"of an evaluator trained elsewhere.")
    return rows


def load_or_train_evaluator(dataset: str | os.PathLike, cfg: EvaluatorConfig | None = None,
                            path: str | os.PathLike | None = None, retrain: bool = False,
                            progress: bool = True) -> tuple[Evaluator, str]:
    """(evaluator, its hash). Loads DATASET/evaluators/<hash>/ (or `path`) when it holds one,
    else trains it on DATASET's train split and saves it there (atomically: a folder
    renamed into place, so two runs evaluating at once never see half an evaluator)."""
    cfg = cfg or EvaluatorConfig()
    dataset = Path(dataset)
    if path is not None and exists(Path(path)) and not retrain:
        ev = Evaluator.load(Path(path))
        log.info("using the evaluator %s (%s)", path, ev.hash)
        return ev, ev.hash
    train = train_split(dataset)
    h = evaluator_hash(cfg, [r["clip_id"] for r in train])
    folder = Path(path) if path is not None else dataset / EVALUATORS_DIR / h
    if exists(folder) and not retrain:
        ev = Evaluator.load(folder)
        log.info("using the evaluator %s", folder)
        return ev, ev.hash
    log.info("training the evaluator %s on %d train clips of %s", h, len(train), dataset)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    train_evaluator(train, cfg, out=tmp, progress=progress,
                    extra={"hash": h, "dataset": str(dataset), "train_clips": len(train)})
    if exists(folder) and not retrain:  # another process finished first: use theirs
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    ev = Evaluator.load(folder)
    return ev, ev.hash
