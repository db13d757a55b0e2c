"""Settings: defaults, overridden by ``sequencer.toml`` and then by ``SEQUENCER_*`` variables.

The config file is looked up at ``$SEQUENCER_CONFIG`` or ``./sequencer.toml``. A missing
file is fine; a file that does not parse is an error naming the file and line.
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
    secret_key: str = "change-me"
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
    broker_url: str = "redis://127.0.0.1:6379/0"
    source: str = "defaults"


_ENV = {
    "SEQUENCER_DATABASE_URL": "database_url",
    "SEQUENCER_TEMPLATES": "templates_dir",
    "SEQUENCER_PRIMARY_DOMAIN": "primary_domain",
    "SEQUENCER_UNSUBSCRIBE_URL": "unsubscribe_url",
    "SEQUENCER_SECRET_KEY": "secret_key",
    "SEQUENCER_BROKER_URL": "broker_url",
    "SEQUENCER_RULES_FILE": "rules_file",
}

_PATHS = {"templates_dir", "rules_file"}
_LISTS = {"dns_nameservers", "domain_blocklists", "ip_blocklists", "sending_ips", "mailboxes"}


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
    if env.get("SEQUENCER_DNS_NAMESERVERS"):
        settings.dns_nameservers = env["SEQUENCER_DNS_NAMESERVERS"].split(",")
    return settings


def _apply_file(settings: Settings, config_path: Path) -> None:
    try:
        data = tomllib.loads(config_path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: {exc}") from exc
    known = set(Settings.__dataclass_fields__) - {"source"}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{config_path}: unknown setting {key!r}")
        if key in _LISTS and not isinstance(value, list):
            raise ConfigError(f"{config_path}: {key} must be a list")
        if key in _PATHS:
            value = (config_path.parent / value).resolve()
        setattr(settings, key, value)
    settings.source = str(config_path)
