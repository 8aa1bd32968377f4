"""`mailvoice serve`: the browser dictation page on a local port (put an HTTPS reverse proxy in front for phones)."""

from __future__ import annotations

import argparse
import logging
import os

from mailvoice.commands import err_console, open_store, settings_from

log = logging.getLogger(__name__)
TOKEN_ENV = "MAILVOICE_WEB_TOKEN"  # noqa: S105 (a variable name, not a secret)
_ANY = ("0.0.0.0", "::")  # noqa: S104 (recognised, not bound here)
ORIGINS_ENV = "MAILVOICE_WEB_ORIGINS"
"""Comma-separated extra origins allowed on the WebSocket, e.g. the reverse proxy's https://mail.example.org."""


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from mailvoice.dictation.runtime import Pipeline
    from mailvoice.web.app import WebConfig, create_app
    from mailvoice.web.security import Limits, allowed_origins, new_token

    settings = settings_from(args)
    token = args.token or os.environ.get(TOKEN_ENV, "") or new_token()
    extra = [o for o in os.environ.get(ORIGINS_ENV, "").split(",") if o.strip()]
    origins = allowed_origins(args.host, args.port, extra)
    store = open_store(settings)
    pipeline = Pipeline(settings)
    app = create_app(settings, pipeline, WebConfig(token, origins, Limits()), store)
    shown = "127.0.0.1" if args.host in _ANY else args.host
    if not (args.token or os.environ.get(TOKEN_ENV)):
        err_console().print(f"open http://{shown}:{args.port}/#token={token}")
    else:
        source = "--token" if args.token else TOKEN_ENV
        err_console().print(f"serving on http://{shown}:{args.port}/ (token from {source})")
    log.info("allowed WebSocket origins: %s", ", ".join(sorted(origins)))
    from mailvoice.feed import configured_base, feed_path, feed_token

    feed_base = configured_base(settings) or f"http://{shown}:{args.port}"
    err_console().print(
        f"podcast feed of spoken summaries: {feed_base}{feed_path(feed_token(settings))}"
        " (keep this address secret; delete <data_dir>/feed-token to revoke it)"
    )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        ws="websockets-sansio",
        ws_max_size=300_000,
        ws_per_message_deflate=False,
        log_level="warning",
        lifespan="off",
        proxy_headers=False,
        server_header=False,
    )
    try:
        uvicorn.Server(config).run()
    finally:
        pipeline.close()
        store.close()
    return 0
