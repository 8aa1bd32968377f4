"""`python -m mailvoice.store.migrations URL`: migrate a PostgreSQL store to the newest schema, then exit."""

from __future__ import annotations

import sys

from mailvoice.store.db import make_engine
from mailvoice.store.migrations import HEAD, upgrade


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].startswith("postgresql"):
        print("usage: python -m mailvoice.store.migrations postgresql+psycopg://USER@HOST/DB", file=sys.stderr)
        return 2
    engine = make_engine(argv[0])
    try:
        before = upgrade(engine)
    finally:
        engine.dispose()
    print(f"store schema at {HEAD} (was {before or 'empty'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
