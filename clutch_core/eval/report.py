"""`clutch eval RUN --dataset D --out REPORT`: the dataset's shared evaluator (trained once
on its train split, see clutch_core.eval.evaluator_store), every row the run supports,
metrics.json, m2t_metrics.json, report.md (clutch_core.eval.report_text) and the figures.

Every row of metrics.json carries `evaluator_hash`. Rows already in REPORT/metrics.json
(e.g. another run's, or the language model's) are kept when they were scored by the same
evaluator; a table never mixes evaluators: a different hash is an error. The train-clutch
`eval` stage calls write_report with the same defaults as `clutch eval`.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clutch_core.eval import plots
from clutch_core.eval.evaluator_model import EvaluatorConfig
from clutch_core.eval.rows import DEFAULT_REPEATS, ROWS, EvalContext
from clutch_core.eval.t2m import evaluate_rows
from layout.run import METRICS

log = logging.getLogger(__name__)

HASH_KEY = "evaluator_hash"
M2T_METRICS = "m2t_metrics.json"
LM_ROWS = ("clutch", "m2t")  # --rows names of the language model's parts: text-to-motion, motion-to-text


@dataclass
class ReportConfig:
    split: str | None = None  # evaluation split; None: val, or with `final` test (clutch_core.eval.data.eval_clips)
    final: bool = False  # the final reading: the test split may be read
    repeats: int = DEFAULT_REPEATS
    seed: int = 0
    rows: list[str] | None = None  # None = every registered row the run supports
    retrain_evaluator: bool = False
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    evaluator_path: Path | None = None  # None = DATASET/evaluators/<hash>/
    progress: bool = True  # progress bar while the evaluator trains
    guidance: float | None = None  # the language model's classifier-free guidance; None: the scale the run recorded
    rerank: int | None = None  # text-to-motion candidates reranked by the model's motion-to-text; None: the run's


def merge_tables(old: dict[str, dict], new: dict[str, dict], where: str = "the table") -> dict[str, dict]:
    """Rows of `old` not in `new`, then `new`; refuses rows scored by different evaluators."""
    hashes = {r.get(HASH_KEY) for r in (*old.values(), *new.values())}
    if len(hashes) > 1:
        detail = ", ".join(f"{name}: {r.get(HASH_KEY)}" for name, r in {**old, **new}.items())
        raise ValueError(f"{where}: rows scored by different evaluators ({detail}); numbers from different "
                         f"evaluators are not comparable. Write to another --out, or evaluate every run with "
                         f"the same evaluator (same dataset and settings, or --evaluator PATH)")
    return {**{k: v for k, v in old.items() if k not in new}, **new}


def _clean(x):
    """JSON-safe: NaN -> null, numpy scalars -> Python."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (float, np.floating)):
        return None if math.isnan(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def write_report(run: Path, dataset: Path, out: Path, cfg: ReportConfig | None = None) -> dict[str, dict[str, float]]:
    """Evaluate and write REPORT/{metrics.json, m2t_metrics.json, report.md, *.png}; returns the metrics table."""
    from clutch_core.eval.data import eval_clips
    from clutch_core.eval.evaluator_store import load_or_train_evaluator
    from clutch_core.eval.report_text import report_markdown

    cfg = cfg or ReportConfig()
    run, dataset, out = Path(run), Path(dataset), Path(out)
    if not dataset.is_dir():
        raise FileNotFoundError(f"dataset folder {dataset} does not exist")
    if not run.is_dir():  # checked before anything is written
        raise FileNotFoundError(f"run folder {run} does not exist")
    metrics_path = out / METRICS
    old = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    clips, eval_set = eval_clips(dataset, cfg.split, cfg.final)
    ev, ev_hash = load_or_train_evaluator(dataset, cfg.evaluator, cfg.evaluator_path, cfg.retrain_evaluator,
                                          progress=cfg.progress)
    merge_tables(old, {"_": {HASH_KEY: ev_hash}}, str(metrics_path))  # fail before the long part
    out.mkdir(parents=True, exist_ok=True)
    ctx = EvalContext(run=run, clips=clips, evaluator=ev, repeats=cfg.repeats, seed=cfg.seed)
    rows = None if cfg.rows is None else [r for r in cfg.rows if r in ROWS]  # the LM rows come from the LM's evaluation
    table, artifacts = evaluate_rows(ctx, rows, progress=cfg.progress)
    for name, art in artifacts.items():  # codebook usage numbers go into the table too
        for book, c in art.get("code_counts", {}).items():
            table[name][f"codebook_used_{book}"] = float((np.asarray(c) > 0).mean())
    stamp = {HASH_KEY: ev_hash, "eval_set": eval_set, "run": str(run)}
    m2t = _add_language_model(run, dataset, cfg, ev_hash, table, stamp)
    if cfg.evaluator.text_encoder == "minilm":
        ev.sentences.save()
    for row in table.values():
        row.update(stamp)
    table = merge_tables(old, table, str(metrics_path))
    metrics_path.write_text(json.dumps(_clean(table), indent=1))
    if m2t:
        (out / M2T_METRICS).write_text(json.dumps(_clean(m2t), indent=1))
    figs = _figures(run, ev.folder, out, table, artifacts)
    (out / "report.md").write_text(report_markdown(run, dataset, eval_set, len(clips), cfg.repeats, table, m2t,
                                                   figs, ev_hash))
    return table


def _add_language_model(run: Path, dataset: Path, cfg: ReportConfig, ev_hash: str, table: dict,
                        stamp: dict) -> dict | None:
    """Add the language model's text-to-motion rows to `table`; -> its motion-to-text table (or None)."""
    lm = language_model_rows(run, dataset, cfg)
    if lm is None:
        return None
    if lm["evaluator_hash"] != ev_hash:  # one evaluator per table, always
        raise ValueError(f"language-model rows were scored by evaluator {lm['evaluator_hash']}, the table by {ev_hash}")
    decoding = {"stage": lm["stage"], "guidance": lm["guidance"], "rerank": lm["rerank"]}  # on the model's rows: what produced them
    table.update({name: {**row, **decoding} if name.startswith("clutch") else row
                  for name, row in lm.get("t2m", {}).items() if name != "real"})
    if "m2t" not in lm:
        return None
    return {name: {**row, **stamp, **(decoding if name == "clutch" else {"stage": lm["stage"]})}
            for name, row in lm["m2t"].items()}


def _figures(run: Path, evaluator_folder: Path, out: Path, table: dict, artifacts: dict) -> dict[str, Path]:
    figs = {"Metrics": plots.metrics_table(table, out / "metrics_table.png")}
    curves = plots.training_curves([run, evaluator_folder], out / "training_curves.png")
    if curves:
        figs["Training curves"] = curves
    for name, art in artifacts.items():
        if art.get("code_counts"):
            figs[f"Codebook usage ({name})"] = plots.codebook_usage(art["code_counts"], out / f"codebook_usage_{name}.png")
        if art.get("per_clip_mpjpe"):
            figs[f"Error by clip length ({name})"] = plots.error_by_length(art["per_clip_mpjpe"],
                                                                          out / f"error_by_length_{name}.png")
    return figs


def language_model_rows(run: Path, dataset: Path, cfg: ReportConfig) -> dict | None:
    """clutch_core.lm.evaluate.evaluate_lm on the report's split, evaluator and repeats; None when the run
    has no finished language-model stage or the rows asked for exclude both LM rows."""
    from clutch_core.lm.api import lm_dir
    from clutch_core.lm.evaluate import LMEvalConfig, evaluate_lm

    parts = tuple(p for p, row in (("t2m", "clutch"), ("m2t", "m2t")) if cfg.rows is None or row in cfg.rows)
    if not parts:
        return None
    try:
        lm_dir(run)
    except FileNotFoundError:
        return None  # a tokenizer-only run
    return evaluate_lm(run, dataset, LMEvalConfig(split=cfg.split, final=cfg.final, repeats=cfg.repeats, seed=cfg.seed, parts=parts,
                                                  evaluator=cfg.evaluator, evaluator_path=cfg.evaluator_path,
                                                  guidance=cfg.guidance, rerank=cfg.rerank),
                       progress=cfg.progress)
