"""``sequencer serve``: the HTTP API (one-click unsubscribe, inbound webhook) under uvicorn."""

from __future__ import annotations

import typer
import uvicorn

from sequencer.app.api import create_app
from sequencer.app.cli.common import settings
from sequencer.core.db import make_engine, migrate


def serve_command(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the HTTP API until interrupted."""
    config = settings()
    engine = make_engine(config.database_url)
    migrate(engine)
    uvicorn.run(create_app(config, engine), host=host, port=port, log_level="info")
    typer.echo("stopped")
