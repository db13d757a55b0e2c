"""``sequencer init``: a sequencer.toml with a fresh secret and the settings to fill in; never overwrites."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sequencer.app.cli import app as cli
from sequencer.core.config import load_settings, signing_secret

pytestmark = pytest.mark.unit


def init_in(folder: Path, monkeypatch: pytest.MonkeyPatch):
    folder.mkdir(exist_ok=True)
    monkeypatch.chdir(folder)
    return CliRunner().invoke(cli, ["init"])


def test_init_writes_a_config_with_a_fresh_secret_readable_by_its_owner_only(tmp_path, monkeypatch):
    result = init_in(tmp_path / "a", monkeypatch)
    other = init_in(tmp_path / "b", monkeypatch)

    assert result.exit_code == 0, result.output
    path = tmp_path / "a" / "sequencer.toml"
    assert f"wrote {path}" in " ".join(result.output.split())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    settings = load_settings(path, env={})
    assert settings.secret_key_origin == f"secret_key in {path}"
    assert signing_secret(settings) == settings.secret_key and len(settings.secret_key) >= 43
    assert load_settings(tmp_path / "b" / "sequencer.toml", env={}).secret_key != settings.secret_key
    assert other.exit_code == 0


def test_the_commented_settings_are_valid_once_filled_in(tmp_path, monkeypatch):
    init_in(tmp_path, monkeypatch)
    path = tmp_path / "sequencer.toml"
    text = path.read_text()

    uncommented = re.sub(r"^# (\[\[mailboxes\]\]|[a-z_]+ = .*)$", r"\1", text, flags=re.M)
    path.write_text(uncommented)
    settings = load_settings(path, env={})

    for name in ("database_url", "primary_domain", "unsubscribe_url", "[[mailboxes]]"):
        assert f"# {name}" in text, name
    assert settings.primary_domain == "acme.example"
    assert settings.unsubscribe_url == "https://go.outreach-acme.example/u"
    assert settings.database_url == "sqlite:///sequencer.db"
    assert settings.mailboxes[0]["address"] == "sam@outreach-acme.example"
    assert settings.mailboxes[0]["smtp_password_env"] == "SAM_SMTP_PASSWORD"


def test_init_refuses_to_overwrite_an_existing_config(tmp_path, monkeypatch):
    path = tmp_path / "sequencer.toml"
    path.write_text('secret_key = "the one already in use, keep it"\n')

    result = init_in(tmp_path, monkeypatch)
    again = init_in(tmp_path, monkeypatch)

    assert result.exit_code == 0, result.output  # the starter templates/ was still missing
    assert f"{path} already exists; not overwriting it" in " ".join(result.stderr.split())
    assert path.read_text() == 'secret_key = "the one already in use, keep it"\n'
    assert (tmp_path / "templates" / "sequences" / "webinar-follow-up.yaml").is_file()
    assert again.exit_code == 1  # nothing left to write
    assert path.read_text() == 'secret_key = "the one already in use, keep it"\n'
