"""`mailvoice serve`: the browser dictation page on a local port (put an HTTPS reverse proxy in front for phones)."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from mailvoice.commands import err_console, open_store, settings_from
from mailvoice.errors import ConfigError

log = logging.getLogger(__name__)
TOKEN_ENV = "MAILVOICE_WEB_TOKEN"  # noqa: S105 (a variable name, not a secret)
_ANY = ("0.0.0.0", "::")  # noqa: S104 (recognised, not bound here)
ORIGINS_ENV = "MAILVOICE_WEB_ORIGINS"
"""Comma-separated extra origins allowed on the WebSocket, e.g. the reverse proxy's https://mail.example.org."""


def resolve_token(token_file: Path | None, environ: Mapping[str, str]) -> tuple[str, str]:
    """(token, where it came from): the environment, else a private file, else a new one ("" as the source)."""
    from mailvoice.config import read_private_file
    from mailvoice.web.security import MIN_TOKEN_LENGTH, new_token

    if environ.get(TOKEN_ENV):
        token, source = environ[TOKEN_ENV].strip(), TOKEN_ENV
    elif token_file is not None:
        token, source = read_private_file(token_file, "web token file"), str(token_file)
    else:
        return new_token(), ""
    if len(token) < MIN_TOKEN_LENGTH or not token.isprintable() or " " in token:
        raise ConfigError(
            f"web token from {source} is {len(token)} characters: use at least {MIN_TOKEN_LENGTH} printable "
            "characters without spaces, e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(24))'"
        )
    return token, source


def check_bind(host: str, behind_tls_proxy: bool) -> None:
    """A non-loopback address serves the token and dictated mail in clear text unless TLS is in front."""
    from mailvoice.config import is_loopback

    if is_loopback(host) or host == "::1":
        return
    if not behind_tls_proxy:
        raise ConfigError(
            f"serve --host {host} listens beyond this machine over plain HTTP: the token and what you dictate "
            "would cross the network in clear text. Put an HTTPS reverse proxy in front and pass "
            "--behind-tls-proxy (and MAILVOICE_WEB_ORIGINS=https://your.host), or bind 127.0.0.1"
        )
    log.warning("serving plain HTTP on %s: only a TLS reverse proxy in front may reach it", host)


def run(args: argparse.Namespace) -> int:
    from mailvoice.dictation.runtime import Pipeline
    from mailvoice.web.app import WebConfig, create_app
    from mailvoice.web.security import Limits, allowed_origins
    from mailvoice.web.server import ConnLimits, make_server

    if getattr(args, "token", None):
        raise ConfigError(
            f"serve --token: a token on the command line shows in `ps` to every user; set {TOKEN_ENV} "
            "or pass --token-file FILE (mode 0600)"
        )
    check_bind(args.host, args.behind_tls_proxy)
    if args.max_connections < 1 or not 1 <= args.max_per_client <= args.max_connections:
        raise ConfigError(
            f"serve --max-connections {args.max_connections} --max-per-client {args.max_per_client}: "
            "both must be at least 1, the per-client cap no larger than the total"
        )
    limits = ConnLimits(max_connections=args.max_connections, max_per_client=args.max_per_client)
    settings = settings_from(args)
    token_file = Path(args.token_file).expanduser() if args.token_file else None
    token, source = resolve_token(token_file, os.environ)
    extra = [o for o in os.environ.get(ORIGINS_ENV, "").split(",") if o.strip()]
    origins = allowed_origins(args.host, args.port, extra)
    store = open_store(settings)
    pipeline = Pipeline(settings)
    app = create_app(settings, pipeline, WebConfig(token, origins, Limits()), store)
    shown = "127.0.0.1" if args.host in _ANY else args.host
    if not source:
        err_console().print(f"open http://{shown}:{args.port}/#token={token}")
    else:
        err_console().print(f"serving on http://{shown}:{args.port}/ (token from {source})")
    log.info("allowed WebSocket origins: %s", ", ".join(sorted(origins)))
    from mailvoice.feed import configured_base, feed_path, feed_token

    feed_base = configured_base(settings) or f"http://{shown}:{args.port}"
    err_console().print(
        f"podcast feed of spoken summaries: {feed_base}{feed_path(feed_token(settings))}"
        " (keep this address secret; delete <data_dir>/feed-token to revoke it)"
    )
    try:
        make_server(app, args.host, args.port, limits).run()
    finally:
        pipeline.close()
        store.close()
    return 0
