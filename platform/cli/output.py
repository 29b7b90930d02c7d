"""Printing for commands: JSON documents, plain tables, and progress only on a terminal."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import typer

T = TypeVar("T")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def print_json(document: Any) -> None:
    """One JSON document on stdout (``--json``)."""
    typer.echo(json.dumps(document, default=_default, ensure_ascii=False))


def print_json_line(document: Any) -> None:
    """One line of a JSON-lines stream."""
    typer.echo(json.dumps(document, default=_default, ensure_ascii=False, separators=(",", ":")))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """A plain, aligned table (or a note when there are no rows)."""
    if not rows:
        typer.echo("(none)")
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def show_progress() -> bool:
    """Progress bars only for a person watching: stdout is a terminal and this is not CI."""
    return sys.stdout.isatty() and not os.environ.get("CI")


def progress(items: Iterable[T], *, description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` with a progress bar on stderr when :func:`show_progress` allows."""
    if not show_progress():
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, desc=description, total=total, file=sys.stderr, leave=False)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` on one line of stderr; ``raise fail(...)`` to stop the command."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)
