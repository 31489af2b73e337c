"""A small soak (benchmarks/soak.py): 12 real-content videos, two kills and a full disk on the way, and
the verdict computed against a clean build. The 300-video soak is run by hand (BENCHMARKS.md)."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, require

pytestmark = pytest.mark.slow


def _soak_module():
    spec = importlib.util.spec_from_file_location("soak_under_test", REPO / "benchmarks" / "soak.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses and its encoder processes look it up by name
    spec.loader.exec_module(mod)
    return mod


def _can_mount_tmpfs(where) -> bool:
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True)
    subprocess.run(["umount", str(where)], capture_output=True)
    return r.returncode == 0


def test_twelve_video_soak_with_kills_and_a_full_disk_loses_nothing(tmp_path, shared_data):
    require(os.geteuid() == 0 and _can_mount_tmpfs(tmp_path / "probe"),
            "the disk-full fault needs a tmpfs (root)")
    soak = _soak_module()
    corpus = tmp_path / "corpus"
    entries = soak.make_corpus(corpus, videos=12, seed=3, broken_rate=0.17, copies=1, min_s=1.0, max_s=3.0,
                               jobs=2, progress=False)
    kinds = {e.kind for e in entries}
    assert {"good", "broken", "copy"} <= kinds and json.loads((corpus / "manifest.json").read_text())
    o = soak.SoakOptions(kills=2, disk_full=True, late=True, growing=True, growing_s=15.0, second_build=True,
                         corrupt_shard=True, batch_size=2, seed=1, settings={"decode_short_side": "180", "decode_max_long_side": "320"})
    report = soak.soak(corpus, tmp_path / "work", o, window_s=60.0, progress=False)
    v = report["verdict"]
    line = soak.summary_line(report)
    assert report["ok"], line + "\n" + json.dumps(report["faults"], indent=1)
    assert (v["lost"], v["duplicated"], v["mismatched"], v["misjudged"]) == ([], 0, [], []), line
    assert v["good"] == sum(e.kind == "good" for e in entries) and v["broken"] >= 1
    injected = [f["kind"] for f in report["faults"]]
    assert injected.count("kill") == 2 and injected.count("disk-full") == 1, injected
    assert {"late", "growing", "second-build", "corrupt-shard"} <= set(injected), injected
    assert not v["stale_ledger_rows"]  # the partial copy's id did not stay behind as work to do
    assert report["verify_deep"]["exit"] == 0 and report["final_rebuild"]["built_nothing"]
    assert line.startswith("soak: videos ") and "lost 0, duplicated 0, mismatched 0" in line
    work = tmp_path / "work"
    assert json.loads((work / "verdict.json").read_text())["ok"] and (work / "soak.png").stat().st_size > 0
    assert not os.path.ismount(work / "faulty")  # the tmpfs is gone with the soak
