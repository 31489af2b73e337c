"""The text tokenizer of the language model: a user's (path or hub id), or one trained here.

`paper`: the tokenizer that comes with the base model (flan-t5-base), loaded with
AutoTokenizer; a hub id is downloaded only because the user named it.
`tiny`: a Unigram model (the algorithm of T5's SentencePiece vocabulary, through the
`tokenizers` library) trained offline on the training captions, with T5's special
tokens (<pad> 0, </s> 1, <unk> 2) and sentinels <extra_id_0..N>, saved as an ordinary
transformers tokenizer folder.

Either way the motion tokens (clutch_core.lm.vocab) are then appended with add_tokens,
so every motion token has one id and is never split.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from clutch_core.lm.vocab import MotionVocab

TEXT_SENTINELS = 32  # <extra_id_i> of text span corruption (flan-t5 has 100; we use the first 32)


def sentinel_ids(tokenizer, n: int = TEXT_SENTINELS) -> list[int]:
    ids = tokenizer.convert_tokens_to_ids([f"<extra_id_{i}>" for i in range(n)])
    if any(i is None or i == tokenizer.unk_token_id for i in ids):
        raise ValueError("the text tokenizer has no T5 sentinels <extra_id_0>..; use a T5 tokenizer")
    return ids


def train_unigram(texts: Iterable[str], vocab_size: int, out: str | os.PathLike):
    """Train a Unigram tokenizer on `texts` and save it as a transformers tokenizer folder."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<pad>", "</s>", "<unk>"] + [f"<extra_id_{i}>" for i in range(TEXT_SENTINELS)]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace("  ", " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=special, unk_token="<unk>",
                                      shrinking_factor=0.75, max_piece_length=16, n_sub_iterations=2)
    tok.train_from_iterator(sorted(texts), trainer=trainer)
    # The trainer's result varies from run to run: scores differ in the last bits, ties come out
    # in any order, and near-tied pieces (single characters 1e-4 apart) swap scores. Rebuild the
    # model canonically, so the same captions always give the same ids (a resumed stage must see
    # the same vocabulary, and a seed the same weights).
    vocab = json.loads(tok.to_str())["model"]["vocab"]
    fixed = [(p, 0.0) for p in special] + canonical_scores([(p, sc) for p, sc in vocab if p not in special])
    tok.model = models.Unigram(fixed, unk_id=special.index("<unk>"), byte_fallback=False)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", tok.token_to_id("</s>"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   additional_special_tokens=special[3:])
    Path(out).mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out))
    return fast


def canonical_scores(vocab: list[tuple[str, float]], gap: float = 1e-3) -> list[tuple[str, float]]:
    """(piece, score) sorted by score, with scores rounded to 6 decimals and, within each run of
    scores closer than `gap` to their neighbour, handed out in piece order: two trainings that
    differ only by which near-tied piece got which score give the same vocabulary."""
    ranked = sorted(((p, round(sc, 6)) for p, sc in vocab), key=lambda x: (-x[1], x[0]))
    out: list[tuple[str, float]] = []
    k = 0
    while k < len(ranked):
        j = k + 1
        while j < len(ranked) and ranked[j - 1][1] - ranked[j][1] < gap:
            j += 1
        scores = [sc for _, sc in ranked[k:j]]
        out += list(zip(sorted(p for p, _ in ranked[k:j]), scores))
        k = j
    return out


def load_text_tokenizer(source: str | os.PathLike):
    """AutoTokenizer from a folder or a hub id (downloads only when a hub id is named and not cached)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(source))
    except Exception as e:  # a missing folder or an unreachable hub id: say which
        raise FileNotFoundError(f"text tokenizer {source!s}: cannot load ({type(e).__name__}: {e})") from e


def add_motion_tokens(tokenizer, vocab: MotionVocab) -> None:
    """Append the motion tokens; they must land exactly at vocab.base.. (checked)."""
    if len(tokenizer) != vocab.base:
        raise ValueError(f"text tokenizer has {len(tokenizer)} tokens, the motion vocabulary expects {vocab.base}")
    tokenizer.add_tokens(vocab.token_strings(), special_tokens=True)
    check_motion_tokens(tokenizer, vocab)


def check_motion_tokens(tokenizer, vocab: MotionVocab, where: str = "tokenizer") -> None:
    """The tokenizer holds the motion tokens at the ids the vocabulary says (else a mismatch)."""
    strings = vocab.token_strings()
    probe = [0, 1, 2, len(strings) - 1]
    ids = tokenizer.convert_tokens_to_ids([strings[i] for i in probe])
    if len(tokenizer) != vocab.size or ids != [vocab.base + i for i in probe]:
        raise ValueError(f"{where}: tokenizer of {len(tokenizer)} tokens does not match the motion vocabulary "
                         f"({vocab.size} tokens, motion from id {vocab.base}): tokenizer and LM come from different runs")
