"""Load the authors' released SHIFT modules from a checkout the user gives (never copied here).

    step = authors_step(load_authors_vqvae(PATH), cfg, lr, betas)   # PATH: a clone of
    step(x, presence)                                                # github.com/bala1144/CLUTCH

Their SHIFT is two models trained side by side: mGPT/archs/mgpt_vq_single_hand_disent_part_train.py
VQVae with train_model=["trajectory"] and with ["hand_pose"], each encoding both hands stacked
on the batch axis. Only that file and its mGPT/archs/tools imports are loaded, under a private
package name, so the rest of their code base (and its dependencies) is not needed.
"""
from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

MODULE = "mGPT/archs/mgpt_vq_single_hand_disent_part_train.py"
_PKG = "_authors_clutch_archs"


def load_authors_vqvae(repo: str | Path):
    """Their VQVae class from a checkout of their repository (or its mGPT/archs folder)."""
    root = Path(repo).expanduser().resolve()
    archs = root / "mGPT" / "archs" if (root / MODULE).is_file() else root
    if not (archs / Path(MODULE).name).is_file():
        raise FileNotFoundError(f"--authors-repo {repo}: no {MODULE} there (clone github.com/bala1144/CLUTCH)")
    if _PKG not in sys.modules:  # a package object for their folder, without running its __init__.py
        pkg = types.ModuleType(_PKG)
        pkg.__path__ = [str(archs)]
        sys.modules[_PKG] = pkg
    return importlib.import_module(f"{_PKG}.{Path(MODULE).stem}").VQVae


def authors_models(vqvae_cls, width: int, depth: int, growth: int, down: int, code_dim: int, codes: int):
    """Their trajectory model and hand-pose model in a given configuration (198 features)."""
    kw = dict(nfeats=198, quantizer="ema_reset", code_num=codes, code_dim=code_dim, output_emb_width=code_dim,
              down_t=down, stride_t=2, width=width, depth=depth, dilation_growth_rate=growth, activation="relu")
    return vqvae_cls(train_model=["trajectory"], **kw), vqvae_cls(train_model=["hand_pose"], **kw)
