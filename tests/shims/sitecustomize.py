"""Loaded by a CLI subprocess whose PYTHONPATH starts with tests/shims (never by pytest itself).

MVTEST_BLOCK=uvicorn,celery: importing those top-level modules fails with ModuleNotFoundError, as on a machine
where the optional extra is not installed (the real packages are installed here, so absence is simulated).
MVTEST_OPENLOG=FILE and MVTEST_WATCH=DIR: every open() of a path under DIR is appended to FILE (a Python audit hook),
to prove a command never reads a file.
"""

from __future__ import annotations

import importlib.abc
import os
import sys

_blocked = {m.strip() for m in os.environ.get("MVTEST_BLOCK", "").split(",") if m.strip()}


class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.split(".")[0] in _blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by tests/shims)", name=name)


if _blocked:
    sys.meta_path.insert(0, _Block())

_log, _watch = os.environ.get("MVTEST_OPENLOG"), os.environ.get("MVTEST_WATCH")
if _log and _watch:
    _watch_dir = os.path.realpath(_watch)

    def _hook(event: str, args: tuple[object, ...]) -> None:
        if event == "open" and isinstance(args[0], str | bytes):
            path = os.fsdecode(args[0])
            if os.path.realpath(path).startswith(_watch_dir):
                with open(_log, "a", encoding="utf-8") as fh:
                    fh.write(path + "\n")

    sys.addaudithook(_hook)
