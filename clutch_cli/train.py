"""Training commands: train (the train-clutch flow, in this process), tokenize.

`clutch train` runs the train-clutch flow here, as `clutch build` runs build-3dhiw: with a
temporary Prefect server unless PREFECT_API_URL is set. Its options are the fields of
flows.config.TrainClutchConfig, its stages flows.stages.STAGES.

Several GPUs: `torchrun --nproc_per_node=N -m clutch_cli train ...`. Only rank 0 runs the
flow (one temporary server, one flow run recorded); the other ranks run the same stage
runner (flows.stages.run_stages) without Prefect, so no rank starts a server of its own.
The ranks meet in the trainer's process group; rank-0-only stages (tokenize) run on rank 0.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from clutch_cli import CliError, add_progress_argument, require_dataset
from clutch_cli.options import add_config_arguments, params_from_args
from flows.config import TrainClutchConfig


def register(sub: argparse._SubParsersAction) -> None:
    from flows.stages import STAGES

    p = sub.add_parser(
        "train", help="train CLUTCH stages on a dataset (the train-clutch flow)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the train-clutch Prefect flow in this process: its stages in order on DATASET, writing "
                    "into RUN. A finished stage is skipped; an interrupted one resumes from its last checkpoint.\n"
                    "stages:\n" + "\n".join(f"  {s.name:10s} {s.doc}" for s in STAGES.values()) +
                    "\nSeveral GPUs: torchrun --nproc_per_node=N -m clutch_cli train ... (only rank 0 talks to "
                    "Prefect).",
        epilog="example: clutch train D --out runs/r1 --stages shift,tokenize --preset tiny --max-steps 500")
    add_config_arguments(p, TrainClutchConfig)
    p.set_defaults(func=_train)

    p = sub.add_parser(
        "tokenize", help="write the motion tokens of every clip of a dataset with a trained tokenizer",
        description="Encode every clip of DATASET with the tokenizer of RUN (RUN/shift/) and write Parquet "
                    "parts to DATASET/tokens/<run name>-<weights hash>/. Clips already tokenized are skipped, "
                    "so an interrupted run continues where it stopped.")
    p.add_argument("run", type=Path, help="run folder (holds shift/model.safetensors)")
    p.add_argument("dataset", type=Path, help="dataset folder (holds shards/)")
    p.add_argument("--chunk", type=int, default=512, help="clips per Parquet part (default 512)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    add_progress_argument(p)
    p.set_defaults(func=_tokenize)


def _threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


def _plain(e: ValueError) -> str:
    """A pydantic ValidationError as its messages only (field: message), anything else as it is."""
    errors = getattr(e, "errors", None)
    if not callable(errors):
        return str(e)
    return "; ".join((f"{'.'.join(map(str, x['loc']))}: " if x.get("loc") else "")
                     + str(x["msg"]).removeprefix("Value error, ") for x in errors())


def _train(args) -> int:
    import logging

    params = params_from_args(args, TrainClutchConfig)
    params.update(dataset=str(Path(params["dataset"]).resolve()), out=str(Path(params["out"]).resolve()))
    try:
        cfg = TrainClutchConfig(**params)
        cfg.shift_config()  # preset and overrides checked before a server starts
        cfg.lm_config()
    except ValueError as e:
        raise CliError(_plain(e)) from None
    require_dataset(cfg.dataset)
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: the other ranks run the stages without Prefect
        from flows.stages import run_stages

        run_stages(cfg)
        return 0
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from flows import temp_server

    started = temp_server.start()  # imports while this process imports torch and the flow
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from clutch_cli import log_to_stderr
    from flows.train_clutch import train_clutch

    log_to_stderr(logging.DEBUG if args.verbose else logging.INFO)  # Prefect's logging set-up replaced ours
    _quiet(cfg.progress)
    with temp_server.temporary_server(started):
        state = train_clutch(**params, return_state=True)
    if not state.is_completed():
        exc = state.result(raise_on_failure=False)
        if isinstance(exc, (ValueError, FileNotFoundError)):
            raise CliError(str(exc))
        print(f"clutch train: the run stopped: {exc!r}")
        return 1
    for line in summary_lines(state.result(), Path(cfg.out)):
        print(line)
    return 0


def summary_lines(result: dict, run: Path) -> list[str]:
    """One line per stage that ran: its headline numbers and where the full metrics are."""
    from layout.run import METRICS

    lines = []
    for stage, m in result.items():
        if stage == "tokenize":
            lines.append(f"tokenize: {m['written']} clips written, {m['skipped']} already there -> {m['dir']}")
        elif stage == "eval":
            lines.append(f"eval: skipped ({m['skipped']})" if "skipped" in m else f"eval: report {m['report']}")
        elif m:
            head = {k: m[k] for k in ("val_mpjpe_mm", "val_ce", "val_motion_token_acc", "val_tf_mpjpe_mm")
                    if m.get(k) is not None}
            lines.append(f"{stage}: " + ", ".join(f"{k} {v:.3f}" for k, v in head.items())
                         + f" -> {run / stage / METRICS}")
    return lines


def _quiet(bar: bool) -> None:
    """No link to the temporary server; no step lines on the terminal while progress bars show them."""
    import logging

    from clutch_cli.quiet import hide_server_links, hide_step_lines

    hide_server_links()
    for h in logging.getLogger().handlers:  # ours and Prefect's console handler
        hide_step_lines(h, bar)


def _tokenize(args) -> int:
    require_dataset(args.dataset)
    _threads(args.threads)
    from clutch_core.shift.tokenize import tokenize_dataset

    try:
        print(json.dumps(tokenize_dataset(args.run, args.dataset, chunk=args.chunk, progress=args.progress)))
    except (ValueError, FileNotFoundError) as e:
        raise CliError(str(e)) from e
    return 0
