"""`mailvoice keys pgp import FILE... | list [--json] | remove FINGERPRINT|ADDRESS`: recipients' public keys."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mailvoice.commands import console, settings_from
from mailvoice.errors import PgpKeyError


def _import(args: argparse.Namespace) -> int:
    from mailvoice.pgpkeys import import_key
    from mailvoice.pgpmime import forget_notices

    settings = settings_from(args)
    for name in args.files:
        path = Path(name)
        try:
            data = sys.stdin.buffer.read() if name == "-" else path.read_bytes()
        except OSError as exc:
            raise PgpKeyError(f"key file {path} cannot be read ({exc.strerror})") from exc
        for key in import_key(settings, data, Path("<stdin>") if name == "-" else path):
            forget_notices(settings, key.addresses)
            until = f"until {key.expires:%Y-%m-%d}" if key.expires else "no expiry"
            console.info(f"imported {key.fingerprint.upper()} for {', '.join(key.addresses)} ({until})")
    return 0


def _list(args: argparse.Namespace) -> int:
    from mailvoice.pgpkeys import load_keys

    settings = settings_from(args)
    keys = load_keys(settings)
    for key in keys:
        problem = key.problem()
        if args.json:
            doc = {
                "fingerprint": key.fingerprint.upper(),
                "addresses": list(key.addresses),
                "user_ids": list(key.user_ids),
                "expires": key.expires.isoformat() if key.expires else None,
                "usable": problem is None,
                "problem": problem,
                "source": str(key.source),
            }
            print(json.dumps(doc, ensure_ascii=False))
        else:
            state = "usable" if problem is None else f"REFUSED: {problem}"
            console.info(f"{key.fingerprint.upper()}  {', '.join(key.addresses) or '(no address)'}  {state}")
    if not keys and not args.json:
        policy = settings.delivery.pgp
        console.info(f"no OpenPGP keys; import one with `mailvoice keys pgp import FILE` (pgp = {policy!r})")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from mailvoice.pgpkeys import managed_dir, remove_key

    settings = settings_from(args)
    removed = remove_key(settings, args.key)
    if not removed:
        console.error(
            f"no imported key matches {args.key!r} in {managed_dir(settings)} "
            "(keys from [delivery] pgp_keys are removed from those files)"
        )
        return 1
    for path in removed:
        console.info(f"removed {path.stem.upper()}")
    return 0


def run(args: argparse.Namespace) -> int:
    return {"import": _import, "list": _list, "remove": _remove}[args.pgp_command](args)
