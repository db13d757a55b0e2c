"""``sequencer api-keys create / list / revoke``: the keys the HTTP API's write endpoints require."""

from __future__ import annotations

from datetime import datetime

import typer
from rich.table import Table

from sequencer.app.cli.common import console, err_console, fail, open_session, print_json
from sequencer.core import api_keys
from sequencer.core.clock import SystemClock

app = typer.Typer(no_args_is_help=True, help="API keys for the HTTP API (POST /inbound and later write endpoints).")


@app.command("create")
def create_command(
    name: str = typer.Option(..., "--name", help="What the key is for, e.g. sendgrid-inbound; unique."),
    scope: list[str] = typer.Option(
        ["inbound"], "--scope", help=f"What the key may do: {' or '.join(api_keys.SCOPES)}; repeat for several."
    ),
) -> None:
    """Create a key and print it once: only its digest is stored, so it cannot be shown again."""
    with open_session() as session:
        try:
            new = api_keys.create(session, SystemClock().now(), name, scope)
        except api_keys.ApiKeyError as exc:
            fail(str(exc))
            return
    err_console.print(f"created API key {new.record.name!r} (id {new.record.id}, scopes "
                      f"{', '.join(new.record.scopes)}); copy it now, it is not stored and cannot be shown again:",
                      highlight=False)
    typer.echo(new.key)  # alone on stdout, so `KEY=$(sequencer api-keys create ...)` works


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "-"


@app.command("list")
def list_command(as_json: bool = typer.Option(False, "--json", help="One JSON array, for scripts.")) -> None:
    """Every key, revoked ones included: name, prefix, scopes, created, last used, revoked."""
    with open_session() as session:
        keys = api_keys.all_keys(session)
    if as_json:  # never the hash: the listing names keys, it does not hold them
        print_json([{"id": key.id, "name": key.name, "prefix": key.prefix, "scopes": list(key.scopes),
                     "created_at": key.created_at, "last_used_at": key.last_used_at,
                     "revoked_at": key.revoked_at} for key in keys])
        return
    if not keys:
        console.print("no API keys; create one with `sequencer api-keys create --name NAME`")
        return
    table = Table("id", "name", "prefix", "scopes", "created", "last used", "revoked")
    for key in keys:
        table.add_row(str(key.id), key.name, key.prefix + "...", ", ".join(key.scopes), _when(key.created_at),
                      _when(key.last_used_at), _when(key.revoked_at))
    console.print(table)


@app.command("revoke")
def revoke_command(name_or_id: str = typer.Argument(..., metavar="NAME_OR_ID")) -> None:
    """Revoke a key; requests carrying it are refused from now on."""
    with open_session() as session:
        try:
            key, changed = api_keys.revoke(session, SystemClock().now(), name_or_id)
        except api_keys.ApiKeyError as exc:
            fail(str(exc))
            return
    if changed:
        console.print(f"revoked API key {key.name!r} (id {key.id}, {key.prefix}...)", highlight=False)
    else:
        console.print(f"API key {key.name!r} was already revoked at {_when(key.revoked_at)}", highlight=False)
