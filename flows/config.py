"""The typed configs of the flows: the one definition of every option of build-3dhiw and train-clutch.

Each field is, under the same name: a flow parameter (flows.params derives the flows'
signatures and the deployments' parameter schemas from these models), a `clutch build` /
`clutch train` flag (underscore -> dash, help from the description; clutch_cli.options),
and a row of the option tables in docs/build.md and docs/shift.md (checked by a test).
"""
from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from clutch_core.training import AMP_CHOICES, AMP_HELP


class FlowConfig(BaseModel):
    """Shared behaviour: unknown fields are refused; `positional` fields are CLI arguments, not flags."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    positional: ClassVar[tuple[str, ...]] = ()
    metavars: ClassVar[dict[str, str]] = {}
    short_flags: ClassVar[dict[str, str]] = {}  # a second, shorter flag of a field (CLI only)


class BuildConfig(FlowConfig):
    """build-3dhiw: videos -> clips with 3D hand motion and text -> Parquet shards in `out`."""

    positional: ClassVar[tuple[str, ...]] = ("videos",)
    short_flags: ClassVar[dict[str, str]] = {"annotate": "--set"}
    metavars: ClassVar[dict[str, str]] = {"out": "DATASET", "annotate": "KEY=VALUE", "batch_size": "N",
                                          "workers": "N", "narrations": "FILE", "retry_delay_s": "S"}

    videos: list[str] = Field(description="video files, folders, globs, or manifest tables (.csv/.parquet with "
                                          "a 'path' column, optional video_id, fx, fy, cx, cy)")
    out: str = Field(description="dataset folder (created if missing)")
    batch_size: int = Field(4, ge=1, description="videos per shard")
    retry_failed: bool = Field(False, description="also rebuild videos a previous run marked failed")
    include_quarantined: bool = Field(False, description="also rebuild videos quarantined as bad input")
    narrations: Optional[str] = Field(None, description="EPIC-KITCHENS-style CSV or Ego4D-style JSON narrations")
    tracker: Optional[str] = Field(None, description="hand tracker entry point (torch.hub); default: "
                                                     "mediapipe_hands")
    tracker_repo: Optional[str] = Field(None, description="torch.hub repo or folder of the tracker "
                                                          "(default: this project)")
    mano_dir: Optional[str] = Field(None, description="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl: fit MANO "
                                                      "to the tracked joints (pose_convention mano; slower); "
                                                      "checked before the build starts")
    vlm: Optional[str] = Field(None, description="transformers VLM path or hub id for captions (default: no VLM)")
    annotate: dict[str, Any] = Field(default_factory=dict, description="other annotator settings "
                                     "(annotators.pipeline.AnnotateConfig fields; CLI: KEY=VALUE, VALUE is JSON "
                                     "or text, repeatable)")
    task_runner: Literal["thread", "dask", "ray"] = Field(
        "thread", description="where batches run (dask/ray need the clutch[dask] / clutch[ray] extras)")
    workers: int = Field(2, ge=1, description="batches in parallel")
    retries: int = Field(2, ge=0, description="extra attempts of a video after a transient error")
    retry_delay_s: float = Field(5.0, ge=0, description="seconds between attempts")
    progress: bool = Field(True, description="draw a progress bar on the terminal (clutch build)")

    @field_validator("videos")
    @classmethod
    def _some_videos(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("give at least one video, folder, glob or manifest")
        return v

    def settings(self) -> tuple[str, dict[str, Any]]:
        """(fingerprint, output-changing settings) of the annotators, as stored in the dataset."""
        acfg = self.annotate_config()
        return acfg.fingerprint(), acfg.output_settings()

    def annotate_config(self):
        """The annotators' settings: tracker, tracker_repo, mano_dir, vlm and those in `annotate`, by the same names.
        Raises ValueError naming an unknown or fixed setting (e.g. fps), before any video is read."""
        from annotators.pipeline import AnnotateConfig

        named = {k: getattr(self, k) for k in ANNOTATOR_FIELDS if getattr(self, k) is not None}
        twice = sorted(named.keys() & self.annotate.keys())
        if twice:
            raise ValueError(f"annotate: {twice} given twice (also as their own option)")
        if self.mano_dir:  # a missing model is the user's to fix, not a transient error to retry
            from clutch_core.hands.mano import find_mano_file

            for side in ("left", "right"):
                find_mano_file(self.mano_dir, side)
        try:
            return AnnotateConfig.from_settings({**named, **self.annotate})
        except (TypeError, ValueError) as e:
            raise ValueError(f"annotate: {e}") from None


ANNOTATOR_FIELDS = ("tracker", "tracker_repo", "mano_dir", "vlm")  # BuildConfig fields that are AnnotateConfig's


def _train_choices() -> tuple[tuple[str, ...], tuple[str, ...]]:
    from clutch_core.shift.presets import PRESETS, TOKENIZERS  # torch-free: `clutch build` starts fast

    return tuple(PRESETS), tuple(TOKENIZERS)


_PRESETS, _TOKENIZERS = _train_choices()


class TrainClutchConfig(FlowConfig):
    """train-clutch: the training stages on a 3D-HIW dataset, writing into the run folder `out`."""

    positional: ClassVar[tuple[str, ...]] = ("dataset",)
    metavars: ClassVar[dict[str, str]] = {"out": "RUN", "stages": "STAGE,...", "max_steps": "N", "batch": "N",
                                          "ckpt_every": "N", "threads": "N"}

    dataset: str = Field(description="dataset folder (holds shards/)")
    out: str = Field(description="run folder")
    stages: list[str] = Field(default_factory=lambda: list(_default_stages()),
                              description="stages to run, in pipeline order (CLI: comma-separated); "
                                          "see the stage table in docs/shift.md")
    preset: Literal[_PRESETS] = Field("tiny", description="tiny: CPU-sized (its wall time on 2 cores: BENCHMARKS.md); "  # type: ignore[valid-type]
                                                          "small: the tiny models trained longer (under an hour on "
                                                          "that CPU); paper: the paper's scale, for GPUs")
    tokenizer: Literal[_TOKENIZERS] = Field("shift", description="the tokenizer the shift stage trains (vqvae: "  # type: ignore[valid-type]
                                                                 "one VQ-VAE over the whole frame, the baseline)")
    max_steps: Optional[int] = Field(None, ge=1, description="training steps (default: the preset's)")
    batch: Optional[int] = Field(None, ge=1, description="windows per step (default: the preset's)")
    ckpt_every: Optional[int] = Field(None, ge=1, description="checkpoint every N steps (default: the preset's)")
    seed: Optional[int] = Field(None, description="random seed (default 0)")
    amp: Optional[Literal[AMP_CHOICES]] = Field(None, description=AMP_HELP)  # type: ignore[valid-type]
    threads: Optional[int] = Field(None, ge=1, description="CPU threads for torch (default: OMP_NUM_THREADS "
                                                            "when set, else the cores this process may use; idle "
                                                            "threads sleep: OMP_WAIT_POLICY=PASSIVE unless set)")
    lm_base: Optional[str] = Field(None, description="base T5 of the language-model stages: a folder or hub id "
                                                     "(paper preset: google/flan-t5-base, downloaded only when "
                                                     "named; tiny: built from a config, nothing downloaded)")
    lm_batch: Optional[int] = Field(None, ge=1, description="examples per language-model step (default: the "
                                                            "preset's)")
    lm_rerank: Optional[int] = Field(None, ge=1, description="text-to-motion candidates per text that decoding "
                                                             "reranks by the model's own motion-to-text, recorded with "
                                                             "the model (generate and the eval stage use it; 1: off; "
                                                             "default: the preset's, 8 in tiny and small)")
    lm_steps: Optional[list[int]] = Field(None, description="steps of the pretrain, refine and instruct stages "
                                                            "(CLI: comma-separated, e.g. 1200,300,300; default: the "
                                                            "preset's; max_steps still caps each)")
    eval_split: Optional[Literal["train", "val", "test", "all"]] = Field(
        None, description="clips the eval stage scores (default: val; test only with final)")
    final: bool = Field(False, description="the final reading: the eval stage scores the test split (read it "
                                           "once per preset and seed, after every choice was made on val)")
    progress: bool = Field(True, description="draw progress bars on the terminal")

    @model_validator(mode="after")
    def _test_only_when_final(self) -> "TrainClutchConfig":
        from clutch_core.eval.data import check_split

        check_split(self.eval_split, self.final)  # refused before any stage trains
        return self

    @field_validator("stages", mode="before")
    @classmethod
    def _known_stages(cls, v: Any) -> list[str]:
        from flows.stages import STAGES

        items = [s.strip() for s in (v.split(",") if isinstance(v, str) else v) if str(s).strip()]
        unknown = [s for s in items if s not in STAGES]
        if unknown or not items:
            raise ValueError(f"unknown or no stage(s) {unknown}; available: {', '.join(STAGES)}")
        return [s for s in STAGES if s in items]  # pipeline order

    def shift_config(self):
        """The tokenizer trainer's config (clutch_core.shift.train.TrainConfig) from the preset and overrides."""
        from clutch_core.shift.train import preset_config

        return preset_config(self.preset, tokenizer=self.tokenizer, max_steps=self.max_steps, batch=self.batch,
                             ckpt_every=self.ckpt_every, seed=self.seed, amp=self.amp)

    def lm_config(self):
        """The language-model stages' config (clutch_core.lm.config.LMConfig) from the preset and overrides."""
        from clutch_core.lm.config import preset_config

        steps = {}
        if self.lm_steps is not None:
            if len(self.lm_steps) != 3 or min(self.lm_steps) < 1:
                raise ValueError(f"lm_steps: give 3 positive step counts (pretrain, refine, instruct), got {self.lm_steps}")
            steps = dict(zip(("pretrain_steps", "refine_steps", "instruct_steps"), self.lm_steps))
        return preset_config(self.preset, base=self.lm_base, batch=self.lm_batch, max_steps=self.max_steps,
                             ckpt_every=self.ckpt_every, seed=self.seed, amp=self.amp, rerank=self.lm_rerank, **steps)


def _default_stages() -> tuple[str, ...]:
    from flows.stages import DEFAULT_STAGES

    return DEFAULT_STAGES
