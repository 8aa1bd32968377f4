"""Uniform error and warning lines, and the progress spinner, on stderr."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape

from mailvoice.commands import err_console

if TYPE_CHECKING:
    from rich.progress import Progress


def error(message: str) -> None:
    err_console().print(f"[bold red]error:[/] {escape(message)}")


def warn(message: str) -> None:
    err_console().print(f"[yellow]warning:[/] {escape(message)}")


def info(message: str) -> None:
    err_console().print(escape(message))


def spinner() -> Progress:
    """A transient spinner with a description on stderr; silent when stderr is not a terminal."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    console = err_console()
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
