"""What a new user meets first: output that fits a terminal, pipes that end quietly, one set of flags."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clutch_cli import build_parser, main

CLUTCH = [sys.executable, "-m", "clutch_cli"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli") / "ds"
    assert main(["synth", "--out", str(d), "--clips", "30", "--seed", "1", "--no-progress"]) == 0
    return d


def test_one_clip_row_fits_a_terminal(synth, capsys):
    capsys.readouterr()
    assert main(["query", str(synth), "SELECT * FROM clips LIMIT 1"]) == 0
    out = capsys.readouterr().out
    assert len(out) < 5000, len(out)
    n = json.loads(subprocess.run(CLUTCH + ["query", str(synth), "SELECT num_frames FROM clips LIMIT 1",
                                            "--format", "jsonl"], capture_output=True, text=True).stdout)["num_frames"]
    assert f"[{n} x 198 floats]" in out and f"[{n} x 2 bools]" in out and "(1 row)" in out


def test_json_is_one_array_jsonl_is_lines_and_both_keep_everything(synth, capsys):
    sql = "SELECT clip_id, num_frames, motion FROM clips ORDER BY clip_id LIMIT 3"
    capsys.readouterr()
    assert main(["query", str(synth), sql, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert isinstance(rows, list) and len(rows) == 3
    assert len(rows[0]["motion"]) == rows[0]["num_frames"] and len(rows[0]["motion"][0]) == 198
    assert main(["query", str(synth), sql, "--format", "jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(ln) for ln in lines] == rows
    assert main(["query", str(synth), sql, "--format", "csv"]) == 0
    import csv
    import io

    csv.field_size_limit(sys.maxsize)  # a clip's motion is one cell
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert json.loads(table[0]["motion"]) == rows[0]["motion"]


@pytest.mark.parametrize("args", [["query", "{d}", "SELECT * FROM clips"], ["card", "{d}"], ["status", "{d}"]])
def test_a_closed_pipe_ends_quietly(synth, args):
    cmd = " ".join(CLUTCH + [a.format(d=synth) if "{" in a else repr(a) for a in args]) + " | head -1"
    p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True)
    assert p.stdout.strip() and "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr


def test_every_command_takes_the_shared_flags():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert "-v" in p._option_string_actions, name
    for name in ("build", "train", "tokenize", "browse", "synth", "eval"):
        assert "--no-progress" in sub.choices[name]._option_string_actions, name
    args = parser.parse_args(["query", "D", "SELECT 1", "-v"])
    assert args.verbose is True and parser.parse_args(["-v", "status", "D"]).verbose is True
    assert parser.parse_args(["status", "D"]).verbose is False


def test_deployment_parameters_have_descriptions():
    from flows.build_3dhiw import build_3dhiw
    from flows.train_clutch import train_clutch

    for fl in (build_3dhiw, train_clutch):
        props = fl.parameters.model_dump()["properties"]
        missing = [k for k, v in props.items() if not v.get("description")]
        assert props and not missing, (fl.name, missing)


def test_links_to_the_temporary_server_are_hidden(caplog):
    import logging

    from clutch_cli.quiet import hide_server_links

    hide_server_links()
    caplog.set_level(logging.INFO)
    logging.getLogger("prefect.flow_runs").info("View at http://127.0.0.1:1234/runs/flow-run/x", extra={"send_to_api": False})
    logging.getLogger("prefect.flow_runs").info("Finished in state Completed()", extra={"send_to_api": False})
    assert [r.getMessage() for r in caplog.records] == ["Finished in state Completed()"]
