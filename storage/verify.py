"""Do a dataset's shards and its ledger agree? Check, report per file, and repair.

Why: after the build, shards get copied, truncated, deleted or damaged by a disk, and a
dataset tool must never lose clips in silence. `check` compares every shard file with what
the ledger recorded when it marked the videos done (storage.integrity.ShardFacts); `repair`
moves damaged shards aside (shards/.damaged/, never deleted) and sets their videos back to
pending, so the next build rebuilds exactly what was lost.

Cheap checks (every build at plan time, `clutch verify`): each shard opens (footer, columns),
its size and row count match the ledger, its clip ids per video match (the two id columns
are read, page CRCs checked), no clip is stored twice, no shard is orphaned, no recorded
shard is missing. A shard whose mtime changed since it was recorded is also hashed: an
edit in place (flipped bytes) is caught, and a copy that kept the bytes is re-stamped.
Deep checks (`--deep`): the sha256 of every shard and every page CRC of every column.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from storage.integrity import (DamagedFileError, clips_digest, file_sha256, open_parquet, read_verified, repair_hint,
                               shard_facts)
from storage.ledger import LEDGER_FILE, Ledger, VideoRecord
from storage.schema import CLIP_SCHEMA
from storage.writer import SHARDS_DIR, list_shards

log = logging.getLogger(__name__)

DAMAGED_DIR = ".damaged"  # under shards/: damaged shards moved aside, kept for inspection

# Finding kinds; all but "orphan" mean clips were lost or are wrong.
MISSING, DAMAGED, DUPLICATE, ORPHAN = "missing", "damaged", "duplicate", "orphan"


@dataclass(frozen=True)
class Finding:
    file: str  # relative to the dataset: shards/part-<key>.parquet
    problem: str  # MISSING | DAMAGED | DUPLICATE | ORPHAN
    detail: str
    videos: tuple[str, ...] = ()  # done videos whose clips the ledger places in this file


@dataclass
class Report:
    dataset: Path
    deep: bool
    checked: list[str] = field(default_factory=list)  # shard files looked at
    findings: list[Finding] = field(default_factory=list)
    adoptable: dict[str, list[str]] = field(default_factory=dict)  # good shard -> its videos not marked done
    stale: list[str] = field(default_factory=list)  # shards whose videos are all done in other shards
    legacy: list[str] = field(default_factory=list)  # good shards with no recorded facts (older ledger)
    restamp: dict[str, int] = field(default_factory=dict)  # shard -> mtime_ns, content checked equal

    @property
    def ok(self) -> bool:
        return not self.findings

    def lines(self) -> list[str]:
        """One line per shard file (OK or its problems), for `clutch verify`."""
        bad: dict[str, list[Finding]] = {}
        for f in self.findings:
            bad.setdefault(f.file, []).append(f)
        out = []
        for name in sorted(set(self.checked) | set(bad)):
            if name not in bad:
                out.append(f"OK       {name}")
            for f in bad.get(name, []):
                vids = f" (videos: {', '.join(f.videos)})" if f.videos else ""
                out.append(f"{f.problem.upper():8s} {name}: {f.detail}{vids}")
        return out


def _rel(name: str) -> str:
    return f"{SHARDS_DIR}/{name}"


def check(ledger: Ledger, dataset_dir: str | os.PathLike, deep: bool = False) -> Report:
    """Compare every shard with the ledger; reads ids (and, deep, everything), writes nothing."""
    d = Path(dataset_dir)
    fix = repair_hint(d)
    rep = Report(d, deep)
    done = {r.video_id: r for r in ledger.by_state("done")}
    known = {r.video_id for r in ledger.by_state()}
    by_shard: dict[str, list[VideoRecord]] = {}
    for r in done.values():
        if r.shard:
            by_shard.setdefault(r.shard, []).append(r)
    records = ledger.shard_records()
    files = {p.name: p for p in list_shards(d)}

    for name in sorted(set(by_shard) - set(files)):
        rep.findings.append(Finding(_rel(name), MISSING, "the ledger places clips here but the file is missing",
                                    tuple(r.video_id for r in by_shard[name])))
    clip_home: dict[str, str] = {}
    for name, path in files.items():
        rep.checked.append(_rel(name))
        mine = by_shard.get(name, [])
        vids = tuple(r.video_id for r in mine)
        try:
            # a shard the ledger has no record of (an orphan to adopt, a legacy one) is read whole, every page
            # against its CRC: its bytes were never checked against a recorded sha256
            per_video = _check_file(path, records.get(name), mine, deep or name not in records, fix, rep)
        except DamagedFileError as e:
            rep.findings.append(Finding(_rel(name), DAMAGED, e.problem, vids))
            continue
        here = set(vids)
        elsewhere = {v for v in per_video if v in done and v not in here}
        if elsewhere and not here:
            rep.stale.append(name)
            rep.findings.append(Finding(_rel(name), DUPLICATE, f"a stale copy: its videos {sorted(elsewhere)} "
                                        "are done in other shards"))
            continue
        if elsewhere:
            rep.findings.append(Finding(_rel(name), DUPLICATE, f"holds clips of videos {sorted(elsewhere)} that "
                                        "the ledger places in other shards", vids))
            continue
        unknown = sorted(set(per_video) - known)
        if unknown:
            rep.findings.append(Finding(_rel(name), ORPHAN, f"holds clips of videos the ledger does not know: "
                                        f"{unknown[:5]}", vids))
            continue
        twice = [c for cs in per_video.values() for c in cs if c in clip_home]
        if twice:
            rep.findings.append(Finding(_rel(name), DUPLICATE, f"clip {twice[0]!r} is also in "
                                        f"{clip_home[twice[0]]} ({len(twice)} clip(s) stored twice)", vids))
            continue
        clip_home.update({c: _rel(name) for cs in per_video.values() for c in cs})
        unmarked = sorted(set(per_video) - here)
        if unmarked:
            rep.adoptable[name] = unmarked
            rep.findings.append(Finding(_rel(name), ORPHAN, f"holds the clips of {len(unmarked)} video(s) not "
                                        "marked done (a build stopped before marking them); a build or "
                                        "--repair adopts it"))
        if mine and name not in records:
            rep.legacy.append(name)
    return rep


def _check_file(path: Path, rec, mine: list[VideoRecord], deep: bool, fix: str,
                rep: Report) -> dict[str, list[str]]:
    """Checks of one shard; returns its clip ids per video, or raises DamagedFileError."""
    f = open_parquet(path, fix, columns=CLIP_SCHEMA.names)
    st = path.stat()
    if rec is not None and st.st_size != rec.bytes:
        raise DamagedFileError(path, f"size {st.st_size} bytes, the ledger recorded {rec.bytes}", fix)
    if rec is not None and f.metadata.num_rows != rec.num_rows:
        raise DamagedFileError(path, f"{f.metadata.num_rows} rows, the ledger recorded {rec.num_rows}", fix)
    t = read_verified(f, path, fix, columns=["video_id", "clip_id"])
    per_video: dict[str, list[str]] = {}
    for v, c in zip(t.column("video_id").to_pylist(), t.column("clip_id").to_pylist()):
        per_video.setdefault(v, []).append(c)
    for r in mine:
        got = per_video.get(r.video_id, [])
        if not got:
            raise DamagedFileError(path, f"holds no clip of video {r.video_id}, which the ledger places here", fix)
        if r.num_clips is not None and (len(got) != r.num_clips or clips_digest(got) != r.clips_sha256):
            raise DamagedFileError(path, f"the clip ids of video {r.video_id} differ from the ledger's "
                                   f"({len(got)} clips, {r.num_clips} recorded)", fix)
    if rec is not None and (deep or st.st_mtime_ns != rec.mtime_ns):
        if file_sha256(path) != rec.sha256:
            raise DamagedFileError(path, "sha256 differs from the ledger's (the bytes changed after the write)", fix)
        if st.st_mtime_ns != rec.mtime_ns:
            rep.restamp[path.name] = st.st_mtime_ns
    if deep:
        for i in range(f.num_row_groups):
            read_verified(f, path, fix, row_groups=[i])
    return per_video


def repair(ledger: Ledger, dataset_dir: str | os.PathLike, report: Report) -> dict[str, list[str]]:
    """Act on a check: damaged shards aside and their videos pending; orphans adopted; stale copies removed.

    Returns {'adopted', 'deleted', 'moved_aside', 'requeued'} (shard and video names).
    Deletes only stale copies (clips that are also in the shards the ledger names).
    """
    d = Path(dataset_dir)
    shards = d / SHARDS_DIR
    out: dict[str, list[str]] = {"adopted": [], "deleted": [], "moved_aside": [], "requeued": []}
    for f in report.findings:
        name = Path(f.file).name
        if name in report.stale or f.problem == ORPHAN and name in report.adoptable:
            continue
        reason = f"{f.file}: {f.detail}"
        if (shards / name).exists():
            aside = _move_aside(shards / name)
            out["moved_aside"].append(name)
            reason += f"; moved to {aside.relative_to(d)}"
            log.warning("moved damaged shard %s to %s: %s", f.file, aside, f.detail)
        ledger.requeue(f.videos, reason + "; the next build rebuilds it", forget_shard=name)
        out["requeued"].extend(f.videos)
    for name in report.stale:
        log.warning("deleting %s: its videos are already done in other shards", _rel(name))
        (shards / name).unlink()
        out["deleted"].append(name)
    for name, videos in report.adoptable.items():
        ledger.mark_batch_done(videos, shard_facts(shards / name))
        log.info("adopted %s (written by a build that stopped before marking it)", name)
        out["adopted"].append(name)
    for name in report.legacy:
        ledger.record_shard(shard_facts(shards / name))
    for name, mtime in report.restamp.items():
        ledger.restamp_shard(name, mtime)
    return out


def _move_aside(path: Path) -> Path:
    """shards/X -> shards/.damaged/X (X.1, X.2, ... when taken); never overwrites."""
    dest_dir = path.parent / DAMAGED_DIR
    dest_dir.mkdir(exist_ok=True)
    dest, n = dest_dir / path.name, 0
    while dest.exists():
        n += 1
        dest = dest_dir / f"{path.name}.{n}"
    os.replace(path, dest)
    return dest


def unreadable_shards(dataset_dir: str | os.PathLike) -> list[DamagedFileError]:
    """Shards whose footer does not open or whose size differs from the ledger's record (cheap)."""
    d = Path(dataset_dir)
    fix = repair_hint(d)
    records = Ledger(d).shard_records() if (d / LEDGER_FILE).exists() else {}
    bad = []
    for p in list_shards(d):
        try:
            open_parquet(p, fix, columns=CLIP_SCHEMA.names)
            rec = records.get(p.name)
            if rec is not None and p.stat().st_size != rec.bytes:
                raise DamagedFileError(p, f"size {p.stat().st_size} bytes, the ledger recorded {rec.bytes}", fix)
        except DamagedFileError as e:
            bad.append(e)
    return bad
