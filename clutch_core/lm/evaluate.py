"""The language model's evaluation: a text-to-motion row and a motion-to-text table, both
scored by the dataset's one shared evaluator (clutch_core.eval.evaluator_store).

Text-to-motion (`t2m`): for each evaluation clip, one of its captions (drawn per repeat)
goes through the inference template with the clip's own length ("... {seconds} seconds
...", as in training), and the generated motion has the real clip's number of frames.
Greedy decoding depends only on (caption, length), so each pair is generated once and
reused across repeats. Rows: `real` (the clips themselves), `clutch` (generated) and
`chance` (R-precision k/32; MM-Dist of texts against other clips' motion). MultiModality:
`mm_texts` captions (fixed by the seed), `mm_generations` sampled motions each.

Motion-to-text (`m2t`): the real clips' motion (absent hands masked exactly as the tokens
parts were written) -> caption. Each row is a list of captions, one per clip, scored
against all of the clip's captions (BLEU-1/4, ROUGE-L, CIDEr, BERTScore) and by
R-precision of the caption among pools of 32 real motions in the evaluator's space.
Rows: `clutch`, `most_frequent_caption` (the train split's commonest caption for every
clip), `nearest_training_motion` (the first caption of the train clip nearest in the
evaluator's motion-embedding space), and `real` (the clip's own captions, R-precision
only: it is the reference of the text metrics).
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from clutch_core.eval import metrics as M
from clutch_core.eval.captions import CaptionConfig, bertscore_setup, caption_metrics
from clutch_core.eval.evaluator_model import EvaluatorConfig
from clutch_core.eval.rows import EvalContext, Motions, RowSource, real_row
from clutch_core.eval.t2m import draw_captions, score_row
from layout import FPS

log = logging.getLogger(__name__)

R_KEYS = tuple(f"r_precision_top{k + 1}" for k in range(M.TOP_K))


@dataclass
class LMEvalConfig:
    split: str = "test"  # evaluation split (falls back as clutch_core.eval.data.eval_clips says)
    repeats: int = 10  # caption draws and R-precision pool shuffles
    seed: int = 0
    stage: str | None = None  # LM stage to score; None = the latest finished
    mm_texts: int = 32  # MultiModality: captions ...
    mm_generations: int = 10  # ... and sampled motions per caption
    temperature: float = 1.0  # sampling for MultiModality
    top_k: int | None = None
    num_beams: int = 1  # motion-to-text decoding
    max_caption_tokens: int = 48
    batch_size: int = 32
    parts: tuple[str, ...] = ("t2m", "m2t")
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    evaluator_path: Path | None = None  # None = DATASET/evaluators/<hash>/
    captions: CaptionConfig = field(default_factory=CaptionConfig)


class Generator:
    """Text-to-motion at each clip's length, memoized by (caption, frames, sampling)."""

    def __init__(self, run: Path, cfg: LMEvalConfig, stage: str):
        self.run, self.cfg, self.stage = run, cfg, stage
        self.cache: dict[tuple[str, int, int], list] = {}

    def __call__(self, texts: Sequence[str], frames: Sequence[int], samples: int = 1) -> list[list]:
        """-> per text, `samples` Motion(motion [frames_i, 198], presence [frames_i, 2])."""
        from clutch_core.lm.api import generate

        keys = [(t, int(f), samples) for t, f in zip(texts, frames)]
        todo = sorted({k for k in keys if k not in self.cache}, key=lambda k: k[1])  # similar lengths batch well
        if todo:
            out = generate(self.run, [k[0] for k in todo], seconds=[k[1] / FPS for k in todo], samples=samples,
                           seed=self.cfg.seed, do_sample=samples > 1, temperature=self.cfg.temperature,
                           top_k=self.cfg.top_k, batch_size=self.cfg.batch_size, stage=self.stage)
            self.cache.update(zip(todo, out))
        return [self.cache[k] for k in keys]


def generation_row(ctx: EvalContext, gen: Generator) -> RowSource:
    frames = [int(c["num_frames"]) for c in ctx.clips]

    def sample(repeat: int, texts: list[str]) -> Motions:
        ms = [g[0] for g in gen(texts, frames)]
        return [m.motion for m in ms], [m.presence for m in ms]

    return RowSource(sample=sample, deterministic=False)


def multimodality(ctx: EvalContext, gen: Generator) -> tuple[float, float]:
    """(mean, 95 % half-width over repeats of the pair draw) on a seeded set of captions."""
    rng = np.random.default_rng([ctx.seed, 7])
    idx = rng.choice(len(ctx.clips), min(ctx.mm_texts, len(ctx.clips)), replace=False)
    clips = [ctx.clips[i] for i in idx]
    gens = gen(draw_captions(clips, rng), [int(c["num_frames"]) for c in clips], ctx.mm_generations)
    emb = np.stack([ctx.evaluator.encode_motion([m.motion for m in g], [m.presence for m in g]) for g in gens])
    vals = [M.multimodality(emb, np.random.default_rng([ctx.seed, 8, r])) for r in range(ctx.repeats)]
    return M.repeat_stats(vals)


def chance_row(ctx: EvalContext, real_emb: np.ndarray) -> dict[str, float]:
    """What a model ignoring the text scores: R-precision k/32, MM-Dist to other clips' motion."""
    out = {k: (i + 1) / M.R_POOL for i, k in enumerate(R_KEYS)}
    d = []
    for r in range(ctx.repeats):
        rng = np.random.default_rng([ctx.seed, 9, r])
        t = ctx.evaluator.encode_text(draw_captions(ctx.clips, rng))
        d.append(M.mm_dist(t, real_emb[np.roll(np.arange(len(real_emb)), 1 + r)]))
    out["mm_dist"], out["mm_dist_ci95"] = M.repeat_stats(d)
    return out


def caption_r_precision(ctx: EvalContext, hyps: Sequence[str] | None, real_emb: np.ndarray) -> dict[str, float]:
    """R-precision of captions among pools of real motions (hyps None: the clips' own captions, drawn per repeat)."""
    per: dict[str, list[float]] = {k: [] for k in R_KEYS}
    fixed = None if hyps is None else ctx.evaluator.encode_text(list(hyps))
    for r in range(ctx.repeats):
        rng = np.random.default_rng([ctx.seed, 11, r])
        t = fixed if fixed is not None else ctx.evaluator.encode_text(draw_captions(ctx.clips, rng))
        for k, v in zip(R_KEYS, M.r_precision(t, real_emb, rng)):
            per[k].append(float(v))
    out: dict[str, float] = {}
    for k, vals in per.items():
        out[k], out[f"{k}_ci95"] = M.repeat_stats(vals)
    return out


def baseline_captions(ctx: EvalContext, dataset: Path, real_emb: np.ndarray) -> dict[str, list[str]]:
    """The two reference captioners: most frequent train caption; caption of the nearest train motion."""
    from clutch_core.eval.data import load_clips

    train = load_clips(dataset, "train")
    if not train:
        raise ValueError(f"{dataset}: no train clips for the caption baselines")
    counts = Counter(c["text"] for r in train for c in r["captions"] if c["text"].strip())
    frequent = counts.most_common(1)[0][0]
    train_emb = ctx.evaluator.encode_motion([r["motion"] for r in train], [r["presence"] for r in train])
    nearest = M.euclidean(real_emb, train_emb).argmin(1)
    return {"most_frequent_caption": [frequent] * len(ctx.clips),
            "nearest_training_motion": [train[j]["captions"][0]["text"] for j in nearest]}


def m2t_table(ctx: EvalContext, run: Path, dataset: Path, cfg: LMEvalConfig, stage: str,
              real_emb: np.ndarray) -> tuple[dict[str, dict[str, float]], list[str]]:
    """(rows of the motion-to-text table, the model's captions)."""
    from clutch_core.lm.api import captions

    hyps = captions(run, list(zip(*ctx.real)), cfg.num_beams, cfg.max_caption_tokens, stage,
                    batch_size=cfg.batch_size)
    refs = [[c["text"] for c in clip["captions"]] for clip in ctx.clips]
    rows = {"clutch": hyps, **baseline_captions(ctx, dataset, real_emb)}
    table = {name: {**caption_r_precision(ctx, h, real_emb), **caption_metrics(refs, h, cfg.captions)}
             for name, h in rows.items()}
    table["real"] = caption_r_precision(ctx, None, real_emb)
    return table, hyps


def teacher_forced(run: Path, dataset: Path, stage: str, split: str) -> dict[str, float]:
    """Teacher-forced CE, motion-token accuracy and decoded-motion MPJPE (mm) on every clip of `split`."""
    import torch

    from clutch_core.lm.api import load_run_lm
    from clutch_core.lm.config import preset_config
    from clutch_core.lm.data import tokens_for
    from clutch_core.lm.tasks import Renderer
    from clutch_core.lm.train import evaluate_stage

    lm = load_run_lm(run, stage)
    cfg = preset_config("tiny", eval_clips=10**9)
    with torch.no_grad():
        m = evaluate_stage(lm.model, Renderer(lm.tokenizer, lm.vocab), dataset, tokens_for(run, dataset), lm.shift,
                           lm.stats, cfg, torch.device("cpu"), splits=(split, "val", "test", "train"))
    return {"tf_mpjpe_mm": m["val_tf_mpjpe_mm"], "tf_ce": m["val_ce"], "tf_motion_token_acc": m["val_motion_token_acc"],
            "tf_split": m["eval_split"], "tf_clips": m["val_clips"]}


def evaluate_lm(run: str | os.PathLike, dataset: str | os.PathLike, cfg: LMEvalConfig | None = None,
                progress: bool = False) -> dict[str, Any]:
    """Score RUN's language model on DATASET's evaluation split.

    -> {"evaluator_hash", "eval_set", "n_clips", "stage", "run", "bertscore_key",
        "t2m": {"real", "clutch", "chance"}: {r_precision_top1..3, fid, kid, kid_lo, kid_hi, mm_dist,
                diversity, multimodality (clutch), tf_mpjpe_mm (clutch), *_ci95 ...},
        "m2t": {"clutch", "most_frequent_caption", "nearest_training_motion", "real"}:
               {r_precision_top1..3, bleu_1, bleu_4, rouge_l, cider, <bertscore key>},
        "captions": [the model's caption per clip], "clip_ids": [...]}
    """
    from clutch_core.eval.data import eval_clips
    from clutch_core.eval.evaluator_store import load_or_train_evaluator
    from clutch_core.lm.api import lm_dir

    cfg = cfg or LMEvalConfig()
    run, dataset = Path(run), Path(dataset)
    if not dataset.is_dir():
        raise FileNotFoundError(f"dataset folder {dataset} does not exist")
    unknown = set(cfg.parts) - {"t2m", "m2t"}
    if unknown:
        raise ValueError(f"parts: unknown {sorted(unknown)} (t2m, m2t)")
    stage, _ = lm_dir(run, cfg.stage)
    clips, eval_set = eval_clips(dataset, cfg.split)
    ev, ev_hash = load_or_train_evaluator(dataset, cfg.evaluator, cfg.evaluator_path, progress=progress)
    ctx = EvalContext(run=run, clips=clips, evaluator=ev, repeats=cfg.repeats, seed=cfg.seed,
                      mm_texts=cfg.mm_texts, mm_generations=cfg.mm_generations)
    real_emb = ev.encode_motion(*ctx.real)
    out: dict[str, Any] = {"evaluator_hash": ev_hash, "eval_set": eval_set, "n_clips": len(clips), "stage": stage,
                           "run": str(run), "clip_ids": [c["clip_id"] for c in clips]}
    if "t2m" in cfg.parts:
        gen = Generator(run, cfg, stage)
        row = score_row(ctx, generation_row(ctx, gen), real_emb, progress)
        row["multimodality"], row["multimodality_ci95"] = multimodality(ctx, gen)
        row.update(teacher_forced(run, dataset, stage, eval_set if eval_set in ("val", "test") else "val"))
        out["t2m"] = {"real": score_row(ctx, real_row(ctx), real_emb), "clutch": row,
                      "chance": chance_row(ctx, real_emb)}
    if "m2t" in cfg.parts:
        out["m2t"], out["captions"] = m2t_table(ctx, run, dataset, cfg, stage, real_emb)
        out["bertscore_key"] = bertscore_setup(cfg.captions).key if cfg.captions.with_bertscore else None
    if cfg.evaluator.text_encoder == "minilm":
        ev.sentences.save()
    return out
