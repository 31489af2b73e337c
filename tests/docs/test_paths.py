"""Docs point at real files: every repository path written in backticks in README.md and docs/*.md exists,
and every dotted name of the project's packages written there imports. A move breaks the build, not the reader."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PACKAGES = ("clutch_cli", "flows", "annotators", "clutch_core", "storage", "layout")
CODE = re.compile(r"`([^`\n]+)`")
PATH_ENDS = (".py", ".md", ".json", "/")


TOP = {p.name for p in REPO.iterdir() if not p.name.startswith(".")} | {".."}


def is_repo_path(word: str) -> bool:
    """flows/stages.py, docs/, ../shared/data: yes. RUN/shift/metrics.json, shards/.damaged/, model/
    (inside a run or dataset the user names), s3://bucket/: no."""
    if "://" in word or any(c in word for c in "<>*{}$ ") or word.startswith(("/", "~")):
        return False
    first = word.split("/", 1)[0]
    return first in TOP or ("/" not in word.rstrip("/") and word.endswith(".py"))


def doc_paths(text: str) -> list[str]:
    """Backticked words that are repository paths ending in .py, .md, .json or /."""
    out = []
    for code in CODE.findall(text):
        word = code.strip().rstrip(".,;:)")
        if word.endswith(PATH_ENDS) and is_repo_path(word):
            out.append(word)
    return out


def exists(word: str) -> bool:
    if "/" not in word.rstrip("/") and not (REPO / word).exists():  # a module's bare file name
        return any(REPO.glob(f"*/{word}")) or any(REPO.glob(f"*/*/{word}"))
    return (REPO / word).exists()


def dotted_names(text: str) -> list[str]:
    return [c for c in CODE.findall(text) if re.fullmatch(rf"(?:{'|'.join(PACKAGES)})(?:\.\w+)+", c)]


def resolves(name: str) -> bool:
    """`pkg.module[.attr...]`: the longest importable module prefix, then attributes."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ImportError:
            continue
        try:
            for attr in parts[k:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_paths_in_the_docs_exist(doc):
    missing = [w for w in doc_paths(doc.read_text()) if not exists(w)]
    assert not missing, f"{doc.relative_to(REPO)} names files that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_dotted_names_in_the_docs_import(doc):
    broken = [n for n in dotted_names(doc.read_text()) if not resolves(n)]
    assert not broken, f"{doc.relative_to(REPO)} names modules or attributes that do not exist: {broken}"


def test_the_check_catches_a_moved_file():
    text = ("see `flows/deployments.py`, `clutch_core/shift/train.py`, `RUN/shift/metrics.json`, `model/`, "
            "`s3://bucket/ds/` and `docs/`")
    assert doc_paths(text) == ["flows/deployments.py", "clutch_core/shift/train.py", "docs/"]
    assert [w for w in doc_paths(text) if not exists(w)] == ["flows/deployments.py"]
    assert not resolves("clutch_core.shift.train.no_such_name") and resolves("clutch_core.shift.train.make_optimizer")
