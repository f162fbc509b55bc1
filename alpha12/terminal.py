"""Terminal output for the CLI through `rich`: coloured status tables, a table that updates in
place while `run` works, and progress bars. When stdout is not a terminal (a pipe, a file, a
cron mail) the same calls write plain text without ANSI codes, so output stays greppable.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

import pandas as pd
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table

from alpha12.formatting import MISSING, percent
from alpha12.theme import ENGINE_COLOURS, STATUS_COLOURS

# The theme's colour names as rich spells them.
RICH_NAMES = {"orange": "dark_orange", "gray": "grey50"}
STATUS_STYLES = {
    status: RICH_NAMES.get(colour, colour)
    for status, colour in {**STATUS_COLOURS, **ENGINE_COLOURS}.items()
}
ProgressCallback = Callable[[float, str], None]


def cell(value: object) -> str:
    """A table cell's text: missing values as 'n/a', floats without noise digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return MISSING
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def status_table(
    frame: pd.DataFrame, status_column: str = "status", title: str | None = None
) -> Table:
    """`frame` as a rich Table, each row's status cell in its colour."""
    table = Table(title=title, header_style="bold")
    for column in frame.columns:
        table.add_column(str(column))
    for row in frame.itertuples(index=False):
        cells = [cell(value) for value in row]
        if status_column in frame.columns:
            at = list(frame.columns).index(status_column)
            style = STATUS_STYLES.get(cells[at], "")
            cells[at] = f"[{style}]{cells[at]}[/]" if style else cells[at]
        table.add_row(*cells)
    return table


def plain_table(frame: pd.DataFrame) -> str:
    """`frame` as aligned plain text (no colour, no box characters)."""
    text = frame.map(cell) if len(frame) else frame
    return text.to_string(index=False)


def is_terminal(file: IO | None = None) -> bool:
    file = sys.stdout if file is None else file
    return bool(getattr(file, "isatty", lambda: False)())


def show(frame: pd.DataFrame, file: IO | None = None, title: str | None = None) -> None:
    """Print a status frame: coloured on a terminal, plain text otherwise."""
    file = sys.stdout if file is None else file
    if is_terminal(file):
        Console(file=file).print(status_table(frame, title=title))
    else:
        print(*([title] if title else []), plain_table(frame), sep="\n", file=file)


@contextmanager
def live_table(
    file: IO | None = None, title: str | None = None
) -> Iterator[Callable[[pd.DataFrame], None]]:
    """`with live_table() as update: update(frame)`: on a terminal the table is redrawn in
    place; otherwise each changed frame is printed once, as plain text."""
    file = sys.stdout if file is None else file
    if not is_terminal(file):
        last: list[pd.DataFrame] = []

        def print_changed(frame: pd.DataFrame) -> None:
            if not last or not frame.equals(last[0]):
                show(frame, file, title)
                last[:] = [frame]

        yield print_changed
        return
    with Live(console=Console(file=file), auto_refresh=False) as live:
        yield lambda frame: live.update(status_table(frame, title=title), refresh=True)


@contextmanager
def progress(description: str, file: IO | None = None) -> Iterator[ProgressCallback]:
    """`with progress("backfill") as report: report(0.4, "BTC 5m: 40000 bars")`: a rich bar on
    a terminal; otherwise a plain line at each further tenth, so a log is not flooded."""
    file = sys.stdout if file is None else file
    if not is_terminal(file):
        printed = [-1]

        def print_tenths(fraction: float, message: str) -> None:
            tenth = int(fraction * 10)
            if tenth > printed[0]:
                printed[0] = tenth
                print(f"{description}: {percent(fraction, 0)} {message}", file=file)

        yield print_tenths
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[message]}"),
    )
    with Progress(*columns, console=Console(file=file)) as bar:
        task = bar.add_task(description, total=1.0, message="")
        yield lambda fraction, message: bar.update(task, completed=fraction, message=message)
