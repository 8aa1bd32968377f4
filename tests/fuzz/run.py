"""Fuzz one front door with atheris (libFuzzer): `python tests/fuzz/run.py mime|audio CORPUS [libFuzzer flags]`.

CORPUS is a directory; when it is empty, the seed corpus is written into it first (nothing binary is committed).
A finding (see harness.py) stops the run with a crash-* file under -artifact_prefix and exit status 1. The slowest
inputs so far are kept in CORPUS/../<corpus name>-slowest.json (libFuzzer ends the process without Python's atexit).
Example, a long run in the background on a shared machine:

    nice -n 15 .venv/bin/python tests/fuzz/run.py mime /tmp/fz/mime -runs=600000 -print_final_stats=1
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness


def main() -> None:
    import atheris

    kind, corpus = sys.argv[1], Path(sys.argv[2])
    if kind not in harness.TARGETS:
        raise SystemExit(f"unknown target {kind!r}; known: {', '.join(harness.TARGETS)}")
    if not corpus.is_dir() or not any(corpus.iterdir()):
        harness.write_seeds(kind, corpus)
    harness.quiet()
    report = corpus.parent / f"{corpus.name}-slowest.json"
    slowest = harness.Slowest()

    with atheris.instrument_imports(include=["mailvoice"]):
        import email.parser  # noqa: F401 - instrumented with the rest of the stdlib email package

        target = harness.TARGETS[kind]()
        for seed in sorted(corpus.iterdir())[:3]:  # loads the stages' lazy imports while instrumenting
            harness.guarded(target, limit=None)(seed.read_bytes())  # first calls import
    run = harness.guarded(target, slowest)
    last_top = [-1.0]

    def one(data: bytes) -> None:
        run(data)
        top = slowest.items[0][0] if slowest.items else 0.0
        if top != last_top[0] or slowest.runs % 20000 == 0:
            last_top[0] = top
            rows = [{"cpu_s": round(s, 4), "bytes": n, "data": d.hex()} for s, n, d in slowest.items]
            report.write_text(json.dumps({"runs": slowest.runs, "slowest": rows}, indent=1))

    atheris.Setup([sys.argv[0], *sys.argv[3:], str(corpus)], one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
