"""Run the registered rows through the evaluator: mean and 95% CI over repeats.

Each repeat draws one caption per evaluation clip (clips carry several captions, by
source), re-shuffles the R-precision pools, re-draws the Diversity pairs and, for
stochastic rows, generates again. FID and KID are always against the real-motion
embeddings of the same clips, so FID(real, real) is 0 by construction (KID(real, real)
is near 0: its subsets differ). `kid_lo`/`kid_hi` are the 2.5-97.5 % range of KID over
its subsets (averaged over repeats); `*_ci95` the 95 % interval of the mean over repeats.
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from clutch_core.eval import metrics as M
from clutch_core.eval.rows import ROWS, EvalContext, RowSource

log = logging.getLogger(__name__)

EMBED_METRICS = ("r_precision_top1", "r_precision_top2", "r_precision_top3", "fid", "kid", "kid_lo", "kid_hi",
                 "mm_dist", "diversity")


def draw_captions(clips: Sequence[dict], rng: np.random.Generator) -> list[str]:
    return [c["captions"][rng.integers(len(c["captions"]))]["text"] for c in clips]


def score_row(ctx: EvalContext, src: RowSource, real_emb: np.ndarray, progress: bool = False) -> dict[str, float]:
    """Embedding metrics of one row: {metric: mean, metric_ci95: half-width, ...extra}."""
    ev = ctx.evaluator
    per: dict[str, list[float]] = {k: [] for k in EMBED_METRICS}
    fixed = None
    for r in tqdm(range(ctx.repeats), desc="repeats", disable=not progress, leave=False):
        rng = np.random.default_rng([ctx.seed, r])
        texts = draw_captions(ctx.clips, rng)
        t_emb = ev.encode_text(texts)
        if fixed is None or not src.deterministic:
            fixed = ev.encode_motion(*src.sample(r, texts))
        m_emb = fixed
        top = M.r_precision(t_emb, m_emb, rng)
        for k in range(3):
            per[f"r_precision_top{k + 1}"].append(top[k])
        per["fid"].append(M.fid(real_emb, m_emb))
        for k, v in zip(("kid", "kid_lo", "kid_hi"), M.kid(real_emb, m_emb, rng=rng)):
            per[k].append(v)
        per["mm_dist"].append(M.mm_dist(t_emb, m_emb))
        per["diversity"].append(M.diversity(m_emb, rng))
        if src.generate_many is not None:
            idx = rng.choice(len(texts), min(ctx.mm_texts, len(texts)), replace=False)
            gens = src.generate_many([texts[i] for i in idx], ctx.mm_generations)
            emb = np.stack([ev.encode_motion(*g) for g in gens])  # [N, G, D]
            per.setdefault("multimodality", []).append(M.multimodality(emb, rng))
    out: dict[str, float] = {}
    for k, vals in per.items():
        out[k], out[f"{k}_ci95"] = M.repeat_stats(vals)
    out.update(src.extra)
    out["n_clips"] = len(ctx.clips)
    out["repeats"] = ctx.repeats
    return out


def evaluate_rows(ctx: EvalContext, names: Sequence[str] | None = None,
                  progress: bool = False) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, Any]]]:
    """(metrics per row, plot artifacts per row) for every registered row the run supports (names None),
    or for those of `names` (an empty list: none)."""
    real_emb = ctx.evaluator.encode_motion(*ctx.real)
    table, artifacts = {}, {}
    for name in list(ROWS) if names is None else names:
        src = ROWS[name](ctx)
        if src is None:
            log.info("row %s: nothing in the run for it, skipped", name)
            continue
        log.info("row %s", name)
        table[name] = score_row(ctx, src, real_emb, progress)
        artifacts[name] = src.artifacts
    return table, artifacts
