"""`clutch view`: the interactive 3D viewer and text-to-motion playground, served to the browser."""
from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "view", help="interactive 3D viewer of a dataset's clips, or a text-to-motion playground of a run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve a page to the browser (viser): both hands in 3D, turnable, with a timeline (play, "
                    "pause, scrub).\n\n"
                    "DATASET: a clip picker filtered with SQL over the clips view (--where and a text box), the "
                    "source video frame with the 2D keypoints when the video is reachable, the clip's captions and "
                    "quality fields.\n"
                    "RUN: a playground: text, seconds, samples and seed, Generate (samples side by side), Caption "
                    "(of what is on screen), Download (.npz); with --dataset, the clip picker too.\n\n"
                    "Prints the URL and serves until Ctrl-C. Bad input on the page (empty text, seconds out of "
                    "range, a run without a language model) is shown there with the message `clutch generate` "
                    "gives, and the server keeps serving.",
        epilog='examples: clutch view runs/3dhiw --where "quality.presence_left > 0.5"\n'
               "          clutch view runs/run1 --dataset runs/3dhiw --port 8081")
    p.add_argument("target", type=Path, metavar="DATASET|RUN", help="dataset folder (holds shards/) or run folder "
                                                                    "(holds shift/)")
    p.add_argument("--dataset", type=Path, help="with a RUN: also pick and caption this dataset's clips")
    p.add_argument("--where", help='SQL filter of the clip picker, e.g. "quality.presence_left > 0.5" or '
                                   "\"clip_id IN (SELECT clip_id FROM captions WHERE text ILIKE '%%cup%%')\"")
    p.add_argument("--mano-dir", help="folder with MANO_LEFT.pkl / MANO_RIGHT.pkl: MANO meshes instead of skeletons")
    p.add_argument("--stage", choices=["pretrain", "refine", "instruct"],
                   help="language-model stage of RUN (default: the newest finished one)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                                                       "only; 0.0.0.0 serves the network)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; the next free one when taken)")
    p.set_defaults(func=_view)


def _view(a) -> int:
    from clutch_core.view import serve
    from storage.integrity import DamagedFileError

    try:
        served = serve(a.target, a.host, a.port, a.dataset, a.where, a.mano_dir, a.stage)
    except DamagedFileError as e:
        print(f"clutch view: error: damaged shard {e}", file=sys.stderr)
        return 1
    what = f"dataset {a.target}" if served.mode == "dataset" else \
        f"run {a.target}" + (f" with dataset {a.dataset}" if a.dataset else "")
    print(f"clutch view: {what} at {served.url} (Ctrl-C stops)", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop ends it as cleanly as Ctrl-C
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        served.stop()
    print("clutch view: stopped", flush=True)
    return 0


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt
