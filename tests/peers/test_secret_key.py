"""``secret_key``: serve, run and worker refuse to start without a usable one; the rest never ask.

The signing commands run as subprocesses from an empty folder, as a user starts them, so a
command that wrongly starts (serve listening, a worker waiting for its broker) runs into
the timeout and fails the test instead of hanging it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from sequencer.app.cli import app as cli
from sequencer.core.config import REPO_TEMPLATES

GOOD = "kN3v9-Qm2xL7pR4tW8yZ1bC6dF0gH5jK"
MAIN = "from sequencer.app.cli import app; app()"
NO_BROKER = "redis://127.0.0.1:1/0"  # nothing listens: a worker that wrongly started waits here, never consumes
# A refusal comes before the database is opened, so one database is enough for those tests.
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
HOW_TO = ("sequencer init", "secret_key in sequencer.toml", "SEQUENCER_SECRET_KEY", "at least 16 characters")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def sequencer(db_url: str, tmp_path: Path):
    """``sequencer ARGS`` in a subprocess from ``tmp_path``, with no SEQUENCER_* settings but the database."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SEQUENCER_")}
    base |= {"SEQUENCER_DATABASE_URL": db_url, "SEQUENCER_BROKER_URL": NO_BROKER, "COLUMNS": "250"}

    def run(*args: str, argv: list[str] | None = None, **env: str) -> subprocess.CompletedProcess[str]:
        command = argv or [sys.executable, "-c", MAIN, *args]
        return subprocess.run(command, cwd=tmp_path, env=base | env, capture_output=True, text=True, timeout=60)

    run.env = base
    return run


@pytest.fixture
def run_once(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``sequencer run --once`` in this process (it ends by itself either way), from ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    for name in [name for name in os.environ if name.startswith("SEQUENCER_")]:
        monkeypatch.delenv(name)

    def invoke(**env: str):
        return CliRunner().invoke(cli, ["run", "--once"], env={"SEQUENCER_DATABASE_URL": db_url, **env})

    return invoke


def one_line(text: str) -> str:
    return " ".join(text.split())


SIGNING = {
    "serve": ["serve", "--port", "0"],
    "run": ["run", "--once"],
    "worker": ["worker", "--no-beat", "--concurrency", "1"],
}


@SQLITE_ONLY
@pytest.mark.parametrize("command", SIGNING)
def test_a_signing_command_refuses_to_start_without_a_secret_and_says_how_to_set_one(sequencer, command):
    result = sequencer(*SIGNING[command])

    assert result.returncode == 1, result.stdout + result.stderr
    message = one_line(result.stderr)
    assert "refusing to" in message and "no secret_key is set" in message
    assert all(hint in message for hint in HOW_TO), message


@SQLITE_ONLY
@pytest.mark.parametrize(("line", "problem"), [
    ('secret_key = "short-secret"', "is 12 characters, shorter than 16"),
    ('secret_key = "change-me"', "is the placeholder 'change-me'"),
    ('secret_key = ""', "is empty"),
])
def test_a_short_placeholder_or_empty_secret_in_the_file_is_refused_naming_the_file(run_once, tmp_path, line, problem):
    config = tmp_path / "sequencer.toml"
    config.write_text(line + "\n")

    result = run_once()

    assert result.exit_code == 1, result.output
    message = one_line(result.stderr)
    assert problem in message
    assert f"secret_key in {config.name} {problem}" in message  # the file as it was found, in the folder


@SQLITE_ONLY
def test_a_secret_that_is_not_a_string_is_an_error_naming_the_file(run_once, tmp_path):
    config = tmp_path / "sequencer.toml"
    config.write_text("secret_key = 1234567890123456789\n")

    result = run_once()

    assert result.exit_code == 1
    assert f"{config.name}: secret_key must be a string" in one_line(result.stderr)


@SQLITE_ONLY
def test_an_empty_environment_variable_is_an_error_not_a_fall_back_to_the_file(run_once, tmp_path):
    (tmp_path / "sequencer.toml").write_text(f'secret_key = "{GOOD}"\n')

    result = run_once(SEQUENCER_SECRET_KEY="")

    assert result.exit_code == 1
    assert "SEQUENCER_SECRET_KEY is set but empty" in one_line(result.stderr)


@SQLITE_ONLY
def test_a_short_secret_in_the_environment_is_refused_naming_the_variable(run_once):
    result = run_once(SEQUENCER_SECRET_KEY="tooshort")

    assert result.exit_code == 1
    assert "SEQUENCER_SECRET_KEY is 8 characters, shorter than 16" in one_line(result.stderr)


def test_run_starts_with_a_secret_from_the_environment(run_once):
    result = run_once(SEQUENCER_SECRET_KEY=GOOD)

    assert result.exit_code == 0, result.output


def test_run_starts_in_a_folder_made_by_init(run_once):
    made = CliRunner().invoke(cli, ["init"])

    result = run_once()

    assert made.exit_code == 0, made.output
    assert result.exit_code == 0, result.output


@SQLITE_ONLY
def test_serve_starts_with_a_secret_from_the_file(sequencer, tmp_path):
    (tmp_path / "sequencer.toml").write_text(f'secret_key = "{GOOD}"\n')
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", MAIN, "serve", "--port", str(port)], cwd=tmp_path,
                               env=sequencer.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not answer"
            time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(timeout=10)


@SQLITE_ONLY
def test_a_celery_worker_started_directly_refuses_without_a_secret(sequencer):
    result = sequencer(argv=[sys.executable, "-m", "celery", "-A", "sequencer.app.celery_app", "worker",
                             "--concurrency=1", "--without-mingle", "--without-gossip"])

    assert result.returncode == 1, result.stdout + result.stderr
    output = one_line(result.stdout + result.stderr)
    assert "refusing to start a worker: no secret_key is set" in output


@pytest.mark.parametrize("args", [
    ["sequences", "check", str(REPO_TEMPLATES / "sequences" / "inbound-form.yaml")],
    ["api-keys", "list"],
    ["suppress", "check", "ann@example.com"],
])
def test_commands_that_sign_nothing_work_without_a_secret(db_url, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    for name in ("SEQUENCER_CONFIG", "SEQUENCER_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)

    result = CliRunner().invoke(cli, args, env={"SEQUENCER_DATABASE_URL": db_url})

    assert result.exit_code == 0, result.output
