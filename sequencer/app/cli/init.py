"""``sequencer init``: start a workspace in the current folder: ``sequencer.toml`` and ``templates/``.

Init is a list of steps (``STEPS``); each names the paths it would create and then
creates them. It never overwrites: a step whose path exists is skipped and says so (an
SDR who already has a ``templates/`` keeps it and still gets a config with a fresh
secret), and init exits 1 only when there was nothing left to write. The starter
``templates/`` is one example sequence (a custom signal type declared in ``signals.yaml``,
an email, a call, a bump) copied from the shipped ``starter`` folder; it is written whole
or not at all (copied beside, then renamed into place).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import typer

from sequencer.app.cli.common import console, err_console, fail
from sequencer.core.config import REPO_TEMPLATES

CONFIG_NAME = "sequencer.toml"
TEMPLATES_NAME = "templates"
STARTER = REPO_TEMPLATES / "starter"  # shipped as package data with the other examples

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

# Sequences and their texts are read from ./templates (written by init); another folder:
# templates_dir = "templates"

# A trial run: every email goes into the Maildir ./outbox instead of being sent (or: run --sandbox).
# sandbox = true

# Custom signal types can also be listed here, in a table at the end of this file:
# [signals] and below it types = ["webinar_attended", "pricing_page"] (or in templates/signals.yaml).
# Custom prospect fields your templates use: [prospects] and below it custom_fields = ["tier"].

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


def _write_templates(folder: Path) -> str:
    target = folder / TEMPLATES_NAME
    staging = Path(tempfile.mkdtemp(prefix=".templates-", dir=folder))
    try:
        shutil.copytree(STARTER, staging / TEMPLATES_NAME)
        if target.exists():  # appeared since the check: still never overwritten
            raise FileExistsError(17, "already exists", str(target))
        os.rename(staging / TEMPLATES_NAME, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return (f"wrote {target}/ with a starter sequence to edit (sequences/webinar-follow-up.yaml, "
            "steps/webinar/, signals.yaml); check it with `sequencer sequences check`")


STEPS: list[Step] = [
    Step(targets=lambda folder: [folder / CONFIG_NAME], write=_write_config),
    Step(targets=lambda folder: [folder / TEMPLATES_NAME], write=_write_templates),
]


def init_command() -> None:
    """Write ./sequencer.toml (a fresh random secret_key, the settings to fill in) and a starter
    ./templates; never overwrites what exists."""
    folder = Path.cwd()
    written = 0
    for step in STEPS:
        existing = [path for path in step.targets(folder) if path.exists()]
        if existing:
            err_console.print(f"{existing[0]} already exists; not overwriting it (kept as it is)",
                              highlight=False, soft_wrap=True)
            continue
        try:
            console.print(step.write(folder), highlight=False, soft_wrap=True)
        except OSError as exc:
            fail(f"{exc.filename or folder}: {exc.strerror or exc}")
        written += 1
    if not written:
        fail(f"nothing to write: {folder} is already a workspace (move a file away to start it again)")
    typer.echo("next: `sequencer sequences check`, `sequencer prospects import FILE`, `sequencer run --sandbox`; "
               "`sequencer api-keys create --name NAME` for the HTTP API")
