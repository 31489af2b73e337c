"""The DuckDB examples in docs/storage.md run as written on a dataset."""
import re
from pathlib import Path

import pytest

from clutch_cli import main
from storage.catalog import connect

DOC = Path(__file__).resolve().parents[2] / "docs" / "storage.md"


def sql_examples() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.S)


def test_docs_have_examples():
    assert len(sql_examples()) >= 6


@pytest.mark.parametrize("sql", sql_examples())
def test_doc_example_runs(sql, tmp_path_factory):
    d = tmp_path_factory.getbasetemp() / "docs-dataset"
    if not d.exists():
        assert main(["synth", "--out", str(d), "--clips", "40", "--seed", "1"]) == 0
    rows = connect(d).sql(sql.replace("DATASET", str(d))).fetchall()
    assert rows, f"example returned no rows:\n{sql}"
