"""Shared output helpers of the reporting commands: a rich table for people, JSON for machines."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tt_deploy.atomic import atomic_write_text

console = Console(width=None if sys.stdout.isatty() else 160)  # piped (CI, logs): no truncation


def fmt(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt(v)}" for k, v in value.items())
    return str(value)


def print_table(title: str, rows: list[dict], columns: list[str] | None = None) -> None:
    columns = columns or (list(rows[0]) if rows else [])
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*(fmt(r.get(c, "")) for c in columns))
    console.print(table)


def write_json(path: Path | None, obj) -> None:
    """Atomically write `obj` as JSON when a path was given (the `--json PATH` option)."""
    if path is not None:
        atomic_write_text(path, json.dumps(obj, indent=2, default=str))
