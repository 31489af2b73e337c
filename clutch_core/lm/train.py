"""train-clutch stages pretrain, refine and instruct: one loop, three task mixtures.

RUN/<stage>/ (names in layout.run)
  model/                  save_pretrained folder (weights, config, tokenizer) + motion_vocab.json
  checkpoint.safetensors  training state (weights, AdamW moments, RNG, step), as RUN/shift's
  train_log.jsonl         one line per log_every steps
  metrics.json            written last: the stage is complete
  text_tokenizer/         (pretrain, tiny preset) the BPE tokenizer trained on the captions and templates

Each stage starts from the previous stage's model (pretrain from cfg.base or a fresh tiny
T5), is skipped when metrics.json records the same settings and step count, and resumes
from its checkpoint with the same total step count: batches depend only on (seed, stage,
step) and the RNG (dropout, Gumbel noise) is restored, so a resumed stage ends with the
same weights as an uninterrupted one on CPU.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from clutch_core.lm.config import STAGES, LMConfig
from clutch_core.lm.data import Clip, Sampler, collate, forced_tokens, load_corpus, tokens_for
from clutch_core.lm.geometry import (MotionTargets, gather_motion_logits, geometric_loss, hard_decode,
                                     joint_error, soft_decode, step_presence)
from clutch_core.lm.model import (TrainingState, base_tokenizer, build_t5, init_code_embeddings, lm_weights_id,
                                  load_lm, save_lm)
from clutch_core.lm.tasks import Renderer, task_example, templates
from clutch_core.lm.text import sentinel_ids
from clutch_core.lm.vocab import MotionVocab
from clutch_core.shift.checkpoint import load_tokenizer, shift_weights_id
from clutch_core.training.checkpoint import atomic_write_json, resume_training_state, save_training_state
from clutch_core.training.optim import adamw
from clutch_core.training.precision import TIMED_BATCHES, autocast, resolve_amp
from clutch_core.training.progress import TrainingProgress
from clutch_core.training.schedule import lr_at
from clutch_core.training.stage import is_complete, local_device, prepare, trim_log
from layout import FRAME_DIM
from layout.run import CHECKPOINT, METRICS, MODEL_DIR, MOTION_VOCAB, TEXT_TOKENIZER, TRAIN_LOG

log = logging.getLogger(__name__)
FORMAT = "clutch-lm/1"


def stage_dir(run: str | os.PathLike, stage: str) -> Path:
    return Path(run) / stage


def previous_model(run: str | os.PathLike, stage: str) -> Path | None:
    """The model folder a stage starts from: the latest earlier stage that finished (None: pretrain's base)."""
    for prev in reversed(STAGES[:STAGES.index(stage)]):
        d = stage_dir(run, prev) / MODEL_DIR
        if (stage_dir(run, prev) / METRICS).exists() and (d / MOTION_VOCAB).exists():
            return d
    if stage != "pretrain":
        raise FileNotFoundError(f"{stage_dir(run, 'pretrain') / METRICS}: stage {stage} needs a trained LM; "
                                f"run `clutch train DATASET --out {run} --stages pretrain` first")
    return None


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
    motion = torch.zeros(len(rows), s_max * stride, FRAME_DIM)
    presence = torch.zeros(len(rows), s_max * stride, 2, dtype=torch.bool)
    for j, r in enumerate(rows.tolist()):
        i = where[clips[int(batch["clip"][r])].clip_id]
        a, b = int(frames.offsets[i]), int(frames.offsets[i + 1])
        t = min(b - a, int(valid[j].sum()) * stride)
        motion[j, :t], presence[j, :t] = frames.motion[a:a + t], frames.presence[a:a + t]
    return MotionTargets(rows, pos.clamp_max(lmax - 1), valid, motion, presence)


@dataclass
class _Stage:
    """What one stage's loop needs, set up once (fresh or resumed)."""

    name: str
    out: Path
    total: int
    identity: dict[str, Any]
    device: torch.device
    model: Any  # T5ForConditionalGeneration
    tok: Any
    vocab: MotionVocab
    renderer: Renderer
    shift: Any
    stats: Any
    tokens: Path
    clips: list[Clip]
    sampler: Sampler
    opt: torch.optim.Optimizer
    state: TrainingState
    step: int
    frames: Any = None  # refine: the train clips' motion (normalized) ...
    where: dict[str, int] | None = None  # ... and each clip's index in it
    use_bf16: bool = False
    amp: str = ""
    warmup: int = 0  # steps of learning-rate warm-up: the base model's first stage only


def run_stage(stage: str, dataset: str | os.PathLike, run: str | os.PathLike, cfg: LMConfig,
              progress: bool = True, stop_after: int | None = None) -> dict[str, Any]:
    """Train (or finish, or skip) one LM stage of RUN on DATASET; returns its metrics dict.

    stop_after: stop (without finishing) after this step, as a kill would; for tests of resume.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown language-model stage {stage!r}; stages: {list(STAGES)}")
    out, total = stage_dir(run, stage), cfg.steps(stage)
    tokens, init = tokens_for(run, dataset), previous_model(run, stage)
    identity = {**cfg.identity(stage), "tokens": tokens.name,
                "init": f"{init.parent.name}:{lm_weights_id(init)}" if init else (cfg.base or "tiny-config")}
    if is_complete(out, identity, total, f"{MODEL_DIR}/{MOTION_VOCAB}"):
        log.info("%s: %s already holds a finished run of these settings; skipping", stage, out)
        return json.loads((out / METRICS).read_text())
    s = _setup(stage, dataset, run, cfg, out, total, tokens, init, identity)
    t0, start, seen_tokens = time.perf_counter(), s.step, _loop(s, cfg, progress, stop_after)
    seconds = time.perf_counter() - t0
    if s.step < total:
        save_training_state(out / CHECKPOINT, s.step, s.state, s.opt, _meta(s), FORMAT)
        return {"stage": stage, "steps_done": s.step, "steps": total, "complete": False}
    model_dir = out / MODEL_DIR
    save_lm(model_dir, s.model, s.tok, s.vocab, {"stage": stage, "shift_weights": shift_weights_id(run),
                                                 "max_text_tokens": cfg.max_text_tokens,
                                                 "guidance": cfg.guidance if cfg.uncond > 0 else 1.0,
                                                 "rerank": cfg.rerank})
    metrics = {"stage": stage, "preset": cfg.preset, "steps": total, "init": identity["init"],
               **evaluate_stage(s.model, s.renderer, dataset, s.tokens, s.shift, s.stats, cfg, s.device),
               "amp": s.amp, "train_seconds_this_run": seconds, "steps_this_run": s.step - start,
               "train_tokens_per_s": seen_tokens / max(seconds, 1e-9), "model_dir": str(model_dir),
               "train_config": identity}
    atomic_write_json(out / METRICS, metrics)
    if metrics["val_ce"] is not None:
        log.info("%s: val CE %.3f, teacher-forced MPJPE %.1f mm -> %s", stage, metrics["val_ce"],
                 metrics["val_tf_mpjpe_mm"], out / METRICS)
    return metrics


def _setup(stage, dataset, run, cfg: LMConfig, out: Path, total: int, tokens: Path, init: Path | None,
           identity: dict) -> _Stage:
    """Data, model (fresh or the previous stage's), optimizer, the checkpoint's state, the precision."""
    from clutch_core.shift.data import load_clips

    prepare(out)
    device = local_device()  # rank 0 alone trains the language model (flows.stages)
    torch.manual_seed(cfg.seed)
    clips = load_corpus(tokens, dataset, "train")
    if not clips:
        raise ValueError(f"{dataset}: no train clips with tokens and captions")
    shift, stats, shift_config = load_tokenizer(run)
    shift.requires_grad_(False)
    model, tok, vocab = _model(cfg, init, out, shift_config, clips)
    if init is None and cfg.code_init:
        init_code_embeddings(model, vocab, shift)
    model.to(device).train()
    shift.to(device)
    renderer = Renderer(tok, vocab)
    sampler = Sampler(clips, renderer, sentinel_ids(tok), stage, cfg.seed, cfg.noise_density, cfg.mean_span,
                      cfg.task_mix, cfg.buckets, cfg.uncond)
    opt = adamw(model, cfg.stage_lr(stage), cfg.betas, cfg.weight_decay)
    s = _Stage(stage, out, total, identity, device, model, tok, vocab, renderer, shift, stats, tokens, clips,
               sampler, opt, TrainingState(model), 0, warmup=cfg.warmup_steps if init is None else 0)
    if stage == "refine":
        s.frames = load_clips(dataset, "train", [c.clip_id for c in clips]).normalized(stats)
        s.where = {c: i for i, c in enumerate(s.frames.clip_ids)}
    resumed = _resume(s, cfg)
    trim_log(out / TRAIN_LOG, s.step)
    s.use_bf16, s.amp = resumed if resumed and cfg.amp == "auto" else _resolve_precision(s, cfg)
    log.info("%s: %s", stage, s.amp)
    return s


def _model(cfg: LMConfig, init: Path | None, out: Path, shift_config: dict, clips: list[Clip]):
    """(model, tokenizer, vocabulary): the previous stage's, or a fresh one for pretrain."""
    if init is None:
        tok, vocab = base_tokenizer(cfg, shift_config, out / TEXT_TOKENIZER, [t for c in clips for t in c.captions])
        model = build_t5(cfg, tok, vocab)
    else:
        model, tok, vocab, _ = load_lm(init)
    if vocab.tokenizer_streams != tuple(shift_config["streams"]):
        raise ValueError(f"{init}: LM vocabulary streams {vocab.tokenizer_streams} differ from RUN/shift's "
                         f"{shift_config['streams']}: tokenizer/LM mismatch")
    return model, tok, vocab


def _resume(s: _Stage, cfg: LMConfig) -> tuple[bool, str] | None:
    """Load the stage's checkpoint when there is one (sets s.step); -> the precision it ran with."""
    ckpt = s.out / CHECKPOINT
    meta = resume_training_state(ckpt, s.state, s.opt)
    if meta is None:
        return None
    if meta.get("train_config") != s.identity:
        raise ValueError(f"{ckpt}: checkpoint of other settings; use another --out or delete it")
    s.step = int(meta["step"])
    if s.step > s.total:
        raise ValueError(f"{ckpt}: checkpoint is at step {s.step}, past this stage's {s.total} steps")
    log.info("%s: resuming from %s at step %d", s.name, ckpt, s.step)
    return tuple(meta["amp"]) if meta.get("amp") else None


def _resolve_precision(s: _Stage, cfg: LMConfig) -> tuple[bool, str]:
    """clutch_core.training.precision on this stage's first batches."""
    batches = [_batch(s, cfg, s.step + i) for i in range(TIMED_BATCHES + 1)]
    batch = batches[0]

    def step(i: int):
        b = batches[i]
        return s.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                       labels=b["labels"], decoder_input_ids=b["decoder_input_ids"]).loss

    key = (json.dumps(cfg.identity(s.name), sort_keys=True), tuple(batch["input_ids"].shape), tuple(batch["labels"].shape))
    return resolve_amp(cfg.amp, s.device, s.model, step, key)


def _meta(s: _Stage) -> dict[str, Any]:
    return {"train_config": s.identity, "amp": [s.use_bf16, s.amp]}


def _batch(s: _Stage, cfg: LMConfig, step: int) -> dict[str, torch.Tensor]:
    b = collate(s.sampler.batch(step, cfg.batch), s.tok.pad_token_id, cfg.max_input, cfg.max_target)
    b = {k: (v.to(s.device) if k in ("input_ids", "attention_mask", "labels") else v) for k, v in b.items()}
    return loss_labels(b, s.model, s.tok, s.vocab, cfg, step)


def loss_labels(b: dict[str, torch.Tensor], model, tok, vocab: MotionVocab, cfg: LMConfig, step: int) -> dict:
    """The batch with T5's decoder inputs made from its labels (a `decoder_dropout` share hidden), and
    the labels the loss sees: without the forced <absent> tokens unless cfg.forced_in_loss, and the
    batch's token count (inputs + targets, forced ones included: the model computes them all)."""
    start = model.config.decoder_start_token_id
    labels = b["labels"]
    tokens = int(b["attention_mask"].sum() + (labels >= 0).sum())
    inputs = torch.cat([torch.full_like(labels[:, :1], start), labels[:, :-1]], 1)
    inputs = inputs.masked_fill(inputs < 0, tok.pad_token_id)
    if cfg.decoder_dropout > 0:  # a decoder that cannot lean on its own previous tokens has to read the encoder
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)  # a function of (seed, step): resumable
        hide = torch.rand(inputs.shape, generator=g).to(inputs.device) < cfg.decoder_dropout
        hide[:, 0] = False
        inputs = inputs.masked_fill(hide & (inputs != tok.pad_token_id), tok.unk_token_id)
    if not cfg.forced_in_loss:
        labels = labels.masked_fill(forced_tokens(labels, vocab), -100)
    return {**b, "labels": labels, "decoder_input_ids": inputs, "tokens": tokens}


def _loop(s: _Stage, cfg: LMConfig, progress: bool, stop_after: int | None) -> int:
    """Train from s.step to the stage's total (or stop_after); -> tokens seen (inputs + targets)."""
    report = TrainingProgress(s.name, s.total, s.step, bar=progress)
    seen = 0
    with open(s.out / TRAIN_LOG, "a") as logf:
        while s.step < s.total and (stop_after is None or s.step < stop_after):
            batch = _batch(s, cfg, s.step)
            lr = lr_at(cfg.stage_lr(s.name), s.warmup, s.step)
            for g in s.opt.param_groups:
                g["lr"] = lr
            with autocast(s.use_bf16, s.device):
                o = s.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"],
                            decoder_input_ids=batch["decoder_input_ids"])
            loss, parts = o.loss.float(), {"ce": o.loss.item()}
            if s.name == "refine":
                loss = loss + _refine_loss(s, cfg, batch, o.logits, parts)
            s.opt.zero_grad(set_to_none=True)
            loss.backward()
            s.opt.step()
            s.step += 1
            seen += batch["tokens"]
            report.step(s.step, loss.item())
            if s.step % cfg.log_every == 0 or s.step == s.total:
                logf.write(json.dumps({"step": s.step, "loss": loss.item(), **parts, "lr": lr}) + "\n")
                logf.flush()
            if s.step % cfg.ckpt_every == 0 or s.step == s.total:
                save_training_state(s.out / CHECKPOINT, s.step, s.state, s.opt, _meta(s), FORMAT)
    report.close()
    return seen


def _refine_loss(s: _Stage, cfg: LMConfig, batch: dict, logits: torch.Tensor, parts: dict) -> torch.Tensor | float:
    """The geometric loss of the batch's text-to-motion rows: their logits -> Gumbel-softmax over each
    stream's codes -> frozen SHIFT decoders -> motion, against the clip's real motion (lambda ramped up)."""
    t = motion_targets(batch, s.clips, s.frames, s.where, s.vocab)
    if t is None:
        return 0.0
    ramp, tau = refine_schedule(cfg, s.step, s.total)
    t = _to(t, s.device)
    t = valid_only(t)
    pred = soft_decode(gather_motion_logits(logits, t), s.shift, s.vocab, tau, step_presence(t), cfg.straight_through)
    l1, joint = geometric_loss(pred, t, s.stats)
    parts.update(geo_l1=l1.item(), geo_joint_m=joint.item(), tau=tau, geo_factor=ramp)
    return ramp * (cfg.geo_weight * l1 + cfg.joint_weight * joint)


def _to(t: MotionTargets, device) -> MotionTargets:
    return MotionTargets(*(x.to(device) for x in (t.rows, t.positions, t.valid, t.motion, t.presence)))


def valid_only(t: MotionTargets) -> MotionTargets:
    """Presence cleared on steps past a clip's end (their positions are padding)."""
    stride = t.motion.shape[1] // t.valid.shape[1]
    keep = t.valid.repeat_interleave(stride, 1)[..., None]
    return MotionTargets(t.rows, t.positions, t.valid, t.motion, t.presence & keep)


VAL_SPLITS = ("val", "test")  # a stage's validation split: val, else test; never the clips it trained on


def evaluate_stage(model, renderer: Renderer, dataset, tokens: Path, shift, stats, cfg: LMConfig, device,
                   splits: tuple[str, ...] = VAL_SPLITS) -> dict[str, Any]:
    """Teacher-forced text-to-motion metrics (teacher_forced) on the first of `splits` with clips; every
    value None, with a warning, when none has any."""
    from clutch_core.shift.data import load_clips

    for split in splits:
        clips = load_corpus(tokens, dataset, split)[:cfg.eval_clips]
        if clips:
            frames = load_clips(dataset, split, [c.clip_id for c in clips]).normalized(stats)
            return {"eval_split": split, **teacher_forced(model, renderer, clips, frames, shift, stats, cfg, device)}
    log.warning("%s: no %s clips with tokens and captions: the teacher-forced metrics are left out",
                dataset, " or ".join(splits))
    return {"eval_split": None, "val_clips": 0, **dict.fromkeys(TF_KEYS)}


TF_KEYS = ("val_ce", "val_motion_token_acc", "val_presence_acc", "val_tf_mpjpe_mm")


@torch.no_grad()
def teacher_forced(model, renderer: Renderer, clips: list[Clip], frames, shift, stats, cfg: LMConfig,
                   device) -> dict[str, float]:
    """On the plain t2m template with each clip's first caption and the true prefix: cross-entropy per clip,
    accuracy of the argmax on code tokens (not <som>/<eom>/<absent>/hands markers) and on presence tokens
    (<absent> or a hands code), and MPJPE (mm) of the argmax codes decoded with the clip's own presence."""
    vocab, where = renderer.vocab, {c: i for i, c in enumerate(frames.clip_ids)}
    was = model.training
    model.eval()
    tmpl = templates()["t2m"][0]
    tot = dict(ce=0.0, code_hit=0, codes=0, pres_hit=0, pres=0, err=0.0, hand_frames=0.0)
    for k in range(0, len(clips), 16):
        chunk = clips[k:k + 16]
        exs = []
        for j, c in enumerate(chunk):
            ex = task_example("t2m", tmpl, renderer, c.codes, c.presence, c.captions[0], c.num_frames,
                              np.random.default_rng(0))
            ex.clip = k + j
            exs.append(ex)
        batch = collate(exs, renderer.tok.pad_token_id, cfg.max_input, cfg.max_target)
        batch = loss_labels({**batch, "labels": batch["labels"].to(device)}, model, renderer.tok, vocab,
                            dataclasses.replace(cfg, decoder_dropout=0.0), 0)
        lab = batch["labels"]
        o = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device), labels=lab,
                  decoder_input_ids=batch["decoder_input_ids"])
        tot["ce"] += float(o.loss) * len(chunk)
        hit, code = o.logits.argmax(-1) == lab, torch.from_numpy(vocab.is_code(lab.cpu().numpy())).to(device)
        pres = (lab == vocab.absent) | (torch.from_numpy(vocab.is_presence(lab.cpu().numpy())).to(device))
        tot["code_hit"] += int((hit & code).sum())
        tot["codes"] += int(code.sum())
        tot["pres_hit"] += int((hit & pres).sum())
        tot["pres"] += int(pres.sum())
        t = valid_only(_to(motion_targets(batch, clips, frames, where, vocab), device))
        pred = hard_decode(gather_motion_logits(o.logits, t), shift, vocab, step_presence(t))
        m = float(t.presence.sum())
        tot["err"] += float(joint_error(pred, t, stats)) * m
        tot["hand_frames"] += m
    model.train(was)
    return {"val_clips": len(clips), "val_ce": tot["ce"] / max(len(clips), 1),
            "val_motion_token_acc": tot["code_hit"] / max(tot["codes"], 1),
            "val_presence_acc": tot["pres_hit"] / max(tot["pres"], 1),
            "val_tf_mpjpe_mm": 1000.0 * tot["err"] / max(tot["hand_frames"], 1.0)}


def run_stages(stages, dataset, run, cfg: LMConfig, progress: bool = True,
               on_stage: Callable[[str, dict], None] | None = None) -> dict[str, dict]:
    """Run the given LM stages in order (pretrain, refine, instruct)."""
    out = {}
    for s in [s for s in STAGES if s in stages]:
        out[s] = run_stage(s, dataset, run, cfg, progress)
        if on_stage:
            on_stage(s, out[s])
    return out
