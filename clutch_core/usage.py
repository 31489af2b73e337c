"""Checks of what a user asks a trained run for, shared by `clutch generate` / `clutch caption` and
`clutch view`: one mistake gets one message, whether it was typed in a terminal or in the browser.

Each check raises UsageError (a ValueError) whose text is the message to show; the CLI turns it
into exit 2, the viewer shows it and keeps serving. Checks that need the model (text longer than
the model accepts, motion shapes) stay in clutch_core.lm.api, which raises with the same kind of
message.
"""
from __future__ import annotations

import math
import os
from pathlib import Path


class UsageError(ValueError):
    """A request the user can fix; the text says what to change."""


def check_run(run: str | os.PathLike) -> Path:
    """RUN is a folder with a trained tokenizer (shift/)."""
    run = Path(run)
    if not run.is_dir():
        raise UsageError(f"{run}: no such run folder")
    if not (run / "shift").is_dir():
        raise UsageError(f"{run}: not a CLUTCH run (no shift/ inside); train one with "
                         f"`clutch train DATASET --out {run}`")
    return run


def check_dataset(dataset: str | os.PathLike, flag: str = "--dataset") -> Path:
    """The one rule for a dataset argument: an existing folder holding shards/ or ledger.sqlite (what
    `clutch build` and `clutch synth` write). Anything else is a usage error naming the folder."""
    from storage.ledger import LEDGER_FILE
    from storage.writer import SHARDS_DIR

    d = Path(dataset)
    if not d.is_dir():
        raise UsageError(f"{flag} {d}: no such folder")
    if not (d / SHARDS_DIR).is_dir() and not (d / LEDGER_FILE).is_file():
        raise UsageError(f"{flag} {d}: not a dataset (no {SHARDS_DIR}/ or {LEDGER_FILE} inside); make one with "
                         f"`clutch build VIDEOS --out {d}` or `clutch synth --out {d} --clips N`")
    return d


def check_mano_dir(mano_dir: str | os.PathLike | None) -> None:
    """The folder of the user's MANO files, when one is given."""
    if mano_dir is not None and not Path(mano_dir).exists():
        raise UsageError(f"--mano-dir {mano_dir}: no such folder")


def check_language_model(run: str | os.PathLike, stage: str | None = None) -> str:
    """RUN has a finished language-model stage (the one asked for, or any); returns its name."""
    from clutch_core.lm.api import lm_dir

    check_run(run)
    try:
        return lm_dir(run, stage)[0]
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None


def check_generate(run: str | os.PathLike, text: str, seconds: float | None = None, samples: int = 1,
                   stage: str | None = None) -> None:
    """Everything about a text-to-motion request that can be checked before loading the model."""
    from clutch_core.lm.api import steps_for

    check_run(run)
    if samples < 1:
        raise UsageError(f"--samples must be >= 1, got {samples}")
    if not str(text).strip():
        raise UsageError("TEXT is empty: say what the hands should do")
    if seconds is not None and not math.isfinite(float(seconds)):
        raise UsageError(f"seconds must be a finite number, got {seconds}")
    try:
        steps_for(seconds, 1)
    except ValueError as e:
        raise UsageError(str(e)) from None
    check_language_model(run, stage)
