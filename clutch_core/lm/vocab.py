"""Motion vocabulary: SHIFT codes + presence <-> language-model token ids.

A motion is serialized step-major, as in the tokens parts (clutch_core.shift.tokenize):
`<som> [l-traj l-pose r-traj r-pose] x S <eom>` for SHIFT. Each codebook has its own token
range (`<traj_17>`, `<pose_17>` are different tokens; the two hands share a codebook, so
they share its range). A hand that is absent during a step is written `<absent>` in each of
its streams, so one-hand motion round-trips.

Whole-frame tokenizers (the VQ-VAE and RVQ baselines: one code, or one code per level, for
both hands) cannot say which hand a code stands for, so their steps start with a `hands`
stream: `<hands_0>` left only, `<hands_1>` right only, `<hands_2>` both, or `<absent>` (then
every stream of the step is `<absent>`): `<som> [hands frame] x S <eom>` for the VQ-VAE,
`<som> [hands level0 .. level3] x S <eom>` for RVQ. Per-hand presence round-trips for every
tokenizer.

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

HANDS = "hands"  # the presence stream of whole-frame tokenizers: codes 0 left, 1 right, 2 both
HANDS_CODES = ((True, False), (False, True), (True, True))  # (left, right) present, per hands code
# stream name -> (codebook, hand index); a whole-frame stream's hand is "both" (-1)
STREAM_INFO = {"left_traj": ("traj", 0), "left_pose": ("pose", 0), "right_traj": ("traj", 1),
               "right_pose": ("pose", 1), "frame": ("frame", -1), HANDS: (HANDS, -1),
               **{f"level{k}": (f"level{k}", -1) for k in range(4)}}


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
        books = tuple((k, int(n)) for k, n in config["codebooks"].items())
        streams = tuple(config["streams"])
        unknown = [s for s in streams if s not in STREAM_INFO]
        if unknown:
            raise ValueError(f"tokenizer streams {unknown} are not known to the language model's vocabulary")
        if all(STREAM_INFO[s][1] < 0 for s in streams):  # whole-frame: a presence stream first
            streams, books = (HANDS, *streams), ((HANDS, len(HANDS_CODES)), *books)
        return cls(base, streams, books, int(config["frames_per_step"]))

    @property
    def whole_frame(self) -> bool:
        """True for tokenizers whose codes stand for both hands at once (their steps start with `hands`)."""
        return self.streams[0] == HANDS

    @property
    def tokenizer_streams(self) -> tuple[str, ...]:
        """The streams of the tokenizer's codes (the tokens parts' columns), without `hands`."""
        return self.streams[1:] if self.whole_frame else self.streams

    @property
    def code_streams(self) -> list[int]:
        """Indices of the streams (of a step) that hold tokenizer codes."""
        return list(range(1, self.n_streams)) if self.whole_frame else list(range(self.n_streams))

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

    def is_code(self, ids) -> "np.ndarray":
        """Which ids are tokenizer codes (not <som>, <eom>, <absent>, masks, `hands` or text)."""
        ids = np.asarray(ids)
        out = np.zeros(ids.shape, bool)
        for k in self.code_streams:
            a, b = self.stream_range(k)
            out |= (ids >= a) & (ids < b)
        return out

    def is_presence(self, ids) -> "np.ndarray":
        """Which ids are `hands` codes (whole-frame tokenizers' presence tokens; <absent> is vocab.absent)."""
        ids = np.asarray(ids)
        if not self.whole_frame:
            return np.zeros(ids.shape, bool)
        a, b = self.stream_range(0)
        return (ids >= a) & (ids < b)

    def stream_hand(self, k: int) -> int:
        return STREAM_INFO[self.streams[k]][1]

    # --- serialization -----------------------------------------------------------------
    def encode(self, codes: np.ndarray, presence: np.ndarray, markers: bool = True) -> list[int]:
        """codes [S, tokenizer streams] int, presence [S, 2] bool -> ids (with <som>/<eom> when markers)."""
        codes, presence = np.asarray(codes), np.asarray(presence, dtype=bool)
        n_tok = len(self.tokenizer_streams)
        if codes.ndim != 2 or codes.shape[1] != n_tok or presence.shape != (codes.shape[0], 2):
            raise ValueError(f"codes must be [S, {n_tok}] and presence [S, 2], got {codes.shape} and {presence.shape}")
        if self.whole_frame:  # hands code: 0 left, 1 right, 2 both (a step without hands is written <absent>)
            hands = np.where(presence.all(1), 2, np.where(presence[:, 1], 1, 0))
            codes = np.concatenate([hands[:, None], codes.reshape(len(hands), n_tok)], 1)
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
        """ids (with or without <som>/<eom>, anything after <eom> ignored) -> (codes [S, tokenizer streams],
        presence [S, 2]).

        Malformed input is read as far as it is well-formed: the motion stops at the first
        token that is not a code of the expected stream or <absent>, and a partial last step
        is dropped. An absent stream's code is 0 (the decoders give absent steps their own
        latent, clutch_core.shift.model, whatever the code).
        """
        ids = [int(i) for i in ids]
        if ids and ids[0] == self.som:
            ids = ids[1:]
        n = self.n_streams
        codes, absent = [], []
        for j, t in enumerate(ids):
            start, stop = self.stream_range(j % n)
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
        if self.whole_frame:
            presence[:] = np.array(HANDS_CODES, bool)[c[:, 0]] & ~a[:, :1]
            return c[:, 1:], presence
        for h in (0, 1):
            ks = [k for k in range(n) if self.stream_hand(k) == h]
            presence[:, h] = ~a[:, ks].any(1)  # a hand is present when none of its streams is absent
        return c, presence

    def hand_leader(self, k: int) -> int | None:
        """The stream whose presence stream k follows within a step, or None when k decides it: a hand's
        pose follows its trajectory; a whole-frame code follows the step's `hands` stream."""
        if self.whole_frame:
            return 0 if k > 0 else None
        h = self.stream_hand(k)
        for j in range(k):
            if self.stream_hand(j) == h:
                return j
        return None
