"""A small synthetic corpus and a small tokenizer config shared by the tests/test_shift_*.py files."""
from __future__ import annotations

from pathlib import Path

SMALL = dict(width=32, code_dim=32, codes=64, batch=8, window=32, warmup_steps=2, log_every=1)


def small_dataset(tmp_path_factory) -> Path:
    """40 synthetic clips, written once per test session (every file asking gets the same folder)."""
    from clutch_core.synth import SynthConfig, write_corpus

    d = tmp_path_factory.getbasetemp() / "shift_synth40"
    if not (d / "shards").is_dir():
        write_corpus(d, SynthConfig(clips=40, seed=3))
    return d
