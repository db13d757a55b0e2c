"""``sequencer init``: start a workspace in the current folder, beginning with ``sequencer.toml``.

Init is a list of steps (``STEPS``); each names the paths it would create and then
creates them. Every step's paths are checked before any step writes, so init either sets
up the whole workspace or refuses (exit 1) and leaves everything as it was; it never
overwrites. A later step (a starter ``templates/`` folder) is one more entry in ``STEPS``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import typer

from sequencer.app.cli.common import console, fail

CONFIG_NAME = "sequencer.toml"

CONFIG_TEMPLATE = """\
# sequencer.toml, written by `sequencer init`. SEQUENCER_* environment variables override it
# (SEQUENCER_DATABASE_URL, SEQUENCER_SECRET_KEY, ...). Uncomment and fill in what you use.

# Signs the unsubscribe links in every email. Keep it secret (this file is readable by its
# owner only) and keep it stable: a new secret makes every link already sent invalid.
secret_key = "{secret}"

# Where the engine keeps its state: SQLite (the default, this folder) for one host, or
# PostgreSQL for workers on several, e.g. "postgresql://sequencer@127.0.0.1:5432/sequencer".
# database_url = "sqlite:///sequencer.db"

# Your company's own domain: outreach never goes out from it.
# primary_domain = "acme.example"

# The public address of `sequencer serve`'s /u route (RFC 8058 one-click unsubscribe).
# unsubscribe_url = "https://go.outreach-acme.example/u"

# One [[mailboxes]] table per sending mailbox. The SMTP password is never written here:
# smtp_password_env names the environment variable that holds it.
# [[mailboxes]]
# address = "sam@outreach-acme.example"
# display_name = "Sam Rivera"
# owner = "sam.sdr@acme.example"
# smtp_host = "smtp.example.net"
# smtp_port = 587
# smtp_security = "starttls"
# smtp_username = "sam@outreach-acme.example"
# smtp_password_env = "SAM_SMTP_PASSWORD"
# daily_cap = 40
"""


@dataclass(frozen=True)
class Step:
    targets: Callable[[Path], list[Path]]  # what the step would create under the folder
    write: Callable[[Path], str]  # creates them; returns what it did, for the user


def _write_config(folder: Path) -> str:
    path = folder / CONFIG_NAME
    text = CONFIG_TEMPLATE.format(secret=secrets.token_urlsafe(32))
    # O_EXCL: a file that appeared since the check is still never overwritten; 0600: it holds a secret.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    return f"wrote {path} with a new random secret_key; fill in the commented settings"


STEPS: list[Step] = [
    Step(targets=lambda folder: [folder / CONFIG_NAME], write=_write_config),
]


def init_command() -> None:
    """Write ./sequencer.toml with a fresh random secret_key and the settings to fill in; never overwrites."""
    folder = Path.cwd()
    existing = [path for step in STEPS for path in step.targets(folder) if path.exists()]
    if existing:
        fail(f"{existing[0]} already exists; not overwriting it (move it away to start again)")
    for step in STEPS:
        try:
            console.print(step.write(folder), highlight=False, soft_wrap=True)
        except OSError as exc:
            fail(f"{exc.filename or folder}: {exc.strerror or exc}")
    typer.echo("next: `sequencer api-keys create --name NAME` for the HTTP API, then `sequencer serve` / `run`")
