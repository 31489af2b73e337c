"""Rules of the code a reader relies on: short functions in clutch_core, no reaching into another
package's private names (training plumbing lives in clutch_core.training, not inside one trainer)."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("clutch_cli", "flows", "annotators", "clutch_core", "storage", "layout", "tests")
MAX_LINES = 60


def _modules(*roots):
    for root in roots:
        yield from sorted((REPO / root).rglob("*.py"))


def test_no_function_in_clutch_core_is_longer_than_60_lines():
    long = [f"{p.relative_to(REPO)}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)"
            for p in _modules("clutch_core") for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > MAX_LINES]
    assert not long, long


def test_no_module_imports_a_private_name_from_another_package():
    found = []
    for p in _modules(*PACKAGES):
        own = p.relative_to(REPO).parts[0]
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.ImportFrom) and n.module and n.module.split(".")[0] in PACKAGES:
                for a in n.names:
                    private = a.name.startswith("_") and not a.name.startswith("__")
                    if private and (n.module.split(".")[0] != own or own == "tests"):
                        found.append(f"{p.relative_to(REPO)}: from {n.module} import {a.name}")
    assert not found, found
