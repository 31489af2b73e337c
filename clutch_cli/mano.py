"""MANO model file commands: convert (chumpy-free), check, synthetic."""
from __future__ import annotations

import argparse
from pathlib import Path

from clutch_cli import CliError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mano", help="MANO model files: convert the official pickles, check, synthetic",
                       description="Tools for the MANO hand model files (MANO_RIGHT.pkl / MANO_LEFT.pkl, "
                                   "licensed, downloaded by you from the MANO website; never shipped).")
    msub = p.add_subparsers(dest="mano_command", metavar="SUBCOMMAND")
    msub.required = True

    c = msub.add_parser("convert", help="write chumpy-free copies of the official MANO pickles",
                        description="Read MANO_RIGHT.pkl and/or MANO_LEFT.pkl from SRC_DIR (the official files "
                                    "hold chumpy objects, and chumpy does not install on Python 3.11 with "
                                    "numpy 2) and write clean pickles of plain numpy arrays with the same keys "
                                    "into DST_DIR. smplx loads the result directly (smplx.MANO / "
                                    "smplx.create(model_type='mano')). The source files are not modified.",
                        epilog="example: clutch mano convert ~/Downloads/mano_v1_2/models models/mano")
    c.add_argument("src", type=Path, metavar="SRC_DIR", help="folder with the official MANO_*.pkl files")
    c.add_argument("dst", type=Path, metavar="DST_DIR", help="output folder (created if missing)")
    c.set_defaults(func=_convert)

    c = msub.add_parser("check", help="load MANO files with smplx and print what they hold",
                        description="Load each MANO file found in MODEL_DIR (official or converted) through "
                                    "smplx with the chumpy-free reader, run the flat hand, and print vertex/"
                                    "joint counts and the wrist to middle-knuckle length. Exit 2 if none loads.")
    c.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl")
    c.set_defaults(func=_check)

    c = msub.add_parser("synthetic", help="write a SYNTHETIC MANO model (same layout as the real files)",
                        description="Write MANO_RIGHT.pkl and MANO_LEFT.pkl of a synthetic hand with the exact "
                                    "keys, shapes and dtypes of the real MANO files, for tests and demos. It is "
                                    "not MANO: never use it to report results.")
    c.add_argument("out", type=Path, metavar="OUT_DIR", help="output folder")
    c.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    c.set_defaults(func=_synthetic)


def _convert(args) -> int:
    from clutch_core.hands.mano_io import convert_mano_dir

    if not args.src.is_dir():
        raise CliError(f"source folder {args.src} does not exist")
    try:
        written = convert_mano_dir(args.src, args.dst)
    except (FileNotFoundError, ValueError) as e:
        raise CliError(str(e)) from e
    for path in written:
        print(f"wrote {path}")
    return 0


def _check(args) -> int:
    import torch

    from clutch_core.hands.mano import find_mano_file, load_mano, mano_rest_joints

    loaded = 0
    for side in ("right", "left"):
        try:
            path = find_mano_file(args.model_dir, side)
        except FileNotFoundError:
            print(f"{side}: no file")
            continue
        try:
            model = load_mano(path, side)
        except Exception as e:  # report every bad file, then fail below
            print(f"{side}: {path}: cannot load ({e})")
            continue
        rest = mano_rest_joints(model)
        with torch.no_grad():
            out = model()
        print(f"{side}: {path}: {out.vertices.shape[1]} vertices, {model.faces.shape[0]} faces, 21 joints, "
              f"wrist to middle MCP {float((rest[9] - rest[0]).norm()) * 100:.1f} cm")
        loaded += 1
    if not loaded:
        raise CliError(f"no loadable MANO file in {args.model_dir}")
    return 0


def _synthetic(args) -> int:
    from clutch_core.hands.mano_synthetic import write_synthetic_mano

    for path in write_synthetic_mano(args.out, seed=args.seed):
        print(f"wrote {path} (synthetic, not MANO)")
    return 0
