"""`clutch eval RUN --dataset D --out REPORT`: the dataset's shared evaluator (trained once
on its train split, see clutch_core.eval.evaluator_store), every row the run supports,
metrics.json, report.md and the figures.

Every row of metrics.json carries `evaluator_hash`. Rows already in REPORT/metrics.json
(e.g. another run's, or the language model's) are kept when they were scored by the same
evaluator; a table never mixes evaluators: a different hash is an error.
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
from clutch_core.eval.rows import EvalContext
from clutch_core.eval.t2m import evaluate_rows
from layout.run import METRICS

log = logging.getLogger(__name__)

HASH_KEY = "evaluator_hash"
FEW_CLIPS = 100  # below this, the report says so at the top


@dataclass
class ReportConfig:
    split: str = "test"  # evaluation split (falls back when smaller than one R-precision pool)
    repeats: int = 20
    seed: int = 0
    rows: list[str] | None = None  # None = every registered row the run supports
    retrain_evaluator: bool = False
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    evaluator_path: Path | None = None  # None = DATASET/evaluators/<hash>/
    progress: bool = True  # progress bar while the evaluator trains


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
    """Evaluate and write REPORT/{metrics.json, report.md, *.png}; returns the metrics table."""
    from clutch_core.eval.data import eval_clips
    from clutch_core.eval.evaluator_store import load_or_train_evaluator

    cfg = cfg or ReportConfig()
    run, dataset, out = Path(run), Path(dataset), Path(out)
    if not dataset.is_dir():
        raise FileNotFoundError(f"dataset folder {dataset} does not exist")
    if not run.is_dir():  # checked before anything is written
        raise FileNotFoundError(f"run folder {run} does not exist")
    metrics_path = out / METRICS
    old = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    clips, eval_set = eval_clips(dataset, cfg.split)
    ev, ev_hash = load_or_train_evaluator(dataset, cfg.evaluator, cfg.evaluator_path, cfg.retrain_evaluator,
                                          progress=cfg.progress)
    merge_tables(old, {"_": {HASH_KEY: ev_hash}}, str(metrics_path))  # fail before the long part
    out.mkdir(parents=True, exist_ok=True)
    ctx = EvalContext(run=run, clips=clips, evaluator=ev, repeats=cfg.repeats, seed=cfg.seed)
    table, artifacts = evaluate_rows(ctx, cfg.rows)
    if cfg.evaluator.text_encoder == "minilm":
        ev.sentences.save()
    for name, art in artifacts.items():  # codebook usage numbers go into the table too
        for book, c in art.get("code_counts", {}).items():
            table[name][f"codebook_used_{book}"] = float((np.asarray(c) > 0).mean())
    m2t = None
    lm = language_model_rows(run, dataset, cfg)
    if lm is not None:
        if lm["evaluator_hash"] != ev_hash:  # one evaluator per table, always
            raise ValueError(f"language-model rows were scored by evaluator {lm['evaluator_hash']}, the table by {ev_hash}")
        table.update({name: lm["t2m"][key] for name, key in (("clutch", "clutch"), ("chance", "chance"))
                      if "t2m" in lm})
        if "m2t" in lm:
            m2t = {name: {**row, HASH_KEY: ev_hash, "eval_set": eval_set, "run": str(run), "stage": lm["stage"]}
                   for name, row in lm["m2t"].items()}
            (out / M2T_METRICS).write_text(json.dumps(_clean(m2t), indent=1))
    for row in table.values():
        row.update({HASH_KEY: ev_hash, "eval_set": eval_set, "run": str(run)})
    table = merge_tables(old, table, str(metrics_path))
    metrics_path.write_text(json.dumps(_clean(table), indent=1))
    figs = {"Metrics": plots.metrics_table(table, out / "metrics_table.png")}
    curves = plots.training_curves([run, ev.folder], out / "training_curves.png")
    if curves:
        figs["Training curves"] = curves
    for name, art in artifacts.items():
        if art.get("code_counts"):
            figs[f"Codebook usage ({name})"] = plots.codebook_usage(art["code_counts"], out / f"codebook_usage_{name}.png")
        if art.get("per_clip_mpjpe"):
            figs[f"Error by clip length ({name})"] = plots.error_by_length(art["per_clip_mpjpe"], out / f"error_by_length_{name}.png")
    (out / "report.md").write_text(_markdown(run, dataset, eval_set, len(clips), cfg, table, figs, ev_hash)
                                   + (_m2t_markdown(m2t) if m2t else ""))
    return table


M2T_METRICS = "m2t_metrics.json"
LM_ROWS = ("clutch", "m2t")  # rows of the language model: text-to-motion generation, motion-to-text table


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
    return evaluate_lm(run, dataset, LMEvalConfig(split=cfg.split, repeats=cfg.repeats, seed=cfg.seed, parts=parts,
                                                  evaluator=cfg.evaluator, evaluator_path=cfg.evaluator_path),
                       progress=cfg.progress)


def _m2t_markdown(m2t: dict[str, dict]) -> str:
    keys = [k for k in ("r_precision_top1", "r_precision_top2", "r_precision_top3", "bleu_1", "bleu_4", "rouge_l",
                        "cider") if any(k in r for r in m2t.values())]
    keys += sorted({k for r in m2t.values() for k in r if k.startswith("bertscore_f1") and not k.endswith("_ci95")})
    lines = ["## Motion-to-text", "",
             "Captions of the evaluation clips' motion (stage `" + str(next(iter(m2t.values())).get("stage")) + "`), "
             "against two baselines: the train split's most frequent caption, and the caption of the nearest train "
             "motion in the evaluator's space (an upper reference on template captions). R-precision: the caption "
             "among pools of 32 real motions, through the same evaluator. Also in `m2t_metrics.json`.", "",
             "| row | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for name, row in m2t.items():
        lines.append(f"| {name} | " + " | ".join("-" if row.get(k) is None else f"{row[k]:.3f}" for k in keys) + " |")
    return "\n".join(lines) + "\n"


def _markdown(run, dataset, eval_set, n, cfg, table, figs, ev_hash) -> str:
    cols = plots.table_columns(table)
    lines = [
        "# CLUTCH evaluation report", "",
        *([f"> **Only {n} evaluation clips** (fewer than {FEW_CLIPS}): FID, KID and R-precision are noisy "
           f"at this size; compare runs on a larger evaluation set before drawing conclusions.", ""]
          if n < FEW_CLIPS else []),
        f"- run: `{run}`", f"- dataset: `{dataset}`",
        f"- evaluator: `{ev_hash}` (every row below was scored by it)",
        f"- evaluation set: {eval_set} ({n} clips); {cfg.repeats} repeats, mean ± 95% confidence interval "
        f"({plots.NO_INTERVAL} where every repeat gives the same number)",
        "- R-precision in pools of 32 (chance: top-1 0.031, top-3 0.094); FID and KID (polynomial kernel, 50 subsets)"
        " against the real row's embeddings; Diversity over 300 distinct pairs; MPJPE etc. in mm, Procrustes per"
        " frame per hand for PA-MPJPE.", "",
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
