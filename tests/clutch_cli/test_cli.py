"""One set of rules for every command: no abbreviated flags, the command's own usage on a bad flag, one
message for a folder that is not a dataset, progress bars only on a terminal, each log line once."""
from __future__ import annotations

import logging

import pytest

from clutch_cli import build_parser, main

# every command that takes a DATASET, with the rest of a valid command line ({d}: the folder, {t}: scratch)
DATASET_COMMANDS = {
    "query": ["query", "{d}", "SELECT count(*) FROM clips"],
    "status": ["status", "{d}"],
    "verify": ["verify", "{d}"],
    "card": ["card", "{d}"],
    "render": ["render", "{d}", "--clip-id", "abc", "--out", "{t}/x.mp4"],
    "browse": ["browse", "{d}", "--out", "{t}/site"],
    "export": ["export", "{d}", "--hf", "{t}/hf"],
    "view": ["view", "{d}", "--port", "0"],
    "tokenize": ["tokenize", "{t}", "{d}"],
    "train": ["train", "{d}", "--out", "{t}/run", "--no-progress"],
    "eval": ["eval", "{t}", "--dataset", "{d}", "--out", "{t}/report"],
    "caption": ["caption", "{t}", "--dataset", "{d}", "--clip-id", "abc"],
}


def test_every_command_that_takes_a_dataset_is_listed_here():
    """A new command with a DATASET argument must join the one rule (and this test)."""
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    takes = {name for name, p in sub.choices.items()
             if any(a.dest == "dataset" and a.option_strings in ([], ["--dataset"]) for a in p._actions)}
    assert takes - {"synth"} <= set(DATASET_COMMANDS), takes - set(DATASET_COMMANDS)


@pytest.mark.parametrize("command", sorted(DATASET_COMMANDS))
def test_a_folder_that_is_not_a_dataset_exits_2_and_says_so(command, tmp_path, capsys):
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a dataset")
    if command in ("tokenize", "eval", "caption"):  # RUN comes first: make it look like a run
        (tmp_path / "shift").mkdir()
    argv = [a.format(d=folder, t=tmp_path) for a in DATASET_COMMANDS[command]]
    assert main(argv) == 2, command
    err = capsys.readouterr().err
    assert str(folder) in err and "not a dataset" in err, err
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]  # nothing created in it


def test_flags_are_never_abbreviated_and_a_bad_flag_shows_the_commands_usage(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", str(tmp_path), "--out", str(tmp_path / "r"), "--max-step", "10"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "usage: clutch train" in err and "unrecognized arguments: --max-step 10" in err
    with pytest.raises(SystemExit):
        main(["generate", str(tmp_path), "hi", "--out", "x.npz", "--second", "3"])
    assert "usage: clutch generate" in capsys.readouterr().err


def test_progress_bars_only_on_a_terminal_unless_asked(monkeypatch):
    from clutch_cli import progress_only_on_a_terminal

    p = build_parser()
    for tty, argv, want in [(False, [], False), (True, [], True), (False, ["--progress"], True),
                            (True, ["--no-progress"], False)]:
        monkeypatch.setattr("sys.stderr.isatty", lambda tty=tty: tty)
        args = p.parse_args(["synth", "--out", "x", "--clips", "1", *argv])
        progress_only_on_a_terminal(args, ["synth", "--out", "x", "--clips", "1", *argv])
        assert args.progress is want, (tty, argv)


def test_one_console_handler_so_each_line_is_printed_once():
    """Prefect's logging set-up adds its console handler to the root logger; ours replaces it."""
    from prefect.logging.handlers import PrefectConsoleHandler

    from clutch_cli import log_to_stderr

    root = logging.getLogger()
    before = list(root.handlers)
    try:
        root.addHandler(PrefectConsoleHandler())
        log_to_stderr(logging.INFO)
        log_to_stderr(logging.INFO)
        consoles = [h for h in root.handlers if isinstance(h, logging.StreamHandler)
                    and not type(h).__name__.startswith("_Live") and getattr(h, "stream", None) is not None]
        assert not any(isinstance(h, PrefectConsoleHandler) for h in root.handlers)
        assert sum(type(h).__name__ == "_CurrentStderr" for h in consoles) == 1
    finally:
        for h in list(root.handlers):
            if h not in before:
                root.removeHandler(h)
        for h in before:
            if h not in root.handlers:
                root.addHandler(h)
