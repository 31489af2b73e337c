"""`clutch serve`: serve the CLUTCH deployments (clutch_cli/deployments.py) to the Prefect API in PREFECT_API_URL.

Runs until interrupted; each `prefect deployment run FLOW/DEPLOYMENT` is executed by this
process in a subprocess. `python -m clutch_cli.serve` is the same as `clutch serve`.
"""
from __future__ import annotations

import os

from clutch_cli import CliError
from clutch_cli.deployments import load_deployments


def register(sub) -> None:
    s = sub.add_parser(
        "serve", help="serve the build-3dhiw and train-clutch deployments to the Prefect API",
        description="Register the deployments (build-3dhiw/local, train-clutch/local) with the Prefect server in "
                    "PREFECT_API_URL and execute their runs until interrupted. Start a server first with "
                    "`prefect server start`; then `prefect deployment run build-3dhiw/local "
                    "--param videos='[\"/abs/video.mp4\"]' --param out=/abs/dataset --watch`.")
    s.add_argument("--only", action="append", metavar="FLOW/DEPLOYMENT", help="serve only these (repeatable)")
    s.add_argument("--limit", type=int, help="most flow runs executed at once")
    s.set_defaults(func=run_serve)


def serve(names: list[str] | None = None, limit: int | None = None) -> None:
    """Register the deployments and execute their runs until interrupted."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from prefect import serve as prefect_serve

    prefect_serve(*load_deployments(names), limit=limit)


def run_serve(args) -> int:
    from clutch_cli.build import quiet_native_logs

    quiet_native_logs(args)  # flow runs are child processes: they write to this fd 2
    try:
        serve(args.only, limit=args.limit)
    except ValueError as e:
        raise CliError(str(e)) from None
    return 0


if __name__ == "__main__":
    serve()
