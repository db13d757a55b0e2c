"""Settings: defaults, overridden by ``sequencer.toml`` and then by ``SEQUENCER_*`` variables.

The config file is looked up at ``$SEQUENCER_CONFIG`` or ``./sequencer.toml``. A missing
file is fine; a file that does not parse is an error naming the file and line.

``secret_key`` has no usable default: it signs the unsubscribe links, so a value anyone
can read in this source would let anyone unsubscribe anyone. Every command that signs asks
``signing_secret(settings)`` for it, which refuses an empty, placeholder or short secret
and says where the value came from; commands that sign nothing never ask.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_PACKAGE = Path(__file__).resolve().parents[1]
# A wheel ships the root templates/ as sequencer/shipped (setup.py); a checkout has only the root.
_SHIPPED = _PACKAGE / "shipped"
REPO_TEMPLATES = _SHIPPED if _SHIPPED.is_dir() else _PACKAGE.parent / "templates"


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the file and the field."""


@dataclass
class Settings:
    database_url: str = "sqlite:///sequencer.db"
    templates_dir: Path = field(default_factory=lambda: REPO_TEMPLATES)
    primary_domain: str = ""  # the company's own domain; outreach must never use it
    unsubscribe_url: str = "http://127.0.0.1:8000/u"
    unsubscribe_mailto: str = ""
    secret_key: str = ""  # no default on purpose: see signing_secret()
    dns_nameservers: list[str] = field(default_factory=list)  # "host" or "host:port"
    dns_timeout: float = 3.0
    domain_blocklists: list[str] = field(
        default_factory=lambda: ["dbl.spamhaus.org", "multi.surbl.org", "multi.uribl.com"]
    )
    ip_blocklists: list[str] = field(default_factory=lambda: ["zen.spamhaus.org"])
    sending_ips: list[str] = field(default_factory=list)
    dkim_selector: str = "default"
    rules_file: Path | None = None
    mailboxes: list[dict[str, Any]] = field(default_factory=list)
    domain_daily_cap: int = 500  # per sending domain per UTC day
    recipient_domain_daily_cap: int = 5  # emails to one recipient company per day
    recipient_domain_weekly_cap: int = 15  # ... and per ISO week
    meeting_invite_prospect: bool = False  # the calendar invitation goes to the AE; with this, to the prospect too
    broker_url: str = "redis://127.0.0.1:6379/0"
    # Who acts at once on a signal the HTTP API stored: celery (the workers' ingest task), none (the
    # embedded loop wakes on it, or the tick), auto: celery on PostgreSQL, none on SQLite.
    signal_dispatch: str = "auto"
    # Meetings (sequencer.meetings). The AEs meetings may be booked for; empty: any valid address.
    meeting_aes: list[str] = field(default_factory=list)
    meeting_default_ae: str = ""  # the AE of a booking that names none (a task closed as meeting_booked)
    meeting_default_duration: int = 30  # minutes
    meeting_unknown_prospect: str = "create"  # a booking for an address we do not know: create | park
    meeting_reminders_hours: list[float] = field(default_factory=lambda: [24, 1])  # before the start
    meeting_acceptance_days: int = 14  # the AE accepts or rejects a held meeting within this many days
    qualification_file: Path | None = None  # what makes a meeting sales-accepted; default qualification.yaml
    # Booking tools' webhooks (POST /webhooks/calcom, /webhooks/calendly): no secret, no delivery accepted.
    calcom_webhook_secret: str = ""  # the secret given to the Cal.com webhook (X-Cal-Signature-256)
    calendly_signing_key: str = ""  # the webhook subscription's signing_key (Calendly-Webhook-Signature)
    webhook_unknown_attendee: str = "create"  # a booking by an address we do not know: create | park (for review)
    # The SDR's workspace (#15). Custom signal types ([signals] types = [...]) and declared prospect
    # custom fields ([prospects] custom_fields = [...]); sandbox: every email goes to sandbox_outbox.
    signal_types: list[str] = field(default_factory=list)
    prospect_custom_fields: list[str] = field(default_factory=list)
    sandbox: bool = False
    sandbox_outbox: Path = field(default_factory=lambda: Path("outbox"))
    # Sending (engine/send_batch.py): the SMTP connect and command timeout, the send lease (0: fitted to
    # each batch from the timeout and its size) and the back-off of a batch whose relay was down.
    smtp_timeout: float = 15.0
    send_lease_seconds: float = 0.0
    relay_retry_seconds: float = 2.0  # the first retry; doubles with each failure in a row
    relay_retry_max_seconds: float = 300.0
    imap_poll_seconds: float = 60.0  # how often the embedded loop and beat poll every mailbox's IMAP (0: never)
    # Reports (#13). [protection]: complaint/bounce warn and pause rates in percent, min_sample, window_days
    # (read and checked by sequencer.deliverability.protection.thresholds). [costs]: per_month, [costs.sdr],
    # [costs.partner] amounts per month, for the pipeline report's cost per accepted meeting.
    protection: dict[str, Any] = field(default_factory=dict)
    costs: dict[str, Any] = field(default_factory=dict)
    templates_origin: str = "the shipped examples"  # which rule chose templates_dir (resolve_templates)
    source: str = "defaults"
    secret_key_origin: str = ""  # where secret_key came from, for signing_secret()'s messages


_ENV = {
    "SEQUENCER_DATABASE_URL": "database_url",
    "SEQUENCER_TEMPLATES": "templates_dir",
    "SEQUENCER_PRIMARY_DOMAIN": "primary_domain",
    "SEQUENCER_UNSUBSCRIBE_URL": "unsubscribe_url",
    "SEQUENCER_BROKER_URL": "broker_url",
    "SEQUENCER_SIGNAL_DISPATCH": "signal_dispatch",
    "SEQUENCER_RULES_FILE": "rules_file",
    "SEQUENCER_CALCOM_WEBHOOK_SECRET": "calcom_webhook_secret",
    "SEQUENCER_CALENDLY_SIGNING_KEY": "calendly_signing_key",
}

SECRET_ENV = "SEQUENCER_SECRET_KEY"
MIN_SECRET_LENGTH = 16
# Values that were once shipped or documented as examples: known to everyone, so no secret.
_PLACEHOLDERS = {"change-me", "changeme", "secret", "a long random string"}
_HOW_TO_SET = (
    "run `sequencer init` to write a sequencer.toml with a fresh random secret, or set secret_key in "
    f"sequencer.toml or {SECRET_ENV} (at least {MIN_SECRET_LENGTH} characters; "
    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'` makes one)"
)

# Number settings and their variables; each must be a number >= 0 (ConfigError names the variable or key).
_NUMBERS = {"SEQUENCER_SMTP_TIMEOUT": "smtp_timeout", "SEQUENCER_SEND_LEASE_SECONDS": "send_lease_seconds",
            "SEQUENCER_RELAY_RETRY_SECONDS": "relay_retry_seconds",
            "SEQUENCER_RELAY_RETRY_MAX_SECONDS": "relay_retry_max_seconds",
            "SEQUENCER_IMAP_POLL_SECONDS": "imap_poll_seconds"}

_PATHS = {"templates_dir", "rules_file", "qualification_file", "sandbox_outbox"}
_LISTS = {"dns_nameservers", "domain_blocklists", "ip_blocklists", "sending_ips", "mailboxes", "meeting_aes",
          "meeting_reminders_hours", "signal_types", "prospect_custom_fields"}
# TOML tables whose keys are settings: [signals] types = [...] is signal_types.
_SECTIONS = {("signals", "types"): "signal_types", ("prospects", "custom_fields"): "prospect_custom_fields"}


def load_settings(path: Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Build settings from defaults, the config file and the environment, in that order."""
    env = dict(os.environ if env is None else env)
    settings = Settings()
    config_path = path or Path(env.get("SEQUENCER_CONFIG", "sequencer.toml"))
    if config_path.exists():
        _apply_file(settings, config_path)
    elif path is not None or "SEQUENCER_CONFIG" in env:
        raise ConfigError(f"{config_path}: config file not found")
    for var, name in _ENV.items():
        if env.get(var):
            setattr(settings, name, Path(env[var]) if name in _PATHS else env[var])
    for var, name in _NUMBERS.items():
        if env.get(var):
            setattr(settings, name, _number(var, env[var]))
        _number(f"{name} in {settings.source}", getattr(settings, name))
    if env.get("SEQUENCER_TEMPLATES"):
        settings.templates_origin = "SEQUENCER_TEMPLATES"
    if env.get("SEQUENCER_SANDBOX"):
        settings.sandbox = env["SEQUENCER_SANDBOX"].strip().lower() in ("1", "true", "yes")
    if SECRET_ENV in env:
        # Set but empty is a mistake (an unset secret in a deployment template, say), never a
        # reason to fall back to the file's secret: signing_secret() names the variable.
        settings.secret_key = env[SECRET_ENV]
        settings.secret_key_origin = SECRET_ENV
    if env.get("SEQUENCER_DNS_NAMESERVERS"):
        settings.dns_nameservers = env["SEQUENCER_DNS_NAMESERVERS"].split(",")
    return resolve_templates(settings)


def resolve_templates(settings: Settings, option: Path | None = None, cwd: Path | None = None) -> Settings:
    """Choose the templates folder, the one rule every command follows; returns ``settings``.

    In order: ``option`` (a command's ``--templates``), ``templates_dir`` from the config file or
    ``SEQUENCER_TEMPLATES``, ``./templates`` when it exists, and the shipped examples only when
    none of these names a folder. ``templates_origin`` says which rule chose, so a command can
    tell the SDR which folder it read instead of silently checking the package's own examples.
    """
    if option is not None:
        settings.templates_dir = option.resolve()
        settings.templates_origin = "--templates"
    elif settings.templates_origin == "the shipped examples":
        local = (cwd or Path.cwd()) / "templates"
        if local.is_dir():
            settings.templates_dir = local.resolve()
            settings.templates_origin = "./templates"
    return settings


def _number(where: str, value: object) -> float:
    """A setting that must be a number >= 0 (a timeout, a lease, a back-off)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = -1.0
    if isinstance(value, bool) or not number >= 0 or number == float("inf"):
        raise ConfigError(f"{where}: must be a number of seconds >= 0, not {value!r}")
    return number


def _apply_file(settings: Settings, config_path: Path) -> None:
    try:
        data = tomllib.loads(config_path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: {exc}") from exc
    known = set(Settings.__dataclass_fields__) - {"source", "secret_key_origin", "templates_origin"}
    for section in {section for section, _ in _SECTIONS}:
        table = data.get(section)
        if isinstance(table, dict):
            for sub, value in data.pop(section).items():
                if (section, sub) not in _SECTIONS:
                    raise ConfigError(f"{config_path}: unknown setting {sub!r} in [{section}]")
                data[_SECTIONS[section, sub]] = value
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{config_path}: unknown setting {key!r}")
        if key in _LISTS and not isinstance(value, list):
            raise ConfigError(f"{config_path}: {key} must be a list")
        if key in _PATHS:
            value = (config_path.parent / value).resolve()
        if key == "templates_dir":
            settings.templates_origin = f"templates_dir in {config_path}"
        if key == "secret_key":
            if not isinstance(value, str):
                raise ConfigError(f"{config_path}: secret_key must be a string")
            settings.secret_key_origin = f"secret_key in {config_path}"
        setattr(settings, key, value)
    settings.source = str(config_path)


def signing_secret(settings: Settings) -> str:
    """The secret that signs unsubscribe links, or a ConfigError saying what is wrong and how to fix it.

    The one check every signing entry point (serve, run, worker) makes before it starts. The
    secret is trusted only if it is not empty, not a published placeholder and at least
    MIN_SECRET_LENGTH characters: anything shorter or known could be guessed, and then
    anyone could forge an unsubscribe link for any address.
    """
    secret = settings.secret_key
    origin = settings.secret_key_origin or "secret_key"
    if not secret:
        if origin == SECRET_ENV:
            raise ConfigError(f"{SECRET_ENV} is set but empty; unset it or give it a secret: {_HOW_TO_SET}")
        if settings.secret_key_origin:
            raise ConfigError(f"{origin} is empty (unsubscribe links could be forged): {_HOW_TO_SET}")
        raise ConfigError(f"no secret_key is set (unsubscribe links could be forged): {_HOW_TO_SET}")
    if secret.strip().lower() in _PLACEHOLDERS:
        raise ConfigError(f"{origin} is the placeholder {secret!r}, which anyone can read: {_HOW_TO_SET}")
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(f"{origin} is {len(secret)} characters, shorter than {MIN_SECRET_LENGTH}: {_HOW_TO_SET}")
    return secret
