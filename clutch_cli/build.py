"""`clutch build`: run build-3dhiw here (`clutch serve`, in clutch_cli/serve.py, serves it as a deployment).

Exit status of `clutch build`: 0 every given video is done; 1 some video failed
(rerun with --retry-failed) or the build stopped on an error; 2 a usage error (bad path,
other settings than the dataset's, dataset busy); 3 nothing failed but some videos are
quarantined as bad input (see `clutch status DATASET`).
"""
from __future__ import annotations

import argparse
import threading

from clutch_cli import CliError
from clutch_cli.options import add_config_arguments, params_from_args
from flows.config import BuildConfig

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_QUARANTINED = 0, 1, 2, 3


def register(sub) -> None:
    p = sub.add_parser(
        "build", help="build (or resume) a 3D-HIW dataset from egocentric videos",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the build-3dhiw Prefect flow in this process: videos -> clips -> 3D hand motion -> "
                    "captions -> Parquet shards in --out. Rerunning the same command resumes: only videos "
                    "not done are built.",
        epilog=__doc__.split("\n\n", 1)[1])
    add_config_arguments(p, BuildConfig)
    p.set_defaults(func=run_build)


def run_build(args) -> int:
    import logging
    import os
    from pathlib import Path

    params = params_from_args(args, BuildConfig)
    from storage.remote import is_url, local_folder

    out = params["out"]  # a store URL builds in its local cache folder, which writes through to the store
    params["out"] = str(local_folder(out) if is_url(out) else Path(out).resolve())
    from annotators.inputs import check_specs

    try:  # usage errors before a Prefect server starts
        check_specs(params["videos"])
        cfg = BuildConfig(**params)
        cfg.annotate_config()
    except (ValueError, TypeError, FileNotFoundError) as e:
        raise CliError(str(e)) from None
    _check_dataset(cfg)

    from flows import temp_server

    # the temporary Prefect server starts now and imports while this process does (BENCHMARKS.md, "Start-up")
    started = temp_server.start()
    quiet_native_logs(args)
    # The temporary Prefect server can take long to start on a busy machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from flows.build_3dhiw import build_3dhiw

    from clutch_cli.quiet import hide_server_links

    hide_server_links()
    if cfg.task_runner == "thread":  # the tracker loads in this process: load it while the server starts
        from annotators.pipeline import prewarm_in_background

        prewarm_in_background(cfg.annotate_config())
    with temp_server.temporary_server(started):  # dies with this process, even on SIGKILL (Linux)
        bar = _ProgressBar() if cfg.progress else None
        try:
            state = build_3dhiw(**params, return_state=True)
        finally:
            if bar:
                bar.close()
        return _exit_code(state)


def quiet_native_logs(args) -> None:
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
    import errno

    from annotators.inputs import InputError
    from flows.build_3dhiw import BuildFailed
    from storage.resume import DatasetBusy, SettingsMismatch

    if state.is_completed():
        s = state.result()
        print(f"{s['out']}: {s['clips_total']} clips; videos done {s['done']}, failed {s['failed']}, "
              f"quarantined {s['quarantined']} (this run built {s['built']}, {s['clips_new']} new clips)")
        for p in s["quarantined_videos"]:
            print(f"  quarantined: {p}")
        for p in s.get("skipped_videos", ()):
            print(f"  skipped, still being written: {p} (the next build takes it)")
        return EXIT_QUARANTINED if s["quarantined"] else EXIT_OK
    exc = state.result(raise_on_failure=False)
    if isinstance(exc, BuildFailed):
        print(f"clutch build: {exc}")
        return EXIT_FAILED
    if isinstance(exc, (InputError, SettingsMismatch, DatasetBusy)):
        raise CliError(str(exc))
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:  # a full disk: the message says what to do
        print(f"clutch build: the build stopped: {exc}")
    else:
        print(f"clutch build: the build stopped: {exc!r}")
    return EXIT_FAILED


class _ProgressBar:
    """Draws flows.build_progress.latest() (videos by state, rate, ETA) from a background thread: counts
    taken from Prefect's task states, so the bar advances under the thread, Dask and Ray runners alike."""

    def __init__(self, period_s: float = 0.5):
        from tqdm import tqdm

        from flows.build_progress import latest

        # A build hung here on tqdm's default lock (it includes a multiprocessing semaphore);
        # one bar drawn by one process needs only a thread lock.
        tqdm.set_lock(threading.RLock())
        tqdm.monitor_interval = 0
        self._latest, self._period = latest, period_s
        self._bar = tqdm(total=0, unit="video", desc="build-3dhiw", dynamic_ncols=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._period):
            self._draw()

    def _draw(self, refresh: bool = True) -> None:
        c = self._latest()
        self._bar.total = c.total
        self._bar.n = c.finished
        post = {"failed": c.failed, "quarantined": c.quarantined}
        if c.clips is not None:
            post["clips"] = c.clips
        self._bar.set_postfix(post, refresh=False)
        if refresh:
            self._bar.refresh()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._draw(refresh=False)  # close() draws the final state once
        self._bar.close()
