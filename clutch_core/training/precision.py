"""One meaning of `amp` for every trainer: off | bf16 | auto.

off: float32. bf16: bf16 autocast. auto: bf16 on CUDA; on a CPU only when it computes bf16
natively (AVX512-BF16, AMX or Arm BF16: cpu_has_native_bf16) and a short measurement of the
trainer's own step finds bf16 at least AMP_MIN_SPEEDUP x faster: forward + backward on each of the
stage's first batches in turn (one batch per round, float32 and bf16 back to back on it, after a
warm-up round), the median over rounds. Several batches, because one batch's shape can mislead
(a tiny run measured 1.09x on its first batch and kept float32; bf16 ran that SHIFT stage 1.9x
faster on the same machine); the median,
because the first seconds of a flow share the CPU with its Prefect server starting, and a round
slowed by that must not decide. So auto is never slower than float32 by more than the noise of
that measurement. The measurement leaves the
model, its buffers and the RNG as they were; its verdict is kept for the process (per key)
and in the trainer's checkpoint, so a resumed run keeps the precision it started with.
"""
from __future__ import annotations

import copy
import statistics
import time
from pathlib import Path
from typing import Callable, Hashable

import torch

from clutch_core.training import AMP_CHOICES

AMP_MIN_SPEEDUP = 1.15  # auto keeps float32 unless bf16 measures at least this much faster
TIMED_BATCHES = 5  # batches timed in both precisions (after one warm-up batch)
_MEASURED: dict[Hashable, float] = {}  # bf16 speedup per key (model settings, batch shape, threads)


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


def resolve_amp(amp: str, device: torch.device, model: torch.nn.Module, step: Callable[[int], torch.Tensor],
                key: Hashable) -> tuple[bool, str]:
    """(use bf16, why) for `amp` on `device`. `step(i)` runs one forward pass of the stage's i-th
    batch and returns a scalar loss; it is timed (under autocast on and off) only for auto on a
    native-bf16 CPU. `key` names what the measurement depends on besides the thread count."""
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp must be one of {AMP_CHOICES}, got {amp!r}")
    if amp in ("off", "bf16"):
        return amp == "bf16", f"amp={amp}"
    if device.type == "cuda":
        return True, "amp=auto: CUDA"
    if not cpu_has_native_bf16():
        return False, "amp=auto: float32 (this CPU has no native bf16: AVX512-BF16 or AMX)"
    key = (key, torch.get_num_threads())
    if key not in _MEASURED:
        f32, b16 = time_steps(model, step, device)
        _MEASURED[key] = f32 / max(b16, 1e-9)
    speedup = _MEASURED[key]
    on = speedup >= AMP_MIN_SPEEDUP
    return on, (f"amp=auto: {'bf16' if on else 'float32'} (native bf16 CPU; measured bf16 {speedup:.2f}x "
                f"float32, median over the first {TIMED_BATCHES} batches, threshold {AMP_MIN_SPEEDUP}x)")


def time_steps(model: torch.nn.Module, step: Callable[[int], torch.Tensor], device: torch.device,
               repeats: int = TIMED_BATCHES) -> tuple[float, float]:
    """Median seconds of one forward + backward in float32 and in bf16 over batches 1..repeats
    (batch 0 warms up), the two back to back on each batch; model state and RNG restored."""
    state = copy.deepcopy(model.state_dict())
    rng = torch.get_rng_state()
    times: dict[bool, list[float]] = {False: [], True: []}
    try:
        for i in range(repeats + 1):
            for on in ((False, True) if i % 2 == 0 else (True, False)):  # neither always goes first
                t0 = time.perf_counter()
                with autocast(on, device):
                    loss = step(i)
                loss.backward()
                if i:
                    times[on].append(time.perf_counter() - t0)
                model.zero_grad(set_to_none=True)
    finally:
        model.load_state_dict(state)
        torch.set_rng_state(rng)
    return statistics.median(times[False]), statistics.median(times[True])
