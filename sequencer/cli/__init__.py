"""The ``sequencer`` command line: a thin shell over the engine modules."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Signal-triggered outbound sequencing engine.")
