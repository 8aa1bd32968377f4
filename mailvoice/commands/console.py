"""Uniform error and warning lines on stderr."""

from __future__ import annotations

from rich.markup import escape

from mailvoice.commands import err_console


def error(message: str) -> None:
    err_console().print(f"[bold red]error:[/] {escape(message)}")


def warn(message: str) -> None:
    err_console().print(f"[yellow]warning:[/] {escape(message)}")


def info(message: str) -> None:
    err_console().print(escape(message))
