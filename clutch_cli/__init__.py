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
from pathlib import Path

COMMAND_MODULES = ["data", "mano", "build", "serve", "train", "lm", "eval", "view"]


class CommandParser(argparse.ArgumentParser):
    """Flags are never abbreviated (`--max-step` is not `--max-steps`), and an unknown flag is reported
    with the usage of the command it was given to, not the top-level one."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        ns, extra = super().parse_known_args(args, namespace)
        if extra and self.prog != "clutch":  # a subcommand: say it with its own usage
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        return ns, extra


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="clutch",
        description="Build the 3D-HIW hand-motion dataset from egocentric videos and train CLUTCH models.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
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
                   help="draw progress bars (default: when stderr is a terminal; a log file gets log lines only)")


def progress_only_on_a_terminal(args: argparse.Namespace, argv: list[str]) -> None:
    """Progress bars flood a log file: unless asked for, they are drawn only when stderr is a terminal."""
    if hasattr(args, "progress") and not {"--progress", "--no-progress"} & set(argv):
        args.progress = bool(args.progress) and sys.stderr.isatty()


def require_dataset(path: str | os.PathLike, arg: str = "DATASET") -> Path:
    """clutch_core.usage.check_dataset for a command's DATASET argument (its UsageError exits 2)."""
    from clutch_core.usage import check_dataset

    return check_dataset(path, arg)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # Idle OpenMP threads sleep instead of spinning: spinning threads of processes sharing cores
    # slowed training 10-35x (BENCHMARKS.md, "tiny preset"). Read once, when torch starts OpenMP.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from clutch_core.usage import UsageError  # checks shared with the viewer: the same usage errors

    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    progress_only_on_a_terminal(args, argv)
    log_to_stderr(logging.DEBUG if args.verbose else logging.INFO)
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
    except OSError as e:  # a full disk is the user's to fix, not a traceback to read
        import errno

        if e.errno != errno.ENOSPC:
            raise
        print(f"clutch {args.command}: error: {e}", file=sys.stderr)
        return 1
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


def log_to_stderr(level: int) -> None:
    """One console handler on the root logger: ours. Prefect's logging set-up adds its own console handler
    to the root logger too; with both, every line would be printed twice."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if type(h).__name__ == "PrefectConsoleHandler":
            root.removeHandler(h)
    if not any(isinstance(h, _CurrentStderr) for h in root.handlers):
        h = _CurrentStderr()
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        root.addHandler(h)
    root.setLevel(level)


class CliError(Exception):
    """An error the user can fix; printed without a traceback."""


if __name__ == "__main__":
    sys.exit(main())
