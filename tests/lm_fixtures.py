"""A tiny trained SHIFT run with tokens, and a tiny LM config, shared by the tests/test_lm_*.py files."""
from __future__ import annotations

import shutil
from pathlib import Path

from shift_fixtures import SMALL, small_dataset

# a T5 small enough for a few CPU steps per test
LM_SMALL = dict(text_vocab=200, d_model=32, d_ff=64, layers=1, heads=2, d_kv=16, batch=4, warmup_steps=2,
                log_every=1, ckpt_every=2, eval_clips=8, dropout=0.1)


def shift_run(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset, run) with RUN/shift trained a few steps and the dataset tokenized; made once per session."""
    from clutch_core.shift.tokenize import tokenize_dataset
    from clutch_core.shift.train import preset_config, train_tokenizer

    dataset = small_dataset(tmp_path_factory)
    run = tmp_path_factory.getbasetemp() / "lm_shift_run"
    if not (run / "shift" / "metrics.json").exists():
        train_tokenizer(dataset, run, preset_config("tiny", max_steps=6, **SMALL), progress=False)
        tokenize_dataset(run, dataset, progress=False)
    return dataset, run


def copy_run(dataset: Path, run: Path, dest: Path) -> Path:
    """A fresh run folder holding the trained SHIFT of `run`, with its own tokens of the dataset."""
    from clutch_core.shift.tokenize import tokenize_dataset

    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(run / "shift", dest / "shift")
    tokenize_dataset(dest, dataset, progress=False)
    return dest
