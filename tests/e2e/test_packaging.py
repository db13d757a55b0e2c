"""The wheel is the product: built from the repository and installed in a fresh venv, it runs the demo.

The templates (the repository's root ``templates/``) and the Alembic migrations must be
package data of the wheel; nothing may be read from the source checkout. The fresh venv
gets the wheel itself (``--no-deps``) and borrows the dependencies from the venv running
the tests through a ``.pth`` file listing its site-packages folders. A ``.pth`` line only
adds a folder to ``sys.path`` (the ``.pth`` files inside it are not run), so the outer
venv's editable install of this project, a ``.pth`` hook, stays out.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MIGRATIONS = REPO / "sequencer" / "core" / "migrations"
# Everything a build could leave behind or that is not source: the copy is a clean clone.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                    ".ruff_cache", ".hypothesis", "*.db", "*.db-*")


def _isolation() -> list[str]:
    """Build offline with this venv's setuptools when it meets build-system.requires, else let pip fetch one."""
    try:
        installed = tuple(int(part) for part in version("setuptools").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return []
    has_bdist_wheel = installed >= (70, 1) or _installed("wheel")
    return ["--no-build-isolation"] if installed >= (68, 0) and has_bdist_wheel else []


def _installed(distribution: str) -> bool:
    try:
        version(distribution)
    except PackageNotFoundError:
        return False
    return True


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    done = subprocess.run(args, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the working tree (a build writes build/ and *.egg-info in place)."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    out = root / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", *_isolation(), "-w", str(out), str(source)],
         cwd=root, timeout=300)
    (built,) = out.glob("sequencer-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv holding the wheel, with the test venv's site-packages after its own for the dependencies."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=venv.parent)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index",
          str(wheel)], cwd=venv.parent)
    site_packages = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                              cwd=venv.parent).strip())
    borrowed = [entry for entry in sys.path if entry.endswith("site-packages") and Path(entry).is_dir()]
    (site_packages / "_borrowed_dependencies.pth").write_text("".join(f"{entry}\n" for entry in borrowed))
    return venv


def _clean_env() -> dict[str, str]:
    """No PYTHONPATH (nor any SEQUENCER_* setting) that could point back at the checkout."""
    drop = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"}
    return {key: value for key, value in os.environ.items() if key not in drop and not key.startswith("SEQUENCER_")}


def test_wheel_carries_every_template_and_migration(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())

    templates = [path for path in (REPO / "templates").rglob("*") if path.is_file()]
    migrations = [path for path in MIGRATIONS.rglob("*") if path.is_file() and "__pycache__" not in path.parts]
    assert templates and any(path.suffix == ".mako" for path in migrations)
    missing = [f"sequencer/shipped/{path.relative_to(REPO / 'templates').as_posix()}" for path in templates]
    missing += [path.relative_to(REPO).as_posix() for path in migrations]
    presets = sorted((REPO / "sequencer" / "intake" / "presets").glob("*.yaml"))  # the prospect import's maps
    assert len(presets) == 5
    missing += [path.relative_to(REPO).as_posix() for path in presets]
    assert [name for name in missing if name not in names] == []
    assert not any(name.startswith(("templates/", "tests/", "bench/")) for name in names), sorted(names)


def test_installed_wheel_uses_its_own_copy(fresh_venv: Path, tmp_path: Path) -> None:
    probe = "import sequencer, sequencer.core.config as c; print(sequencer.__file__); print(c.REPO_TEMPLATES)"
    module, templates = _run([str(fresh_venv / "bin" / "python"), "-c", probe], cwd=tmp_path,
                             env=_clean_env()).splitlines()

    assert Path(module).is_relative_to(fresh_venv), module
    assert Path(templates).is_relative_to(fresh_venv), templates
    assert (Path(templates) / "demo" / "prospects.csv").is_file()


def test_sequencer_demo_runs_from_the_installed_wheel(fresh_venv: Path, tmp_path: Path) -> None:
    empty = tmp_path / "elsewhere"
    empty.mkdir()

    text = _run([str(fresh_venv / "bin" / "sequencer"), "demo"], cwd=empty, env=_clean_env())

    assert re.search(r"^loaded sequence ", text, re.MULTILINE), text
    emails = re.search(r"^(\d+) emails received by the loopback SMTP server", text, re.MULTILINE)
    assert emails and int(emails.group(1)) > 0, text
    assert "missing variable prospect.first_name" in text
    assert "suppressed: customer" in text
