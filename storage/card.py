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
    con = connect(d)
    total = con.execute("SELECT count(*), count(DISTINCT video_id), coalesce(sum(num_frames), 0) FROM clips").fetchall()[0]
    if total[0] == 0:
        raise ValueError(f"dataset {d} has no clips (no shard in {d / 'shards'})")
    out_dir = d / CARD_DIR
    out_dir.mkdir(exist_ok=True)
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

    md += _quality_section(con, out_dir)

    md += ["## Captions", ""] + _table(["source", "captions", "clips"], con.sql(
        "SELECT source, count(*), count(DISTINCT clip_id) FROM captions GROUP BY source ORDER BY 2 DESC").fetchall())
    md += [""]

    if (d / LEDGER_FILE).exists():
        ledger = Ledger(d)
        md += ["## Build", "", "Videos per state: " + ", ".join(f"{k} {v}" for k, v in ledger.counts().items()), ""]
        for action in ("dropped", "marked"):
            counts = ledger.dropped_counts(action)
            md += [f"{action.capitalize()} clips by reason (`dropped_clips` in `clutch query`):", ""]
            md += (_table(["reason", "clips"], list(counts.items())) if counts else ["none recorded"]) + [""]

    lengths = [r[0] for r in con.sql("SELECT num_frames FROM clips").fetchall()]
    _histogram(lengths, out_dir / "length_hist.png")
    md += ["## Clip lengths", "", "![clip length histogram](length_hist.png)", ""]
    text = "\n".join(md)
    (out_dir / "card.md").write_text(text)
    return text


# the quality fields shown as distributions: (field, label, scale, unit)
QUALITY_ROWS = [
    ("reproj_px_median", "reprojection error, median", 1.0, "px"),
    ("reproj_px_p95", "reprojection error, 95th percentile", 1.0, "px"),
    ("wrist_depth_jump_p95", "wrist-depth jump, 95th percentile", 100.0, "cm"),
    ("bone_length_cv", "bone-length CV", 1.0, ""),
    ("fit_rejected", "frames the fit rejected", 100.0, "%"),
    ("jitter", "jitter", 1.0, "m/s^2"),
    ("handedness_score", "handedness score", 1.0, ""),
]


def _quality_section(con, out_dir: Path) -> list[str]:
    """Per-clip quality fields as distributions over the clips (and a histogram), and the flags."""
    md = ["## Quality", ""]
    quality_type = dict((r[0], r[1]) for r in con.execute("DESCRIBE clips").fetchall()).get("quality", "")
    if "reproj_px_median" not in quality_type:
        return md + ["Written before the quality struct had reprojection and depth figures (schema version 1).", ""]
    rows = []
    for field, label, scale, unit in QUALITY_ROWS:
        q = con.execute(f"SELECT quantile_cont(quality.{field}, [0.05, 0.5, 0.95]), avg(quality.{field}), "
                        f"max(quality.{field}) FROM clips").fetchone()
        rows.append((f"{label} ({unit})" if unit else label, *(scale * float(v) for v in (*q[0], q[1], q[2]))))
    pct = con.execute("SELECT quantile_cont(100 * quality.reproj_px_median / sqrt(image_size[1]^2 + "
                      "image_size[2]^2), [0.05, 0.5, 0.95]), avg(100 * quality.reproj_px_median / "
                      "sqrt(image_size[1]^2 + image_size[2]^2)), max(100 * quality.reproj_px_median / "
                      "sqrt(image_size[1]^2 + image_size[2]^2)) FROM clips").fetchone()
    rows.insert(1, ("reprojection error, median (% of the image diagonal)", *pct[0], pct[1], pct[2]))
    md += ["Per clip, over the clips (`quality` in docs/storage.md):", ""]
    md += _table(["figure", "5th pct", "median", "95th pct", "mean", "max"],
                 [(r[0], *(f"{v:.3g}" for v in r[1:])) for r in rows]) + [""]
    flagged = con.execute("SELECT quality.flags, count(*) FROM clips WHERE quality.flags <> '' GROUP BY 1 "
                          "ORDER BY 2 DESC").fetchall()
    md += ["Kept clips flagged by a quality threshold (`quality_action` mark):", ""]
    md += (_table(["flags", "clips"], flagged) if flagged else ["none"]) + [""]
    _quality_histogram(con, out_dir / "quality_hist.png")
    return md + ["![quality histograms](quality_hist.png)", ""]


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
