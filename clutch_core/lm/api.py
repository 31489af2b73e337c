"""Using a trained run: text -> motion (`generate`) and motion -> text (`caption`).

The run's latest finished LM stage is used (instruct, else refine, else pretrain) with
the run's SHIFT to turn codes into motion. Bad input raises ValueError or
FileNotFoundError with a message naming the argument or file (the CLI maps them to
exit 2).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch

from clutch_core.lm.config import STAGES
from clutch_core.lm.tasks import Renderer, seconds_text, templates
from clutch_core.lm.vocab import MotionVocab
from layout import FPS, FRAME_DIM, HAND_DIM, MAX_FRAMES, SIDES, TRANSL
from layout.run import METRICS, MODEL_DIR, MOTION_VOCAB

TRAIN_HINT = "clutch train DATASET --out {run} --stages pretrain,refine,instruct"


class Motion(NamedTuple):
    motion: np.ndarray  # [T, 198] float32
    presence: np.ndarray  # [T, 2] bool


@dataclass
class RunLM:
    stage: str
    model: Any  # T5ForConditionalGeneration, eval mode
    tokenizer: Any
    vocab: MotionVocab
    shift: Any  # clutch_core.shift.model.MotionTokenizer, eval mode
    stats: Any  # MotionStats
    max_text_tokens: int
    guidance: float = 1.0  # the decoding's default guidance scale (what the model was trained for)
    rerank: int = 1  # text-to-motion candidates per text that the model's motion-to-text reranks (1: none)

    @property
    def max_steps(self) -> int:
        return MAX_FRAMES // self.vocab.frames_per_step


def lm_dir(run: str | os.PathLike, stage: str | None = None) -> tuple[str, Path]:
    """(stage, RUN/<stage>/model) of the latest finished LM stage (or the one asked for)."""
    run = Path(run)
    if not run.is_dir():
        raise FileNotFoundError(f"run folder {run} does not exist")
    for s in ([stage] if stage else reversed(STAGES)):
        if s not in STAGES:
            raise ValueError(f"stage must be one of {list(STAGES)}, got {s!r}")
        d = run / s / MODEL_DIR
        if (run / s / METRICS).exists() and (d / MOTION_VOCAB).exists():
            return s, d
    missing = stage or "pretrain"
    raise FileNotFoundError(f"{run / missing}: no trained language model (stage {missing!r} has not finished); "
                            f"train it with `{TRAIN_HINT.format(run=run)}`")


def load_run_lm(run: str | os.PathLike, stage: str | None = None, device: str = "cpu") -> RunLM:
    stage, d = lm_dir(run, stage)
    return _load(str(Path(run).resolve()), stage, str(d), (d / MOTION_VOCAB).stat().st_mtime_ns, device)


@lru_cache(maxsize=4)
def _load(run: str, stage: str, folder: str, _stamp: int, device: str) -> RunLM:
    from clutch_core.lm.model import load_lm
    from clutch_core.shift.checkpoint import load_tokenizer, shift_weights_id

    model, tok, vocab, meta = load_lm(folder, device)
    shift, stats, config = load_tokenizer(run, device)
    want = MotionVocab.from_tokenizer_config(vocab.base, config)
    if want != vocab or meta.get("shift_weights") != shift_weights_id(run):
        raise ValueError(f"{folder}: language model was trained on other motion tokens than "
                         f"{Path(run) / 'shift'} (tokenizer/LM mismatch); retrain the LM stages of this run")
    return RunLM(stage, model, tok, vocab, shift, stats, int(meta.get("max_text_tokens", 128)),
                 float(meta.get("guidance", 1.0)), int(meta.get("rerank", 1)))


def check_guidance(guidance: float | None) -> None:
    """A guidance scale is None (the model's own) or a finite number >= 0: 0 decodes without the condition, 1 plainly."""
    if guidance is not None and not (math.isfinite(guidance) and guidance >= 0):
        raise ValueError(f"guidance must be a number >= 0 (1: no guidance), got {guidance}")


def guidance_scale(lm: RunLM, guidance: float | None) -> float:
    """The scale asked for, or the one the model was trained for."""
    check_guidance(guidance)
    return lm.guidance if guidance is None else float(guidance)


def _check_texts(lm: RunLM, texts: Sequence[str]) -> list[list[int]]:
    if isinstance(texts, str):
        texts = [texts]
    if not texts:
        raise ValueError("texts: no text given")
    r = Renderer(lm.tokenizer, lm.vocab)
    out = []
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"text {i}: empty text")
        n = len(r.text(t.strip()))
        if n > lm.max_text_tokens:
            raise ValueError(f"text {i}: {n} tokens, longer than the {lm.max_text_tokens} this model accepts")
    return out


def steps_for(seconds: float | None, frames_per_step: int) -> tuple[int | None, int | None]:
    """(latent steps to generate, frames to keep) for a length in seconds (None: the model's <eom>)."""
    if seconds is None:
        return None, None
    frames = int(round(float(seconds) * FPS))
    if not np.isfinite(seconds) or frames < 1 or frames > MAX_FRAMES:
        raise ValueError(f"seconds must be in (0, {MAX_FRAMES / FPS:g}], got {seconds}")
    return -(-frames // frames_per_step), frames


def codes_to_motion(lm: RunLM, codes: np.ndarray, presence: np.ndarray, frames: int | None = None) -> Motion:
    """codes [S, n] + step presence [S, 2] -> Motion with absent frames filled as the data layout says
    (identity rotations, the last valid wrist translation)."""
    from clutch_core.hands.motion import fill_last_valid, identity_hand_vec

    stride, dev = lm.vocab.frames_per_step, next(lm.shift.parameters()).device
    with torch.no_grad():
        z = lm.shift.decode(torch.as_tensor(codes)[None].to(dev), torch.as_tensor(presence)[None].to(dev))
    x = lm.stats.denormalize(z[0].cpu())
    p = torch.as_tensor(presence).repeat_interleave(stride, 0)  # [T, 2]
    hands = x.view(-1, len(SIDES), HAND_DIM)
    hands = torch.where(p[..., None], hands, identity_hand_vec())
    hands[..., TRANSL] = fill_last_valid(hands[..., TRANSL], p)
    t = frames or hands.shape[0]
    return Motion(hands.reshape(-1, FRAME_DIM)[:t].numpy().astype(np.float32), p[:t].numpy())


def generate(run: str | os.PathLike, texts: Sequence[str] | str, seconds: float | Sequence[float] | None = None,
             samples: int = 1,
             seed: int = 0, do_sample: bool | None = None, temperature: float = 1.0, top_k: int | None = None,
             batch_size: int = 32, stage: str | None = None, device: str = "cpu",
             guidance: float | None = None, rerank: int | None = None) -> list[list[Motion]]:
    """Text -> motion. Returns, per text, `samples` Motion(motion [T, 198], presence [T, 2]).

    Greedy when samples == 1 and do_sample is not set; otherwise sampling with temperature and
    top-k. With `seconds` (one for every text, or one per text) the motion has
    round(seconds * 15) frames; without, the model's <eom> ends it (4..144 frames). `guidance`:
    the classifier-free guidance scale (clutch_core.lm.guidance; None: the one the model was
    trained for, 1: none). `rerank` K > samples: also draw K - samples sampled motions per text
    and return the `samples` of the K that the model's own motion-to-text scores highest
    (clutch_core.lm.rerank; None: the run's default, 1: off). The seed makes it repeatable.
    """
    from clutch_core.lm.rerank import best_of, caption_log_likelihood

    texts = [texts] if isinstance(texts, str) else list(texts)
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    lm = load_run_lm(run, stage, device)
    _check_texts(lm, texts)
    per_text = [seconds] * len(texts) if seconds is None or np.ndim(seconds) == 0 else list(seconds)
    if len(per_text) != len(texts):
        raise ValueError(f"seconds: {len(per_text)} lengths for {len(texts)} texts")
    k = rerank_count(lm, rerank)
    sample = (samples > 1) if do_sample is None else do_sample
    task = "t2m" if seconds is None else "t2m_seconds"
    scale = guidance_scale(lm, guidance)
    torch.manual_seed(seed)
    dec = dict(lm=lm, task=task, temperature=temperature, top_k=top_k, scale=scale, batch_size=batch_size,
               device=device, given=seconds is not None)
    rows = _decode(texts, per_text, samples, sample, **dec)  # [len(texts) * samples] (ids, frames)
    if k > samples:
        extra = _decode(texts, per_text, k - samples, True, **dec)
        rows = [r for i in range(len(texts)) for r in rows[i * samples:(i + 1) * samples] + extra[i * (k - samples):(i + 1) * (k - samples)]]
        r = Renderer(lm.tokenizer, lm.vocab)
        motion_ids = [lm.vocab.encode(*lm.vocab.decode(ids)) for ids, _ in rows]
        scores = caption_log_likelihood(lm.model, r, motion_ids, [t for t in texts for _ in range(k)], batch_size)
        rows = [rows[j] for j in best_of(scores, len(texts), samples).reshape(-1)]
    out = [codes_to_motion(lm, *lm.vocab.decode(ids), frames) for ids, frames in rows]
    return [out[i * samples:(i + 1) * samples] for i in range(len(texts))]


def rerank_count(lm: RunLM, rerank: int | None) -> int:
    """Candidates per text: the number asked for, or the run's default; 1 (or 0) is no rerank."""
    if rerank is not None and (not isinstance(rerank, (int, np.integer)) or rerank < 0):
        raise ValueError(f"rerank must be a whole number >= 0 (candidates per text; 0 or 1: off), got {rerank!r}")
    return max(1, lm.rerank if rerank is None else int(rerank))


def _decode(texts: list[str], per_text: list, n: int, sample: bool, lm: RunLM, task: str, temperature: float,
            top_k: int | None, scale: float, batch_size: int, device, given: bool) -> list[tuple[list[int], int | None]]:
    """`n` decodes per text, text-major -> [(generated ids from <som>, frames to keep or None)]."""
    from clutch_core.lm.decode import generate_motion_ids

    tmpl = templates()[task][0]["input"]
    r = Renderer(lm.tokenizer, lm.vocab)
    lengths = [steps_for(s, lm.vocab.frames_per_step) for s in per_text for _ in range(n)]  # (steps, frames)
    prompts = [r.render(tmpl, {"seconds": seconds_text(s) if s is not None else "", "caption": t.strip()})[0]
               for t, s in zip(texts, per_text) for _ in range(n)]
    bare = [r.render(tmpl, {"seconds": seconds_text(s) if s is not None else "", "caption": ""})[0]
            for s in per_text for _ in range(n)]  # the prompts without their text, for guidance
    out: list[tuple[list[int], int | None]] = []
    for k in range(0, len(prompts), batch_size):
        b = _batch(prompts[k:k + batch_size], lm, device)
        chunk = lengths[k:k + batch_size]
        steps = [s for s, _ in chunk] if given else None
        ids = generate_motion_ids(lm.model, *b, lm.vocab, lm.max_steps, steps, sample, temperature, top_k,
                                  uncond=_batch(bare[k:k + batch_size], lm, device), guidance=scale)
        out += [(row, frames) for row, (_, frames) in zip(ids.cpu().tolist(), chunk)]
    return out


def _batch(prompts: list[list[int]], lm: RunLM, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of rendered prompts, padded to the longest."""
    from clutch_core.lm.data import collate
    from clutch_core.lm.tasks import Example

    b = collate([Example(p, [0]) for p in prompts], lm.tokenizer.pad_token_id, 10**6, 1)
    return b["input_ids"].to(device), b["attention_mask"].to(device)


EMPTY_CAPTION = "[no caption: the model wrote no words]"  # what `captions` returns for an empty decode
ABSENT_MOST = 0.5  # a motion with no hand in more than this share of its frames is worth a warning


def generation_warnings(texts: Sequence[str], motions: list[list[Motion]]) -> list[str]:
    """What a user should know about generated motion: no hand in most frames; different texts, or
    different samples of one text, that came out identical."""
    out = []
    for t, ms in zip(texts, motions):
        for k, m in enumerate(ms):
            empty = 1.0 - float(m.presence.any(1).mean()) if len(m.presence) else 1.0
            if empty > ABSENT_MOST:
                out.append(f"{t!r}{f' (sample {k})' if len(ms) > 1 else ''}: no hand in {100 * empty:.0f} % of "
                           f"its frames")
        if len(ms) > 1 and all(_same(ms[0], m) for m in ms[1:]):
            out.append(f"{t!r}: all {len(ms)} samples are identical (the model is sure of this motion)")
    firsts = [ms[0] for ms in motions]
    for i in range(len(texts)):
        twins = [texts[j] for j in range(i + 1, len(texts)) if texts[j] != texts[i] and _same(firsts[i], firsts[j])]
        if twins:
            out.append(f"{texts[i]!r} and {', '.join(map(repr, twins))} gave identical motion: the model does not "
                       f"tell these texts apart")
    return out


def _same(a: Motion, b: Motion) -> bool:
    return a.motion.shape == b.motion.shape and np.array_equal(a.motion, b.motion) and np.array_equal(a.presence, b.presence)


def check_motion(motion, presence, name: str = "motion") -> tuple[np.ndarray, np.ndarray]:
    """Validate a motion [T, 198] and presence [T, 2] given by a user."""
    m = np.asarray(motion)
    if m.ndim != 2 or m.shape[1] != FRAME_DIM or not 1 <= m.shape[0] <= MAX_FRAMES:
        raise ValueError(f"{name}: must be [T, {FRAME_DIM}] with 1 <= T <= {MAX_FRAMES}, got {list(m.shape)}")
    if not np.isfinite(m).all():
        raise ValueError(f"{name}: has non-finite values (NaN or inf)")
    p = np.ones((m.shape[0], 2), bool) if presence is None else np.asarray(presence)
    if p.shape != (m.shape[0], 2):
        raise ValueError(f"{name}: presence must be [{m.shape[0]}, 2], got {list(p.shape)}")
    return m.astype(np.float32), p.astype(bool)


def motion_codes(lm: RunLM, motion: np.ndarray, presence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Motion [T, 198] -> (codes [S, n], step presence [S, 2]) through the run's SHIFT, as tokenize does."""
    stride = lm.vocab.frames_per_step
    t = -(-motion.shape[0] // stride) * stride
    x = torch.zeros(1, t, FRAME_DIM)
    p = torch.zeros(1, t, 2, dtype=torch.bool)
    x[0, :len(motion)], p[0, :len(motion)] = torch.from_numpy(motion), torch.from_numpy(presence)
    x = lm.stats.normalize(x) * p.repeat_interleave(HAND_DIM, -1)
    dev = next(lm.shift.parameters()).device
    with torch.no_grad():
        o = lm.shift(x.to(dev), p.to(dev))
    return o.tokens[0].cpu().numpy(), o.latent_presence[0].cpu().numpy()


def caption(run: str | os.PathLike, motion, presence=None, num_beams: int = 1, max_length: int = 48,
            stage: str | None = None, device: str = "cpu", guidance: float | None = None,
            rerank: int = 1, seed: int = 0) -> str:
    """Motion [T, 198] (+ presence [T, 2], default all present) -> one caption."""
    return captions(run, [(motion, presence)], num_beams, max_length, stage, device, guidance=guidance,
                    rerank=rerank, seed=seed)[0]


def captions(run: str | os.PathLike, motions: Sequence[tuple[Any, Any]], num_beams: int = 1, max_length: int = 48,
             stage: str | None = None, device: str = "cpu", batch_size: int = 32,
             guidance: float | None = None, rerank: int = 1, seed: int = 0) -> list[str]:
    """Batched motion-to-text: [(motion [T, 198], presence [T, 2] or None), ...] -> captions. Never empty:
    a decode without words (an undertrained model) is EMPTY_CAPTION, which the evaluation counts. `rerank`
    K > 1: the greedy (or beam) caption and K - 1 sampled ones, the best by the model's own text-to-motion
    likelihood of the motion plus the caption's (clutch_core.lm.rerank). Off (1) by default, whatever the run's
    text-to-motion default: on the tiny runs it lowered motion-to-text R@3 (BENCHMARKS.md, "Sampled rerank")."""
    from clutch_core.lm.rerank import best_of, caption_log_likelihood, motion_log_likelihood

    if max_length < 1 or num_beams < 1:
        raise ValueError(f"max_length and num_beams must be >= 1, got {max_length}, {num_beams}")
    checked = [check_motion(m, p, f"motion {i}") for i, (m, p) in enumerate(motions)]
    lm = load_run_lm(run, stage, device)
    k = rerank_count(lm, 1 if rerank is None else rerank)
    r = Renderer(lm.tokenizer, lm.vocab)
    motion_ids = [lm.vocab.encode(*motion_codes(lm, m, p)) for m, p in checked]
    dec = dict(lm=lm, max_length=max_length, scale=guidance_scale(lm, guidance), batch_size=batch_size,
               device=device)
    torch.manual_seed(seed)
    out = _describe(motion_ids, 1, num_beams, False, **dec)
    if k > 1:
        extra = _describe(motion_ids, k - 1, 1, True, **dec)
        cands = [c for i in range(len(out)) for c in [out[i], *extra[i * (k - 1):(i + 1) * (k - 1)]]]
        ids = [m for m in motion_ids for _ in range(k)]
        seconds = [len(m) / FPS for m, _ in checked for _ in range(k)]
        words = [c if c.strip() else EMPTY_CAPTION for c in cands]
        scores = (motion_log_likelihood(lm.model, r, words, ids, seconds, batch_size)
                  + caption_log_likelihood(lm.model, r, ids, words, batch_size))
        scores[[not c.strip() for c in cands]] = -np.inf
        out = [cands[j] for j in best_of(scores, len(out), 1).reshape(-1)]
    return [s.strip() or EMPTY_CAPTION for s in out]


def _describe(motion_ids: list[list[int]], n: int, num_beams: int, sample: bool, lm: RunLM, max_length: int,
              scale: float, batch_size: int, device) -> list[str]:
    """`n` captions per motion, motion-major (stripped; '' for a decode without words)."""
    from clutch_core.lm.decode import generate_text_ids

    r = Renderer(lm.tokenizer, lm.vocab)
    tmpl = templates()["m2t"][0]["input"]
    prompts = [r.render(tmpl, {"motion": ids})[0] for ids in motion_ids for _ in range(n)]
    bare = r.render(tmpl, {"motion": [lm.vocab.som, lm.vocab.eom]})[0]  # the prompt without its motion
    banned = [i for i in lm.tokenizer.all_special_ids if i != lm.tokenizer.eos_token_id and i < lm.vocab.base]
    out: list[str] = []
    for k in range(0, len(prompts), batch_size):
        chunk = prompts[k:k + batch_size]
        ids = generate_text_ids(lm.model, *_batch(chunk, lm, device), lm.vocab, banned, num_beams, max_length,
                                uncond=_batch([bare] * len(chunk), lm, device), guidance=scale, do_sample=sample)
        out += [s.strip() for s in lm.tokenizer.batch_decode(ids, skip_special_tokens=True)]
    return out
