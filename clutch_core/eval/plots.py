"""Report figures (matplotlib, Agg backend, PNG)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from layout.run import TRAIN_LOG, VAL_LOG  # validation beside a training log (e.g. RUN/shift/): same panel, own axis

TABLE_COLUMNS = [
    ("r_precision_top1", "R@1"), ("r_precision_top2", "R@2"), ("r_precision_top3", "R@3"),
    ("fid", "FID"), ("kid", "KID"), ("mm_dist", "MM-Dist"), ("diversity", "Diversity"), ("multimodality", "MModality"),
    ("mpjpe_mm", "MPJPE mm"), ("pa_mpjpe_mm", "PA-MPJPE mm"), ("accel_error_mm", "Accel mm/f²"),
]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fmt(row: dict[str, float], key: str, flag_chance: bool = False) -> str:
    """'mean ± h' (h: 95 % half-width; two significant digits when under 0.0005, never '± 0.000'); no
    interval, or a zero one (every repeat gave the same number): the mean alone. flag_chance marks an
    R@k whose interval lies entirely under chance (k/32)."""
    if key not in row or row[key] is None or (isinstance(row[key], float) and np.isnan(row[key])):
        return "-"
    v, ci = row[key], row.get(f"{key}_ci95")
    if ci is None or not np.isfinite(ci) or ci < 1e-12:
        out = f"{v:.3f}"
    else:
        out = f"{v:.3f} ± {ci:.3f}" if ci >= 5e-4 else f"{v:.3f} ± {ci:.1e}"
    if flag_chance and key.startswith("r_precision_top"):
        chance = int(key[-1]) / 32
        if v + (ci if ci is not None and np.isfinite(ci) else 0.0) < chance - 1e-9:
            out += " (below chance)"
    return out


def table_columns(table: dict[str, dict[str, float]]) -> list[tuple[str, str]]:
    return [(k, n) for k, n in TABLE_COLUMNS if any(k in r for r in table.values())]


def metrics_table(table: dict[str, dict[str, float]], path: Path) -> Path:
    plt = _plt()
    cols = table_columns(table)
    cells = [[fmt(r, k) for k, _ in cols] for r in table.values()]
    chars = [max(len(n), *(len(c[j]) for c in cells)) for j, (_, n) in enumerate(cols)]  # widest cell per column
    label = max(len(r) for r in table)
    fig, ax = plt.subplots(figsize=(0.075 * (sum(chars) + label) + 0.6 * len(cols) + 1.0, 0.34 * len(table) + 0.8))
    ax.axis("off")
    t = ax.table(cellText=cells, rowLabels=list(table), colLabels=[n for _, n in cols], loc="center")
    t.auto_set_font_size(False)
    t.set_fontsize(8)
    t.auto_set_column_width(list(range(-1, len(cols))))
    t.scale(1, 1.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by an interrupted run
    return out


_NOT_CURVES = ("step", "epoch", "iter", "lr", "time", "seconds", "elapsed")


def _is_curve(key: str, value) -> bool:
    """Numbers worth plotting against steps: not counters, learning rates or timings."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not any(
        key == n or key.endswith("_" + n) or key.startswith(n + "_") for n in _NOT_CURVES) and not key.endswith("_s")


def training_curves(roots: Path | list[Path], path: Path) -> Path | None:
    """Every numeric series (losses and their terms) of every JSONL log under the roots (the run,
    the evaluator's folder), one panel per log."""
    series = []
    for root in [roots] if isinstance(roots, (str, Path)) else roots:
        for p in sorted(Path(root).rglob("*.jsonl")):
            if p.name == VAL_LOG and (p.parent / TRAIN_LOG).exists():
                continue  # drawn in its training log's panel
            recs = read_jsonl(p)
            if (p.parent / VAL_LOG).exists() and p.name != VAL_LOG:
                recs += read_jsonl(p.parent / VAL_LOG)
            keys = sorted({k for r in recs for k, v in r.items() if _is_curve(k, v)})
            if keys:
                series.append((Path(root).name / p.relative_to(root), recs, keys))
    if not series:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(series), figsize=(5 * len(series), 3.5), squeeze=False)
    for ax, (p, recs, keys) in zip(axes[0], series):
        xkey = next((k for k in ("step", "epoch", "iter") if all(k in r for r in recs)), None)
        val = [k for k in keys if k.startswith("val_")]  # validation: its own axis, dashed, next to training
        _plot_series(ax, recs, [k for k in keys if k not in val] or val, xkey, "-")
        if val and len(val) < len(keys):
            twin = ax.twinx()
            _plot_series(twin, recs, val, xkey, "--o", color="black")
            twin.legend(fontsize=7, loc="upper center")
        ax.set_title(str(p), fontsize=9)
        ax.set_xlabel(xkey or "record")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_series(ax, recs: list[dict], keys: list[str], xkey: str | None, style: str, **kw) -> None:
    ys = []
    for k in keys:
        pts = [(r[xkey] if xkey else i, r[k]) for i, r in enumerate(recs) if isinstance(r.get(k), (int, float))]
        ax.plot(*zip(*pts), style, label=k, markersize=3, **kw)
        ys += [y for _, y in pts]
    if ys and min(ys) > 0:
        ax.set_yscale("log")


def codebook_usage(counts: dict[str, np.ndarray], path: Path) -> Path:
    """Sorted code frequencies per codebook (a flat curve = well-used codebook)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(counts), figsize=(5 * len(counts), 3.2), squeeze=False)
    for ax, (name, c) in zip(axes[0], counts.items()):
        c = np.sort(np.asarray(c))[::-1]
        used = int((c > 0).sum())
        ax.bar(np.arange(len(c)), c, width=1.0)
        ax.set_title(f"{name}: {used}/{len(c)} codes used", fontsize=9)
        ax.set_xlabel("code (sorted by frequency)")
        ax.set_ylabel("count")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def error_by_length(per_clip: list[tuple[int, float]], path: Path, label: str = "MPJPE (mm)") -> Path:
    """Per-clip error against clip length with binned means."""
    plt = _plt()
    pts = np.array([p for p in per_clip if np.isfinite(p[1])], dtype=float).reshape(-1, 2)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    if len(pts):
        ax.scatter(pts[:, 0], pts[:, 1], s=8, alpha=0.5, label="clip")
        edges = np.linspace(pts[:, 0].min(), pts[:, 0].max() + 1, 7)
        which = np.digitize(pts[:, 0], edges) - 1
        centers = [(edges[i] + edges[i + 1]) / 2 for i in range(6) if (which == i).any()]
        means = [pts[which == i, 1].mean() for i in range(6) if (which == i).any()]
        ax.plot(centers, means, "r-o", label="bin mean")
        ax.legend(fontsize=8)
    ax.set_xlabel("clip length (frames at 15 fps)")
    ax.set_ylabel(label)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
