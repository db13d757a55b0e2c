"""Postfix's ``smtp-sink`` on a free loopback port, started and stopped by the benchmark.

The benchmark must measure the engine, not the SMTP peer. aiosmtpd (the test server)
accepts only a few hundred messages per second here; ``smtp-sink`` accepts thousands and
throws them away. It is started with ``-c`` so it prints running counters, which lets
the benchmark check that every touch it counted really reached the server.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

SMTP_SINK = Path("/usr/sbin/smtp-sink")
BACKLOG = 256


class SinkMissing(RuntimeError):
    """``smtp-sink`` is not installed."""


class SmtpSink:
    """Context manager: ``with SmtpSink() as sink: ... sink.host, sink.port, sink.received()``."""

    def __init__(self, host: str = "127.0.0.1", binary: Path = SMTP_SINK) -> None:
        self.host = host
        self.port = 0
        self.binary = binary
        self._process: subprocess.Popen[bytes] | None = None
        self._counters = Path()

    def __enter__(self) -> Self:
        if not self.binary.exists():
            raise SinkMissing(
                f"{self.binary} not found: install Postfix's tools with "
                "`DEBIAN_FRONTEND=noninteractive apt-get install -y postfix`"
            )
        self.port = _free_port(self.host)
        command = [str(self.binary), "-c", f"{self.host}:{self.port}", str(BACKLOG)]
        if os.geteuid() == 0:  # smtp-sink drops privileges only when it has some to drop
            command[1:1] = ["-u", "nobody"]
        descriptor, name = tempfile.mkstemp(prefix="smtp-sink-", suffix=".out")
        self._counters = Path(name)
        try:
            self._process = subprocess.Popen(command, stdout=descriptor, stderr=subprocess.PIPE)
        finally:
            os.close(descriptor)  # the child has its own copy
        self._wait_until_listening()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)
        self._counters.unlink(missing_ok=True)

    def received(self) -> int:
        """Messages accepted so far (the last ``mesg=`` counter smtp-sink printed)."""
        text = self._counters.read_text(errors="replace")
        counts = re.findall(r"mesg=(\d+)", text)
        return int(counts[-1]) if counts else 0

    def _wait_until_listening(self, timeout: float = 5.0) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise RuntimeError(f"smtp-sink exited with {self._process.returncode}: {error.strip()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"smtp-sink did not listen on {self.host}:{self.port} within {timeout:g}s")


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
