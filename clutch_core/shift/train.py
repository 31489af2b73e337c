"""Stage 1 of train-clutch: train a motion tokenizer (SHIFT or the plain VQ-VAE baseline).

One trainer for both tokenizers. Skips itself when RUN/shift/metrics.json records a
finished run of the same settings; otherwise resumes from RUN/shift/checkpoint.safetensors
(model, AdamW, EMA codebooks, RNG, step). The global batch of a step depends only on (seed, step),
so an interrupted and resumed run trains on the same batches as an uninterrupted one.

Several processes: torchrun (WORLD_SIZE / RANK / LOCAL_RANK from the environment), DDP with
NCCL on GPUs and gloo on CPU. `batch` is per process; each rank takes its slice of the global
batch, losses are normalized over all ranks and codebook draws see every rank's latents
(clutch_core.shift.distributed), so N processes at batch B/N follow one process at batch B.
Rank 0 alone writes checkpoints, the log and the metrics.

Mixed precision (`amp`, see resolve_amp): bf16 autocast on GPUs and, by default, on CPUs with
native bf16 when it measures faster there (under torchrun, rank 0's choice holds for all ranks).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from clutch_core.shift.checkpoint import (CHECKPOINT, CONFIG, atomic_write_bytes, atomic_write_json,
                                          resume_training_state, save_tokenizer, save_training_state)
from clutch_core.progress import StepReporter
from clutch_core.shift.distributed import global_sum
from clutch_core.shift.model import TokenizerConfig, TokenizerOutput, build_tokenizer
from clutch_core.shift.presets import PRESETS
from layout import HAND_DIM, TRAJ_IDX

log = logging.getLogger(__name__)
STAGE_DIR = "shift"
METRICS = "metrics.json"
TRAIN_LOG = "train_log.jsonl"
VAL_LOG = "val_log.jsonl"  # {step, val_mpjpe_mm} at every checkpoint


@dataclass
class TrainConfig:
    """The trainer's settings; the tokenizer's own settings are its TokenizerConfig, held as is."""

    preset: str = "tiny"
    tokenizer: TokenizerConfig = dataclasses.field(default_factory=TokenizerConfig)
    batch: int = 32  # windows per step per process (the global batch is batch * world size)
    window: int = 64  # frames per window (multiple of 2**down)
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 100
    max_steps: int = 800
    commit_weight: float = 0.25
    vel_weight: float = 0.5  # velocity loss on the trajectory dims
    ckpt_every: int = 200
    log_every: int = 10
    eval_batch: int = 64
    seed: int = 0
    amp: str = "auto"  # auto (bf16 on CUDA; on CPUs with native bf16 when measured faster) | bf16 | off

    def identity(self) -> dict[str, Any]:
        """Settings that change the trained model, except max_steps: a finished run can be extended
        (the learning rate is constant after warm-up, so 300 + 700 steps = 1000 steps)."""
        d = dataclasses.asdict(self)
        for k in ("ckpt_every", "log_every", "eval_batch", "amp", "max_steps"):
            d.pop(k)
        d["betas"] = list(d["betas"])
        return d


def preset_config(preset: str = "tiny", **overrides: Any) -> TrainConfig:
    """A TrainConfig from a preset, with overrides (None values are ignored)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
    tok_fields = {f.name for f in dataclasses.fields(TokenizerConfig)} - {"kind"}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {k: v for k, v in overrides.items() if v is not None}
    if isinstance(given.get("tokenizer"), str):  # the kind, as the CLI and the flow name it
        given["kind"] = given.pop("tokenizer")
    unknown = sorted(set(given) - fields - tok_fields - {"kind"})
    if unknown:
        raise ValueError(f"unknown training setting(s) {unknown}")
    merged = {**PRESETS[preset], **given}  # presets are flat: tokenizer fields go to the TokenizerConfig
    tok = TokenizerConfig(**{k: merged.pop(k) for k in list(merged) if k in tok_fields or k == "kind"})
    cfg = TrainConfig(preset=preset, tokenizer=tok, **merged)
    if cfg.window % tok.stride:
        raise ValueError(f"window {cfg.window} must be a multiple of {tok.stride}")
    return cfg


def stage_dir(run: str | os.PathLike) -> Path:
    return Path(run) / STAGE_DIR


def is_complete(run: str | os.PathLike, cfg: TrainConfig) -> bool:
    """True when RUN/shift holds a finished run of exactly these settings."""
    p = stage_dir(run) / METRICS
    if not p.exists() or not (stage_dir(run) / CONFIG).exists():
        return False
    m = json.loads(p.read_text())
    return m.get("train_config") == cfg.identity() and m.get("steps") == cfg.max_steps


def tokenizer_loss(out: TokenizerOutput, x: torch.Tensor, presence: torch.Tensor, cfg: TrainConfig):
    """Smooth-L1 reconstruction + velocity loss on the trajectory + commitment, over present hand-frames only.

    x [B, T, 198] normalized target; presence [B, T, 2]. Returns (total, parts dict of floats).
    Under torchrun every mean divides by the count of all ranks, so `total` is this rank's share
    of the loss one process would compute on the global batch (backpropagate total * world size:
    DDP averages gradients); `parts` are the global values, summed over ranks.
    """
    w = presence.float().repeat_interleave(HAND_DIM, dim=-1)  # [B, T, 198]
    rec = (F.smooth_l1_loss(out.recon.float(), x, reduction="none") * w).sum() / global_sum(w.sum()).clamp_min(1.0)
    traj = torch.tensor([*TRAJ_IDX, *(i + HAND_DIM for i in TRAJ_IDX)], device=x.device)
    vr, vx = out.recon.float()[..., traj].diff(dim=1), x[..., traj].diff(dim=1)  # [B, T-1, 18]
    wv = (w[:, 1:] * w[:, :-1])[..., traj]  # both frames present
    vel = (F.smooth_l1_loss(vr, vx, reduction="none") * wv).sum() / global_sum(wv.sum()).clamp_min(1.0)
    total = rec + cfg.vel_weight * vel + cfg.commit_weight * out.commit
    parts = global_sum(torch.stack([total, rec, vel, out.commit])).tolist()
    return total, dict(zip(("loss", "recon", "vel", "commit"), parts))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW, no weight decay on biases; the fused kernel (one pass over the parameters instead
    of ~10 elementwise passes: a large share of a CPU step, see BENCHMARKS.md "SHIFT")."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=cfg.betas, fused=True)


def _lr(cfg: TrainConfig, step: int) -> float:
    return cfg.lr * min(1.0, (step + 1) / max(cfg.warmup_steps, 1))


def _setup_device() -> tuple[torch.device, int, int]:
    """(device, rank, world size); initializes torch.distributed under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, rank, world


def _autocast(cfg: TrainConfig, device: torch.device):
    """The rule without a measurement (the language model's trainer): bf16 when asked, or auto on CUDA."""
    return autocast(cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda"), device)


def autocast(on: bool, device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=on)


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU computes in bf16 natively (x86 AVX512-BF16 or AMX-BF16; Arm BF16).

    Without it, CPU autocast emulates bf16 through float32 conversions and is slower than
    float32, so `amp=auto` never turns it on there. Linux: /proc/cpuinfo flags; elsewhere False."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


AMP_MIN_SPEEDUP = 1.15  # auto keeps float32 unless bf16 measures at least this much faster
_MEASURED: dict[tuple, float] = {}  # bf16 speedup per (model settings, batch shape, threads)


def resolve_amp(cfg: TrainConfig, device: torch.device, model: torch.nn.Module, x: torch.Tensor,
                p: torch.Tensor) -> tuple[bool, str]:
    """Whether the run uses bf16 autocast, and why (logged and kept in metrics.json).

    off: float32. bf16: bf16. auto: bf16 on CUDA; on a CPU only when it has native bf16
    (`cpu_has_native_bf16`) and a short measurement on the first batch (forward + backward,
    best of 2 after a warm-up, float32 and bf16 alternating) finds bf16 at least
    AMP_MIN_SPEEDUP x faster; so auto is never slower than float32 by more than the noise of
    that measurement. The measurement leaves the model, its buffers and the RNG as they were,
    and its verdict is kept for the process (per model settings, batch shape and threads) and
    in the checkpoint, so a resumed run keeps the precision it started with.
    """
    if cfg.amp in ("off", "bf16"):
        return cfg.amp == "bf16", f"amp={cfg.amp}"
    if device.type == "cuda":
        return True, "amp=auto: CUDA"
    if not cpu_has_native_bf16():
        return False, "amp=auto: float32 (this CPU has no native bf16: AVX512-BF16 or AMX)"
    key = (json.dumps(dataclasses.asdict(cfg.tokenizer), sort_keys=True), tuple(x.shape), torch.get_num_threads())
    if key not in _MEASURED:
        f32, b16 = _time_steps(model, x, p, device)
        _MEASURED[key] = f32 / max(b16, 1e-9)
    speedup = _MEASURED[key]
    on = speedup >= AMP_MIN_SPEEDUP
    return on, (f"amp=auto: {'bf16' if on else 'float32'} (native bf16 CPU; measured bf16 {speedup:.2f}x "
                f"float32 on the first batch, threshold {AMP_MIN_SPEEDUP}x)")


def _time_steps(model: torch.nn.Module, x: torch.Tensor, p: torch.Tensor, device: torch.device,
                repeats: int = 2) -> tuple[float, float]:
    """Best seconds of one forward + backward in float32 and in bf16 (state restored afterwards)."""
    import copy

    state = copy.deepcopy(model.state_dict())
    rng = torch.get_rng_state()
    best = {False: float("inf"), True: float("inf")}
    try:
        for i in range(repeats + 1):
            for on in (False, True):
                t0 = time.perf_counter()
                with autocast(on, device):
                    out = model(x, p)
                (out.recon.float().square().mean() + out.commit).backward()
                if i:  # the first round warms up
                    best[on] = min(best[on], time.perf_counter() - t0)
                model.zero_grad(set_to_none=True)
    finally:
        model.load_state_dict(state)
        torch.set_rng_state(rng)
    return best[False], best[True]


def _trim_log(path: Path, step: int) -> None:
    """Drop log lines past the checkpoint being resumed (they will be produced again)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
    atomic_write_bytes(path, "".join(ln + "\n" for ln in keep).encode())


def train_tokenizer(dataset: str | os.PathLike, run: str | os.PathLike, cfg: TrainConfig,
                    progress: bool = True) -> dict[str, Any]:
    """Train (or finish, or skip) the tokenizer of RUN on DATASET; returns the metrics dict."""
    from clutch_core.hands.motion import MotionStats
    from clutch_core.shift.data import WindowSampler, fit_stats, load_clips

    out_dir = stage_dir(run)
    if is_complete(run, cfg):
        log.info("shift: %s already holds a finished run of these settings; skipping", out_dir)
        return json.loads((out_dir / METRICS).read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    device, rank, world = _setup_device()
    if rank == 0:
        for stale in out_dir.glob(".*.tmp-*"):  # a write cut short by a kill
            stale.unlink(missing_ok=True)
    torch.manual_seed(cfg.seed)
    train = load_clips(dataset, "train")
    if len(train) == 0:
        raise ValueError(f"{dataset}: no clips in the train split")

    model = build_tokenizer(cfg.tokenizer)
    ckpt = out_dir / CHECKPOINT
    step, resumed_amp = 0, None
    model.to(device)  # before loading: optimizer state follows the parameters' device
    opt = make_optimizer(model, cfg)
    meta = resume_training_state(ckpt, model, opt)  # None: no good checkpoint (damaged ones set aside)
    if meta is not None:
        if meta.get("train_config") != cfg.identity():
            raise ValueError(f"{ckpt}: checkpoint of other settings ({meta.get('train_config')}); "
                             f"use another --out or delete it")
        step, stats = int(meta["step"]), MotionStats.from_dict(meta["stats"])
        resumed_amp = tuple(meta["amp"]) if meta.get("amp") else None
        if step > cfg.max_steps:
            raise ValueError(f"{ckpt}: checkpoint is at step {step}, past max_steps={cfg.max_steps}")
        log.info("shift: resuming from %s at step %d", ckpt, step)
    else:
        stats = fit_stats(train)
    if rank == 0:
        _trim_log(out_dir / TRAIN_LOG, step)
        _trim_log(out_dir / VAL_LOG, step)
    model.train()
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    sampler = WindowSampler(train.normalized(stats), cfg.window, cfg.batch, cfg.seed, rank, world)
    meta = {"train_config": cfg.identity(), "stats": stats.to_dict()}
    val = _val_probe(dataset) if rank == 0 else None  # validation curve next to the training loss

    if resumed_amp is not None and cfg.amp == "auto":  # the precision the run started with
        use_bf16, amp_reason = resumed_amp
    else:
        use_bf16, amp_reason = resolve_amp(cfg, device, model, *(t.to(device) for t in sampler.sample(step)))
    if world > 1:  # a measured choice may differ between ranks: all take rank 0's
        choice = [use_bf16, amp_reason]
        torch.distributed.broadcast_object_list(choice, 0)
        use_bf16, amp_reason = choice
    meta["amp"] = [use_bf16, amp_reason]
    log.info("shift: %s", amp_reason)
    t0, start_step = time.perf_counter(), step
    bar = _progress(progress and rank == 0, cfg.max_steps, step)
    reporter = StepReporter("shift", cfg.max_steps, start=step) if rank == 0 else None
    with open(out_dir / TRAIN_LOG, "a") as logf:
        while step < cfg.max_steps:
            x, p = sampler.sample(step)
            x, p = x.to(device, non_blocking=True), p.to(device, non_blocking=True)
            for g in opt.param_groups:
                g["lr"] = _lr(cfg, step)
            with autocast(use_bf16, device):
                out = net(x, p)
            loss, parts = tokenizer_loss(out, x, p, cfg)
            opt.zero_grad(set_to_none=True)
            (loss * world).backward()
            opt.step()
            step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{parts['loss']:.4f}")
            if reporter is not None:
                reporter.step(step, parts["loss"])
            if rank == 0 and (step % cfg.log_every == 0 or step == cfg.max_steps):
                ppl = {k: round(float(v), 2) for k, v in out.perplexity.items()}
                logf.write(json.dumps({"step": step, **parts, "perplexity": ppl, "lr": _lr(cfg, step - 1)}) + "\n")
                logf.flush()
            if rank == 0 and (step % cfg.ckpt_every == 0 or step == cfg.max_steps):
                _log_val(out_dir / VAL_LOG, step, model, stats, val, cfg, device)  # before the save: RNG as after it
                save_training_state(ckpt, step, model, opt, meta)
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t0
    if world > 1:
        torch.distributed.barrier()
    if rank != 0:
        return {}
    metrics = _finish(dataset, out_dir, model, stats, cfg, device)
    metrics.update(amp=amp_reason, train_seconds_this_run=seconds, steps_this_run=step - start_step,
                   train_clips_per_s=(step - start_step) * cfg.batch * world / max(seconds, 1e-9))
    atomic_write_json(out_dir / METRICS, metrics)
    log.info("shift: val MPJPE %.2f mm (traj %.2f, pose %.2f) -> %s", metrics["val_mpjpe_mm"],
             metrics["val_mpjpe_traj_mm"], metrics["val_mpjpe_pose_mm"], out_dir / METRICS)
    return metrics


VAL_PROBE_CLIPS = 256


def _val_probe(dataset):
    """Up to VAL_PROBE_CLIPS val clips (None when the split is empty), scored at every checkpoint."""
    from storage.reader import ClipReader

    from clutch_core.shift.data import load_clips

    ids = ClipReader(dataset, threads=1).clip_ids("val")[:VAL_PROBE_CLIPS]
    return load_clips(dataset, clip_ids=ids) if ids else None


def _log_val(path: Path, step: int, model, stats, val, cfg: TrainConfig, device) -> None:
    """One val_log.jsonl line {"step", "val_mpjpe_mm"}: the report plots it next to the training loss."""
    if val is None:
        return
    from clutch_core.shift.evaluate import evaluate

    model.eval()
    with torch.no_grad():
        m = evaluate(model, stats, val, cfg.eval_batch, device)
    model.train()
    with open(path, "a") as f:
        f.write(json.dumps({"step": step, "val_mpjpe_mm": m["val_mpjpe_mm"]}) + "\n")


def _finish(dataset, out_dir: Path, model, stats, cfg: TrainConfig, device) -> dict[str, Any]:
    """Save the tokenizer, evaluate it on val (test, then train, when a split is empty)."""
    from clutch_core.shift.data import load_clips
    from clutch_core.shift.evaluate import evaluate

    save_tokenizer(out_dir, model, stats, {"steps": cfg.max_steps, "train_config": cfg.identity()})
    for split in ("val", "test", "train"):
        clips = load_clips(dataset, split)
        if len(clips):
            break
    m = evaluate(model, stats, clips, cfg.eval_batch, device)
    return {"tokenizer": cfg.tokenizer.kind, "preset": cfg.preset, "steps": cfg.max_steps, "eval_split": split,
            **m, "train_config": cfg.identity()}


def _progress(on: bool, total: int, initial: int):
    if not on:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="shift", unit="step", dynamic_ncols=True)
