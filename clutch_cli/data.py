"""Dataset commands: query, status, verify, card, export, synth."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clutch_cli import CliError, add_progress_argument, require_dataset
from clutch_cli.output import add_format_argument, write_rows


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("query", help="run SQL over a dataset (views: clips, captions, ledger)",
                       description="Run one SQL statement with DuckDB over DATASET. Views: clips (all shards), "
                                   "captions (one row per caption: clip_id, video_id, split, source, text), "
                                   "ledger (per-video build state).",
                       epilog='example: clutch query D "SELECT split, count(*) FROM clips GROUP BY split"')
    p.add_argument("dataset", help="dataset folder (holds shards/ and ledger.sqlite) or store URL "
                                   "(s3://bucket/ds; see docs/scaling.md)")
    p.add_argument("sql", help="one SQL statement")
    add_format_argument(p)
    p.add_argument("--max-rows", type=int, default=1000, help="rows shown by --format table (default 1000)")
    p.add_argument("--skip-damaged", action="store_true",
                   help="leave damaged shards out of `clips` (and say which) instead of stopping with exit 1")
    p.set_defaults(func=_query)

    p = sub.add_parser("status", help="build state of a dataset: videos per state, failed, quarantined and clipless videos with reasons",
                       description="Counts of videos per ledger state, then every failed or quarantined video "
                                   "with its path and reason, and every video done with zero clips with its "
                                   "path and the reasons its clips were dropped (e.g. no_hands). Exit status "
                                   "0 whatever the states.")
    p.add_argument("dataset", type=Path, help="dataset folder")
    p.set_defaults(func=_status)

    p = sub.add_parser("verify", help="check that shards and ledger agree: damaged, missing, duplicate, orphaned shards",
                       description="Check every shard of DATASET against the ledger: it opens, its size, row "
                                   "count and clip ids are the ones recorded when its videos were marked done, "
                                   "no clip is stored twice, no shard is orphaned or missing. Reports per file; "
                                   "exit 1 on any problem. --repair moves damaged shards to shards/.damaged/ "
                                   "(never deleted) and sets their videos back to pending, so the next "
                                   "`clutch build` rebuilds exactly them.")
    p.add_argument("dataset", type=Path, help="dataset folder")
    p.add_argument("--deep", action="store_true", help="also check each shard's sha256 and every page CRC "
                                                       "(reads every byte)")
    p.add_argument("--repair", action="store_true", help="move damaged shards aside, set their videos back to "
                                                         "pending, adopt orphaned complete shards")
    p.set_defaults(func=_verify)

    p = sub.add_parser("card", help="write the dataset card (DATASET/card/card.md + length histogram)",
                       description="Summarise a dataset: clips, videos and hours per split, hand presence, "
                                   "caption sources, dropped clips by reason (from the ledger), length "
                                   "histogram. Prints the markdown and writes DATASET/card/card.md and "
                                   "DATASET/card/length_hist.png.")
    p.add_argument("dataset", type=Path, help="dataset folder")
    p.set_defaults(func=_card)

    p = sub.add_parser("export", help="write a dataset as a Hugging Face dataset folder (split files + dataset card)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Write DATASET as a folder that `datasets.load_dataset(OUT)` loads as it is and "
                                   "that pushes to the Hugging Face Hub unchanged: OUT/data/<split>-NNNNN.parquet "
                                   "(the clips of each split, every column, values bit-identical; row groups of "
                                   "at most 100 clips for the Hub's viewer) and OUT/README.md, a dataset card "
                                   "with YAML front matter (configs, splits, features, licence, task categories) "
                                   "and the body of `clutch card`. Every value is kept bit for bit; with_format(\"torch\") "
                                   "works on every column. OUT is written beside itself first and moved in place.",
                       epilog="example: clutch export runs/3dhiw --hf runs/3dhiw-hf\n"
                              "publish:  hf upload USER/NAME runs/3dhiw-hf --repo-type dataset  (docs/export.md)")
    p.add_argument("dataset", type=Path, help="dataset folder (holds shards/)")
    p.add_argument("--hf", type=Path, required=True, metavar="OUT",
                   help="folder to write; must not exist or be empty (see --overwrite)")
    p.add_argument("--splits", help="comma-separated splits to export, e.g. train,val,test (default: every split "
                                    "that has clips)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT when it exists and is not empty")
    p.add_argument("--license", default="other",
                   help="licence id for the card's YAML, e.g. cc-by-4.0 (default 'other': set it to the terms "
                        "of the source videos)")
    p.set_defaults(func=_export)

    p = sub.add_parser("synth", help="write a SYNTHETIC corpus as ordinary shards (tests, demos, benchmarks)",
                       description="Generate synthetic two-hand motions composed from primitives (reach, grasp, "
                                   "release, lift, place, wave, point, pinch, wrist rotation, idle) with "
                                   "captions generated from the primitives (source 'synthetic'). Same seed, "
                                   "same clips and bytes. Not real data.")
    p.add_argument("--out", type=Path, required=True, help="dataset folder to write (shards/ and ledger.sqlite)")
    p.add_argument("--clips", type=int, required=True, help="number of clips")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--clips-per-shard", type=int, default=1024, help="about this many clips per shard (default 1024)")
    add_progress_argument(p)
    p.set_defaults(func=_synth)


def _query(args) -> int:
    import duckdb

    from storage.catalog import connect

    from storage.integrity import DamagedFileError, SchemaVersionError, repair_hint

    from storage.remote import is_url

    d = args.dataset if is_url(args.dataset) else require_dataset(args.dataset)
    try:
        con = connect(d, skip_damaged=args.skip_damaged)
    except DamagedFileError as e:
        print(f"clutch query: error: damaged shard {e}; or query the rest with --skip-damaged", file=sys.stderr)
        return 1
    except (FileNotFoundError, SchemaVersionError) as e:  # a store URL with nothing there; an older dataset
        raise CliError(str(e)) from None
    for file, problem in con.execute("SELECT file, problem FROM skipped_shards").fetchall():
        print(f"clutch query: skipped damaged shard {file}: {problem}", file=sys.stderr)
    try:
        rel = con.sql(args.sql)
    except duckdb.Error as e:
        raise CliError(f"query failed: {e}") from None
    if rel is None:  # a statement without a result (e.g. SET)
        return 0
    try:
        names = [c[0] for c in rel.description]
        write_rows(names, _fetch(rel), args.format, max_rows=args.max_rows if args.format == "table" else None)
    except duckdb.Error as e:  # a shard damaged past its footer (pages): the checks find it
        print(f"clutch query: error: reading the shards failed: {e}\n{repair_hint(d).replace('--repair', '--deep --repair')}",
              file=sys.stderr)
        return 1
    return 0


def _fetch(rel, chunk: int = 256):
    """Rows of a DuckDB relation, a chunk at a time (a large result is never held whole)."""
    for batch in rel.to_arrow_reader(chunk):
        cols = [c.to_pylist() for c in batch.columns]
        yield from zip(*cols)


def _status(args) -> int:
    from storage.ledger import LEDGER_FILE, Ledger
    from storage.writer import list_shards

    from storage.resume import release_stale_running

    d = require_dataset(args.dataset)
    shards = list_shards(d)
    print(f"dataset {d}: {len(shards)} shard(s)")
    if not (d / LEDGER_FILE).exists():
        print("no ledger yet (no build has run here)")
        return 0
    release_stale_running(d)  # `running` only while a live build holds the dataset
    ledger = Ledger(d)
    counts = ledger.counts()
    print(f"fingerprint: {ledger.fingerprint or '-'}")
    print("videos: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + f" (total {sum(counts.values())})")
    bad = ledger.by_state("failed", "quarantined")
    for r in bad + [r for r in ledger.by_state("pending") if r.error]:
        print(f"{r.state:12s} {r.video_id}  {r.source_uri}  (attempts {r.attempts}): {r.error}")
    for r, reasons in ledger.clipless():
        why = ", ".join(f"{reason} x{n}" for reason, n in reasons.items()) or "no reason recorded"
        print(f"{'no clips':12s} {r.video_id}  {r.source_uri}: {why}")
    return 0


def _verify(args) -> int:
    from storage.ledger import LEDGER_FILE, Ledger
    from storage.resume import DatasetBusy, dataset_lock
    from storage.verify import check, repair

    d = require_dataset(args.dataset)
    if not (d / LEDGER_FILE).exists():
        raise CliError(f"{d / LEDGER_FILE} does not exist: not a dataset written by `clutch build` or `clutch synth`")
    ledger = Ledger(d)
    from storage.integrity import SchemaVersionError

    try:
        report = check(ledger, d, deep=args.deep)
    except SchemaVersionError as e:  # whole files of an older layout: nothing to repair
        raise CliError(str(e)) from None
    for line in report.lines():
        print(line)
    bad = len({f.file for f in report.findings})
    print(f"{len(report.checked)} shard(s) checked{' (deep)' if args.deep else ''}: "
          + (f"{bad} with problems" if bad else "all agree with the ledger"))
    if args.repair and not report.ok:
        try:
            with dataset_lock(d):  # no build may write while shards move
                done = repair(ledger, d, check(ledger, d, deep=args.deep))
        except DatasetBusy as e:
            raise CliError(str(e)) from None
        print(f"repaired: moved aside {len(done['moved_aside'])} shard(s) to shards/.damaged/, "
              f"{len(done['requeued'])} video(s) back to pending, adopted {len(done['adopted'])}, "
              f"removed {len(done['deleted'])} stale copies; run `clutch build` again to rebuild the pending videos")
    return 0 if report.ok else 1


def _card(args) -> int:
    from storage.card import write_card

    d = require_dataset(args.dataset)
    try:
        md = write_card(d)
    except ValueError as e:
        raise CliError(str(e)) from None
    print(md)
    return 0


def _export(args) -> int:
    from storage.export import export_hf
    from storage.integrity import DamagedFileError

    d = require_dataset(args.dataset)
    splits = None
    if args.splits is not None:
        splits = [s.strip() for s in args.splits.split(",") if s.strip()]
        if not splits:
            raise CliError("--splits: give at least one split, e.g. train,val,test")
    try:
        result = export_hf(d, args.hf, splits, overwrite=args.overwrite, license=args.license)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        raise CliError(str(e)) from None
    except DamagedFileError as e:
        print(f"clutch export: error: damaged shard {e}", file=sys.stderr)
        return 1
    for split, files in result.files.items():
        print(f"{split}: {result.rows[split]} clips in {len(files)} file(s) under {result.out / 'data'}")
    print(f"dataset card: {result.out / 'README.md'}")
    return 0


def _synth(args) -> int:
    from tqdm import tqdm

    from clutch_core.synth import SynthConfig, write_corpus

    try:
        cfg = SynthConfig(clips=args.clips, seed=args.seed, clips_per_shard=args.clips_per_shard)
    except ValueError as e:
        raise CliError(str(e)) from None
    from storage.ledger import FingerprintMismatch

    with tqdm(total=cfg.clips, unit="clip", desc="synth", disable=not args.progress) as bar:
        try:
            paths = write_corpus(args.out, cfg, progress=lambda n: bar.update(n - bar.n))
        except FingerprintMismatch as e:
            raise CliError(str(e)) from None
    print(f"wrote {cfg.clips} synthetic clips in {len(paths)} shard(s) to {args.out / 'shards'}")
    return 0
