"""Storage benchmark on a synthetic corpus (3D-HIW scale by default: 32,000 clips).

Measures: bytes per clip on disk, synthesis and shard-write throughput, latency to fetch
one clip by id (DuckDB through storage.catalog, and storage.reader.ClipReader), and
latency to load a random batch of clips as padded torch tensors (ClipReader.load_batch,
and DuckDB + padding), and plain SQL for a batch of random ids through the `clips` view
(`SELECT motion FROM clips WHERE clip_id IN (<512 ids>)`, median over --sql-repeats batches).
`--sql-before` also rewrites every shard without the clip_id Bloom filters (storage.index) into a
sibling folder and runs the same SQL batches there. `--variants` rewrites the first shards with
other layouts (row-group size, byte-stream-split, zstd level) to compare them on the same clips.

    python benchmarks/storage.py                      # 32,000 clips under /tmp, deleted afterwards
    python benchmarks/storage.py --sql-before         # + the SQL batch without the Bloom filters
    python benchmarks/storage.py --clips 4000 --variants

Numbers depend on the machine and its load; report both with the figures.
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import tempfile
import sys
import time
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # this script is named like the `storage` package it measures: import the package


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def build(out: Path, clips: int, seed: int, clips_per_shard: int) -> dict:
    """Synthesize and write the corpus, timing synthesis and shard writing separately."""
    from clutch_core.synth.corpus import SynthConfig, draft_clip, plan_clips, render_rows
    from storage.ledger import Ledger
    from storage.schema import rows_to_table
    from storage.writer import write_shard

    cfg = SynthConfig(clips=clips, seed=seed, clips_per_shard=clips_per_shard)
    Ledger(out).ensure_fingerprint(cfg.fingerprint)
    t_synth = t_write = 0.0
    raw = 0
    batch: list = []
    shard = 0

    def flush():
        nonlocal t_synth, t_write, raw, shard
        t = time.perf_counter()
        table = rows_to_table(render_rows([draft_clip(p, seed) for p in batch], cfg))
        t_synth += time.perf_counter() - t
        raw += table.nbytes
        t = time.perf_counter()
        write_shard(out, f"bench-{shard:05d}", table=table)
        t_write += time.perf_counter() - t
        shard += 1
        batch.clear()
        print(f"  {shard} shard(s), synth {t_synth:.0f} s, write {t_write:.0f} s", flush=True)

    for p in plan_clips(cfg):
        if len(batch) >= clips_per_shard and p.clip_index == 0:
            flush()
        batch.append(p)
    flush()
    disk = sum(p.stat().st_size for p in (out / "shards").glob("*.parquet"))
    return {"clips": clips, "shards": shard, "synth_clips_per_s": clips / t_synth,
            "write_clips_per_s": clips / t_write, "write_mb_per_s": raw / 1e6 / t_write,
            "bytes_per_clip": disk / clips, "raw_bytes_per_clip": raw / clips, "disk_gb": disk / 1e9}


def measure_reads(dataset: Path, n_single: int, batch: int, n_batches: int, seed: int) -> dict:
    """Latencies of single-clip fetches and random padded batches."""
    import numpy as np
    import torch

    from storage.catalog import connect, fetch_clips
    from storage.reader import ClipReader, pad_frames

    rng = random.Random(seed)
    t = time.perf_counter()
    reader = ClipReader(dataset)
    t_index = time.perf_counter() - t
    ids = reader.clip_ids()
    con = connect(dataset)
    t = time.perf_counter()
    con.execute("SELECT * FROM clips WHERE clip_id = ?", [ids[0]]).fetchall()
    t_cold = time.perf_counter() - t
    singles = rng.sample(ids, n_single)
    duck_one = [timed(lambda c=c: con.sql(f"SELECT * FROM clips WHERE clip_id = '{c}'").to_arrow_table(), 1)[0]
                for c in singles[:20]]  # plain SQL over every shard
    fetch_clips(con, dataset, singles[:1])  # builds the clip -> shard table once
    duck_fetch = [timed(lambda c=c: fetch_clips(con, dataset, [c]), 1)[0] for c in singles]
    reader_one = [timed(lambda c=c: reader.read_table([c]), 1)[0] for c in singles]

    batches = [rng.sample(ids, min(batch, len(ids))) for _ in range(n_batches)]
    reader_batch = [timed(lambda b=b: reader.load_batch(b), 1)[0] for b in batches]

    def duck_batch(b):
        con.register("_ids", __import__("pyarrow").table({"clip_id": b}))
        t = con.sql("SELECT c.clip_id, c.num_frames, c.motion, c.presence FROM clips c "
                    "JOIN _ids USING (clip_id)").to_arrow_table()
        lengths = t.column("num_frames").to_numpy().astype(np.int64)
        torch.from_numpy(pad_frames(t.column("motion"), "motion", int(lengths.max())))
        torch.from_numpy(pad_frames(t.column("presence"), "presence", int(lengths.max())))

    duck_b = [timed(lambda b=b: duck_batch(b), 1)[0] for b in batches[: max(1, n_batches // 2)]]
    return {"index_s": t_index, "duckdb_cold_first_query_s": t_cold,
            "duckdb_one_median_ms": 1e3 * statistics.median(duck_one), "duckdb_one_p95_ms": 1e3 * pct(duck_one, 0.95),
            "duckdb_fetch_clips_median_ms": 1e3 * statistics.median(duck_fetch),
            "duckdb_fetch_clips_p95_ms": 1e3 * pct(duck_fetch, 0.95),
            "reader_one_median_ms": 1e3 * statistics.median(reader_one),
            "reader_one_p95_ms": 1e3 * pct(reader_one, 0.95),
            "reader_batch_median_s": statistics.median(reader_batch), "reader_batch_max_s": max(reader_batch),
            "duckdb_batch_median_s": statistics.median(duck_b), "batch": batch}


def sql_in_batch(dataset: Path, batch: int, repeats: int, seed: int) -> dict:
    """Plain SQL through storage.catalog.connect: motion of `batch` random ids in one IN list, as a
    user writes it; `repeats` different batches (same ones for the same seed and dataset)."""
    from storage.catalog import connect
    from storage.index import row_groups_scanned

    con = connect(dataset)
    ids = [r[0] for r in con.sql("SELECT clip_id FROM clips ORDER BY clip_id").fetchall()]
    rng = random.Random(seed + 1)
    batches = [rng.sample(ids, min(batch, len(ids))) for _ in range(repeats)]

    def sql(b):
        return f"SELECT motion FROM clips WHERE clip_id IN ({', '.join(map(repr, b))})"

    con.sql(sql(batches[0])).to_arrow_table()  # footers into the metadata cache, as on any used connection
    arrow = [timed(lambda b=b: con.sql(sql(b)).to_arrow_table(), 1)[0] for b in batches]
    rows = [timed(lambda b=b: con.sql(sql(b)).fetchall(), 1)[0] for b in batches[:3]]  # Python lists of floats
    read, total = row_groups_scanned(con, sql(batches[0]))
    return {"sql_in_batch": batch, "sql_in_median_s": statistics.median(arrow), "sql_in_max_s": max(arrow),
            "sql_in_fetchall_median_s": statistics.median(rows), "sql_in_row_groups_read": read,
            "sql_in_row_groups": total}


def without_bloom(dataset: Path, dest: Path) -> Path:
    """The same shards rewritten without clip_id Bloom filters (the layout before storage.index)."""
    import pyarrow.parquet as pq

    from storage.writer import list_shards, write_shard

    for p in list_shards(dataset):
        write_shard(dest, p.stem.removeprefix("part-"), table=pq.read_table(p), clip_id_bloom=False)
    return dest


def variants(dataset: Path, work: Path, n_shards: int, seed: int) -> list[dict]:
    """Rewrite the first shards with other layouts and measure each on the same clips."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from storage.writer import list_shards, write_shard

    tables = [pq.read_table(p) for p in list_shards(dataset)[:n_shards]]
    table = pa.concat_tables(tables)
    out = []
    for name, kw in [("rg 256 KB", dict(row_group_bytes=256 << 10)), ("rg 1 MB", dict(row_group_bytes=1 << 20)),
                     ("rg 4 MB", dict(row_group_bytes=4 << 20)), ("rg 64 MB", dict(row_group_bytes=64 << 20)),
                     ("rg 1 MB, no byte-stream-split", dict(row_group_bytes=1 << 20, byte_stream_split=False))]:
        d = work / name.replace(" ", "_").replace("+", "")
        t = time.perf_counter()
        for i, tb in enumerate(tables):
            write_shard(d, f"v{i:03d}", table=tb, **kw)
        t_write = time.perf_counter() - t
        disk = sum(p.stat().st_size for p in list_shards(d))
        r = measure_reads(d, n_single=30, batch=512, n_batches=3, seed=seed)
        out.append({"variant": name, "bytes_per_clip": disk / table.num_rows,
                    "write_mb_per_s": table.nbytes / 1e6 / t_write, **r})
        shutil.rmtree(d)
        print(f"  {name}: {out[-1]['bytes_per_clip'] / 1e3:.1f} KB/clip, batch {r['reader_batch_median_s']:.2f} s, "
              f"one {r['duckdb_one_median_ms']:.0f} ms", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=32_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clips-per-shard", type=int, default=1024)
    ap.add_argument("--out", type=Path, help="dataset folder (default: a new folder under the temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the dataset afterwards")
    ap.add_argument("--variants", action="store_true", help="also compare layouts on the first shards")
    ap.add_argument("--variant-shards", type=int, default=4)
    ap.add_argument("--sql-repeats", type=int, default=9, help="random id batches for the SQL IN measure")
    ap.add_argument("--sql-before", action="store_true",
                    help="also run the SQL IN batches on a copy of the shards without clip_id Bloom filters")
    args = ap.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="clutch-bench-storage-"))
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty")
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}, load average {os.getloadavg()}")
    try:
        print(f"writing {args.clips} synthetic clips to {out}")
        res = build(out, args.clips, args.seed, args.clips_per_shard)
        res.update(measure_reads(out, n_single=50, batch=512, n_batches=6, seed=args.seed))
        res.update(sql_in_batch(out, 512, args.sql_repeats, args.seed))
        if args.sql_before:
            print("rewriting the shards without clip_id Bloom filters", flush=True)
            before = without_bloom(out, out.parent / (out.name + "-before"))
            res.update({f"before_{k}": v for k, v in sql_in_batch(before, 512, args.sql_repeats, args.seed).items()})
            shutil.rmtree(before, ignore_errors=True)
        print("\nresults:")
        for k, v in res.items():
            print(f"  {k:34s} {v:,.3f}" if isinstance(v, float) else f"  {k:34s} {v}")
        if args.variants:
            print(f"\nlayout variants on the first {args.variant_shards} shards:")
            rows = variants(out, out.parent / (out.name + "-variants"), args.variant_shards, args.seed)
            print("\n| layout | KB/clip | write MB/s | one clip DuckDB plain / fetch_clips median ms "
                  "| one clip reader median ms | 512 batch reader s | 512 batch DuckDB s |")
            print("|---|---|---|---|---|---|---|")
            for r in rows:
                print(f"| {r['variant']} | {r['bytes_per_clip'] / 1e3:.1f} | {r['write_mb_per_s']:.0f} | "
                      f"{r['duckdb_one_median_ms']:.0f} / {r['duckdb_fetch_clips_median_ms']:.0f} | {r['reader_one_median_ms']:.1f} | "
                      f"{r['reader_batch_median_s']:.2f} | {r['duckdb_batch_median_s']:.2f} |")
        print(f"\nload average at the end {os.getloadavg()}")
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(out.parent / (out.name + "-variants"), ignore_errors=True)
        shutil.rmtree(out.parent / (out.name + "-before"), ignore_errors=True)


if __name__ == "__main__":
    main()
