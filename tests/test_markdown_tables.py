"""Every Markdown table the suite writes keeps its columns: a `|` inside a cell is escaped, so the
forge cannot shift a number into its neighbour's column (issue 25, item 5)."""
from pathlib import Path

import pandas as pd
import pytest

from suite.report.markdown import cell_count, md_table, table_rows

RESULTS = Path(__file__).resolve().parent.parent / "results"
REPORTS = sorted(p for p in RESULTS.rglob("*.md") if p.name in {"REPORT.md", "CLAIMS.md", "REGRESS.md"})


def test_a_pipe_inside_a_cell_is_escaped_and_the_row_keeps_its_columns():
    df = pd.DataFrame({"AttnOnly": ["100% n=3 | pub. 100%"], "ConvOnly": ["1% | pub. 1%"], "a|b": [0.5]})
    (table,) = table_rows(md_table(df))
    header = cell_count(table[0])
    assert header == 3 and all(cell_count(line) == header for line in table)
    assert "100% n=3 \\| pub. 100%" in table[2]


def test_cell_count_reads_escaped_pipes_as_text():
    assert cell_count("| a \\| b | c |") == 2 and cell_count("| a | b | c |") == 3


@pytest.mark.parametrize("path", REPORTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_committed_report_table_has_its_headers_column_count(path):
    for table in table_rows(path.read_text(encoding="utf-8")):
        header = cell_count(table[0])
        bad = [line for line in table if cell_count(line) != header]
        assert not bad, f"{path}: a row with another column count than its header: {bad[0][:120]}"
