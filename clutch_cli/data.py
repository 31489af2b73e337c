"""Dataset commands: query, status, card, synth."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clutch_cli import CliError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("query", help="run SQL over a dataset (views: clips, captions, ledger)",
                       description="Run one SQL statement with DuckDB over DATASET. Views: clips (all shards), "
                                   "captions (one row per caption: clip_id, video_id, split, source, text), "
                                   "ledger (per-video build state).",
                       epilog='example: clutch query D "SELECT split, count(*) FROM clips GROUP BY split"')
    p.add_argument("dataset", type=Path, help="dataset folder (holds shards/ and ledger.sqlite)")
    p.add_argument("sql", help="one SQL statement")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output format")
    p.add_argument("--max-rows", type=int, default=1000, help="rows shown by --format table (default 1000)")
    p.set_defaults(func=_query)

    p = sub.add_parser("status", help="build state of a dataset: videos per state, failed, quarantined and clipless videos with reasons",
                       description="Counts of videos per ledger state, then every failed or quarantined video "
                                   "with its path and reason, and every video done with zero clips with its "
                                   "path and the reasons its clips were dropped (e.g. no_hands). Exit status "
                                   "0 whatever the states.")
    p.add_argument("dataset", type=Path, help="dataset folder")
    p.set_defaults(func=_status)

    p = sub.add_parser("card", help="write the dataset card (DATASET/card/card.md + length histogram)",
                       description="Summarise a dataset: clips, videos and hours per split, hand presence, "
                                   "caption sources, dropped clips by reason (from the ledger), length "
                                   "histogram. Prints the markdown and writes DATASET/card/card.md and "
                                   "DATASET/card/length_hist.png.")
    p.add_argument("dataset", type=Path, help="dataset folder")
    p.set_defaults(func=_card)

    p = sub.add_parser("synth", help="write a SYNTHETIC corpus as ordinary shards (tests, demos, benchmarks)",
                       description="Generate synthetic two-hand motions composed from primitives (reach, grasp, "
                                   "release, lift, place, wave, point, pinch, wrist rotation, idle) with "
                                   "captions generated from the primitives (source 'synthetic'). Same seed, "
                                   "same clips and bytes. Not real data.")
    p.add_argument("--out", type=Path, required=True, help="dataset folder to write (shards/ and ledger.sqlite)")
    p.add_argument("--clips", type=int, required=True, help="number of clips")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--clips-per-shard", type=int, default=1024, help="about this many clips per shard (default 1024)")
    p.set_defaults(func=_synth)


def _dataset(path: Path) -> Path:
    if not path.is_dir():
        raise CliError(f"dataset folder {path} does not exist")
    return path


def _query(args) -> int:
    import duckdb

    from storage.catalog import connect

    con = connect(_dataset(args.dataset))
    try:
        rel = con.sql(args.sql)
    except duckdb.Error as e:
        raise CliError(f"query failed: {e}") from None
    if rel is None:  # a statement without a result (e.g. SET)
        return 0
    try:
        if args.format == "table":
            rel.show(max_rows=args.max_rows, max_width=10_000)
        else:
            import pyarrow.csv as pacsv

            table = rel.to_arrow_table()
            if args.format == "csv":
                pacsv.write_csv(table, sys.stdout.buffer)
            else:
                import json

                for row in table.to_pylist():
                    print(json.dumps(row, default=str))
    except duckdb.Error as e:
        raise CliError(f"query failed: {e}") from None
    return 0


def _status(args) -> int:
    from storage.ledger import LEDGER_FILE, Ledger
    from storage.writer import list_shards

    d = _dataset(args.dataset)
    shards = list_shards(d)
    print(f"dataset {d}: {len(shards)} shard(s)")
    if not (d / LEDGER_FILE).exists():
        print("no ledger yet (no build has run here)")
        return 0
    ledger = Ledger(d)
    counts = ledger.counts()
    print(f"fingerprint: {ledger.fingerprint or '-'}")
    print("videos: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + f" (total {sum(counts.values())})")
    bad = ledger.by_state("failed", "quarantined")
    for r in bad:
        print(f"{r.state:12s} {r.video_id}  {r.source_uri}  (attempts {r.attempts}): {r.error}")
    for r, reasons in ledger.clipless():
        why = ", ".join(f"{reason} x{n}" for reason, n in reasons.items()) or "no reason recorded"
        print(f"{'no clips':12s} {r.video_id}  {r.source_uri}: {why}")
    return 0


def _card(args) -> int:
    from storage.card import write_card

    d = _dataset(args.dataset)
    try:
        md = write_card(d)
    except ValueError as e:
        raise CliError(str(e)) from None
    print(md)
    return 0


def _synth(args) -> int:
    from tqdm import tqdm

    from clutch_core.synth import SynthConfig, write_corpus

    try:
        cfg = SynthConfig(clips=args.clips, seed=args.seed, clips_per_shard=args.clips_per_shard)
    except ValueError as e:
        raise CliError(str(e)) from None
    from storage.ledger import FingerprintMismatch

    with tqdm(total=cfg.clips, unit="clip", desc="synth") as bar:
        try:
            paths = write_corpus(args.out, cfg, progress=lambda n: bar.update(n - bar.n))
        except FingerprintMismatch as e:
            raise CliError(str(e)) from None
    print(f"wrote {cfg.clips} synthetic clips in {len(paths)} shard(s) to {args.out / 'shards'}")
    return 0
