"""`clutch view`: an interactive 3D viewer of clips and a text-to-hand-motion playground in the browser.

Built on viser (a Python 3D viewer served to the browser, with GUI controls; used by human- and
hand-motion projects): `serve` starts its server in background threads and returns a Served handle;
`stop()` ends it. docs/view.md tells what the page shows.
"""
from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

from clutch_core.view.app import Viewer

__all__ = ["Served", "Viewer", "serve", "target_kind"]


@dataclass
class Served:
    viewer: Viewer
    url: str
    mode: str  # "dataset" or "run"

    def stop(self) -> None:
        """Stop the page's threads and the server (viser's own shutdown notice is swallowed)."""
        self.viewer.close()
        with contextlib.redirect_stdout(io.StringIO()):
            self.viewer.server.stop()


def target_kind(target: str | os.PathLike) -> str:
    """"dataset" (holds shards/) or "run" (holds shift/); UsageError otherwise."""
    from clutch_core.usage import UsageError

    t = Path(target)
    if (t / "shards").is_dir():
        return "dataset"
    if (t / "shift").is_dir():
        return "run"
    if not t.exists():
        raise UsageError(f"{t}: no such folder (give a dataset or a run folder)")
    raise UsageError(f"{t}: not a dataset (no shards/ inside) and not a CLUTCH run (no shift/ inside); make a "
                     f"dataset with `clutch build VIDEOS --out {t}` or train a run with `clutch train DATASET --out {t}`")


def serve(target: str | os.PathLike, host: str = "127.0.0.1", port: int = 8080, dataset: str | None = None,
          where: str | None = None, mano_dir: str | None = None, stage: str | None = None,
          autoplay: bool = True) -> Served:
    """Start the viewer of a dataset, or of a run (optionally with a dataset) and return at once.

    Usage problems (a folder that is neither, a bad --where, a missing --mano-dir) raise UsageError
    before anything listens."""
    import logging

    import viser

    from clutch_core.usage import UsageError, check_dataset, check_mano_dir

    mode = target_kind(target)
    if mode == "dataset" and dataset is not None:
        raise UsageError("--dataset goes with a RUN target; the target is a dataset already")
    if dataset is not None:
        check_dataset(dataset)
    check_mano_dir(mano_dir)
    data = Path(target) if mode == "dataset" else (Path(dataset) if dataset else None)
    run = Path(target) if mode == "run" else None
    logging.getLogger("websockets").setLevel(logging.WARNING)  # one line per connection otherwise
    with contextlib.redirect_stdout(io.StringIO()):  # viser prints its own banner
        server = viser.ViserServer(host=host, port=port, label="CLUTCH", verbose=False)
    try:
        viewer = Viewer(server, data, run, where, mano_dir, stage, autoplay)
    except ValueError as e:
        with contextlib.redirect_stdout(io.StringIO()):
            server.stop()
        raise UsageError(str(e)) from None
    except BaseException:
        with contextlib.redirect_stdout(io.StringIO()):
            server.stop()
        raise
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return Served(viewer, f"http://{shown}:{server.get_port()}", mode)
