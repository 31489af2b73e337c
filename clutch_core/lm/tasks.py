"""Training examples of the language model: templated tasks and span corruption.

Every example is (input ids, target ids, where the motion starts in the target or -1).
Templates (templates.json, our wording) have text fields ({caption}, {seconds}, {side},
{other}) and motion fields ({motion}, {motion_other}); text goes through the text
tokenizer, motion fields are spliced in as ids (never re-tokenized), so a motion token
always has exactly one id.

Span corruption follows T5: noise density 0.15, mean span length 3; each masked span is
replaced by one sentinel in the input and the target lists sentinel + span. Text uses
the tokenizer's <extra_id_i>, motion the <motion_mask_i> tokens.
"""
from __future__ import annotations

import json
import string
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from clutch_core.lm.vocab import MotionVocab

MOTION_FIELDS = ("motion", "motion_other")
SIDES = ("left", "right")


@lru_cache(maxsize=1)
def templates() -> dict[str, list[dict[str, str]]]:
    """Task name -> templates ({"input", "output"}), from the package's templates.json."""
    data = json.loads(resources.files("clutch_core.lm").joinpath("templates.json").read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]
    motion_at: int = -1  # index of <som> in labels for text-to-motion targets, else -1
    clip: int = -1  # clip index (for the geometric loss)


class Renderer:
    """Template + fields -> ids. Text pieces are tokenized once and cached (captions repeat)."""

    def __init__(self, tokenizer, vocab: MotionVocab):
        self.tok, self.vocab = tokenizer, vocab
        self.eos = tokenizer.eos_token_id
        self._cache: dict[str, list[int]] = {}

    def text(self, s: str) -> list[int]:
        ids = self._cache.get(s)
        if ids is None:
            ids = self.tok(s, add_special_tokens=False)["input_ids"] if s.strip() else []
            if len(self._cache) < 200_000:
                self._cache[s] = ids
        return ids

    def render(self, template: str, fields: dict) -> tuple[list[int], dict[str, int]]:
        """-> (ids + </s>, {motion field: offset of its first id})."""
        out: list[int] = []
        where: dict[str, int] = {}
        for literal, name, _, _ in string.Formatter().parse(template):
            if literal:
                out += self.text(literal)
            if name is None:
                continue
            if name in MOTION_FIELDS:
                where[name] = len(out)
                out += list(fields[name])
            else:
                out += self.text(str(fields[name]))
        return out + [self.eos], where


def seconds_text(seconds: float) -> str:
    return f"{round(float(seconds), 1):g}"


def span_corrupt(ids: list[int], sentinels: list[int], rng: np.random.Generator, density: float = 0.15,
                 mean_span: float = 3.0) -> tuple[list[int], list[int]]:
    """T5 span corruption of `ids` -> (input with sentinels, target: sentinel + span per span)."""
    n = len(ids)
    if n < 2:
        return list(ids), []
    n_noise = int(np.clip(round(n * density), 1, n - 1))
    n_spans = int(np.clip(round(n_noise / mean_span), 1, min(n_noise, n - n_noise, len(sentinels))))

    def parts(total: int, k: int) -> np.ndarray:  # random composition of total into k positive parts
        cuts = np.sort(rng.choice(np.arange(1, total), k - 1, replace=False)) if k > 1 else np.array([], int)
        return np.diff(np.concatenate([[0], cuts, [total]]))

    noise, keep = parts(n_noise, n_spans), parts(n - n_noise, n_spans)
    inp, tgt, pos = [], [], 0
    for i in range(n_spans):  # keep span then noise span, as T5
        inp += ids[pos:pos + keep[i]]
        pos += keep[i]
        inp.append(sentinels[i])
        tgt += [sentinels[i], *ids[pos:pos + noise[i]]]
        pos += noise[i]
    return inp + ids[pos:], tgt


def one_hand(vocab: MotionVocab, codes: np.ndarray, presence: np.ndarray, hand: int) -> list[int]:
    """Motion ids with only `hand` kept (the other hand written <absent>)."""
    p = presence.copy()
    p[:, 1 - hand] = False
    return vocab.encode(codes, p)


def task_example(task: str, template: dict[str, str], r: Renderer, codes: np.ndarray, presence: np.ndarray,
                 caption: str, num_frames: int, rng: np.random.Generator) -> Example:
    """One templated example of `task` (t2m, t2m_seconds, m2t, h2h and their instruct_ forms)."""
    fps_frames = num_frames / 15.0
    fields: dict = {"caption": caption, "seconds": seconds_text(fps_frames)}
    if task.endswith("h2h"):
        side = int(rng.integers(2))
        fields.update(side=SIDES[side], other=SIDES[1 - side], motion=one_hand(r.vocab, codes, presence, side),
                      motion_other=one_hand(r.vocab, codes, presence, 1 - side))
    else:
        fields["motion"] = r.vocab.encode(codes, presence)
    inp, _ = r.render(template["input"], fields)
    out, where = r.render(template["output"], fields)
    return Example(inp, out, where.get("motion", -1) if "t2m" in task else -1)


def corruption_example(ids: list[int], sentinels: list[int], r: Renderer, rng: np.random.Generator,
                       density: float, mean_span: float) -> Example:
    inp, tgt = span_corrupt(ids, sentinels, rng, density, mean_span)
    return Example(inp + [r.eos], tgt + [r.eos])
