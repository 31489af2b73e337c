"""`clutch build` (run build-3dhiw here) and `clutch serve` (serve it as a Prefect deployment).

Exit status of `clutch build`: 0 every given video is done; 1 some video failed
(rerun with --retry-failed) or the build stopped on an error; 2 a usage error (bad path,
other settings than the dataset's, dataset busy); 3 nothing failed but some videos are
quarantined as bad input (see `clutch status DATASET`).
"""
from __future__ import annotations

import argparse
import json
import threading
import time

from clutch_cli import CliError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_QUARANTINED = 0, 1, 2, 3


def register(sub) -> None:
    p = sub.add_parser(
        "build", help="build (or resume) a 3D-HIW dataset from egocentric videos",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the build-3dhiw Prefect flow in this process: videos -> clips -> 3D hand motion -> "
                    "captions -> Parquet shards in --out. Rerunning the same command resumes: only videos "
                    "not done are built.",
        epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("videos", nargs="+", metavar="VIDEOS",
                   help="video files, folders, globs, or manifest tables (.csv/.parquet with a 'path' column, "
                        "optional video_id, fx, fy, cx, cy)")
    p.add_argument("--out", required=True, metavar="DATASET", help="dataset folder (created if missing)")
    p.add_argument("--batch-size", type=int, default=4, metavar="N", help="videos per shard (default 4)")
    p.add_argument("--retry-failed", action="store_true", help="also rebuild videos a previous run marked failed")
    p.add_argument("--include-quarantined", action="store_true",
                   help="also rebuild videos quarantined as bad input")
    p.add_argument("--narrations", metavar="FILE", help="EPIC-KITCHENS-style CSV or Ego4D-style JSON narrations")
    p.add_argument("--tracker", help="hand tracker entry point (torch.hub); default: the annotators' default")
    p.add_argument("--tracker-repo", help="torch.hub repo or folder of the tracker (default: this project)")
    p.add_argument("--mano-dir", help="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl (fit MANO when given)")
    p.add_argument("--vlm", help="transformers VLM path or hub id for captions (default: no VLM)")
    p.add_argument("--set", dest="annotate", action="append", default=[], metavar="KEY=VALUE",
                   help="another annotator setting (AnnotateConfig field; VALUE is JSON or text); repeatable")
    p.add_argument("--task-runner", choices=("thread", "dask", "ray"), default="thread",
                   help="where batches run (dask/ray need the clutch[dask] / clutch[ray] extras)")
    p.add_argument("--workers", type=int, default=2, metavar="N", help="batches in parallel (default 2)")
    p.add_argument("--retries", type=int, default=2, help="extra attempts after a transient error (default 2)")
    p.add_argument("--retry-delay", type=float, default=5.0, metavar="S", help="seconds between attempts")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_build)

    s = sub.add_parser(
        "serve", help="serve the build-3dhiw (and other) deployments to the Prefect API",
        description="Register the deployments (e.g. build-3dhiw/local) with the Prefect server in "
                    "PREFECT_API_URL and execute their runs until interrupted. Start a server first with "
                    "`prefect server start`; then `prefect deployment run build-3dhiw/local "
                    "--param videos='[\"/abs/video.mp4\"]' --param out=/abs/dataset --watch`.")
    s.add_argument("--only", action="append", metavar="FLOW/DEPLOYMENT", help="serve only these (repeatable)")
    s.add_argument("--limit", type=int, help="most flow runs executed at once")
    s.set_defaults(func=run_serve)


def _parse_settings(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--set {item!r}: use KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def run_build(args) -> int:
    import logging
    import os
    from pathlib import Path

    from flows.config import BuildConfig

    params = dict(videos=list(args.videos), out=str(Path(args.out).resolve()), batch_size=args.batch_size,
                  retry_failed=args.retry_failed, include_quarantined=args.include_quarantined,
                  narrations=args.narrations, tracker=args.tracker, tracker_repo=args.tracker_repo,
                  mano_dir=args.mano_dir, vlm=args.vlm, annotate=_parse_settings(args.annotate),
                  task_runner=args.task_runner, workers=args.workers, retries=args.retries,
                  retry_delay_s=args.retry_delay)
    from annotators.inputs import check_specs

    try:  # usage errors before a Prefect server starts
        check_specs(args.videos)
        cfg = BuildConfig(**{**params, "videos": tuple(params["videos"])})
        cfg.annotate_config()
    except (ValueError, TypeError, FileNotFoundError) as e:
        raise CliError(str(e)) from None
    _check_dataset(cfg)

    _quiet_native_logs(args)
    # The temporary Prefect server can take long to start on a busy machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from flows.build_3dhiw import build_3dhiw
    from flows.temp_server import temporary_server

    with temporary_server():  # dies with this process, even on SIGKILL (Linux)
        bar = None if args.no_progress else _ProgressBar()
        try:
            state = build_3dhiw(**params, return_state=True)
        finally:
            if bar:
                bar.close()
        return _exit_code(state)


def _quiet_native_logs(args) -> None:
    """MediaPipe's native INFO/WARNING lines off the terminal, unless `clutch -v`."""
    import os

    from annotators import native_log

    if getattr(args, "verbose", False):
        os.environ[native_log.ENV] = "1"
    native_log.install()


def _check_dataset(cfg) -> None:
    """Refuse other settings or a busy dataset up front (the flow checks again under its lock)."""
    from pathlib import Path

    from storage.ledger import LEDGER_FILE, Ledger
    from storage.resume import DatasetBusy, SettingsMismatch, check_settings, dataset_lock

    try:
        with dataset_lock(cfg.out):
            if (Path(cfg.out) / LEDGER_FILE).exists():
                check_settings(Ledger(cfg.out), *cfg.settings())
    except (DatasetBusy, SettingsMismatch) as e:
        raise CliError(str(e)) from None


def _exit_code(state) -> int:
    from annotators.inputs import InputError
    from flows.build_3dhiw import BuildFailed
    from storage.resume import DatasetBusy, SettingsMismatch

    if state.is_completed():
        s = state.result()
        print(f"{s['out']}: {s['clips_total']} clips; videos done {s['done']}, failed {s['failed']}, "
              f"quarantined {s['quarantined']} (this run built {s['built']}, {s['clips_new']} new clips)")
        for p in s["quarantined_videos"]:
            print(f"  quarantined: {p}")
        return EXIT_QUARANTINED if s["quarantined"] else EXIT_OK
    exc = state.result(raise_on_failure=False)
    if isinstance(exc, BuildFailed):
        print(f"clutch build: {exc}")
        return EXIT_FAILED
    if isinstance(exc, (InputError, SettingsMismatch, DatasetBusy)):
        raise CliError(str(exc))
    print(f"clutch build: the build stopped: {exc!r}")
    return EXIT_FAILED


class _ProgressBar:
    """Draws annotators.batch.PROGRESS (videos, clips, frames/s, ETA) from a background thread."""

    def __init__(self, period_s: float = 0.5):
        from tqdm import tqdm

        from annotators.batch import PROGRESS

        # A build hung here on tqdm's default lock (it includes a multiprocessing semaphore);
        # one bar drawn by one process needs only a thread lock.
        tqdm.set_lock(threading.RLock())
        tqdm.monitor_interval = 0
        self._progress, self._period = PROGRESS, period_s
        self._bar = tqdm(total=0, unit="video", desc="build-3dhiw", dynamic_ncols=True)
        self._stop = threading.Event()
        self._t0 = None
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._period):
            self._draw()

    def _draw(self, refresh: bool = True) -> None:
        s = self._progress.snapshot()
        if s["total"] and self._t0 is None:
            self._t0 = time.monotonic()
        finished = s["done"] + s["failed"] + s["quarantined"]
        self._bar.total = s["total"]
        self._bar.n = finished
        fps = s["frames"] / max(1e-6, time.monotonic() - self._t0) if self._t0 else 0.0
        self._bar.set_postfix({"failed": s["failed"], "quarantined": s["quarantined"], "clips": s["clips"],
                               "frames/s": f"{fps:.1f}"}, refresh=False)
        if refresh:
            self._bar.refresh()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._draw(refresh=False)  # close() draws the final state once
        self._bar.close()


def run_serve(args) -> int:
    from clutch_cli.serve import serve

    _quiet_native_logs(args)  # flow runs are child processes: they write to this fd 2

    try:
        serve(args.only, limit=args.limit)
    except ValueError as e:
        raise CliError(str(e)) from None
    return EXIT_OK
