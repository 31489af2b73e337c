"""Rendering speed: frames per second of the OpenCV/numpy renderer against matplotlib.

python -P benchmarks/render.py [--frames 144] [--size 480]   (-P: benchmarks/storage.py must not shadow the storage package)

Draws one synthetic two-hand clip (3D panel + subtitle, no video decode) with
clutch_core.render and, for reference, the same skeletons with a minimal matplotlib 3D
plot per frame (Agg), which is what the renderer replaces.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=144)
    ap.add_argument("--size", type=int, default=480)
    a = ap.parse_args()
    from clutch_core.hands.motion import identity_hand_vec
    from clutch_core.hands.skeleton import PARENTS
    from clutch_core.render.render import RenderConfig, compose_frames, motion_joints

    hand = identity_hand_vec().numpy()
    motion = np.tile(np.concatenate([hand, hand]), (a.frames, 1))  # [T, 198]
    wave = 0.3 * np.sin(np.arange(a.frames) / 4.0)[:, None]
    motion[:, 6:96] += wave
    motion[:, 105:195] -= wave
    motion[:, 96:99] = [-0.1, 0.0, 0.4]
    motion[:, 195:198] = [0.1, 0.0, 0.4]
    joints = motion_joints(motion.astype(np.float32))
    pres = np.ones((a.frames, 2), bool)
    t = time.perf_counter()
    n = sum(1 for _ in compose_frames(joints, pres, "the left hand waves slowly", RenderConfig(width=a.size)))
    ours = n / (time.perf_counter() - t)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = min(24, a.frames)
    t = time.perf_counter()
    fig = plt.figure(figsize=(a.size / 100, a.size / 100), dpi=100)
    for i in range(k):
        fig.clf()
        ax = fig.add_subplot(projection="3d")
        for h in range(2):
            for j, p in enumerate(PARENTS[1:], 1):
                ax.plot(*zip(joints[i, h, j], joints[i, h, p]))
        fig.canvas.draw()
        np.asarray(fig.canvas.buffer_rgba())
    mpl = k / (time.perf_counter() - t)
    print(f"{a.frames} frames at {a.size}px: OpenCV/numpy renderer {ours:.1f} frames/s, matplotlib 3D {mpl:.1f} frames/s")


if __name__ == "__main__":
    main()
