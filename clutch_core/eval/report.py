"""`clutch eval RUN --dataset D --out REPORT`: evaluator (trained once, kept in the run),
every row the run supports, metrics.json, report.md and the figures."""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clutch_core.eval import plots
from clutch_core.eval.evaluator import Evaluator, EvaluatorConfig, exists, train_evaluator
from clutch_core.eval.rows import EvalContext
from clutch_core.eval.t2m import evaluate_rows

log = logging.getLogger(__name__)


@dataclass
class ReportConfig:
    split: str = "test"  # evaluation split (falls back when smaller than one R-precision pool)
    repeats: int = 20
    seed: int = 0
    rows: list[str] | None = None  # None = every registered row the run supports
    retrain_evaluator: bool = False
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)


def get_evaluator(run: Path, dataset: Path, cfg: ReportConfig, train_clips: list[dict]) -> Evaluator:
    """RUN/evaluator/ when present, else trained on the dataset's train split and saved there."""
    folder = run / "evaluator"
    if exists(folder) and not cfg.retrain_evaluator:
        log.info("using the evaluator in %s", folder)
        return Evaluator.load(folder)
    log.info("training the evaluator on %d clips of %s", len(train_clips), dataset)
    return train_evaluator(train_clips, cfg.evaluator, out=folder)


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
    """Evaluate and write REPORT/{metrics.json, report.md, *.png}; returns the metrics table."""
    from clutch_core.eval.data import eval_and_train_clips

    cfg = cfg or ReportConfig()
    run, dataset, out = Path(run), Path(dataset), Path(out)
    if not dataset.is_dir():
        raise FileNotFoundError(f"dataset folder {dataset} does not exist")
    run.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    train, clips, eval_set = eval_and_train_clips(dataset, cfg.split)
    ev = get_evaluator(run, dataset, cfg, train)
    ctx = EvalContext(run=run, clips=clips, evaluator=ev, repeats=cfg.repeats, seed=cfg.seed)
    table, artifacts = evaluate_rows(ctx, cfg.rows)
    if cfg.evaluator.text_encoder == "minilm":
        ev.sentences.save()
    for name, art in artifacts.items():  # codebook usage numbers go into the table too
        for book, c in art.get("code_counts", {}).items():
            table[name][f"codebook_used_{book}"] = float((np.asarray(c) > 0).mean())
    (out / "metrics.json").write_text(json.dumps(_clean(table), indent=1))
    figs = {"Metrics": plots.metrics_table(table, out / "metrics_table.png")}
    curves = plots.training_curves(run, out / "training_curves.png")
    if curves:
        figs["Training curves"] = curves
    for name, art in artifacts.items():
        if art.get("code_counts"):
            figs[f"Codebook usage ({name})"] = plots.codebook_usage(art["code_counts"], out / f"codebook_usage_{name}.png")
        if art.get("per_clip_mpjpe"):
            figs[f"Error by clip length ({name})"] = plots.error_by_length(art["per_clip_mpjpe"], out / f"error_by_length_{name}.png")
    (out / "report.md").write_text(_markdown(run, dataset, eval_set, len(clips), cfg, table, figs))
    return table


def _markdown(run, dataset, eval_set, n, cfg, table, figs) -> str:
    cols = plots.table_columns(table)
    lines = [
        "# CLUTCH evaluation report", "",
        f"- run: `{run}`", f"- dataset: `{dataset}`",
        f"- evaluation set: {eval_set} ({n} clips); {cfg.repeats} repeats, mean ± 95% confidence interval",
        "- R-precision in pools of 32 (chance: top-1 0.031, top-3 0.094); FID against the real row's embeddings;"
        " Diversity over 300 pairs; MPJPE etc. in mm, Procrustes per frame per hand for PA-MPJPE.", "",
        "| row | " + " | ".join(c for _, c in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(plots.fmt(row, k) for k, _ in cols) + " |")
    extra = sorted({k for r in table.values() for k in r if k.startswith("codebook_used_")})
    if extra:
        lines += ["", "Fraction of codes used on the evaluation set: " + ", ".join(
            f"{k[len('codebook_used_'):]} {r[k]:.2f} ({name})" for name, r in table.items() for k in extra if k in r)]
    lines.append("")
    for title, p in figs.items():
        lines += [f"## {title}", "", f"![{title}]({Path(p).name})", ""]
    return "\n".join(lines)
