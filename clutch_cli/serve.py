"""Serve the CLUTCH deployments (flows/deployments.py) to the Prefect API in PREFECT_API_URL.

Runs until interrupted; each `prefect deployment run FLOW/DEPLOYMENT` is executed by this
process in a subprocess. `python -m clutch_cli.serve` is the same as `clutch serve`.
"""
from __future__ import annotations

import os

from clutch_cli.deployments import load_deployments


def serve(names: list[str] | None = None, limit: int | None = None) -> None:
    """Register the deployments and execute their runs until interrupted."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from prefect import serve as prefect_serve

    prefect_serve(*load_deployments(names), limit=limit)


if __name__ == "__main__":
    serve()
