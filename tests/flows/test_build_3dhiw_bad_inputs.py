"""Bad input never stops a build: each file is quarantined, or done with zero clips, with a reason naming it."""
from __future__ import annotations

import sqlite3

import pytest

from tests.fixtures.bad_inputs import EXPECTED, make_bad_inputs
from tests.fixtures.flow_videos import make_videos

pytestmark = [pytest.mark.slow, pytest.mark.prefect]


def test_every_bad_input_is_quarantined_or_clipless_and_the_rest_is_built(prefect_harness, shared_data,
                                                                          tmp_path, capsys, monkeypatch):
    import annotators.pipeline as pipeline
    from clutch_cli import main
    from clutch_cli.build import EXIT_QUARANTINED
    from storage.ledger import Ledger
    from storage.resume import count_clips

    cases = make_bad_inputs(tmp_path / "bad")
    good = make_videos(shared_data / "videos" / "ego_kitchen_4s.mp4", tmp_path / "good", ["kitchen_a"])["kitchen_a"]
    out = tmp_path / "ds"
    calls: dict[str, int] = {}
    real = pipeline.annotate_video

    def counted(path, *a, **k):
        calls[str(path)] = calls.get(str(path), 0) + 1
        return real(path, *a, **k)

    monkeypatch.setattr(pipeline, "annotate_video", counted)
    # the good video last: every bad file before it must not stop the run
    rc = main(["build", str(tmp_path / "bad"), str(good), "--out", str(out), "--batch-size", "4",
               "--retries", "2", "--retry-delay-s", "0", "--no-progress", "--set", "decode_short_side=180",
               "--set", "decode_max_long_side=320"])
    captured = capsys.readouterr()
    printed = captured.out
    assert rc == EXIT_QUARANTINED
    # quarantine is an expected outcome: warnings naming the file, no task failure, no link to a dead server
    log_lines = captured.err.splitlines()
    assert not [ln for ln in log_lines if "ERROR" in ln and "BadVideoError" in ln], captured.err[-3000:]
    assert any("WARNING" in ln and "quarantined" in ln and str(tmp_path / "bad") in ln for ln in log_lines)
    assert "View at http" not in captured.err

    ledger = Ledger(out)
    by_path = {r.source_uri: r for r in ledger.by_state()}
    dropped = {}
    with sqlite3.connect(out / "ledger.sqlite") as db:
        for vid, reason, detail in db.execute("SELECT video_id, reason, detail FROM dropped_clips"):
            dropped.setdefault(vid, []).append((reason, detail))
    for case, path in cases.items():
        rec = by_path[str(path.resolve())]
        if EXPECTED[case] == "bad":
            assert rec.state == "quarantined", (case, rec)
            assert str(path.resolve()) in rec.error, (case, rec.error)
            assert calls[str(path.resolve())] == 1, (case, "bad input must not be retried")
            assert f"quarantined: {path.resolve()}" in printed
        else:  # decodable, but no clip: done, with the reason recorded against the file
            assert rec.state == "done" and rec.shard is None, (case, rec)
            assert dropped.get(rec.video_id), (case, "no dropped-clip reason recorded")
            assert all(d == str(path.resolve()) for _, d in dropped[rec.video_id])
    assert by_path[str(good.resolve())].state == "done"
    assert count_clips(out) >= 1

    assert main(["status", str(out)]) == 0
    status = capsys.readouterr().out
    for case, path in cases.items():
        rec = by_path[str(path.resolve())]
        line = next((x for x in status.splitlines() if f" {rec.video_id} " in x), None)
        assert line and str(path.resolve()) in line, (case, status)
        if EXPECTED[case] == "bad":
            assert line.startswith("quarantined") and rec.error in line, (case, line)
        else:  # zero clips: listed with the reasons its clips were dropped
            assert line.startswith("no clips") and all(reason in line for reason, _ in dropped[rec.video_id])

    # a rerun leaves quarantined files out; --include-quarantined tries them again (and they stay bad)
    assert main(["build", str(tmp_path / "bad"), "--out", str(out), "--no-progress",
                 "--set", "decode_short_side=180", "--set", "decode_max_long_side=320"]) == EXIT_QUARANTINED
    assert all(r.attempts == 1 for r in Ledger(out).by_state("quarantined"))
    assert main(["build", str(tmp_path / "bad"), "--out", str(out), "--no-progress", "--include-quarantined",
                 "--set", "decode_short_side=180", "--set", "decode_max_long_side=320"]) == EXIT_QUARANTINED
    assert all(r.attempts == 2 for r in Ledger(out).by_state("quarantined"))
