"""train-clutch/local through a real local Prefect server (SQLite) and `clutch serve`, as a user runs it:
`prefect deployment run ... --watch` shows a long stage's progress lines and a failed run's cause."""
from __future__ import annotations

import pytest

from tests.fixtures.prefect_server import local_prefect
from tests.fixtures.shift_data import small_dataset

pytestmark = [pytest.mark.slow]


def test_watch_shows_progress_and_the_cause_of_a_failure(tmp_path_factory, tmp_path):
    dataset = small_dataset(tmp_path_factory)
    missing = tmp_path / "no_such_dataset"
    with local_prefect(tmp_path) as prefect:
        prefect.serve("train-clutch/local")
        failed = prefect.run("train-clutch/local", dataset=str(missing), out=str(tmp_path / "r0"), stages=["shift"])
        ok = prefect.run("train-clutch/local", dataset=str(dataset), out=str(tmp_path / "r1"), stages=["shift"],
                         max_steps=3, batch=4)
    served = prefect.log_tail()
    text = failed.stdout + failed.stderr
    assert failed.returncode == 1 and "Failed" in text, text[-3000:] + served
    assert "FileNotFoundError" in text and str(missing) in text, text[-3000:]
    text = ok.stdout + ok.stderr
    assert ok.returncode == 0, text[-3000:] + served
    assert "shift: step 3/3 (100%), loss" in text and "ETA" in text, text[-3000:]
