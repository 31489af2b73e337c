"""Typed settings of the build-3dhiw flow (one object, built from the flow's parameters)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

TASK_RUNNERS = ("thread", "dask", "ray")


@dataclass(frozen=True)
class BuildConfig:
    """Everything a build needs; `annotate_config()` holds the output-changing part."""

    videos: tuple[str, ...]
    out: str
    batch_size: int = 4  # videos per shard
    retry_failed: bool = False  # rebuild videos a previous run marked failed
    include_quarantined: bool = False  # rebuild videos quarantined as bad input
    narrations: str | None = None  # EPIC-style CSV or Ego4D-style JSON
    tracker: str | None = None  # torch.hub entry point; None = the annotators' default
    tracker_repo: str | None = None  # torch.hub repo or folder; None = this project's hubconf.py
    mano_dir: str | None = None  # folder with MANO_RIGHT.pkl / MANO_LEFT.pkl
    vlm: str | None = None  # transformers model path or hub id for VLM captions
    annotate: dict[str, Any] = field(default_factory=dict)  # other AnnotateConfig fields
    task_runner: str = "thread"  # thread | dask | ray
    workers: int = 2  # batches in parallel
    retries: int = 2  # extra attempts of a video after a transient error
    retry_delay_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.videos:
            raise ValueError("build-3dhiw: give at least one video, folder, glob or manifest")
        if self.batch_size < 1 or self.workers < 1 or self.retries < 0:
            raise ValueError("build-3dhiw: batch_size and workers must be >= 1, retries >= 0")
        if self.task_runner not in TASK_RUNNERS:
            raise ValueError(f"build-3dhiw: task_runner must be one of {TASK_RUNNERS}, got {self.task_runner!r}")

    def settings(self) -> tuple[str, dict[str, Any]]:
        """(fingerprint, output-changing settings) of the annotators, as stored in the dataset."""
        acfg = self.annotate_config()
        return acfg.fingerprint(), acfg.output_settings()

    def annotate_config(self):
        """The annotators' settings (their fingerprint is stored in the dataset)."""
        from annotators.pipeline import AnnotateConfig

        names = {f.name for f in dataclasses.fields(AnnotateConfig)}
        given = {"tracker_entrypoint": self.tracker, "tracker_repo": self.tracker_repo,
                 "mano_dir": self.mano_dir, "vlm_model": self.vlm}
        opts = {k: v for k, v in given.items() if v is not None} | dict(self.annotate)
        unknown = sorted(set(opts) - names)
        if unknown:
            raise ValueError(f"build-3dhiw: unknown annotator setting(s) {unknown}; known: {sorted(names)}")
        if self.mano_dir:  # a missing model is the user's to fix, not a transient error to retry
            from clutch_core.hands.mano import find_mano_file

            for side in ("left", "right"):
                find_mano_file(self.mano_dir, side)
        return AnnotateConfig(**opts)
