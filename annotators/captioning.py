"""A chain of captioners; every caption carries its source.

- `narration`: the narration text of the clip's segment (when the clip came from one).
- `kinematic`: deterministic English from the 3D motion, always available offline:
  which hands act, wrist direction in the camera frame (x right, y down, z away from the
  camera), grasp closing/opening from finger curl, wrist roll in the image plane (the
  out-of-plane palm normal of single-view trackers flips too often to describe), speed. Phrasing varies
  between clips but is fixed per clip (seeded by clip_id).
- `vlm`: a transformers image-text-to-text model (AutoProcessor +
  AutoModelForImageTextToText: SmolVLM, Idefics3, Qwen2.5-VL, ...) from a path or hub id,
  on K frames per clip: one question per aspect (action and object, hand roles, state
  change, intent), then a one-sentence summary from the answers. Batched; GPU when present.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

HANDS = ("left", "right")
ASPECTS = (
    ("action", "What action do the hands perform, and on which object?"),
    ("roles", "What does each hand do (which hand holds, which one manipulates)?"),
    ("state", "What changes in the state of the object or the hands?"),
    ("intent", "What is the person trying to achieve?"),
)
SUMMARY_PROMPT = (
    "Using these observations, describe the hand motion in one sentence.\n{notes}\nOne sentence:"
)


@dataclass
class ClipContext:
    """What a captioner may look at for one clip."""

    clip_id: str
    joints3d: np.ndarray  # float32 [T, 2, 21, 3] camera metres (0 where absent)
    presence: np.ndarray  # bool [T, 2]
    motion: np.ndarray  # float32 [T, 198]
    fps: float
    narration: str | None = None
    frames: list[np.ndarray] = field(default_factory=list)  # K RGB uint8 [h, w, 3], VLM only


class Captioner(Protocol):
    source: str

    def caption(self, clips: Sequence[ClipContext]) -> list[str | None]: ...


class NarrationCaptioner:
    source = "narration"

    def caption(self, clips: Sequence[ClipContext]) -> list[str | None]:
        return [c.narration.strip() if c.narration and c.narration.strip() else None for c in clips]


# ---------------------------------------------------------------- kinematic
_TIPS, _MCPS = (4, 8, 12, 16, 20), (1, 5, 9, 13, 17)


def _curl(j: np.ndarray) -> np.ndarray:
    """[n, 21, 3] -> [n] openness: mean fingertip-to-wrist distance over palm size (falls when closing)."""
    palm = np.linalg.norm(j[:, 9] - j[:, 0], axis=-1) + 1e-6
    return np.linalg.norm(j[:, _TIPS] - j[:, :1], axis=-1).mean(-1) / palm


@dataclass
class HandMotion:
    """Kinematic facts about one hand in one clip."""

    present: float  # fraction of frames
    displacement: np.ndarray  # [3] metres, camera frame, first to last present frame
    speed: float  # mean wrist speed, m/s
    openness_change: float  # relative change of finger openness (negative = closing)
    rotation_deg: float  # wrist roll in the image plane, first to last frames; > 0 clockwise on screen

    @property
    def active(self) -> bool:
        return self.present > 0.2 and (
            np.linalg.norm(self.displacement) > 0.03 or abs(self.openness_change) > 0.15 or abs(self.rotation_deg) > 25
        )


def hand_motion(joints: np.ndarray, present: np.ndarray, fps: float) -> HandMotion | None:
    """joints [T, 21, 3], present [T] -> facts, or None when the hand is absent."""
    idx = np.flatnonzero(present)
    if len(idx) < 2:
        return None
    j = joints[idx]
    disp = j[-1, 0] - j[0, 0]
    steps = np.linalg.norm(np.diff(j[:, 0], axis=0), axis=-1) / (np.diff(idx) / fps)
    k = max(1, len(idx) // 5)  # average the ends: single-frame noise is no grasp
    o0, o1 = _curl(j[:k]).mean(), _curl(j[-k:]).mean()
    roll = np.unwrap(np.arctan2(j[:, 9, 1] - j[:, 0, 1], j[:, 9, 0] - j[:, 0, 0]))
    rot = float(np.degrees(np.median(roll[-k:]) - np.median(roll[:k])))
    return HandMotion(len(idx) / len(present), disp, float(steps.mean()), float(o1 / o0 - 1), rot)


_DIRS = ((0, "to the right", "to the left"), (1, "downward", "upward"), (2, "away from the camera", "toward the camera"))
_SPEED = ((0.12, ["slowly", "gently", "steadily"]), (0.45, ["", "", "smoothly"]), (np.inf, ["quickly", "rapidly", "briskly"]))
_MOVE = ["moves", "travels", "shifts"]
_STILL = ["stays almost still", "barely moves", "holds its position"]
_CLOSE = ["closes its fingers", "closes into a grasp", "curls its fingers in"]
_OPEN = ["opens its fingers", "releases its grip", "spreads its fingers"]
_ROT = ["turns the wrist {way} by about {d} degrees", "rotates {way} about {d} degrees",
        "twists the wrist roughly {d} degrees {way}"]


def _direction(d: np.ndarray) -> str | None:
    """Dominant one or two axes of a displacement above 3 cm."""
    mag = np.abs(d)
    order = [i for i in np.argsort(-mag) if mag[i] > 0.03 and mag[i] > 0.4 * mag.max()][:2]
    words = [(_DIRS[i][1] if d[i] > 0 else _DIRS[i][2]) for i in order]
    return " and ".join(words) if words else None


def _describe(m: HandMotion, rng: random.Random) -> str:
    parts = []
    where = _direction(m.displacement)
    if where:
        adv = rng.choice(next(w for lim, w in _SPEED if m.speed < lim))
        parts.append(" ".join(x for x in (rng.choice(_MOVE), adv, where) if x))
    else:
        parts.append(rng.choice(_STILL))
    if m.openness_change < -0.15:
        parts.append(rng.choice(_CLOSE))
    elif m.openness_change > 0.15:
        parts.append(rng.choice(_OPEN))
    if abs(m.rotation_deg) > 25:
        way = "clockwise" if m.rotation_deg > 0 else "counterclockwise"
        parts.append(rng.choice(_ROT).format(d=int(round(abs(m.rotation_deg) / 5) * 5), way=way))
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + rng.choice([" and ", " while it ", ", then "]) + parts[-1]


class KinematicCaptioner:
    source = "kinematic"

    def caption(self, clips: Sequence[ClipContext]) -> list[str | None]:
        return [self.describe(c) for c in clips]

    @staticmethod
    def describe(c: ClipContext) -> str:
        rng = random.Random(int(hashlib.sha1(c.clip_id.encode()).hexdigest()[:8], 16))
        facts = [hand_motion(c.joints3d[:, h], c.presence[:, h], c.fps) for h in range(2)]
        seen = [h for h in range(2) if facts[h] is not None]
        if not seen:
            return "No hand is visible."
        active = [h for h in seen if facts[h].active] or seen
        sentences = []
        if len(active) == 2:
            sentences.append(rng.choice(["Both hands are at work.", "Both hands act.", "The two hands work together."]))
        for h in active:
            subj = rng.choice([f"The {HANDS[h]} hand", f"The person's {HANDS[h]} hand"])
            sentences.append(f"{subj} {_describe(facts[h], rng)}.")
        idle = [h for h in seen if h not in active]
        if idle:
            sentences.append(f"The {HANDS[idle[0]]} hand {rng.choice(['stays idle', 'rests', 'holds still'])}.")
        return " ".join(sentences)


# ---------------------------------------------------------------- VLM
class VLMCaptioner:
    """Multi-aspect prompting of an image-text-to-text model, then a one-sentence summary."""

    source = "vlm"

    def __init__(self, model: str, max_new_tokens: int = 48, batch_size: int = 4, device: str | None = None):
        from pathlib import Path

        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        looks_local = model.startswith((".", "/", "~")) or Path(model).expanduser().exists()
        if looks_local and not Path(model).expanduser().is_dir():
            raise FileNotFoundError(f"VLM model folder not found: {model}")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self.processor = AutoProcessor.from_pretrained(str(Path(model).expanduser()) if looks_local else model)
            kw = {_dtype_kwarg(): torch.bfloat16} if self.device.startswith("cuda") else {}
            self.model = AutoModelForImageTextToText.from_pretrained(
                str(Path(model).expanduser()) if looks_local else model, **kw
            ).to(self.device).eval()
        except (OSError, ValueError) as e:  # missing files, not an image-text-to-text model
            raise FileNotFoundError(f"cannot load VLM {model!r} (need an image-text-to-text model): {e}") from e
        tok = getattr(self.processor, "tokenizer", None)
        if tok is not None:
            tok.padding_side = "left"  # generation appends after the prompt
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size

    def _prompt(self, n_images: int, question: str) -> str:
        content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": question}]
        msgs = [{"role": "user", "content": content}]
        return self.processor.apply_chat_template(msgs, add_generation_prompt=True)

    def _generate(self, items: list[tuple[list[np.ndarray], str]]) -> list[str]:
        """(frames, question) pairs -> answers, in batches."""
        import torch
        from PIL import Image

        answers: list[str] = []
        for i in range(0, len(items), self.batch_size):
            part = items[i:i + self.batch_size]
            texts = [self._prompt(len(f), q) for f, q in part]
            images = [[Image.fromarray(x) for x in f] for f, _ in part]
            inputs = self.processor(text=texts, images=images, return_tensors="pt", padding=True).to(self.device)
            with torch.inference_mode():
                out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
            new = out[:, inputs["input_ids"].shape[1]:]
            answers += [s.strip() for s in self.processor.batch_decode(new, skip_special_tokens=True)]
        return answers

    def caption(self, clips: Sequence[ClipContext]) -> list[str | None]:
        todo = [c for c in clips if c.frames]
        if not todo:
            return [None] * len(clips)
        asks = [(c.frames, q) for c in todo for _, q in ASPECTS]
        notes = self._generate(asks)
        per = len(ASPECTS)
        summaries = []
        for n, c in enumerate(todo):
            lines = "\n".join(f"- {name}: {ans}" for (name, _), ans in zip(ASPECTS, notes[n * per:(n + 1) * per]))
            summaries.append((c.frames, SUMMARY_PROMPT.format(notes=lines)))
        texts = iter(self._generate(summaries))
        return [next(texts) or None if c.frames else None for c in clips]


def _dtype_kwarg() -> str:
    """transformers renamed from_pretrained's `torch_dtype` to `dtype` in 4.56."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


_VLM_CACHE: dict[tuple[Any, ...], VLMCaptioner] = {}


def build_captioners(cfg: Any) -> list[Captioner]:
    """The configured chain (an AnnotateConfig); 'vlm' is skipped when no model is given."""
    chain: list[Captioner] = []
    for name in cfg.captioners:
        if name == "narration":
            chain.append(NarrationCaptioner())
        elif name == "kinematic":
            chain.append(KinematicCaptioner())
        elif name == "vlm":
            if cfg.vlm:
                key = (cfg.vlm, cfg.vlm_max_new_tokens, cfg.vlm_batch_size)
                if key not in _VLM_CACHE:
                    _VLM_CACHE[key] = VLMCaptioner(cfg.vlm, cfg.vlm_max_new_tokens, cfg.vlm_batch_size)
                chain.append(_VLM_CACHE[key])
        else:
            raise ValueError(f"unknown captioner {name!r} (known: narration, kinematic, vlm)")
    return chain


def caption_clips(captioners: Sequence[Captioner], clips: Sequence[ClipContext]) -> list[list[dict[str, str]]]:
    """[{source, text}, ...] per clip, in chain order, empty texts left out."""
    out: list[list[dict[str, str]]] = [[] for _ in clips]
    for cap in captioners:
        for i, text in enumerate(cap.caption(clips)):
            if text and text.strip():
                out[i].append({"source": cap.source, "text": text.strip()})
    return out
