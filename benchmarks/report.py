"""The benchmarks' common tail: measure each case, print its JSON record, then a Markdown table."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path


def report(
    cases: Iterable[str],
    measure: Callable[[str], dict],
    markdown: Callable[[list[dict]], str],
    path: str | None = None,
) -> list[dict]:
    """Records of ``measure(case)``, each printed as it comes; the table printed and, with
    ``path``, written there."""
    rows = []
    for case in cases:
        rows.append(measure(case))
        print(json.dumps(rows[-1], default=float), flush=True)
    table = markdown(rows)
    print(table)
    if path:
        Path(path).write_text(table + "\n")
    return rows
