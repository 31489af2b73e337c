"""Captions for synthetic clips, generated from the primitives each hand performed.

Wording varies (verbs, objects, sentence templates, clause order) so a text encoder
cannot learn one fixed string per motion, but every caption only states what the
motion shows: which hand, which primitives, in which order.
"""
from __future__ import annotations

import numpy as np

from clutch_core.synth.primitives import Step

OBJECTS = ["cup", "bottle", "spoon", "bowl", "lid", "phone", "box", "knife", "sponge", "jar", "pen", "plate"]

VERBS = {
    "reach": {"forward": ["reaches forward", "extends forward", "stretches out"],
              "sideways": ["reaches to the side", "moves out to the side"],
              "across": ["reaches across the body", "reaches across"]},
    "grasp": ["grasps the {obj}", "grabs the {obj}", "closes around the {obj}", "picks up the {obj}"],
    "release": ["releases it", "lets go", "opens its fingers", "lets the object go"],
    "lift": ["lifts it", "raises it", "lifts it up", "brings it up"],
    "place": ["puts it down", "places it down", "sets it down", "lowers it"],
    "wave": ["waves", "waves side to side", "gives a wave"],
    "point": ["points with the index finger", "points ahead", "extends the index finger to point"],
    "pinch": ["pinches with thumb and index finger", "makes a pinch", "brings thumb and index together"],
    "rotate": {"outward": ["turns the wrist outward", "rotates the wrist outward"],
               "inward": ["turns the wrist inward", "rotates the wrist inward"]},
}
HAND_NAMES = {"left": ["the left hand", "the left hand", "the person's left hand"],
              "right": ["the right hand", "the right hand", "the person's right hand"]}
IDLE = {"one": ["{hand} rests", "{hand} stays still", "{hand} hovers without moving"],
        "both": ["both hands rest", "both hands stay still", "the hands hover in place"]}


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _phrase(step: Step, obj: str, rng: np.random.Generator) -> str:
    v = VERBS[step.name]
    if isinstance(v, dict):
        key = step.detail.get("direction") or step.detail.get("way")
        v = v[key]
    return _pick(rng, v).format(obj=obj)


def _join(parts: list[str], rng: np.random.Generator) -> str:
    if len(parts) == 1:
        return parts[0]
    last = _pick(rng, [" and ", ", then ", " and then "])
    return ", ".join(parts[:-1]) + last + parts[-1]


def _clause(side: str, steps: list[Step], rng: np.random.Generator) -> str | None:
    active = [s for s in steps if s.name != "idle"]
    if not active:
        return None
    obj = _pick(rng, OBJECTS)
    return f"{_pick(rng, HAND_NAMES[side])} {_join([_phrase(s, obj, rng) for s in active], rng)}"


def describe(steps: dict[str, list[Step]], rng: np.random.Generator, n: int = 1) -> list[str]:
    """`n` different wordings of what the hands in `steps` ({'left'|'right': [Step]}) do."""
    out: list[str] = []
    for _ in range(n * 4):
        clauses = {side: _clause(side, s, rng) for side, s in steps.items()}
        moving = [side for side, c in clauses.items() if c]
        if not moving:
            text = _pick(rng, IDLE["both"] if len(steps) == 2 else IDLE["one"])
            text = text.format(hand=_pick(rng, HAND_NAMES[next(iter(steps))]))
        elif len(moving) == 1:
            text = clauses[moving[0]]
            still = [s for s in steps if s not in moving]
            if still and rng.random() < 0.6:
                text += _pick(rng, [" while ", ", and meanwhile "]) + _pick(rng, IDLE["one"]).format(
                    hand=_pick(rng, HAND_NAMES[still[0]]))
        else:
            a, b = (moving if rng.random() < 0.5 else moving[::-1])
            text = clauses[a] + _pick(rng, ["; meanwhile ", " while ", ", and "]) + clauses[b]
        text = text[0].upper() + text[1:] + "."
        if text not in out:
            out.append(text)
        if len(out) == n:
            break
    return out
