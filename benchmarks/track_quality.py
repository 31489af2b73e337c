"""Ground-truth-free quality of the hands a dataset stores: do they land on the image, are they
rigid, does depth jump, and do `motion` and `joints3d` describe the same hand?

    python benchmarks/track_quality.py DATASET [DATASET ...] [--json OUT.json] [--mano-dir DIR]

Recomputed from the rows themselves (never from the stored `quality` struct), so it reads any
dataset, also one written before the struct had these fields. Per dataset:

- reprojection error: `joints3d` projected through the row's `intrinsics` against `keypoints2d`,
  every joint of every present hand-frame pooled: median and 95th percentile, in pixels of the
  stored image size and in % of its diagonal; also the median over hand-frames of each
  hand-frame's mean joint error (% of the diagonal), a stricter reading;
- bone-length CV: per track (one side of one video, over all its clips' present frames), per bone
  std / mean, mean over bones; the mean over tracks (a rigid hand: 0);
- wrist-depth jump: |wrist depth change| between consecutive present frames, 95th percentile (cm);
- FK disagreement: forward kinematics of `motion` with the row's `hand_shape` (rows without one:
  the template skeleton, as `motion` was made then), put back at the clip's origin, against
  `joints3d`: mean joint distance in mm, absolute and wrist-relative, and the largest;
- orientation flips: the fraction of consecutive present frames whose wrist rotation changes by
  more than 90 degrees;
- wrist teleports: consecutive present frames whose wrist moves more than 15 cm (a hand cannot,
  in 1/15 s: a swap or a lost track).

Prints one Markdown table (one row per dataset). MANO rows (`pose_convention` mano) need
--mano-dir for the FK figures; without it they are left out of those.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # benchmarks/storage.py would shadow the `storage` package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def read_rows(dataset: Path) -> list[dict]:
    """Every row of every shard, whatever schema version wrote it."""
    import pyarrow.parquet as pq

    from storage.schema import table_to_rows
    from storage.writer import list_shards

    shards = list_shards(dataset)
    if not shards:
        raise SystemExit(f"{dataset}: no shards (not a dataset, or nothing built yet)")
    rows = []
    for s in shards:
        rows.extend(table_to_rows(pq.read_table(s)))
    return rows


def fk_joints(row: dict, mano_models: dict | None) -> np.ndarray | None:
    """FK of the row's motion with its shape, at the clip's origin ([T,2,21,3]); None if it cannot."""
    import torch

    from clutch_core.hands.fit import row_joints

    shape = row.get("hand_shape")
    if row["pose_convention"] == "mano" and mano_models is None:
        return None
    with torch.no_grad():
        return row_joints(row["motion"], row["joints3d"], row["presence"], shape, mano_models)


def orientation_change_deg(motion: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Angle (degrees) of the wrist rotation change between consecutive present frames ([n])."""
    import torch

    from clutch_core.hands.rotations import rot6d_to_matrix

    m = torch.from_numpy(np.asarray(motion, np.float64)).reshape(len(motion), 2, 99)
    R = rot6d_to_matrix(m[..., :6]).numpy()  # [T,2,3,3]
    rel = np.einsum("thji,thjk->thik", R[:-1], R[1:])  # R_t^T R_t+1
    cos = np.clip((np.trace(rel, axis1=-2, axis2=-1) - 1) / 2, -1, 1)
    return np.degrees(np.arccos(cos))[present[1:] & present[:-1]]


def dataset_quality(dataset: Path, mano_dir: str | None = None) -> dict:
    """The figures of the module docstring for one dataset."""
    from clutch_core.hands import quality as q

    rows = read_rows(dataset)
    mano_models = None
    if mano_dir:
        from clutch_core.hands.mano import load_mano

        mano_models = {s: load_mano(mano_dir, s) for s in ("left", "right")}
    errs, errs_pct, frame_pct, jumps, flips, teleports, fk_abs, fk_rel, fk_max = [], [], [], [], [], [], [], [], []
    tracks: dict[tuple[str, int], list[np.ndarray]] = {}
    frames = 0
    for r in rows:
        j, kp, pr = r["joints3d"], r["keypoints2d"], np.asarray(r["presence"], bool)
        frames += len(pr)
        e = q.reprojection_px(j, kp, pr, r["intrinsics"])
        errs.append(e)
        diag = float(np.hypot(*r["image_size"]))
        errs_pct.append(100 * e / diag)
        with np.errstate(all="ignore"):
            per = np.nanmean(np.linalg.norm(q.project(j[pr].astype(np.float64), r["intrinsics"]) - kp[pr], axis=-1), -1)
        frame_pct.append(100 * per[np.isfinite(per)] / diag)
        jumps.append(q.wrist_depth_jumps(j, pr))
        flips.append(orientation_change_deg(r["motion"], pr))
        w = j[:, :, 0].astype(np.float64)
        both = pr[1:] & pr[:-1]
        teleports.append(np.linalg.norm(np.diff(w, axis=0), axis=-1)[both])
        for h in range(2):
            if pr[:, h].any():
                tracks.setdefault((r["video_id"], h), []).append(j[pr[:, h], h])
        fk = fk_joints(r, mano_models)
        if fk is not None and pr.any():
            d = np.linalg.norm(fk[pr] - j[pr], axis=-1)  # [n,21]
            rel = np.linalg.norm((fk[pr] - fk[pr][:, :1]) - (j[pr] - j[pr][:, :1]), axis=-1)
            fk_abs.append(d.mean(1))
            fk_rel.append(rel[:, 1:].mean(1))
            fk_max.append(d.max(1))
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0)
    e, ep, fp, jz, fl, tp = cat(errs), cat(errs_pct), cat(frame_pct), cat(jumps), cat(flips), cat(teleports)
    cvs = [q.bone_length_cv(np.concatenate(v)[:, None], np.ones((sum(len(x) for x in v), 1), bool))
           for v in tracks.values()]
    pct = lambda x, p: float(np.percentile(x, p)) if len(x) else float("nan")
    fa, fr, fm = cat(fk_abs), cat(fk_rel), cat(fk_max)
    return {
        "dataset": str(dataset), "clips": len(rows), "frames": frames, "tracks": len(tracks),
        "reproj_px_median": pct(e, 50), "reproj_px_p95": pct(e, 95),
        "reproj_pct_diag_median": pct(ep, 50), "reproj_pct_diag_p95": pct(ep, 95),
        "reproj_frame_mean_pct_diag_median": pct(fp, 50),
        "bone_length_cv": float(np.mean(cvs)) if cvs else float("nan"),
        "wrist_depth_jump_p95_cm": 100 * pct(jz, 95),
        "fk_mm_mean": 1000 * float(fa.mean()) if len(fa) else float("nan"),
        "fk_mm_wrist_relative": 1000 * float(fr.mean()) if len(fr) else float("nan"),
        "fk_mm_max": 1000 * float(fm.max()) if len(fm) else float("nan"),
        "orientation_flips_pct": 100 * float((fl > 90).mean()) if len(fl) else float("nan"),
        "wrist_teleports": int((tp > 0.15).sum()),
    }


COLUMNS = [("clips", "clips", "{}"), ("frames", "frames", "{}"), ("tracks", "tracks", "{}"),
           ("reproj_px_median", "reproj. median px", "{:.1f}"), ("reproj_pct_diag_median", "% diag", "{:.2f}"),
           ("reproj_px_p95", "reproj. p95 px", "{:.1f}"), ("reproj_pct_diag_p95", "% diag", "{:.2f}"),
           ("reproj_frame_mean_pct_diag_median", "per hand-frame mean, median % diag", "{:.2f}"),
           ("bone_length_cv", "bone-length CV", "{:.3f}"), ("wrist_depth_jump_p95_cm", "wrist-depth jump p95 cm",
                                                            "{:.2f}"),
           ("fk_mm_mean", "FK vs joints3d mm", "{:.2f}"), ("fk_mm_wrist_relative", "wrist-relative mm", "{:.2f}"),
           ("fk_mm_max", "max mm", "{:.2f}"), ("orientation_flips_pct", "rotation flips > 90 deg %", "{:.2f}"),
           ("wrist_teleports", "wrist jumps > 15 cm", "{}")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", nargs="+", help="dataset folders (hold shards/)")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--mano-dir", help="MANO files, for the FK figures of MANO rows")
    args = ap.parse_args()
    results = [dataset_quality(Path(d), args.mano_dir) for d in args.datasets]
    print("| dataset | " + " | ".join(h for _, h, _ in COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    for r in results:
        print(f"| {Path(r['dataset']).name} | " + " | ".join(f.format(r[k]) for k, _, f in COLUMNS) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
