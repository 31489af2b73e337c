"""`clutch`: one console command, subcommands registered by small modules.

Each module in COMMAND_MODULES defines `register(subparsers)` and adds only
subcommands that work. Modules are imported lazily so `clutch --help` stays fast
(heavy imports live inside each command's handler).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

COMMAND_MODULES = ["data", "mano", "build", "train", "lm", "eval", "view"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="clutch",
        description="Build the 3D-HIW hand-motion dataset from egocentric videos and train CLUTCH models.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"clutch_cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"clutch_cli.{name}":
                continue
            raise
        mod.register(sub)
    for cmd in sub.choices.values():  # `clutch CMD -v` as well as `clutch -v CMD`
        _add_verbose(cmd)
    return p


def _add_verbose(p: argparse.ArgumentParser) -> None:
    if "-v" not in p._option_string_actions:
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    for action in p._actions:  # nested subcommands (e.g. `clutch mano convert`)
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_verbose(child)


def add_progress_argument(p: argparse.ArgumentParser) -> None:
    """`--progress/--no-progress`, the same flag on every command that draws progress bars."""
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="draw progress bars on the terminal (default: yes)")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # Idle OpenMP threads sleep instead of spinning: spinning threads of processes sharing cores
    # slowed training 10-35x (BENCHMARKS.md, "tiny preset"). Read once, when torch starts OpenMP.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from clutch_core.usage import UsageError  # checks shared with the viewer: the same usage errors

    args = build_parser().parse_args(argv)
    _log_to_stderr(logging.DEBUG if args.verbose else logging.INFO)
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `clutch ... | head`: the reader has what it wanted
        _silence_stdout()
        return 0
    except (CliError, UsageError) as e:
        print(f"clutch {args.command}: error: {e}", file=sys.stderr)
        return 2
    return int(rc or 0)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a file (captured in-process)
        pass


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of each record (not the stream of the first call),
    so in-process callers that swap sys.stderr (test capture, notebooks) never hit a closed file."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def _log_to_stderr(level: int) -> None:
    root = logging.getLogger()
    if not any(isinstance(h, _CurrentStderr) for h in root.handlers):
        h = _CurrentStderr()
        h.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        root.addHandler(h)
    root.setLevel(level)


class CliError(Exception):
    """An error the user can fix; printed without a traceback."""


if __name__ == "__main__":
    sys.exit(main())
