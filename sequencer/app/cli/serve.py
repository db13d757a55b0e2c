"""``sequencer serve``: the HTTP API (one-click unsubscribe, inbound webhook) under uvicorn."""

from __future__ import annotations

import typer

from sequencer.app.cli.common import fail, settings
from sequencer.core.config import ConfigError, signing_secret
from sequencer.core.db import make_engine, migrate


def serve_command(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the HTTP API until interrupted (needs a secret_key: it verifies unsubscribe links)."""
    # Imported here: FastAPI and uvicorn are a quarter of every other command's start-up.
    import uvicorn

    from sequencer.app.api import create_app

    config = settings()
    try:
        signing_secret(config)
    except ConfigError as exc:
        fail(f"refusing to serve: {exc}")
    engine = make_engine(config.database_url)
    migrate(engine)
    uvicorn.run(create_app(config, engine), host=host, port=port, log_level="info")
    typer.echo("stopped")
