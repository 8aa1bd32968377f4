"""Logging for the CLI: level from -v or general.log_level, lines as text or JSON (references only, as logged)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mailvoice.logref import cap_content_loggers

if TYPE_CHECKING:
    from mailvoice.config import GeneralSettings

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_cli_verbose = 0
_cli_format: str | None = None


class JsonFormatter(logging.Formatter):
    """One JSON object per line. Messages are references by convention; a traceback is reduced to its type,
    because exception text from a library may quote content (a header, a path)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            doc["exception"] = record.exc_info[0].__name__
        return json.dumps(doc, ensure_ascii=False)


def _level(verbose: int, configured: str) -> int:
    if verbose >= 2:
        return logging.DEBUG
    if verbose == 1:
        return min(logging.INFO, logging.getLevelNamesMapping()[configured])
    return logging.getLevelNamesMapping()[configured]


def _install(level: int, fmt: str) -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(_TEXT_FORMAT))
    for old in list(root.handlers):
        if getattr(old, "_mailvoice", False):
            root.removeHandler(old)
    handler._mailvoice = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    cap_content_loggers()  # -vv is for mailvoice's own references, never a library's copy of the mail


def configure(verbose: int, log_format: str | None) -> None:
    """At start-up, before any config is read: -v and --log-format from the command line."""
    global _cli_verbose, _cli_format
    _cli_verbose, _cli_format = verbose, log_format
    _install(_level(verbose, "WARNING"), log_format or "text")


def apply_settings(general: GeneralSettings) -> None:
    """Once the config is parsed: general.log_level and general.log_format, unless the command line said more."""
    _install(_level(_cli_verbose, general.log_level), _cli_format or general.log_format)
