"""Rows on stdout in the formats every command shares: table (fits a terminal), csv, json, jsonl.

The table shows array columns as a shape preview (`[198 x 64 floats]`), a list of captions
as its first caption's text and how many more, and cuts long text, so one clip's row is a
few lines; csv, json and jsonl keep every value (nested
values in csv as JSON text). json is one array; jsonl is one object per line.
"""
from __future__ import annotations

import csv
import json
import sys
from typing import Any, Iterable, Sequence, TextIO

FORMATS = ("table", "csv", "json", "jsonl")
TEXT_WIDTH = 60  # longest text cell of the table, in characters


def add_format_argument(parser, default: str = "table") -> None:
    parser.add_argument("--format", choices=FORMATS, default=default,
                        help=f"output format (default {default}): table (arrays previewed), csv, json (one array), "
                             "jsonl (one object per line); csv/json/jsonl keep every value")


def _kind(x: Any) -> str:
    if isinstance(x, bool):
        return "bools"
    if isinstance(x, int):
        return "ints"
    if isinstance(x, float):
        return "floats"
    if isinstance(x, str):
        return "strings"
    if isinstance(x, dict):
        return "structs"
    return "values"


def preview(value: Any) -> str:
    """A list as its shape and element kind (outer size first): [[1.0] * 198] * 64 -> '[64 x 198 floats]'."""
    dims, x = [], value
    while isinstance(x, (list, tuple)):
        dims.append(len(x))
        if not x:
            break
        x = x[0]
    return f"[{' x '.join(map(str, dims))} {_kind(x) if dims[-1] else 'values'}]"


def cell(value: Any) -> str:
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, dict) and "text" in v for v in value):
        more = f" (+{len(value) - 1} more; --format json shows all)" if len(value) > 1 else ""
        return _cut(" ".join(str(value[0]["text"]).split()), TEXT_WIDTH - len(more)) + more  # captions: the first
    if isinstance(value, (list, tuple)):
        return preview(value)
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    return _cut(" ".join(text.split()), TEXT_WIDTH)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(width - 1, 1)] + "…"


def write_rows(names: Sequence[str], rows: Iterable[Sequence[Any]], fmt: str, out: TextIO | None = None,
               max_rows: int | None = None) -> None:
    out = out or sys.stdout
    if fmt == "table":
        _table(names, rows, out, max_rows)
    elif fmt == "csv":
        w = csv.writer(out)
        w.writerow(names)
        for r in rows:
            w.writerow([json.dumps(v, default=str) if isinstance(v, (list, tuple, dict)) else v for v in r])
    elif fmt == "json":
        out.write("[")
        for i, r in enumerate(rows):
            out.write(("," if i else "") + "\n" + json.dumps(dict(zip(names, r)), default=str))
        out.write("\n]\n")
    elif fmt == "jsonl":
        for r in rows:
            out.write(json.dumps(dict(zip(names, r)), default=str) + "\n")
    else:
        raise ValueError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")


def _table(names: Sequence[str], rows: Iterable[Sequence[Any]], out: TextIO, max_rows: int | None) -> None:
    shown, more = [], 0
    for r in rows:
        if max_rows is not None and len(shown) >= max_rows:
            more += 1
            continue
        shown.append([cell(v) for v in r])
    widths = [max([len(n)] + [len(r[i]) for r in shown]) for i, n in enumerate(names)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out.write(line(names) + "\n" + "|" + "|".join("-" * (w + 2) for w in widths) + "|\n")
    for r in shown:
        out.write(line(r) + "\n")
    out.write(f"({len(shown) + more} row{'s' if len(shown) + more != 1 else ''}"
              + (f", {len(shown)} shown; --max-rows N for more" if more else "") + ")\n")
