"""The CLUTCH language model: a transformers T5 with the motion tokens in its vocabulary.

A stage's model folder (RUN/<stage>/model/) is an ordinary save_pretrained folder
(weights, config, the tokenizer with the motion tokens) plus motion_vocab.json (where the
motion tokens are, and which SHIFT weights they index): T5ForConditionalGeneration and
AutoTokenizer load it with from_pretrained.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from clutch_core.lm.config import LMConfig
from clutch_core.lm.text import add_motion_tokens, check_motion_tokens, load_text_tokenizer
from clutch_core.lm.vocab import MotionVocab
from layout.run import MOTION_VOCAB
from storage.integrity import file_sha256



def build_t5(cfg: LMConfig, tokenizer, vocab: MotionVocab):
    """A T5 from cfg.base (resized to the motion vocabulary) or from cfg's sizes (random weights)."""
    from transformers import T5Config, T5ForConditionalGeneration

    if cfg.base:
        try:
            model = T5ForConditionalGeneration.from_pretrained(cfg.base)
        except Exception as e:
            raise FileNotFoundError(f"base model {cfg.base}: cannot load ({type(e).__name__}: {e})") from e
        model.resize_token_embeddings(vocab.size)
    else:
        t5 = T5Config(vocab_size=vocab.size, d_model=cfg.d_model, d_ff=cfg.d_ff, d_kv=cfg.d_kv,
                      num_layers=cfg.layers, num_decoder_layers=cfg.layers, num_heads=cfg.heads,
                      dropout_rate=cfg.dropout, feed_forward_proj="gated-gelu",
                      relative_attention_num_buckets=cfg.rel_buckets,
                      relative_attention_max_distance=cfg.rel_max_distance,
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id)
        model = T5ForConditionalGeneration(t5)
    return model


@torch.no_grad()
def init_code_embeddings(model, vocab: MotionVocab, shift) -> None:
    """Embed each motion code where its SHIFT code vector lies: the codebook's principal directions, scaled
    to the embedding's own spread. Codes that decode to similar motion start close together, so the
    language model need not discover from scratch which of hundreds of codes mean nearly the same."""
    from clutch_core.shift.model import quantizers

    emb = model.get_input_embeddings().weight  # [V, d_model] (tied to the output layer in the tiny T5)
    books = quantizers(shift)
    scale = float(emb[:vocab.base].std())
    for name, size in vocab.codebooks:
        if name not in books:
            continue  # the `hands` presence codes of whole-frame tokenizers
        cb = books[name].codebook.detach().float().cpu()  # [K, D]
        cb = cb - cb.mean(0)
        u, sv, _ = torch.linalg.svd(cb, full_matrices=False)
        k = min(emb.shape[1], u.shape[1])
        vec = torch.zeros(size, emb.shape[1])
        vec[:, :k] = u[:, :k] * sv[:k]
        vec = vec / vec.std().clamp_min(1e-8) * scale
        start = vocab.book_start(name)
        emb[start:start + size] = vec.to(emb.dtype)


def base_tokenizer(cfg: LMConfig, vocab_base_config: dict, text_dir: Path, captions) -> tuple[Any, MotionVocab]:
    """(tokenizer with motion tokens, vocabulary) for a fresh pretrain stage."""
    from clutch_core.lm.text import train_text_tokenizer

    if cfg.base:
        tok = load_text_tokenizer(cfg.base)
    elif (text_dir / "tokenizer.json").exists():
        tok = load_text_tokenizer(text_dir)
    else:
        tok = train_text_tokenizer(captions, cfg.text_vocab, text_dir)
    vocab = MotionVocab.from_tokenizer_config(len(tok), vocab_base_config)
    add_motion_tokens(tok, vocab)
    return tok, vocab


def save_lm(folder: Path, model, tokenizer, vocab: MotionVocab, extra: dict[str, Any]) -> None:
    """save_pretrained of model and tokenizer, then motion_vocab.json (written last: marks it complete)."""
    from clutch_core.training.checkpoint import atomic_write_json

    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    atomic_write_json(folder / MOTION_VOCAB, {"vocab": vocab.to_dict(), **extra})


def lm_weights_id(folder: Path) -> str:
    """Identity of a model folder's weights: the sha256 of its weights file (of the files' digests when
    save_pretrained sharded them), first 10 hex digits."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if len(files) == 1:
        return file_sha256(files[0])[:10]
    return hashlib.sha256("".join(file_sha256(f) for f in files).encode()).hexdigest()[:10]


def load_lm(folder: str | os.PathLike, device: str | torch.device = "cpu"):
    """(model in eval mode, tokenizer, MotionVocab, motion_vocab.json dict) from a model folder."""
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    folder = Path(folder)
    meta_path = folder / MOTION_VOCAB
    if not meta_path.exists():
        raise FileNotFoundError(f"{meta_path}: not a finished CLUTCH language-model folder")
    meta = json.loads(meta_path.read_text())
    vocab = MotionVocab.from_dict(meta["vocab"])
    tok = AutoTokenizer.from_pretrained(str(folder))
    check_motion_tokens(tok, vocab, str(folder))
    model = T5ForConditionalGeneration.from_pretrained(str(folder)).to(device).eval()
    if model.get_input_embeddings().num_embeddings < vocab.size:
        raise ValueError(f"{folder}: model has {model.get_input_embeddings().num_embeddings} embeddings, "
                         f"the tokenizer {vocab.size}: tokenizer and LM come from different runs")
    return model, tok, vocab, meta


class TrainingState:
    """Adapter for clutch_core.shift.checkpoint's training state: T5 ties its embeddings (one tensor under
    several names), which safetensors refuses; this saves each tensor once and restores the aliases."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def state_dict(self) -> dict[str, torch.Tensor]:
        seen, out = set(), {}
        for k, v in self.model.state_dict().items():
            if v.data_ptr() in seen:
                continue
            seen.add(v.data_ptr())
            out[k] = v
        return out

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.model.load_state_dict(sd, strict=False)
        own = self.model.state_dict()
        ptrs = {own[k].data_ptr() for k in sd}
        bad = [k for k in missing if own[k].data_ptr() not in ptrs] + list(unexpected)
        if bad:
            raise ValueError(f"training state does not fit the model: {bad[:5]}")
