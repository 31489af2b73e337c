"""Hand-motion primitives as per-frame control curves (numpy, one hand, one clip).

A hand's state is a handful of controls per frame:
    pos    [T, 3]  wrist position, camera frame (x right, y down, z forward), metres
    angles [T, 3]  (pitch, yaw, roll) of the hand in radians, applied to a rest pose
                   with fingers forward and palm down (see corpus.global_orient)
    curl   [T, 5]  flexion of thumb, index, middle, ring, pinky in [0, 1]
    spread [T]     finger abduction in [-0.3, 1]
Each primitive moves the state to new targets over its duration with smooth easing
(some add an oscillation); the sequence of primitives is what the captions describe.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PRIMITIVES = ("reach", "grasp", "release", "lift", "place", "wave", "point", "pinch", "rotate", "idle")

# Rest places of the wrists: hands ~0.4 m in front of the camera, a little below its axis.
HOME = {"left": np.array([-0.12, 0.10, 0.32]), "right": np.array([0.12, 0.10, 0.32])}
RELAXED_CURL = np.array([0.25, 0.2, 0.25, 0.3, 0.35])


@dataclass
class HandControls:
    pos: np.ndarray  # [T, 3]
    angles: np.ndarray  # [T, 3]
    curl: np.ndarray  # [T, 5]
    spread: np.ndarray  # [T]


@dataclass
class Step:
    """One primitive as performed: its name, frame span and the details captions may mention."""
    name: str
    start: int
    end: int  # exclusive
    detail: dict


def _ease(n: int) -> np.ndarray:
    """[n] smoothstep from ~0 to 1 (minimum-jerk-like profile)."""
    s = (np.arange(1, n + 1) / n)
    return s * s * (3 - 2 * s)


def _targets(name: str, side: str, state: dict, rng: np.random.Generator) -> tuple[dict, dict]:
    """New target state and caption details for one primitive."""
    sgn = -1.0 if side == "left" else 1.0  # mirror lateral motion and roll for the left hand
    pos, ang, curl, spread = state["pos"].copy(), state["angles"].copy(), state["curl"].copy(), state["spread"]
    detail: dict = {}
    if name == "reach":
        direction = rng.choice(["forward", "sideways", "across"])
        dz = rng.uniform(0.08, 0.16)
        dx = {"forward": 0.0, "sideways": sgn * rng.uniform(0.05, 0.1), "across": -sgn * rng.uniform(0.08, 0.15)}
        pos = pos + [dx[direction], rng.uniform(-0.02, 0.04), dz]
        curl, spread, ang[0] = np.full(5, 0.08), 0.6, rng.uniform(-0.2, 0.1)
        detail["direction"] = direction
    elif name == "grasp":
        curl = np.clip(rng.uniform(0.7, 0.95) + rng.normal(0, 0.04, 5), 0, 1)
        curl[0] = rng.uniform(0.5, 0.7)
        spread = 0.0
        pos = pos + rng.normal(0, 0.01, 3)
    elif name == "release":
        curl, spread = np.full(5, 0.1) + rng.uniform(0, 0.08, 5), 0.5
    elif name == "lift":
        h = rng.uniform(0.07, 0.15)
        pos = pos + [0, -h, rng.uniform(-0.03, 0.01)]
        detail["height"] = h
    elif name == "place":
        pos = pos + [rng.uniform(-0.05, 0.05), rng.uniform(0.06, 0.12), rng.uniform(-0.02, 0.04)]
    elif name == "wave":
        pos = pos + [0, -rng.uniform(0.08, 0.14), rng.uniform(0.0, 0.05)]
        ang[0] = rng.uniform(1.2, 1.5)  # fingers up, palm facing away
        curl, spread = np.full(5, 0.05), 0.8
    elif name == "point":
        curl = np.array([0.6, 0.0, 0.9, 0.95, 0.95])
        spread, ang[0] = 0.0, rng.uniform(-0.1, 0.3)
        pos = pos + [sgn * rng.uniform(-0.04, 0.04), 0, rng.uniform(0.03, 0.08)]
    elif name == "pinch":
        curl = np.array([0.75, 0.6, rng.uniform(0.1, 0.4), rng.uniform(0.1, 0.4), rng.uniform(0.1, 0.5)])
        spread = 0.2
    elif name == "rotate":
        turn = rng.choice([-1.0, 1.0]) * rng.uniform(0.8, 1.6)
        ang[2] = ang[2] + sgn * turn
        detail["way"] = "outward" if turn > 0 else "inward"
    elif name == "idle":
        pos = pos + rng.normal(0, 0.008, 3)
        curl = np.clip(RELAXED_CURL + rng.normal(0, 0.05, 5), 0, 1)
    else:
        raise ValueError(f"unknown primitive {name!r}; known: {PRIMITIVES}")
    return {"pos": pos, "angles": ang, "curl": curl, "spread": spread}, detail


def perform(steps: list[str], side: str, num_frames: int, speed: float, noise: float,
            rng: np.random.Generator) -> tuple[HandControls, list[Step]]:
    """Controls for one hand doing `steps` in order over `num_frames` frames (15 fps).

    Nominal durations are divided by `speed`; the sequence stops at the clip end and
    idles if it ends early. `noise` (metres) scales tracking-like jitter.
    """
    T = num_frames
    state = {"pos": HOME[side] + rng.normal(0, 0.02, 3), "angles": np.array([rng.uniform(-0.15, 0.15), 0.0, 0.0]),
             "curl": RELAXED_CURL.copy(), "spread": 0.2}
    pos, ang, curl, spread = np.empty((T, 3)), np.empty((T, 3)), np.empty((T, 5)), np.empty(T)
    done: list[Step] = []
    t = 0
    queue = list(steps)
    while t < T:
        name = queue.pop(0) if queue else "idle"
        n = max(2, int(round(rng.uniform(9, 18) / speed)))  # 0.6-1.2 s at speed 1
        if name == "wave":
            n = max(n, int(round(24 / speed)))
        n = min(n, T - t)
        target, detail = _targets(name, side, state, rng)
        e = _ease(n)[:, None]
        pos[t:t + n] = state["pos"] + e * (target["pos"] - state["pos"])
        ang[t:t + n] = state["angles"] + e * (target["angles"] - state["angles"])
        curl[t:t + n] = state["curl"] + e * (target["curl"] - state["curl"])
        spread[t:t + n] = state["spread"] + e[:, 0] * (target["spread"] - state["spread"])
        if name == "wave":  # side-to-side swing about the palm normal, 2-3 Hz
            hz = rng.uniform(2.0, 3.0) * speed
            ang[t:t + n, 1] += 0.45 * np.sin(2 * np.pi * hz * np.arange(n) / 15.0) * np.minimum(1, 3 * e[:, 0])
        done.append(Step(name, t, t + n, detail))
        state = target
        t += n
    if noise > 0:  # smoothed random jitter, like a tracker's residual noise
        k = np.ones(3) / 3
        jit = rng.normal(0, noise, (T + 2, 7))
        jit = np.stack([np.convolve(jit[:, i], k, mode="valid") for i in range(7)], 1)[:T]
        pos += jit[:, :3]
        ang += jit[:, 3:6] * 10  # ~0.5 degree per mm of position noise
        curl = np.clip(curl + jit[:, 6:7] * 5, 0, 1)
    return HandControls(pos, ang, curl, spread), done


def plan(rng: np.random.Generator, num_frames: int) -> list[str]:
    """A plausible primitive sequence for one hand (object manipulation, gestures or idle)."""
    story = rng.choice(["pick", "pick_place", "gesture", "fine", "idle"], p=[0.25, 0.3, 0.2, 0.15, 0.1])
    if story == "pick":
        seq = ["reach", "grasp", "lift"]
    elif story == "pick_place":
        seq = ["reach", "grasp", "lift", "place", "release"]
    elif story == "gesture":
        seq = [str(rng.choice(["wave", "point"]))]
    elif story == "fine":
        seq = [str(rng.choice(["pinch", "rotate"])), str(rng.choice(["rotate", "pinch", "release"]))]
    else:
        seq = ["idle"]
    if rng.random() < 0.3 and story != "idle":
        seq.insert(0, "idle")
    budget = max(1, num_frames // 9)  # at least ~0.6 s per primitive
    return seq[:budget]
