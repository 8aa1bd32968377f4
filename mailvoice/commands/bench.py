"""`mailvoice bench asr|tts|mail|dictation|scale [--json]`: speed and memory, as ratios against a baseline."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from rich.markup import escape

from mailvoice.commands import err_console, settings_from


def _figures(what: str, args: argparse.Namespace) -> list[Any]:
    settings = settings_from(args)
    if what == "asr":
        from mailvoice.engines.asrbench import bench_asr_real

        return list(bench_asr_real(settings, quick=args.quick))
    if what == "tts":
        from mailvoice.engines.bench import bench_tts

        out: list[Any] = [bench_tts(settings)]
        try:
            from mailvoice.summary_bench import bench_tts_summary
        except ImportError:
            return out
        out.append(bench_tts_summary(settings))
        return out
    if what == "mail":
        from mailvoice.mailbench import bench_mail

        return [bench_mail(settings)]
    if what == "scale":
        from mailvoice.scale.bench import bench_scale

        return [bench_scale(settings)]
    if getattr(args, "sockets", 0) > 0:
        from mailvoice.dictation.loadbench import bench_sockets

        result, failures = bench_sockets(settings, args.sockets, args.seconds, config=getattr(args, "config", None))
        for why in sorted(set(failures)):
            err_console().print(f"unclean session ({failures.count(why)}x): {escape(why)}")
        return [result]
    from pathlib import Path

    data = Path(args.data) if getattr(args, "data", None) else None
    if what == "quality":
        from mailvoice.quality import bench_quality

        return [bench_quality(settings, data)]
    from mailvoice.dictation.bench import bench_dictation

    return [bench_dictation(settings, args.seconds, data)]


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    with err_console().status(f"running the {args.what} benchmark"):
        results = _figures(args.what, args)
    for result in results:
        doc = dataclasses.asdict(result)
        if args.json:
            print(json.dumps({"benchmark": type(result).__name__, **doc}, default=str))
            continue
        table = Table(title=type(result).__name__)
        table.add_column("figure")
        table.add_column("value", justify="right")
        for key, value in doc.items():
            shown = f"{value:.3f}" if isinstance(value, float) else str(value)
            table.add_row(key, escape(shown))
        from rich.console import Console

        Console().print(table)
    return 0
