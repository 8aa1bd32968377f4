"""Log an unexpected exception by reference: its type and where it was raised, never its message.

An exception message can carry content (UnicodeEncodeError quotes the offending text, a KeyError its key), so the
message is withheld at every level; the traceback's file and line positions are enough to find the bug.
"""

from __future__ import annotations

import logging
import traceback


def where(exc: BaseException) -> str:
    """'file:line in function' of the innermost frame that raised exc."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "unknown location"
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name}"


def log_unexpected(logger: logging.Logger, what: str, exc: BaseException) -> None:
    """An error line naming the exception type and location; the frames (code positions only) at debug level."""
    logger.error("%s: unexpected %s at %s", what, type(exc).__name__, where(exc))
    if logger.isEnabledFor(logging.DEBUG):
        frames = traceback.extract_tb(exc.__traceback__)
        logger.debug(
            "%s: traceback (message withheld):\n%s",
            what,
            "".join(f"  {f.filename}:{f.lineno} in {f.name}\n" for f in frames),
        )


CONTENT_LOGGERS = ("imapclient", "aiosmtplib", "kombu", "amqp", "celery", "sqlalchemy.engine")
"""Libraries whose DEBUG lines carry message content: imapclient logs every FETCH literal (the whole mail, its
subject, sender and filenames), the queue clients log task arguments, SQLAlchemy's echo logs bound parameters."""


def cap_content_loggers(level: int = logging.WARNING) -> None:
    """Keep those libraries at `level` or quieter, whatever -v asks for: their debug output is the mail itself
    (and SQLAlchemy's INFO is every statement with its parameters)."""
    for name in CONTENT_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < level:
            logger.setLevel(level)
