"""The ledger at corpus scale: what a build pays to plan, resume and report with 10K and 100K videos.

A synthetic ledger (no video is decoded): N videos registered, 80 % done in shards of 4 videos, 5 %
failed, 3 % quarantined, the rest pending. Timed, each in a fresh `Ledger` on that file:

- register: `register_many` of all N (a fresh ledger, then again on the full one: what every
  rerun pays), and the per-video `register` loop of before on a sample, scaled to N;
- plan: `plan_batches` over all N ids (one state query, the failed ones reset with --retry-failed);
- counts / by_state(done) / to_arrow (the DuckDB `ledger` view) / mark_batch_done of one batch
  (what every batch pays on a full ledger);
- the file's size.

    python benchmarks/ledger_scale.py [--rows 10000 100000] [--sample 2000]

Prints a Markdown table. A timing: run it alone on a quiet machine.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # benchmarks/storage.py would shadow the `storage` package

from storage.integrity import ShardFacts, VideoClips  # noqa: E402
from storage.ledger import Ledger  # noqa: E402
from storage.resume import plan_batches  # noqa: E402

FP = "f" * 16


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def fill(led: Ledger, n: int) -> list[str]:
    """N videos in the mix of states a long build has; returns their ids in input order."""
    ids = [f"{i:016x}" for i in range(n)]
    led.register_many([(v, f"/corpus/videos/{v}.mp4") for v in ids], FP)
    done = ids[: int(n * 0.80)]
    for k in range(0, len(done), 4):
        batch = done[k:k + 4]
        led.mark_batch_done(batch, ShardFacts(f"part-{k // 4:06d}.parquet", 12, 5 << 20, "0" * 64, 1,
                                              {v: VideoClips(3, "a" * 64) for v in batch}))
    for v in ids[int(n * 0.80): int(n * 0.85)]:
        led.mark_failed(v, "decoder crashed")
    for v in ids[int(n * 0.85): int(n * 0.88)]:
        led.mark_quarantined(v, "not a video")
    return ids


def measure(n: int, sample: int, work: Path) -> dict:
    d = work / f"ledger-{n}"
    led = Ledger(d)
    ids = [f"{i:016x}" for i in range(n)]
    r = {"rows": n}
    r["register_fresh_s"], _ = timed(lambda: Ledger(d).register_many([(v, f"/corpus/videos/{v}.mp4") for v in ids],
                                                                      FP))
    fill(led, n)
    r["register_again_s"], _ = timed(lambda: Ledger(d).register_many([(v, f"/corpus/videos/{v}.mp4") for v in ids],
                                                                      FP))
    s = ids[:: max(1, n // sample)][:sample]
    t, _ = timed(lambda: [led.register(v, f"/corpus/videos/{v}.mp4", FP) for v in s])
    r["register_loop_s"] = t * n / len(s)  # per-video transactions, scaled from the sample
    r["plan_s"], p = timed(lambda: plan_batches(Ledger(d), ids, 4, retry_failed=True))
    r["planned"] = p.num_videos
    r["counts_s"], _ = timed(lambda: Ledger(d).counts())
    r["by_state_done_s"], _ = timed(lambda: Ledger(d).by_state("done"))
    r["to_arrow_s"], _ = timed(lambda: Ledger(d).to_arrow())
    batch = ids[int(n * 0.88): int(n * 0.88) + 4]
    r["batch_done_s"], _ = timed(lambda: Ledger(d).mark_batch_done(batch, ShardFacts(
        "part-new.parquet", 12, 5 << 20, "0" * 64, 1, {v: VideoClips(3, "a" * 64) for v in batch})))
    r["mb"] = sum(f.stat().st_size for f in d.glob("ledger.sqlite*")) / 1e6
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--sample", type=int, default=2000, help="videos timed with the per-video register loop")
    ap.add_argument("--work", type=Path, default=None)
    a = ap.parse_args(argv)
    work = a.work or Path(tempfile.mkdtemp(prefix="ledger-scale-"))
    rows = [measure(n, a.sample, work) for n in a.rows]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}\n")
    cols = [("rows", "ledger rows", "{:,}"), ("register_fresh_s", "register_many, new (s)", "{:.2f}"),
            ("register_again_s", "register_many, rerun (s)", "{:.2f}"),
            ("register_loop_s", "per-video register (s, scaled)", "{:.1f}"), ("plan_s", "plan_batches (s)", "{:.2f}"),
            ("counts_s", "counts (s)", "{:.3f}"), ("by_state_done_s", "by_state(done) (s)", "{:.2f}"),
            ("to_arrow_s", "to_arrow (s)", "{:.2f}"), ("batch_done_s", "one batch done (s)", "{:.3f}"),
            ("mb", "file (MB)", "{:.1f}")]
    print("| " + " | ".join(c[1] for c in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f.format(r[k]) for k, _, f in cols) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
