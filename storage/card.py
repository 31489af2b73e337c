"""The dataset card: what is in a dataset, as markdown (DATASET/card/card.md) and a length histogram.

Dropped clips come from the ledger table `dropped_clips` (video_id, start_s, end_s, reason,
detail), which the build writes through Ledger.record_dropped.
"""
from __future__ import annotations

import os
from pathlib import Path

from storage.catalog import connect
from storage.ledger import LEDGER_FILE, Ledger
from storage.schema import FPS

CARD_DIR = "card"


def _table(header: list[str], rows: list[tuple]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        out.append("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in r) + " |")
    return out


def write_card(dataset_dir: str | os.PathLike) -> str:
    """Compute the card, write card.md and length_hist.png under DATASET/card/, return the markdown."""
    d = Path(dataset_dir)
    out_dir = d / CARD_DIR
    text = card_markdown(d, out_dir / "length_hist.png", "length_hist.png")
    (out_dir / "card.md").write_text(text)
    return text


def card_markdown(dataset_dir: str | os.PathLike, hist_path: Path, hist_link: str) -> str:
    """The card as markdown; draws the clip-length histogram to `hist_path`, linked as `hist_link`.
    Shared by `clutch card` and the Hugging Face export's README (storage.export)."""
    d = Path(dataset_dir)
    con = connect(d)
    total = con.execute("SELECT count(*), count(DISTINCT video_id), coalesce(sum(num_frames), 0) FROM clips").fetchall()[0]
    if total[0] == 0:
        raise ValueError(f"dataset {d} has no clips (no shard in {d / 'shards'})")
    md = [f"# Dataset card: {d.name}", "",
          f"{total[0]} clips from {total[1]} videos, {total[2] / FPS / 3600:.2f} hours at {FPS:g} fps.", ""]

    md += ["## Splits", ""] + _table(["split", "clips", "videos", "hours", "mean length (s)"], con.sql(
        f"SELECT split, count(*), count(DISTINCT video_id), sum(num_frames) / {FPS} / 3600, "
        f"avg(num_frames) / {FPS} FROM clips GROUP BY split ORDER BY split").fetchall()) + [""]

    md += ["## Hands", ""] + _table(["hand", "mean presence (frames)", "clips with the hand"], [
        (hand, *con.sql(f"SELECT avg(quality.presence_{hand}), count(*) FILTER (quality.presence_{hand} > 0) "
                        "FROM clips").fetchall()[0]) for hand in ("left", "right")]) + [""]
    md += _table(["pose convention", "tracker", "clips"], con.sql(
        "SELECT pose_convention, tracker.name || ' ' || tracker.version, count(*) FROM clips "
        "GROUP BY ALL ORDER BY 3 DESC").fetchall()) + [""]

    md += ["## Captions", ""] + _table(["source", "captions", "clips"], con.sql(
        "SELECT source, count(*), count(DISTINCT clip_id) FROM captions GROUP BY source ORDER BY 2 DESC").fetchall())
    md += [""] + _quality(con, Path(hist_path).parent)

    if (d / LEDGER_FILE).exists():
        ledger = Ledger(d)
        md += ["## Build", "", "Videos per state: " + ", ".join(f"{k} {v}" for k, v in ledger.counts().items()), ""]
        for action in ("dropped", "marked"):
            counts = ledger.dropped_counts(action)
            md += [f"{action.capitalize()} clips by reason (`dropped_clips` in `clutch query`):", ""]
            md += (_table(["reason", "clips"], list(counts.items())) if counts else ["none recorded"]) + [""]

    lengths = [r[0] for r in con.sql("SELECT num_frames FROM clips").fetchall()]
    hist_path.parent.mkdir(parents=True, exist_ok=True)
    _histogram(lengths, hist_path)
    md += ["## Clip lengths", "", f"![clip length histogram]({hist_link})", ""]
    return "\n".join(md)


def _quality(con, out_dir: Path) -> list[str]:
    """Distribution of every numeric field of the `quality` struct, whatever fields the shards carry; the
    reprojection error also in % of the image diagonal; the clips a threshold flagged; histograms."""
    rel = con.sql("SELECT quality.* FROM clips LIMIT 0")
    fields = [n for n, t in zip(rel.columns, rel.types)
              if str(t).split("(")[0] in ("FLOAT", "DOUBLE", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "DECIMAL")]
    exprs = {f: f'quality."{f}"' for f in fields}
    if "reproj_px_median" in fields:
        exprs["reproj_px_median (% of the image diagonal)"] = (
            "100 * quality.reproj_px_median / sqrt(image_size[1]^2 + image_size[2]^2)")
    rows = []
    for name, q in exprs.items():
        rows.append((name, *con.sql(f"SELECT count({q}), min({q}), quantile_cont({q}, 0.1), median({q}), "
                                    f"quantile_cont({q}, 0.9), max({q}), avg({q}) FROM clips").fetchall()[0]))
    rows = [(f, n, *("-" if v is None else f"{float(v):.3g}" for v in stats)) for f, n, *stats in rows]
    md = ["## Quality", "", "Per clip (`quality` column, docs/storage.md):", ""] + _table(
        ["field", "clips", "min", "p10", "median", "p90", "max", "mean"], rows) + [""]
    if "reproj_track_mean_left" in fields:
        md += _track_quality(con)
    if "flags" in rel.columns:
        flagged = con.execute("SELECT quality.flags, count(*) FROM clips WHERE quality.flags <> '' GROUP BY 1 "
                              "ORDER BY 2 DESC").fetchall()
        md += ["Kept clips flagged by a quality threshold (`quality_action` mark):", ""]
        md += (_table(["flags", "clips"], flagged) if flagged else ["none"]) + [""]
    if {"reproj_px_median", "wrist_depth_jump_p95", "fit_rejected"} <= set(fields):
        out_dir.mkdir(parents=True, exist_ok=True)
        _quality_histogram(con, out_dir / "quality_hist.png")
        md += ["![quality histograms](quality_hist.png)", ""]
    return md


def _track_quality(con) -> list[str]:
    """The reprojection error per hand track (one hand in one clip), in % of the image diagonal: the
    clip's pooled median can hide a track that is off in many of its frames."""
    diag = "sqrt(image_size[1]^2 + image_size[2]^2)"
    tracks = " UNION ALL ".join(
        f"SELECT 100 * quality.reproj_track_mean_{s} / {diag} AS mean, 100 * quality.reproj_track_median_{s} / "
        f"{diag} AS median, 100 * quality.reproj_track_p95_{s} / {diag} AS p95 FROM clips "
        f"WHERE quality.reproj_track_mean_{s} IS NOT NULL" for s in ("left", "right"))
    rows = []
    for stat in ("mean", "median", "p95"):
        n, *v = con.sql(f"SELECT count({stat}), median({stat}), quantile_cont({stat}, 0.9), max({stat}) "
                        f"FROM ({tracks})").fetchall()[0]
        rows.append((f"track's {stat}", n, *("-" if x is None else f"{float(x):.3f}" for x in v)))
    return ["Reprojection error per hand track (one hand in one clip; each frame's mean joint error, then over "
            "the track's frames), % of the image diagonal:", ""] + _table(
        ["per track", "tracks", "median over tracks", "p90", "max"], rows) + [""]


def _quality_histogram(con, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [("reproj_px_median", "reprojection median (px)", 1.0), ("wrist_depth_jump_p95",
                                                                   "wrist-depth jump p95 (cm)", 100.0),
            ("fit_rejected", "frames rejected by the fit (%)", 100.0)]
    fig, axes = plt.subplots(1, len(cols), figsize=(10, 3), dpi=100)
    for ax, (field, label, scale) in zip(axes, cols):
        ax.hist([scale * r[0] for r in con.execute(f"SELECT quality.{field} FROM clips").fetchall()], bins=30,
                color="#3a6ea5")
        ax.set_xlabel(label)
        ax.set_ylabel("clips")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _histogram(num_frames: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.hist([n / FPS for n in num_frames], bins=48, range=(0, 9.6), color="#3a6ea5")
    ax.set_xlabel("clip length (s)")
    ax.set_ylabel("clips")
    ax.set_title(f"{len(num_frames)} clips")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
