"""The deployment examples in deploy/ hold together: the compose file parses and restarts what
dies, there is exactly one beat, the units restart their process, and every variable the
examples name is one the code reads (and every one the code reads is named)."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def _code_variables() -> set[str]:
    """Every SEQUENCER_* variable named in the code."""
    names: set[str] = set()
    for package in ("sequencer", "channels", "suppression"):
        for path in (ROOT / package).rglob("*.py"):
            names |= set(re.findall(r"SEQUENCER_[A-Z_]+", path.read_text()))
    return names


def test_the_compose_file_restarts_workers_beat_and_api_and_runs_one_beat():
    services = _compose()["services"]

    for name in ("worker", "beat", "api", "postgres", "redis", "unbound"):
        assert services[name]["restart"] == "unless-stopped", name
    assert services["migrate"]["restart"] == "no"
    assert "--no-beat" in services["worker"]["command"]  # the workers never schedule
    schedulers = [name for name, service in services.items() if "beat" in service.get("command", [])]
    assert schedulers == ["beat"]
    assert services["worker"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["api"]["ports"] == ["127.0.0.1:8000:8000"]  # only the reverse proxy reaches it


def test_no_secret_in_the_examples_has_a_usable_default():
    compose = (DEPLOY / "docker-compose.yml").read_text()
    assert "${POSTGRES_PASSWORD:?" in compose  # compose refuses to start without it
    values = dict(line.split("=", 1) for line in (DEPLOY / "sequencer.env.example").read_text().splitlines()
                  if line and not line.startswith("#"))
    assert values["SEQUENCER_SECRET_KEY"] == "" and values["POSTGRES_PASSWORD"] == ""
    assert all("#" not in value for value in values.values())  # an inline comment would become the value


def test_every_variable_the_code_reads_is_in_the_env_example_and_the_readme_and_no_other():
    example = set(re.findall(r"SEQUENCER_[A-Z_]+", (DEPLOY / "sequencer.env.example").read_text()))
    readme = (ROOT / "README.md").read_text()
    deploying = readme[readme.index("## Deploying"):]
    code = _code_variables()

    assert example == code
    assert {name for name in code if name not in deploying} == set()


def test_the_systemd_units_restart_their_process():
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.read(unit)
        assert parser["Service"]["Restart"] == "always", unit.name
        assert parser["Service"]["EnvironmentFile"] == "/etc/sequencer/sequencer.env", unit.name
        assert parser["Service"]["ExecStart"].startswith("/srv/sequencer/.venv/bin/"), unit.name
    worker = (DEPLOY / "systemd" / "sequencer-worker@.service").read_text()
    assert "--no-beat" in worker and "--name worker%i@%%h" in worker
