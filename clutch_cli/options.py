"""CLI flags and docs tables generated from a flow's typed config (flows.config): one name per option.

Field `retry_failed` is flag `--retry-failed` (bools also take `--no-...`), its help is the
field's description; list fields are comma-separated (positional ones take several
arguments), dict fields take repeatable KEY=VALUE (VALUE is JSON, else text). A field may also have a
shorter flag (`short_flags`, e.g. `--set` for `annotate`), shown next to it in the docs.
`python -m clutch_cli.options` rewrites the option tables in the docs.
"""
from __future__ import annotations

import argparse
import json
import re
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from clutch_cli import CliError

DOCS = Path(__file__).resolve().parents[1] / "docs"
TABLES = {"build-3dhiw": ("build.md", "BuildConfig"), "train-clutch": ("shift.md", "TrainClutchConfig")}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def flags_of(config: type[BaseModel], name: str) -> list[str]:
    """The field's flag, then its shorter one if it has one."""
    return [flag(name)] + ([config.short_flags[name]] if name in config.short_flags else [])


def _base(annotation: Any) -> Any:
    """Optional[X] -> X."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Union and len(args) == 1:
        return args[0]
    return annotation


def _kind(annotation: Any) -> str:
    t = _base(annotation)
    origin = typing.get_origin(t)
    if origin is typing.Literal:
        return "choice"
    if origin in (list, tuple) or t in (list, tuple):
        return "list"
    if origin is dict or t is dict:
        return "dict"
    return {bool: "bool", int: "int", float: "float"}.get(t, "str")


def add_config_arguments(parser: argparse.ArgumentParser, config: type[BaseModel]) -> None:
    """One argument per field of `config`."""
    for name, f in config.model_fields.items():
        kind, meta = _kind(f.annotation), config.metavars.get(name)
        help_ = f.description or ""
        if not f.is_required() and kind not in ("bool", "dict") and f.get_default(call_default_factory=True) is not None:
            d = f.get_default(call_default_factory=True)
            help_ += f" (default {','.join(d) if isinstance(d, list) else d})"
        if name in config.positional:
            parser.add_argument(name, nargs="+" if kind == "list" else None, metavar=name.upper(), help=help_)
            continue
        kw: dict[str, Any] = {"dest": name, "help": help_, "required": f.is_required()}
        if kind == "bool":
            parser.add_argument(flag(name), action=argparse.BooleanOptionalAction, default=f.default, **kw)
        elif kind == "dict":
            parser.add_argument(*flags_of(config, name), action="append", default=[], metavar=meta or "KEY=VALUE", **kw)
        elif kind == "choice":
            parser.add_argument(flag(name), choices=typing.get_args(_base(f.annotation)), **kw)
        else:
            conv = {"int": int, "float": float}.get(kind, str)
            parser.add_argument(flag(name), type=conv, metavar=meta, **kw)


def params_from_args(args: argparse.Namespace, config: type[BaseModel]) -> dict[str, Any]:
    """The flow's parameters from parsed arguments (options not given are left to the config's defaults)."""
    out: dict[str, Any] = {}
    for name, f in config.model_fields.items():
        value, kind = getattr(args, name), _kind(f.annotation)
        if kind == "dict":
            value = key_values(name, value)
            if not value:
                continue
        elif value is None:
            continue
        elif kind == "list" and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        out[name] = value
    return out


def key_values(name: str, items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"{flag(name)} {item!r}: use KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def options_table(config: type[BaseModel]) -> str:
    """Markdown table of the options: parameter, CLI, type, default, description."""
    rows = ["| parameter | `clutch` | type | default | description |", "|---|---|---|---|---|"]
    for name, f in config.model_fields.items():
        cli = name.upper() if name in config.positional else " ".join(f"`{f_}`" for f_ in flags_of(config, name))
        default = "required" if f.is_required() else f"`{json.dumps(f.get_default(call_default_factory=True))}`"
        t = _base(f.annotation)
        typ = " \\| ".join(map(str, typing.get_args(t))) if _kind(f.annotation) == "choice" else getattr(t, "__name__", str(t))
        rows.append(f"| `{name}` | {cli} | {typ} | {default} | {' '.join((f.description or '').split())} |")
    return "\n".join(rows) + "\n"


def _markers(flow: str) -> tuple[str, str]:
    return f"<!-- options:{flow} (generated: python -m clutch_cli.options) -->\n", f"<!-- /options:{flow} -->"


def docs_table(name: str, page: str) -> str:
    """The table between the markers `name` in docs/<page>."""
    start, end = _markers(name)
    m = re.search(re.escape(start) + "(.*?)" + re.escape(end), (DOCS / page).read_text(), re.S)
    if not m:
        raise ValueError(f"docs/{page}: no generated table {name} (markers {start.strip()} ... {end})")
    return m.group(1)


def stages_table() -> str:
    from flows.stages import STAGES

    rows = ["| stage | runs on | what it does |", "|---|---|---|"]
    rows += [f"| `{s.name}` | {'every rank' if s.every_rank else 'rank 0 only'} | {s.doc} |" for s in STAGES.values()]
    return "\n".join(rows) + "\n"


def generated_tables() -> dict[str, tuple[str, str]]:
    """{marker name: (docs page, table)} of everything the docs show from the configs."""
    import flows.config as fc

    out = {flow: (page, options_table(getattr(fc, cls))) for flow, (page, cls) in TABLES.items()}
    out["train-clutch-stages"] = ("shift.md", stages_table())
    return out


def write_docs() -> None:
    for flow, (page, table) in generated_tables().items():
        start, end = _markers(flow)
        path = DOCS / page
        text = path.read_text()
        pattern = re.escape(start) + ".*?" + re.escape(end)
        path.write_text(re.sub(pattern, lambda _: start + table + end, text, flags=re.S))


if __name__ == "__main__":
    write_docs()
