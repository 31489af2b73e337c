"""`clutch view`: prints the URL, serves the page, stops cleanly on Ctrl-C; usage errors exit 2 before
anything listens."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request

import pytest

from clutch_cli import main
from tests.fixtures.cli import assert_usage_errors
from tests.fixtures.eval_data import make_rows, write_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("view_cli") / "ds", make_rows(3, seed=1))


@pytest.mark.slow
def test_prints_the_url_serves_the_page_and_stops_on_ctrl_c(dataset):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # Ctrl-C as in a terminal: the default SIGINT disposition, whatever an earlier test left in this process
    # (an ignored SIGINT is inherited, and Python then never raises KeyboardInterrupt)
    proc = subprocess.Popen([sys.executable, "-m", "clutch_cli", "view", str(dataset), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"clutch view: dataset {dataset} at http://127.0.0.1:"), (line, proc.stderr.read())
        url = line.split(" at ")[1].split()[0]
        with urllib.request.urlopen(url, timeout=30) as r:
            assert r.status == 200 and b"<html" in r.read(2000).lower()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=180)  # generous: a loaded machine finishes imports first
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out.strip().endswith("clutch view: stopped") and "Traceback" not in err


def test_usage_errors_exit_2_with_a_message(dataset, tmp_path, capsys):
    plain = tmp_path / "plain"
    plain.mkdir()
    cases = [
        (["view", str(plain)], [str(plain), "not a dataset", "not a CLUTCH run"]),
        (["view", str(tmp_path / "nope")], ["nope", "no such folder"]),
        (["view", str(dataset), "--where", "presence_left >>> 1"], ["--where", "not a filter"]),
        (["view", str(dataset), "--where", "quality.presence_left > 0.5; DROP VIEW clips"], ["--where"]),
        (["view", str(dataset), "--dataset", str(dataset)], ["--dataset goes with a RUN"]),
        (["view", str(dataset), "--mano-dir", str(tmp_path / "mano")], ["--mano-dir", "no such folder"]),
    ]
    assert_usage_errors(main, capsys, cases)
    run = tmp_path / "run"
    (run / "shift").mkdir(parents=True)
    assert main(["view", str(run), "--dataset", str(plain)]) == 2
    assert "not a dataset" in capsys.readouterr().err
