"""The text tokenizer of the language model: a user's (path or hub id), or one trained here.

`paper`: the tokenizer that comes with the base model (flan-t5-base), loaded with
AutoTokenizer; a hub id is downloaded only because the user named it.
`tiny`: a BPE model (through the `tokenizers` library; train_text_tokenizer says why not T5's
Unigram) trained offline on the training captions and the task templates, with T5's special
tokens (<pad> 0, </s> 1, <unk> 2) and sentinels <extra_id_0..N>, saved as an ordinary
transformers tokenizer folder.

Either way the motion tokens (clutch_core.lm.vocab) are then appended with add_tokens,
so every motion token has one id and is never split.
"""
from __future__ import annotations

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


def train_text_tokenizer(texts: Iterable[str], vocab_size: int, out: str | os.PathLike):
    """Train a BPE tokenizer on `texts` plus the task templates' own words, save it as a transformers folder.

    BPE, not T5's Unigram: on caption corpora the Unigram trainer of `tokenizers` keeps a few hundred
    pieces, most of them single characters, whatever vocab_size asks (217 of 800 on `clutch synth`
    captions: "The" became T, h, e), so captions ran 3-4x longer and the model wrote character soup.
    BPE merges every frequent word whole. Printable ASCII is in the alphabet, so an English prompt
    has no unknown character; training is single-threaded-deterministic (same captions, same ids:
    a resumed stage must see the same vocabulary, and a seed the same weights)."""
    import string

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from clutch_core.lm.tasks import templates

    special = ["<pad>", "</s>", "<unk>"] + [f"<extra_id_{i}>" for i in range(TEXT_SENTINELS)]
    words = [t for options in templates().values() for o in options for t in (o["input"], o["output"])]
    words = [w.replace("{", " ").replace("}", " ") for w in words] + [f"{x / 10:g} seconds" for x in range(1, 97)]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace("  ", " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False,
                                  initial_alphabet=list(string.printable.strip()) + ["▁"])
    tok.train_from_iterator(sorted(texts) + sorted(words), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", tok.token_to_id("</s>"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   additional_special_tokens=special[3:])
    Path(out).mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out))
    return fast


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
