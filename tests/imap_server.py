"""A real IMAP server on loopback for tests: Dovecot (Debian ``dovecot-imapd``), run in a tmp dir.

Why Dovecot and not a mock: UIDVALIDITY, UID assignment and ``UID n:*`` semantics are
exactly where pollers go wrong, and only a real server behaves like the ones users have.

The server is started once per test session (``dovecot`` fixture) with a generated 2.3
config: plaintext auth without TLS, a passwd-file user database, maildirs under the tmp
dir, its own ``base_dir`` so it never touches a system Dovecot. Each test gets its own
user (``imap_server`` fixture) — Dovecot re-reads the passwd-file when it changes — so
tests are isolated without paying for a restart.

Running as root (CI containers): Dovecot refuses to run its login processes or mail
access as root, so logins run as ``dovenull``, internal processes as ``dovecot`` and mail
is owned by ``nobody``; the tmp dir is made world-traversable for them. As another user,
every process runs as that user.

Missing Dovecot fails the test run when ``CI=true`` and skips otherwise.
Install: ``apt-get install -y dovecot-imapd``.
"""

from __future__ import annotations

import grp
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from peers import missing_peer

INSTALL_HINT = "apt-get install -y dovecot-imapd"
PRECREATED_USERS = 50


class ImapAccount(NamedTuple):
    """Where to log in; unpacks as ``host, port, user, password``."""

    host: str
    port: int
    user: str
    password: str


def find_dovecot() -> str | None:
    """The dovecot binary; /usr/sbin is often not on a non-root PATH."""
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.access(p, os.X_OK)),
        None,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _user_or(name: str, fallback: str) -> str:
    try:
        pwd.getpwnam(name)
        return name
    except KeyError:
        return fallback


class DovecotServer:
    """One Dovecot process with a generated config; ``start()`` waits until it accepts."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="dovecot-test-"))
        self.users_file = self.root / "users"
        self.log_file = self.root / "dovecot.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._serial = itertools.count(1)
        self._created = 0

    def _identities(self) -> tuple[str, str, str, int, int]:
        """(login user, internal user, internal group, mail uid, mail gid)."""
        if os.geteuid() != 0:
            me = pwd.getpwuid(os.geteuid())
            return me.pw_name, me.pw_name, grp.getgrgid(os.getegid()).gr_name, me.pw_uid, me.pw_gid
        nobody = pwd.getpwnam("nobody")
        internal = _user_or("dovecot", "nobody")
        group = grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name
        return _user_or("dovenull", "nobody"), internal, group, nobody.pw_uid, nobody.pw_gid

    def _config(self) -> str:
        login_user, internal_user, internal_group, uid, gid = self._identities()
        mail = self.root / "mail"
        return f"""
protocols = imap
listen = {self.host}
base_dir = {self.root / "run"}
state_dir = {self.root / "state"}
log_path = {self.log_file}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# tests log in with wrong passwords on purpose: no 2 s delay, no per-IP penalty afterwards
auth_failure_delay = 0
login_trusted_networks = 127.0.0.0/8
default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
first_valid_uid = 1
mail_location = maildir:{mail}/%u
mail_fsync = never
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.users_file}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mail}/%u
}}
"""

    def start(self, timeout: float = 15.0) -> DovecotServer:
        _, _, _, uid, gid = self._identities()
        self.root.chmod(0o755)
        (self.root / "mail").mkdir()
        if os.geteuid() == 0:
            os.chown(self.root / "mail", uid, gid)
        self._create_users(PRECREATED_USERS)
        config = self.root / "dovecot.conf"
        config.write_text(self._config())
        self.process = subprocess.Popen(
            [self.binary, "-F", "-c", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited at start-up:\n{self._output()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                    if sock.recv(64).startswith(b"* OK"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not accept IMAP on port {self.port}:\n{self._output()}")

    def add_user(self) -> ImapAccount:
        """An unused user with an empty mailbox."""
        serial = next(self._serial)
        if serial > self._created:
            # Dovecot re-stats the passwd-file at most once per second: wait that out
            self._create_users(PRECREATED_USERS)
            time.sleep(1.1)
        user = f"user{serial}"
        return ImapAccount(self.host, self.port, user, f"secret-{user}")

    def _create_users(self, count: int) -> None:
        """Users are written ahead of time so handing one out never waits for a reload."""
        with self.users_file.open("a") as users:
            for serial in range(self._created + 1, self._created + count + 1):
                users.write(f"user{serial}:{{PLAIN}}secret-user{serial}::::::\n")
        self._created += count

    def _output(self) -> str:
        log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        out = ""
        if self.process is not None and self.process.stdout and self.process.poll() is not None:
            out = self.process.stdout.read().decode(errors="replace")
        return (out + log)[-4000:]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stdout:
            self.process.stdout.close()
        shutil.rmtree(self.root, ignore_errors=True)


def require_dovecot() -> str:
    """The binary, or fail (under ``CI=true``: a green run must not hide it) or skip."""
    binary = find_dovecot()
    if binary is None:
        missing_peer(f"dovecot is not installed; install it with: {INSTALL_HINT}")
    return binary


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """One Dovecot for the whole session."""
    server = DovecotServer(require_dovecot()).start()
    yield server
    server.stop()


@pytest.fixture
def imap_server(dovecot: DovecotServer) -> ImapAccount:
    """``(host, port, user, password)`` of a fresh, empty IMAP account on loopback."""
    return dovecot.add_user()
