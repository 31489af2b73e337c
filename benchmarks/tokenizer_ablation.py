"""Tokenizer ablation (BENCHMARKS.md, "Tokenizer ablation"): SHIFT, the plain VQ-VAE and the
equal-bits residual-VQ baseline, same preset, same corpus, several training seeds.

    python benchmarks/tokenizer_ablation.py --dataset D --out OUT --steps 400 --seeds 0,1,2

Trains OUT/<tokenizer>-s<seed>/ (a normal run folder: `clutch eval` works on it), then
prints the table (mean ± sample std over seeds) and writes OUT/ablation.json. Metrics come
from each run's shift/metrics.json (val split).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KEYS = ("val_mpjpe_mm", "val_accel_error_mm", "val_mpjpe_traj_mm", "val_mpjpe_pose_mm")
TOKENS_PER_STEP = {"shift": 4, "vqvae": 1, "rvq": 4}


def main() -> None:
    from clutch_core.shift.train import preset_config, train_tokenizer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--tokenizers", default="shift,vqvae,rvq")
    ap.add_argument("--preset", default="tiny")
    a = ap.parse_args()
    runs = {}
    for kind in a.tokenizers.split(","):
        for seed in (int(s) for s in a.seeds.split(",")):
            cfg = preset_config(a.preset, tokenizer=kind, max_steps=a.steps, seed=seed)
            m = train_tokenizer(a.dataset, a.out / f"{kind}-s{seed}", cfg, progress=False)
            runs[f"{kind}-s{seed}"] = {"tokenizer": kind, "seed": seed, **{k: m[k] for k in KEYS},
                                       "val_clips": m["val_clips"], "val_hand_frames": m["val_hand_frames"]}
            print(json.dumps(runs[f"{kind}-s{seed}"]), flush=True)
    (a.out / "ablation.json").write_text(json.dumps({"preset": a.preset, "steps": a.steps, "runs": runs}, indent=1))
    print("\n| tokenizer | tokens / step | MPJPE (mm) | Accel. error (mm/frame²) | traj (mm) | pose (mm) |")
    print("|---|---|---|---|---|---|")
    for kind in a.tokenizers.split(","):
        rs = [r for r in runs.values() if r["tokenizer"] == kind]
        cells = []
        for k in KEYS:
            v = np.array([r[k] for r in rs])
            nd = 2 if k == "val_accel_error_mm" else 1
            cells.append(f"{v.mean():.{nd}f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.{nd}f}")
        print(f"| {kind} | {TOKENS_PER_STEP.get(kind, '?')} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
