"""Hands benchmark: skeleton IK/FK speed and accuracy, MANO fitting speed and accuracy.

    python benchmarks/hands.py                 # defaults below
    python benchmarks/hands.py --ik-frames 200000 --fit-frames 100 --threads 1

IK/FK: random plausible poses (any global orientation, local rotations ~N(0, 0.25 rad) plus up
to 1.2 rad of flexion, hand scale 0.8-1.2) -> fk -> ik -> fk; reports hand-frames/s and the
max joint error. MANO fit: a synthetic MANO model (clutch mano synthetic; not the real MANO),
a smooth 100-frame track from known parameters, fitted clean and with 4 mm Gaussian noise per
coordinate. Numbers depend on the machine and its load; report both.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ik-frames", type=int, default=100_000, help="hand-frames for IK/FK (default 100000)")
    ap.add_argument("--fit-frames", type=int, default=100, help="frames of the MANO track (default 100)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from clutch_core.hands.mano import FitConfig, fit_mano, load_mano
    from clutch_core.hands.mano_synthetic import random_track, write_synthetic_mano
    from clutch_core.hands.rotations import axis_angle_to_matrix
    from clutch_core.hands.skeleton import bone_lengths, fk, ik, rest_from_bone_lengths, rest_skeleton

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"load {os.getloadavg()[0]:.1f}, torch threads {torch.get_num_threads()}")
    g = torch.Generator().manual_seed(0)
    n = args.ik_frames
    for dtype in (torch.float32, torch.float64):
        go = axis_angle_to_matrix(torch.randn(n, 3, generator=g, dtype=dtype) * 2)
        aa = torch.randn(n, 15, 3, generator=g, dtype=dtype) * 0.25
        aa[..., 2] += torch.rand(n, 15, generator=g, dtype=dtype) * 1.2
        loc = axis_angle_to_matrix(aa)
        tr = torch.randn(n, 3, generator=g, dtype=dtype) * 0.3
        x = fk(go, loc, tr, rest_skeleton("right", dtype=dtype) * (0.8 + 0.4 * torch.rand(n, 1, 1, generator=g, dtype=dtype)))
        t0 = time.perf_counter()
        g2, l2, t2 = ik(x, side="right")
        t_ik = time.perf_counter() - t0
        rest = rest_from_bone_lengths(bone_lengths(x), "right")
        t0 = time.perf_counter()
        y = fk(g2, l2, t2, rest)
        t_fk = time.perf_counter() - t0
        err = (y - x).norm(dim=-1)
        print(f"IK {dtype}: {n / t_ik:,.0f} hand-frames/s; FK {n / t_fk:,.0f} hand-frames/s; "
              f"FK(IK(x)) error max {err.max().item() * 1e3:.2e} mm, mean {err.mean().item() * 1e3:.2e} mm")

    with tempfile.TemporaryDirectory() as d:
        write_synthetic_mano(d)
        model = load_mano(d, "right")
        T = args.fit_frames
        _, joints = random_track(model, T, g)
        fit_mano(joints[:5], model, "right", config=FitConfig(iterations=1))  # warm-up
        for label, obs in (("clean", joints), ("4 mm noise", joints + torch.randn(joints.shape, generator=g) * 0.004)):
            for iters in (0, FitConfig().iterations):
                fit = fit_mano(obs, model, "right", config=FitConfig(iterations=iters))
                err = (fit.joints - joints).norm(dim=-1).mean().item() * 1e3
                print(f"MANO fit {T} frames, {label}, {iters} L-BFGS steps: {fit.seconds:.2f} s, "
                      f"mean joint error to the true joints {err:.2f} mm")


if __name__ == "__main__":
    main()
