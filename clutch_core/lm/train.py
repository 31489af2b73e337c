"""train-clutch stages pretrain, refine and instruct: one loop, three task mixtures.

RUN/<stage>/
  model/                  save_pretrained folder (weights, config, tokenizer) + motion_vocab.json
  checkpoint.safetensors  training state (weights, AdamW moments, RNG, step), as RUN/shift's
  train_log.jsonl         one line per log_every steps
  metrics.json            written last: the stage is complete
  text_tokenizer/         (pretrain, tiny preset) the Unigram tokenizer trained on the captions

Each stage starts from the previous stage's model (pretrain from cfg.base or a fresh tiny
T5), is skipped when metrics.json records the same settings and step count, and resumes
from its checkpoint with the same total step count: batches depend only on (seed, stage,
step) and the RNG (dropout, Gumbel noise) is restored, so a resumed stage ends with the
same weights as an uninterrupted one on CPU.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from clutch_core.lm.config import STAGES, LMConfig
from clutch_core.lm.data import Clip, Sampler, collate, load_corpus, tokens_for
from clutch_core.lm.geometry import (MotionTargets, gather_motion_logits, geometric_loss, hard_decode,
                                     joint_error, soft_decode)
from clutch_core.lm.model import TrainingState, base_tokenizer, build_t5, load_lm, save_lm
from clutch_core.lm.tasks import Renderer, task_example, templates
from clutch_core.lm.text import sentinel_ids
from clutch_core.lm.vocab import MotionVocab
from clutch_core.progress import StepReporter
from clutch_core.shift.checkpoint import (CHECKPOINT, atomic_write_json, load_tokenizer, load_training_state,
                                          save_training_state)
from clutch_core.shift.train import TRAIN_LOG, _autocast, _progress, _trim_log

log = logging.getLogger(__name__)
METRICS = "metrics.json"
MODEL_DIR = "model"
TEXT_TOKENIZER = "text_tokenizer"


def stage_dir(run: str | os.PathLike, stage: str) -> Path:
    return Path(run) / stage


def is_complete(run: str | os.PathLike, stage: str, identity: dict[str, Any], steps: int) -> bool:
    p = stage_dir(run, stage) / METRICS
    if not p.exists() or not (stage_dir(run, stage) / MODEL_DIR / "motion_vocab.json").exists():
        return False
    m = json.loads(p.read_text())
    return m.get("train_config") == identity and m.get("steps") == steps


def _weights_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.glob("*.safetensors")):
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:10]


def previous_model(run: str | os.PathLike, stage: str) -> Path | None:
    """The model folder a stage starts from: the latest earlier stage that finished (None: pretrain's base)."""
    for prev in reversed(STAGES[:STAGES.index(stage)]):
        d = stage_dir(run, prev) / MODEL_DIR
        if (stage_dir(run, prev) / METRICS).exists() and (d / "motion_vocab.json").exists():
            return d
    if stage != "pretrain":
        raise FileNotFoundError(f"{stage_dir(run, 'pretrain') / METRICS}: stage {stage} needs a trained LM; "
                                f"run `clutch train DATASET --out {run} --stages pretrain` first")
    return None


def _lr(cfg: LMConfig, step: int) -> float:
    return cfg.lr * min(1.0, (step + 1) / max(cfg.warmup_steps, 1))


def refine_schedule(cfg: LMConfig, step: int, total: int) -> tuple[float, float]:
    """(lambda factor in [0, 1], Gumbel temperature) at `step` of `total`."""
    frac = step / max(total - 1, 1)
    ramp = min(1.0, (step + 1) / max(cfg.geo_ramp * total, 1.0))
    return ramp, cfg.tau + (cfg.tau_end - cfg.tau) * frac


def motion_targets(batch: dict[str, torch.Tensor], clips: list[Clip], frames, where: dict[str, int],
                   vocab: MotionVocab) -> MotionTargets | None:
    """Code positions and real motion of the batch's text-to-motion rows (None when there are none)."""
    rows = (batch["motion_at"] >= 0).nonzero().flatten()
    if len(rows) == 0:
        return None
    n, stride, lmax = vocab.n_streams, vocab.frames_per_step, batch["labels"].shape[1]
    steps = [clips[int(batch["clip"][r])].codes.shape[0] for r in rows]
    s_max = max(steps)
    at = batch["motion_at"][rows]
    pos = at[:, None, None] + 1 + torch.arange(s_max)[None, :, None] * n + torch.arange(n)[None, None, :]
    valid = (torch.arange(s_max)[None] < torch.tensor(steps)[:, None]) & (pos[..., -1] < lmax)
    motion = torch.zeros(len(rows), s_max * stride, 198)
    presence = torch.zeros(len(rows), s_max * stride, 2, dtype=torch.bool)
    for j, r in enumerate(rows.tolist()):
        i = where[clips[int(batch["clip"][r])].clip_id]
        a, b = int(frames.offsets[i]), int(frames.offsets[i + 1])
        t = min(b - a, int(valid[j].sum()) * stride)
        motion[j, :t], presence[j, :t] = frames.motion[a:a + t], frames.presence[a:a + t]
    return MotionTargets(rows, pos.clamp_max(lmax - 1), valid, motion, presence)


def run_stage(stage: str, dataset: str | os.PathLike, run: str | os.PathLike, cfg: LMConfig,
              progress: bool = True, stop_after: int | None = None) -> dict[str, Any]:
    """Train (or finish, or skip) one LM stage of RUN on DATASET; returns its metrics dict.

    stop_after: stop (without finishing) after this step, as a kill would; for tests of resume.
    """
    from clutch_core.shift.data import load_clips

    if stage not in STAGES:
        raise ValueError(f"unknown language-model stage {stage!r}; stages: {list(STAGES)}")
    out = stage_dir(run, stage)
    total = cfg.steps(stage)
    tokens = tokens_for(run, dataset)
    init = previous_model(run, stage)
    identity = {**cfg.identity(stage), "tokens": tokens.name,
                "init": f"{init.parent.name}:{_weights_hash(init)}" if init else (cfg.base or "tiny-config")}
    if is_complete(run, stage, identity, total):
        log.info("%s: %s already holds a finished run of these settings; skipping", stage, out)
        return json.loads((out / METRICS).read_text())
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".*.tmp-*"):
        stale.unlink(missing_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)

    train_clips = load_corpus(tokens, dataset, "train")
    if not train_clips:
        raise ValueError(f"{dataset}: no train clips with tokens and captions")
    shift, stats, shift_config = load_tokenizer(run)
    shift.requires_grad_(False)
    if init is None:
        tok, vocab = base_tokenizer(cfg, shift_config, out / TEXT_TOKENIZER,
                                    [t for c in train_clips for t in c.captions])
        model = build_t5(cfg, tok, vocab)
    else:
        model, tok, vocab, _ = load_lm(init)
    if vocab.streams != tuple(shift_config["streams"]):
        raise ValueError(f"{init}: LM vocabulary streams {vocab.streams} differ from RUN/shift's "
                         f"{shift_config['streams']}: tokenizer/LM mismatch")
    model.to(device).train()
    shift.to(device)
    renderer = Renderer(tok, vocab)
    sampler = Sampler(train_clips, renderer, sentinel_ids(tok), stage, cfg.seed, cfg.noise_density, cfg.mean_span)
    frames = where = None
    if stage == "refine":
        frames = load_clips(dataset, "train", [c.clip_id for c in train_clips]).normalized(stats)
        where = {c: i for i, c in enumerate(frames.clip_ids)}
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=cfg.betas)
    state = TrainingState(model)
    ckpt, step = out / CHECKPOINT, 0
    if ckpt.exists():
        meta = load_training_state(ckpt, state, opt)
        if meta.get("train_config") != identity:
            raise ValueError(f"{ckpt}: checkpoint of other settings; use another --out or delete it")
        step = int(meta["step"])
        if step > total:
            raise ValueError(f"{ckpt}: checkpoint is at step {step}, past this stage's {total} steps")
        log.info("%s: resuming from %s at step %d", stage, ckpt, step)
    _trim_log(out / TRAIN_LOG, step)
    pad = tok.pad_token_id
    t0, start, seen_tokens = time.perf_counter(), step, 0
    bar = _progress(progress, total, step)
    if bar is not None:
        bar.set_description(stage)
    reporter = StepReporter(stage, total, start=step)
    with open(out / TRAIN_LOG, "a") as logf:
        while step < total and (stop_after is None or step < stop_after):
            batch = collate(sampler.batch(step, cfg.batch), pad, cfg.max_input, cfg.max_target)
            for g in opt.param_groups:
                g["lr"] = _lr(cfg, step)
            with _autocast(cfg, device):
                o = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                          labels=batch["labels"].to(device))
            loss, parts = o.loss.float(), {"ce": o.loss.item()}
            if stage == "refine":
                t = motion_targets(batch, train_clips, frames, where, vocab)
                if t is not None:
                    ramp, tau = refine_schedule(cfg, step, total)
                    t = _to(t, device)
                    pred = soft_decode(gather_motion_logits(o.logits, t), shift, vocab, tau, cfg.straight_through)
                    l1, joint = geometric_loss(pred, _valid_only(t), stats)
                    loss = loss + ramp * (cfg.geo_weight * l1 + cfg.joint_weight * joint)
                    parts.update(geo_l1=l1.item(), geo_joint_m=joint.item(), tau=tau, geo_factor=ramp)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            seen_tokens += int(batch["attention_mask"].sum() + (batch["labels"] >= 0).sum())
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
            reporter.step(step, loss.item())
            if step % cfg.log_every == 0 or step == total:
                logf.write(json.dumps({"step": step, "loss": loss.item(), **parts, "lr": _lr(cfg, step - 1)}) + "\n")
                logf.flush()
            if step % cfg.ckpt_every == 0 or step == total:
                save_training_state(ckpt, step, state, opt, {"train_config": identity})
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t0
    if step < total:
        save_training_state(ckpt, step, state, opt, {"train_config": identity})
        return {"stage": stage, "steps_done": step, "steps": total, "complete": False}
    model_dir = out / MODEL_DIR
    save_lm(model_dir, model, tok, vocab, {"stage": stage, "shift_weights": tokens.name.rsplit("-", 1)[-1],
                                           "max_text_tokens": cfg.max_text_tokens})
    metrics = {"stage": stage, "preset": cfg.preset, "steps": total, "init": identity["init"],
               **evaluate_stage(model, renderer, dataset, tokens, shift, stats, cfg, device),
               "train_seconds_this_run": seconds, "steps_this_run": step - start,
               "train_tokens_per_s": seen_tokens / max(seconds, 1e-9), "model_dir": str(model_dir),
               "train_config": identity}
    atomic_write_json(out / METRICS, metrics)
    log.info("%s: val CE %.3f, teacher-forced MPJPE %.1f mm -> %s", stage, metrics["val_ce"],
             metrics["val_tf_mpjpe_mm"], out / METRICS)
    return metrics


def _to(t: MotionTargets, device) -> MotionTargets:
    return MotionTargets(*(x.to(device) for x in (t.rows, t.positions, t.valid, t.motion, t.presence)))


def _valid_only(t: MotionTargets) -> MotionTargets:
    """Presence cleared on steps past a clip's end (their positions are padding)."""
    stride = t.motion.shape[1] // t.valid.shape[1]
    keep = t.valid.repeat_interleave(stride, 1)[..., None]
    return MotionTargets(t.rows, t.positions, t.valid, t.motion, t.presence & keep)


@torch.no_grad()
def evaluate_stage(model, renderer: Renderer, dataset, tokens: Path, shift, stats, cfg: LMConfig,
                   device, splits: tuple[str, ...] = ("val", "test", "train")) -> dict[str, float]:
    """Validation (the first of `splits` with clips): text-to-motion teacher-forced CE, motion-token accuracy
    and decoded-motion MPJPE (argmax code at each position, true prefix), in the plain t2m template."""
    from clutch_core.shift.data import load_clips

    for split in splits:
        clips = load_corpus(tokens, dataset, split)[:cfg.eval_clips]
        if clips:
            break
    frames = load_clips(dataset, split, [c.clip_id for c in clips]).normalized(stats)
    where = {c: i for i, c in enumerate(frames.clip_ids)}
    was = model.training
    model.eval()
    tmpl = templates()["t2m"][0]
    ce, acc_n, acc_d, err, hand_frames = [], 0, 0, 0.0, 0.0
    for k in range(0, len(clips), 16):
        chunk = clips[k:k + 16]
        exs = []
        for j, c in enumerate(chunk):
            ex = task_example("t2m", tmpl, renderer, c.codes, c.presence, c.captions[0], c.num_frames,
                              np.random.default_rng(0))
            ex.clip = k + j
            exs.append(ex)
        batch = collate(exs, renderer.tok.pad_token_id, cfg.max_input, cfg.max_target)
        o = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                  labels=batch["labels"].to(device))
        ce.append(float(o.loss) * len(chunk))
        lab = batch["labels"].to(device)
        hit = (o.logits.argmax(-1) == lab) & (lab >= renderer.vocab.motion_start)
        acc_n += int(hit.sum())
        acc_d += int((lab >= renderer.vocab.motion_start).sum())
        t = _valid_only(_to(motion_targets(batch, clips, frames, where, renderer.vocab), device))
        pred = hard_decode(gather_motion_logits(o.logits, t), shift, renderer.vocab)
        m = float(t.presence.sum())
        err += float(joint_error(pred, t, stats)) * m
        hand_frames += m
    model.train(was)
    return {"eval_split": split, "val_clips": len(clips), "val_ce": sum(ce) / max(len(clips), 1),
            "val_motion_token_acc": acc_n / max(acc_d, 1),
            "val_tf_mpjpe_mm": 1000.0 * err / max(hand_frames, 1.0)}


def run_stages(stages, dataset, run, cfg: LMConfig, progress: bool = True,
               on_stage: Callable[[str, dict], None] | None = None) -> dict[str, dict]:
    """Run the given LM stages in order (pretrain, refine, instruct)."""
    out = {}
    for s in [s for s in STAGES if s in stages]:
        out[s] = run_stage(s, dataset, run, cfg, progress)
        if on_stage:
            on_stage(s, out[s])
    return out
