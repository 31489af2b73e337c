"""The language model's evaluation: a text-to-motion row and a motion-to-text table, both
scored by the dataset's one shared evaluator (clutch_core.eval.evaluator_store).

Text-to-motion (`t2m`): for each evaluation clip, one of its captions (drawn per repeat) is
the prompt. Rows: `real` (the clips themselves); `clutch` (given length: the inference
template with the clip's own seconds, as in training, and the clip's number of frames);
`clutch_free` (free length: the template without a length, ending at the model's <eom>, as
T2M-GPT and MotionGPT generate: the row comparable with the literature);
`nearest_caption_motion` (the motion of the train clip whose caption is nearest to the prompt
by TF-IDF); `random_train_motion` (a random train motion of the clip's length); `chance`
(R-precision k/32; MM-Dist of texts against other clips' motion). Greedy decoding depends
only on (caption, length), so each pair is generated once and reused across repeats (two
clips of one pool with the same caption get the same motion: R-precision ranks such ties as
T2M's argsort does, clutch_core.eval.metrics). MultiModality: `mm_texts` captions (fixed by
the seed), `mm_generations` sampled motions each.

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
from clutch_core.eval.rows import DEFAULT_REPEATS, EvalContext, Motions, RowSource, real_row
from clutch_core.eval.t2m import draw_captions, score_row
from layout import FPS

log = logging.getLogger(__name__)

R_KEYS = tuple(f"r_precision_top{k + 1}" for k in range(M.TOP_K))


@dataclass
class LMEvalConfig:
    split: str | None = None  # evaluation split; None: val, or with `final` test (clutch_core.eval.data.eval_clips)
    final: bool = False  # the final reading: the test split may be read
    repeats: int = DEFAULT_REPEATS  # caption draws and R-precision pool shuffles
    seed: int = 0
    stage: str | None = None  # LM stage to score; None = the latest finished
    mm_texts: int = 32  # MultiModality: captions ...
    mm_generations: int = 10  # ... and sampled motions per caption
    temperature: float = 1.0  # sampling for MultiModality
    top_k: int | None = None
    num_beams: int = 1  # motion-to-text decoding
    guidance: float | None = None  # classifier-free guidance of both directions; None: the run's own
    rerank: int | None = None  # text-to-motion candidates reranked by the model's m2t (greedy rows); None: the run's own
    caption_rerank: int = 1  # motion-to-text candidates reranked by the model's t2m (1: off, the default: it lowered R@3)
    max_caption_tokens: int = 48
    batch_size: int = 32
    parts: tuple[str, ...] = ("t2m", "m2t")
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    evaluator_path: Path | None = None  # None = DATASET/evaluators/<hash>/
    captions: CaptionConfig = field(default_factory=CaptionConfig)
    caption_boot: int = 100  # bootstrap resamples of the clips for the caption metrics' intervals


class Generator:
    """Text-to-motion, memoized by (caption, frames, samples); frames None: free length (the model's <eom>)."""

    def __init__(self, run: Path, cfg: LMEvalConfig, stage: str):
        self.run, self.cfg, self.stage = run, cfg, stage
        self.cache: dict[tuple[str, int | None, int], list] = {}

    def __call__(self, texts: Sequence[str], frames: Sequence[int | None], samples: int = 1) -> list[list]:
        """-> per text, `samples` Motion(motion [T, 198], presence [T, 2]); T = frames_i when given."""
        from clutch_core.lm.api import generate

        keys = [(t, None if f is None else int(f), samples) for t, f in zip(texts, frames)]
        todo = {k for k in keys if k not in self.cache}
        for free in (False, True):  # one generate() call per kind: a length for every text, or none
            group = sorted((k for k in todo if (k[1] is None) == free), key=lambda k: k[1] or 0)
            if not group:
                continue
            out = generate(self.run, [k[0] for k in group], seconds=None if free else [k[1] / FPS for k in group],
                           samples=samples, seed=self.cfg.seed, do_sample=samples > 1, temperature=self.cfg.temperature,
                           top_k=self.cfg.top_k, batch_size=self.cfg.batch_size, stage=self.stage,
                           guidance=self.cfg.guidance, rerank=self.cfg.rerank if samples == 1 else 1)
            self.cache.update(zip(group, out))
        return [self.cache[k] for k in keys]


def generation_row(ctx: EvalContext, gen: Generator, free: bool = False) -> RowSource:
    """Greedy generations for the drawn captions: at each clip's length, or at the length the model chooses."""
    frames = [None if free else int(c["num_frames"]) for c in ctx.clips]

    def sample(repeat: int, texts: list[str]) -> Motions:
        ms = [g[0] for g in gen(texts, frames)]
        return [m.motion for m in ms], [m.presence for m in ms]

    return RowSource(sample=sample, deterministic=False)


def nearest_caption_row(ctx: EvalContext, train: list[dict]) -> RowSource:
    """The motion of the train clip whose caption is nearest to the prompt by TF-IDF cosine similarity
    (a text similarity that is not the evaluator's encoder)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [c["text"] for r in train for c in r["captions"]]
    owner = [i for i, r in enumerate(train) for _ in r["captions"]]
    tfidf = TfidfVectorizer().fit(texts)
    bank = tfidf.transform(texts)

    def sample(repeat: int, prompts: list[str]) -> Motions:
        best = (tfidf.transform(prompts) @ bank.T).toarray().argmax(1)
        picks = [train[owner[j]] for j in best]
        return [r["motion"] for r in picks], [r["presence"] for r in picks]

    return RowSource(sample=sample, deterministic=False)


def random_motion_row(ctx: EvalContext, train: list[dict]) -> RowSource:
    """For each clip, a random train clip of at least its length, cut to its length (the longest, padded
    with absent frames, when none is long enough): motion that ignores the text but not the length."""
    lengths = np.array([r["num_frames"] for r in train])

    def sample(repeat: int, prompts: list[str]) -> Motions:
        rng = np.random.default_rng([ctx.seed, 13, repeat])
        motions, presences = [], []
        for c in ctx.clips:
            t = int(c["num_frames"])
            ok = np.flatnonzero(lengths >= t)
            r = train[int(rng.choice(ok))] if len(ok) else train[int(lengths.argmax())]
            m, p = np.zeros((t, r["motion"].shape[1]), np.float32), np.zeros((t, 2), bool)
            n = min(t, len(r["motion"]))
            m[:n], p[:n] = r["motion"][:n], r["presence"][:n]
            motions.append(m), presences.append(p)
        return motions, presences

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
    from clutch_core.lm.api import EMPTY_CAPTION, captions

    hyps = captions(run, list(zip(*ctx.real)), cfg.num_beams, cfg.max_caption_tokens, stage,
                    batch_size=cfg.batch_size, guidance=cfg.guidance, rerank=cfg.caption_rerank, seed=cfg.seed)
    scored = ["" if h == EMPTY_CAPTION else h for h in hyps]  # scored as saying nothing, and counted
    refs = [[c["text"] for c in clip["captions"]] for clip in ctx.clips]
    rows = {"clutch": scored, **baseline_captions(ctx, dataset, real_emb)}
    table = {name: {**caption_r_precision(ctx, h, real_emb),
                    **caption_metrics(refs, h, cfg.captions, boot=cfg.caption_boot, seed=cfg.seed)}
             for name, h in rows.items()}
    table["real"] = caption_r_precision(ctx, None, real_emb)
    return table, hyps


def teacher_forced(run: Path, dataset: Path, stage: str, clip_ids: Sequence[str]) -> dict[str, Any]:
    """Teacher-forced CE, code-token and presence accuracy and decoded-motion MPJPE (mm) on exactly the
    evaluation clips (clutch_core.lm.train.teacher_forced), never on others."""
    import torch

    from clutch_core.lm.api import load_run_lm
    from clutch_core.lm.config import preset_config
    from clutch_core.lm.data import load_corpus, tokens_for
    from clutch_core.lm.tasks import Renderer
    from clutch_core.lm.train import teacher_forced as tf
    from clutch_core.shift.data import load_clips

    lm = load_run_lm(run, stage)
    want, tokens = set(clip_ids), tokens_for(run, dataset)
    clips = [c for split in ("train", "val", "test") for c in load_corpus(tokens, dataset, split) if c.clip_id in want]
    if not clips:
        return {"tf_clips": 0}
    frames = load_clips(dataset, None, [c.clip_id for c in clips]).normalized(lm.stats)
    with torch.no_grad():
        m = tf(lm.model, Renderer(lm.tokenizer, lm.vocab), clips, frames, lm.shift, lm.stats, preset_config("tiny"),
               torch.device("cpu"))
    return {"tf_mpjpe_mm": m["val_tf_mpjpe_mm"], "tf_ce": m["val_ce"], "tf_motion_token_acc": m["val_motion_token_acc"],
            "tf_presence_acc": m["val_presence_acc"], "tf_clips": m["val_clips"]}


T2M_ROWS = ("real", "clutch", "clutch_free", "nearest_caption_motion", "random_train_motion", "chance")


def t2m_table(ctx: EvalContext, run: Path, dataset: Path, cfg: LMEvalConfig, stage: str, real_emb: np.ndarray,
              clip_ids: list[str], progress: bool) -> dict[str, dict[str, float]]:
    """Rows of the text-to-motion table (T2M_ROWS): `clutch` generates at each clip's length (the prompt
    says its seconds, as in training); `clutch_free` ends where the model puts <eom>, as T2M-GPT and
    MotionGPT generate: the row comparable with the literature."""
    from clutch_core.eval.data import load_clips

    gen = Generator(run, cfg, stage)
    given = score_row(ctx, generation_row(ctx, gen), real_emb, progress)
    given["multimodality"], given["multimodality_ci95"] = multimodality(ctx, gen)
    given.update(teacher_forced(run, dataset, stage, clip_ids))
    train = load_clips(dataset, "train")
    if not train:
        raise ValueError(f"{dataset}: no train clips for the text-to-motion baselines")
    return {"real": score_row(ctx, real_row(ctx), real_emb), "clutch": given,
            "clutch_free": score_row(ctx, generation_row(ctx, gen, free=True), real_emb, progress),
            "nearest_caption_motion": score_row(ctx, nearest_caption_row(ctx, train), real_emb),
            "random_train_motion": score_row(ctx, random_motion_row(ctx, train), real_emb),
            "chance": chance_row(ctx, real_emb)}


def evaluate_lm(run: str | os.PathLike, dataset: str | os.PathLike, cfg: LMEvalConfig | None = None,
                progress: bool = False) -> dict[str, Any]:
    """Score RUN's language model on DATASET's evaluation split.

    -> {"evaluator_hash", "eval_set", "n_clips", "stage", "run", "bertscore_key",
        "t2m": {T2M_ROWS}: {r_precision_top1..3, fid, kid, kid_lo, kid_hi, mm_dist,
                diversity, multimodality (clutch), tf_* (clutch), *_ci95 ...},
        "m2t": {"clutch", "most_frequent_caption", "nearest_training_motion", "real"}:
               {r_precision_top1..3, bleu_1, bleu_4, rouge_l, cider, <bertscore key>},
        "captions": [the model's caption per clip], "clip_ids": [...]}
    """
    from clutch_core.eval.data import eval_clips
    from clutch_core.eval.evaluator_store import load_or_train_evaluator
    from clutch_core.lm.api import lm_dir, load_run_lm, rerank_count

    cfg = cfg or LMEvalConfig()
    run, dataset = Path(run), Path(dataset)
    if not dataset.is_dir():
        raise FileNotFoundError(f"dataset folder {dataset} does not exist")
    unknown = set(cfg.parts) - {"t2m", "m2t"}
    if unknown:
        raise ValueError(f"parts: unknown {sorted(unknown)} (t2m, m2t)")
    stage, _ = lm_dir(run, cfg.stage)
    clips, eval_set = eval_clips(dataset, cfg.split, cfg.final)
    ev, ev_hash = load_or_train_evaluator(dataset, cfg.evaluator, cfg.evaluator_path, progress=progress)
    ctx = EvalContext(run=run, clips=clips, evaluator=ev, repeats=cfg.repeats, seed=cfg.seed,
                      mm_texts=cfg.mm_texts, mm_generations=cfg.mm_generations)
    real_emb = ev.encode_motion(*ctx.real)
    lm = load_run_lm(run, stage)
    guidance = cfg.guidance if cfg.guidance is not None else lm.guidance
    out: dict[str, Any] = {"evaluator_hash": ev_hash, "eval_set": eval_set, "n_clips": len(clips), "stage": stage,
                           "guidance": guidance, "rerank": rerank_count(lm, cfg.rerank), "run": str(run), "clip_ids": [c["clip_id"] for c in clips]}
    if "t2m" in cfg.parts:
        out["t2m"] = t2m_table(ctx, run, dataset, cfg, stage, real_emb, out["clip_ids"], progress)
    if "m2t" in cfg.parts:
        out["m2t"], out["captions"] = m2t_table(ctx, run, dataset, cfg, stage, real_emb)
        out["bertscore_key"] = bertscore_setup(cfg.captions).key if cfg.captions.with_bertscore else None
    if cfg.evaluator.text_encoder == "minilm":
        ev.sentences.save()
    return out
