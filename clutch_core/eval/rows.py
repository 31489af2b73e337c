"""The rows of the text-to-motion table: one function per source of motion.

A row function takes the EvalContext and returns a RowSource (or None when the run
holds nothing for it: a run with only a tokenizer has no generation row). Adding a row
is one decorated function:

    @register_row("my_model")
    def my_model(ctx):
        model = load(ctx.run)            # None if absent -> return None
        return RowSource(sample=lambda repeat, texts: model.generate(texts))

`sample(repeat, texts)` returns (motions, presences): one [T_i, 198] and [T_i, 2] array
per evaluation clip, for the caption drawn for that clip in that repeat.
`generate_many(texts, n)` (generative rows) returns n generations per text for
MultiModality. `extra` holds per-row numbers that are not embedding metrics (MPJPE...),
`artifacts` data for the plots.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

log = logging.getLogger(__name__)

Motions = tuple[list[np.ndarray], list[np.ndarray]]  # ([T_i, 198] ..., [T_i, 2] ...)
DEFAULT_REPEATS = 20  # caption draws and R-precision pool shuffles, for `clutch eval` and the eval stage alike


@dataclass
class EvalContext:
    run: Path | None
    clips: list[dict]  # evaluation clips: motion, presence, captions, num_frames, clip_id
    evaluator: Any  # clutch_core.eval.evaluator_model.Evaluator
    repeats: int = DEFAULT_REPEATS
    seed: int = 0
    mm_texts: int = 100  # MultiModality: texts, generations per text
    mm_generations: int = 30

    @property
    def real(self) -> Motions:
        return [c["motion"] for c in self.clips], [c["presence"] for c in self.clips]


@dataclass
class RowSource:
    sample: Callable[[int, list[str]], Motions]
    deterministic: bool = True  # same motion every repeat: embed once
    generate_many: Optional[Callable[[list[str], int], list[Motions]]] = None
    extra: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)


RowFn = Callable[[EvalContext], Optional[RowSource]]
ROWS: dict[str, RowFn] = {}


def register_row(name: str) -> Callable[[RowFn], RowFn]:
    def deco(fn: RowFn) -> RowFn:
        ROWS[name] = fn
        return fn

    return deco


@register_row("real")
def real_row(ctx: EvalContext) -> RowSource:
    """Ground-truth motion: the reference every other row is compared with."""
    motions = ctx.real
    return RowSource(sample=lambda repeat, texts: motions)


@register_row("tokenizer_recon")
def tokenizer_row(ctx: EvalContext) -> RowSource | None:
    """Motion encoded and decoded by the run's tokenizer (SHIFT or the VQ-VAE baseline)."""
    from clutch_core.eval.recon import load_run_tokenizer, reconstruct

    if ctx.run is None:
        return None
    tok = load_run_tokenizer(ctx.run)
    if tok is None:
        return None
    motions, presences = ctx.real
    rec = reconstruct(tok, motions, presences)
    return RowSource(sample=lambda repeat, texts: (rec.motions, presences), extra=rec.metrics, artifacts=rec.artifacts)
