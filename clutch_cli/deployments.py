"""The deployments `clutch serve` offers: one row per deployment (append new flows here).

Each row is (flow as "module:attribute", deployment name); a deployment is run as
`prefect deployment run <flow name>/<deployment name>`, e.g. build-3dhiw/local.
"""
from __future__ import annotations

import importlib

DEPLOYMENTS: list[tuple[str, str]] = [
    ("flows.build_3dhiw:build_3dhiw", "local"),
    ("flows.train_clutch:train_clutch", "local"),
]


def load_deployments(names: list[str] | None = None) -> list:
    """RunnerDeployments for the table's rows (all, or those named 'flow-name/deployment')."""
    from prefect.deployments.runner import EntrypointType

    out = []
    for target, name in DEPLOYMENTS:
        module, attr = target.split(":")
        fl = getattr(importlib.import_module(module), attr)
        if names and f"{fl.name}/{name}" not in names:
            continue
        # A module entry point: the runner imports the installed package, whatever its working folder.
        out.append(fl.to_deployment(name=name, entrypoint_type=EntrypointType.MODULE_PATH,
                                    description=(fl.description or "").strip().splitlines()[0]))
    if names and len(out) != len(names):
        known = [f"{t.split(':')[1]}/{n}" for t, n in DEPLOYMENTS]
        raise ValueError(f"unknown deployment in {names}; served deployments: {known}")
    return out
