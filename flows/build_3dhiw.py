"""build-3dhiw: egocentric videos -> clips with 3D hand motion and text -> Parquet shards.

Table of contents (each step's logic lives outside flows/):
  discover  specs -> videos with content ids            annotators.inputs
  plan      ledger: settings check, repair, batches     storage.resume
  batches   per batch (mapped): annotate each video     annotators.pipeline (retried if transient)
            -> one shard -> mark done                   annotators.batch
  finalize  duplicate check, dataset card              storage.resume, storage.card

Safe to kill at any moment and run again (see storage/resume.py); bad input is quarantined,
never retried; other errors are retried `retries` times, then the video is marked failed.
"""
from __future__ import annotations

import os
from typing import Optional

from prefect import flow, get_run_logger, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.runtime import flow_run
from prefect.states import Completed
from prefect.task_runners import ThreadPoolTaskRunner

from annotators.batch import BatchOutcome, run_batch
from clutch_core.video import BadVideoError
from annotators.inputs import VideoInput, discover_inputs, narration_table, segments_for
from flows.build_progress import QUARANTINED, BuildWatch
from flows.config import BuildConfig
from flows.params import takes_config
from storage.card import write_card
from storage.ledger import Ledger
from storage.resume import check_settings, count_clips, dataset_lock, plan_batches, reconcile_shards


class BuildFailed(RuntimeError):
    """Some videos failed after their retries; `summary` says which."""

    def __init__(self, summary: dict):
        self.summary = summary
        super().__init__(f"{summary['failed']} video(s) failed: {summary['failed_videos']}; "
                         "rerun with retry_failed=True (clutch build --retry-failed)")


def is_transient(task, task_run, state) -> bool:
    """retry_condition_fn: retry any error except bad input (BadVideoError)."""
    return not isinstance(state.result(raise_on_failure=False), BadVideoError)


@task(name="discover", cache_policy=NO_CACHE)
def discover(cfg: BuildConfig) -> list[VideoInput]:
    videos = discover_inputs(cfg.videos)
    get_run_logger().info("%d videos from %d input spec(s)", len(videos), len(cfg.videos))
    return videos


@task(name="plan", cache_policy=NO_CACHE)
def plan(cfg: BuildConfig, videos: list[VideoInput]) -> list[list[VideoInput]]:
    fingerprint, settings = cfg.settings()
    ledger = Ledger(cfg.out)
    check_settings(ledger, fingerprint, settings)
    ledger.register_many([(v.video_id, v.path) for v in videos], fingerprint)
    for vid, path in ledger.forget_superseded([(v.video_id, v.path) for v in videos]):
        get_run_logger().info("forgot %s (%s): the file holds other content now (it was still being copied)",
                              vid, path)
    repaired = reconcile_shards(ledger, cfg.out)
    p = plan_batches(ledger, [v.video_id for v in videos], cfg.batch_size,
                     retry_failed=cfg.retry_failed, include_quarantined=cfg.include_quarantined)
    by_id = {v.video_id: v for v in videos}
    skipped = {s: sum(1 for x in p.skipped.values() if x == s) for s in set(p.skipped.values())}
    get_run_logger().info("%d videos to build in %d batches; skipped %s; repaired %s",
                          p.num_videos, len(p.batches), skipped or "none", repaired)
    return [[by_id[i] for i in b] for b in p.batches]


@task(name="annotate-video", task_run_name="annotate-{video.name}", retry_condition_fn=is_transient,
      cache_policy=NO_CACHE, persist_result=False)
def annotate(video: VideoInput, cfg: BuildConfig, narrations: Optional[list] = None):
    """The video's VideoResult; bad input ends in state Quarantined (an expected outcome, not a failure)
    whose result is the BadVideoError."""
    from annotators.pipeline import annotate_video

    try:
        r = annotate_video(video.path, video.video_id, cfg.annotate_config(), narrations=narrations,
                           intrinsics=video.intrinsics)
    except BadVideoError as e:
        return Completed(name=QUARANTINED, message=str(e), data=e)
    steps = ", ".join(f"{k} {v:.2f}" for k, v in r.seconds_by_step.items())
    get_run_logger().info("%d frames (15 fps), %d clips in %.2f s; seconds by step: %s", r.num_frames,
                          len(r.rows), r.seconds, steps)
    return r


@task(name="build-batch", cache_policy=NO_CACHE, persist_result=False)
def build_batch(batch: list[VideoInput], cfg: BuildConfig) -> BatchOutcome:
    table = narration_table(cfg.narrations)
    retried = annotate.with_options(retries=cfg.retries, retry_delay_seconds=cfg.retry_delay_s)

    def annotate_one(v: VideoInput):
        result = retried(v, cfg, segments_for(v, table), return_state=True).result()  # raises its error
        if isinstance(result, BadVideoError):
            raise result  # run_batch quarantines it
        return result

    outcome = run_batch(cfg.out, batch, annotate_one)
    get_run_logger().info("batch %s: %d done, %d failed, %d quarantined, %d clips -> %s", outcome.key,
                          len(outcome.done), len(outcome.failed), len(outcome.quarantined), outcome.clips,
                          outcome.shard)
    for reason in outcome.quarantined.values():
        get_run_logger().warning("quarantined %s", reason)
    for why in outcome.skipped.values():
        get_run_logger().warning("skipped %s; the next build takes it", why)
    return outcome


@task(name="finalize", cache_policy=NO_CACHE)
def finalize(cfg: BuildConfig, videos: list[VideoInput], outcomes: list[BatchOutcome]) -> dict:
    clips = count_clips(cfg.out)
    if clips:
        write_card(cfg.out)
    ledger = Ledger(cfg.out)
    known = ledger.states([v.video_id for v in videos])
    # a file that changed under the build (still being copied) left the ledger: 'skipped'
    states = {v.video_id: known.get(v.video_id, "skipped") for v in videos}
    summary = {
        "out": cfg.out, "videos": len(videos), "built": sum(len(o.done) for o in outcomes),
        "clips_new": sum(o.clips for o in outcomes), "clips_total": clips,
        **{s: sum(1 for x in states.values() if x == s) for s in ("done", "failed", "quarantined")},
        "failed_videos": [v.path for v in videos if states[v.video_id] == "failed"],
        "quarantined_videos": [v.path for v in videos if states[v.video_id] == "quarantined"],
        "skipped_videos": [v.path for v in videos if states[v.video_id] == "skipped"],
        "dropped_clips": ledger.dropped_counts(),
    }
    get_run_logger().info("dataset %s: %d clips; this run's videos: %d done, %d failed, %d quarantined",
                          cfg.out, clips, summary["done"], summary["failed"], summary["quarantined"])
    return summary


@flow(name="build-3dhiw", task_runner=ThreadPoolTaskRunner(max_workers=2))
@takes_config(BuildConfig)
def build_3dhiw(cfg: BuildConfig) -> dict:
    """Build (or resume) the 3D-HIW dataset in `out` from videos, folders, globs or manifests."""
    from storage.remote import is_url, local_folder

    # a store URL (s3://...) builds in its local cache folder, which writes through to the store
    cfg = cfg.model_copy(update={"out": str(local_folder(cfg.out)) if is_url(cfg.out) else os.path.abspath(cfg.out)})
    cfg.annotate_config()  # a bad setting stops the build before any video is read
    with dataset_lock(cfg.out):
        found = discover(cfg)
        batches = plan(cfg, found)
        with make_task_runner(cfg) as runner:
            futures = runner.map(build_batch, {"batch": batches, "cfg": unmapped(cfg)})
            watch = BuildWatch(flow_run.get_id(), sum(len(b) for b in batches))
            while wait(futures, timeout=1.0).not_done:  # every batch finishes before an error of one is raised
                watch.poll()
            outcomes = futures.result()
            watch.finish(done=sum(len(o.done) for o in outcomes), failed=sum(len(o.failed) for o in outcomes),
                         quarantined=sum(len(o.quarantined) for o in outcomes),
                         clips=sum(o.clips for o in outcomes))
        summary = finalize(cfg, found, outcomes)
    if summary["failed"]:
        raise BuildFailed(summary)
    return summary


def make_task_runner(cfg: BuildConfig):
    """The runner for the batches: threads here, or a Dask / Ray cluster when installed."""
    if cfg.task_runner == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError:
            raise RuntimeError("task_runner='dask' needs prefect-dask: pip install 'clutch[dask]'") from None
        return DaskTaskRunner(cluster_kwargs={"n_workers": cfg.workers, "threads_per_worker": 1})
    if cfg.task_runner == "ray":
        try:
            from prefect_ray import RayTaskRunner
        except ImportError:
            raise RuntimeError("task_runner='ray' needs prefect-ray: pip install 'clutch[ray]'") from None
        return RayTaskRunner(init_kwargs={"num_cpus": cfg.workers})
    return ThreadPoolTaskRunner(max_workers=cfg.workers)

