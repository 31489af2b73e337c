"""Shared fixtures. Telemetry off and offline hub before anything imports Prefect or transformers."""
import os
import sys
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest

# absl (imported by mediapipe and rouge-score) binds its handler to the sys.stderr of its import and
# *closes* that stream when the handler is shut down unless it is the current sys.stderr. Prefect's
# logging set-up (dictConfig) shuts every handler down; under pytest's capture that closed the
# session's capture stream. Point absl at the process's own stderr, which it never closes.
import absl.logging  # noqa: E402

absl.logging.get_absl_handler().python_handler.stream = sys.__stderr__

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def require(ok: bool, reason: str) -> None:
    """Skip a test whose prerequisite is missing, but fail it under CI (env CI set): a CI machine
    must not pass with checks unexecuted (.ci/run installs what they need)."""
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: this check must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real sample video and hand photos that sit beside the repository."""
    require(SHARED_DATA.exists(), f"sample data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test server for the whole session (it takes ~20 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture()
def one_torch_thread():
    """One torch thread for the test (a shared 2-core machine runs small models faster so), then back."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module", autouse=True)
def _collect_native_objects():
    """Free each module's native objects (MediaPipe landmarkers) while pytest still captures the output:
    destroyed later, by a garbage collection between tests, their C++ log lines ("DestroyAccelerator")
    would land in the test report."""
    yield
    import gc

    gc.collect()
