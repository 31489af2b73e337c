"""One name per option: the CLI flags, the deployments' parameter schemas and the docs' tables
all come from the flows' typed configs (flows.config) and list the same options."""
from __future__ import annotations

import argparse

import pytest

from clutch_cli import build_parser, main
from clutch_cli.options import docs_table, flag, generated_tables

FLOWS = {"build": ("flows.build_3dhiw:build_3dhiw", "build-3dhiw"), "train": ("flows.train_clutch:train_clutch",
                                                                                 "train-clutch")}


def _cli_options(command: str) -> dict[str, list[str]]:
    """{dest: option strings} of a `clutch COMMAND` parser, help and the flags every command shares left out."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a.option_strings for a in sub.choices[command]._actions if a.dest not in ("help", "verbose")}


@pytest.mark.parametrize("command", sorted(FLOWS))
def test_cli_deployment_and_docs_list_the_same_options(command):
    from clutch_cli.deployments import load_deployments

    target, flow_name = FLOWS[command]
    (dep,) = load_deployments([f"{flow_name}/local"])
    schema = dep._parameter_openapi_schema.properties
    cli = _cli_options(command)
    docs = [line.split("`")[1] for line in docs_table(flow_name, generated_tables()[flow_name][0]).splitlines()[2:]]
    assert list(cli) == list(schema) == docs
    for name, strings in cli.items():  # flags are the parameter names, underscore -> dash
        assert strings[:1] in ([], [flag(name)]), name
        assert strings[1:] in ([], ["--no-" + name.replace("_", "-")], ["--set"] if name == "annotate" else []), name
    assert all(p.get("description") for p in schema.values())


def test_docs_tables_are_the_generated_ones():
    for name, (page, table) in generated_tables().items():
        assert docs_table(name, page) == table, f"docs/{page} {name}: run python -m clutch_cli.options"


def test_contract_parameter_names():
    from flows.build_3dhiw import build_3dhiw
    from flows.train_clutch import train_clutch

    assert {"videos", "out", "retry_failed"} <= set(build_3dhiw.parameters.properties)
    assert {"dataset", "out", "preset", "max_steps"} <= set(train_clutch.parameters.properties)


def test_fixed_layout_setting_fails_before_any_decoding(tmp_path, monkeypatch, capsys):
    """`clutch build VIDEO --out D --set fps=10`: exit 2 naming fps; no video is opened."""
    from clutch_core import video

    def never(*a, **k):
        raise AssertionError("a video was read")

    monkeypatch.setattr(video, "probe", never)
    v = tmp_path / "v.mp4"
    v.write_bytes(b"not read")
    assert main(["build", str(v), "--out", str(tmp_path / "D"), "--set", "fps=10"]) == 2
    err = capsys.readouterr().err
    assert "'fps'" in err and "15 fps" in err
    assert not (tmp_path / "D").exists()
