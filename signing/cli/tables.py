"""What the ``sign`` and ``verify`` commands show at the terminal: progress bars on stderr and
summary tables on stdout (rich), with no terminal control character from a file name or a
message reaching the screen."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from signing.batch import FileResult, SignOutcome, counts
from signing.validation.report import INDETERMINATE, TOTAL_FAILED, TOTAL_PASSED

__all__ = ["printable", "progress", "sign_summary", "verify_table"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_STYLE = {TOTAL_PASSED: "bold green", TOTAL_FAILED: "bold red", INDETERMINATE: "bold yellow"}
T = TypeVar("T")


def printable(text: str) -> str:
    """No terminal control characters (file names and messages come from outside)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _short(text: str, limit: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@contextlib.contextmanager
def progress(what: str, total: int, *, remaining: bool = False) -> Iterator[Callable[[T], None]]:
    """A transient progress bar on stderr when it is a terminal and there is more than one item;
    yields the callback to call as each item is done.

    The bar (and its refresh thread) starts at the first item done, so a process pool forks its
    workers before that thread exists.
    """
    if total <= 1 or not sys.stderr.isatty():
        yield lambda _item: None
        return
    columns = [BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    if remaining:
        columns.append(TimeRemainingColumn())
    bar = Progress(
        "[progress.description]{task.description}",
        *columns,
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task(what, total=total)
    started = False

    def advance(_item: T) -> None:
        nonlocal started
        if not started:
            bar.start()
            started = True
        bar.advance(task)

    try:
        yield advance
    finally:
        bar.stop()


def sign_summary(results: list[SignOutcome]) -> int:
    """One line for one file, a table for a folder; returns the exit code (1 if any failed)."""
    failed = [r for r in results if r.code != "signed"]
    warned = [r for r in results if r.warnings]
    if len(results) == 1:
        (result,) = results
        if failed:
            print(f"error [{result.code}]: {result.detail}", file=sys.stderr)
            return 1
        print(f"signed {result.src.name} ({result.detail})")
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        return 0
    table = Table("file", "result", "detail", title="Signing summary")
    for result in results:
        if result.code != "signed":
            verdict = Text(result.code, style="red")
        elif result.warnings:
            verdict = Text(f"signed, {len(result.warnings)} warning(s)", style="yellow")
        else:
            verdict = Text("signed", style="green")
        detail = "\n".join([result.detail, *(f"warning: {w}" for w in result.warnings)])
        table.add_row(Text(result.src.name), verdict, Text(detail))
    Console().print(table)
    line = f"{len(results) - len(failed)} signed, {len(failed)} failed"
    if warned:
        line += f", {len(warned)} with warnings"
    print(line)
    return 1 if failed else 0


def verify_table(results: Sequence[FileResult], seconds: float, jobs: int) -> None:
    """The verification table (every warning in full) and the summary line, on stdout."""
    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(title="Verification")
    table.add_column("file", overflow="fold", ratio=3)
    table.add_column("kind", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("sub-indication", overflow="fold")
    table.add_column("message", overflow="fold", ratio=4)
    for result in results:
        verdict = Text(result.indication, style=_STYLE.get(result.indication, ""))
        message = Text(printable(_short(result.message)))
        if result.warnings:
            verdict.append(f"\n{len(result.warnings)} warning(s)", style="yellow")
            for warning in result.warnings:  # every one, whole: they are the point
                message.append("\n• " + printable(" ".join(warning.split())), style="yellow")
        table.add_row(
            Text(printable(result.display)),
            Text(result.kind),
            verdict,
            Text(result.sub_indication or "—"),
            message,
        )
    console.print(table)
    tally = counts(results)
    passed = f"{tally['passed']} passed"
    if tally["passed_with_warnings"]:
        passed += f" ({tally['passed_with_warnings']} with warnings)"
    console.print(
        Text(
            f"{tally['files']} file(s): {passed}, {tally['failed']} failed, "
            f"{tally['indeterminate']} indeterminate ({seconds:.1f} s, {jobs} process(es))"
        )
    )
