"""Motion vocabulary: SHIFT codes + presence <-> language-model token ids.

A motion is serialized step-major, as in the tokens parts (clutch_core.shift.tokenize):
`<som> [l-traj l-pose r-traj r-pose] x S <eom>` for SHIFT, `<som> [frame] x S <eom>` for
the VQ-VAE baseline. Each codebook has its own token range (`<traj_17>`, `<pose_17>` are
different tokens; the two hands share a codebook, so they share its range). A hand that
is absent during a step is written `<absent>` in each of its streams, so one-hand motion
round-trips; for the single-stream baseline a step is `<absent>` only when both hands are.

Token ids are laid out contiguously after the text vocabulary:
    base + [<som>, <eom>, <absent>, <motion_mask_0..M-1>, book0 codes..., book1 codes...]
so a codebook's range is one slice, which constrained decoding and the geometric
refinement use directly.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SOM, EOM, ABSENT = "<som>", "<eom>", "<absent>"
MOTION_MASKS = 32  # sentinels of motion-only span corruption

# stream name -> (codebook, hand index); the hand of a single-stream step is "both" (-1)
STREAM_INFO = {"left_traj": ("traj", 0), "left_pose": ("pose", 0), "right_traj": ("traj", 1),
               "right_pose": ("pose", 1), "frame": ("frame", -1)}


@dataclass(frozen=True)
class MotionVocab:
    """Where the motion tokens live in the LM vocabulary. `base` = size of the text vocabulary."""

    base: int
    streams: tuple[str, ...]  # e.g. ("left_traj", "left_pose", "right_traj", "right_pose")
    codebooks: tuple[tuple[str, int], ...]  # ((name, size), ...) in id order
    frames_per_step: int
    masks: int = MOTION_MASKS

    @classmethod
    def from_tokenizer_config(cls, base: int, config: dict) -> "MotionVocab":
        """From RUN/shift/config.json (or a tokens folder's tokenizer.json)."""
        books = config["codebooks"]
        return cls(base, tuple(config["streams"]), tuple((k, int(books[k])) for k in books),
                   int(config["frames_per_step"]))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["streams"], d["codebooks"] = list(self.streams), [list(b) for b in self.codebooks]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "MotionVocab":
        return cls(int(d["base"]), tuple(d["streams"]), tuple((str(n), int(k)) for n, k in d["codebooks"]),
                   int(d["frames_per_step"]), int(d.get("masks", MOTION_MASKS)))

    # --- ids ---------------------------------------------------------------------------
    @property
    def som(self) -> int:
        return self.base

    @property
    def eom(self) -> int:
        return self.base + 1

    @property
    def absent(self) -> int:
        return self.base + 2

    def mask(self, i: int) -> int:
        if not 0 <= i < self.masks:
            raise ValueError(f"motion mask {i} out of range 0..{self.masks - 1}")
        return self.base + 3 + i

    def book_start(self, book: str) -> int:
        start = self.base + 3 + self.masks
        for name, size in self.codebooks:
            if name == book:
                return start
            start += size
        raise KeyError(f"no codebook {book!r}; have {[n for n, _ in self.codebooks]}")

    def book_size(self, book: str) -> int:
        return dict(self.codebooks)[book]

    def stream_range(self, k: int) -> tuple[int, int]:
        """[start, stop) of the token ids of stream k's codebook."""
        book = STREAM_INFO[self.streams[k]][0]
        start = self.book_start(book)
        return start, start + self.book_size(book)

    @property
    def n_streams(self) -> int:
        return len(self.streams)

    @property
    def size(self) -> int:
        """Total vocabulary size (text + motion)."""
        return self.base + 3 + self.masks + sum(k for _, k in self.codebooks)

    @property
    def motion_start(self) -> int:
        return self.base

    def token_strings(self) -> list[str]:
        """The added tokens, in id order."""
        out = [SOM, EOM, ABSENT] + [f"<motion_mask_{i}>" for i in range(self.masks)]
        for name, size in self.codebooks:
            out += [f"<{name}_{i}>" for i in range(size)]
        return out

    def stream_hand(self, k: int) -> int:
        return STREAM_INFO[self.streams[k]][1]

    # --- serialization -----------------------------------------------------------------
    def encode(self, codes: np.ndarray, presence: np.ndarray, markers: bool = True) -> list[int]:
        """codes [S, n_streams] int, presence [S, 2] bool -> ids (with <som>/<eom> when markers)."""
        codes, presence = np.asarray(codes), np.asarray(presence, dtype=bool)
        if codes.ndim != 2 or codes.shape[1] != self.n_streams or presence.shape != (codes.shape[0], 2):
            raise ValueError(f"codes must be [S, {self.n_streams}] and presence [S, 2], "
                             f"got {codes.shape} and {presence.shape}")
        ids = np.empty(codes.shape, dtype=np.int64)
        for k in range(self.n_streams):
            start, stop = self.stream_range(k)
            if codes.size and (codes[:, k].min() < 0 or codes[:, k].max() >= stop - start):
                raise ValueError(f"stream {self.streams[k]}: code out of range 0..{stop - start - 1}")
            h = self.stream_hand(k)
            here = presence.any(1) if h < 0 else presence[:, h]
            ids[:, k] = np.where(here, codes[:, k] + start, self.absent)
        body = ids.reshape(-1).tolist()
        return [self.som, *body, self.eom] if markers else body

    def decode(self, ids) -> tuple[np.ndarray, np.ndarray]:
        """ids (with or without <som>/<eom>, anything after <eom> ignored) -> (codes [S, n], presence [S, 2]).

        Malformed input is read as far as it is well-formed: the motion stops at the first
        token that is not a code of the expected stream or <absent>, and a partial last step
        is dropped. An absent stream's code is 0 (its numbers are not used).
        """
        ids = [int(i) for i in ids]
        if ids and ids[0] == self.som:
            ids = ids[1:]
        n = self.n_streams
        codes, absent = [], []
        for j, t in enumerate(ids):
            k = j % n
            start, stop = self.stream_range(k)
            if t == self.absent:
                codes.append(0), absent.append(True)
            elif start <= t < stop:
                codes.append(t - start), absent.append(False)
            else:
                break
        s = len(codes) // n
        c = np.array(codes[:s * n], dtype=np.int64).reshape(s, n)
        a = np.array(absent[:s * n], dtype=bool).reshape(s, n)
        presence = np.zeros((s, 2), dtype=bool)
        for h in (0, 1):
            ks = [k for k in range(n) if self.stream_hand(k) in (h, -1)]
            presence[:, h] = ~a[:, ks].any(1)  # a hand is present when none of its streams is absent
        return c, presence

    def hand_leader(self, k: int) -> int | None:
        """The earlier stream of the same hand in a step (its pose follows its trajectory's presence), or None."""
        h = self.stream_hand(k)
        for j in range(k):
            if h >= 0 and self.stream_hand(j) == h:
                return j
        return None
