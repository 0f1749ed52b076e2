"""The documented default weights are the ones the ranking uses: the table must not drift."""

from __future__ import annotations

import re
from pathlib import Path

from promotion.vocabulary import TASK_RULES

DOCS = Path(__file__).resolve().parents[2] / "docs"


def documented_weights() -> dict[str, dict[str, float]]:
    """Each row of docs/measuring.md's default weights table as {task: {metric: weight}}."""
    text = (DOCS / "measuring.md").read_text(encoding="utf-8")
    start = text.index("<!-- weights-table:start -->\n") + len("<!-- weights-table:start -->\n")
    rows = text[start:text.index("<!-- weights-table:end -->")].strip().splitlines()[2:]
    table = {}
    for row in rows:
        task, weights = (cell.strip() for cell in row.strip("|").split("|"))
        table[task] = {name: float(weight)
                       for name, weight in re.findall(r"`(\w+)` ([0-9.]+)", weights)}
    return table


def test_the_default_weights_table_matches_the_task_rules():
    assert documented_weights() == {task: dict(rules.default_weights)
                                    for task, rules in TASK_RULES.items()}
