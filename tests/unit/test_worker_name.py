"""``sequencer worker --name``: every worker process gets its own Celery node name by default."""

from __future__ import annotations

import os
import subprocess
import sys

from sequencer.app.cli.worker import default_name, worker_argv


def test_the_default_node_name_is_unique_per_process():
    here = default_name()
    other = subprocess.run([sys.executable, "-c", "from sequencer.app.cli.worker import default_name; "
                            "print(default_name())"], capture_output=True, text=True, check=True).stdout.strip()

    assert here == f"sequencer-{os.getpid()}@%h"
    assert other != here and other.endswith("@%h")


def test_the_name_given_is_passed_to_celery_as_its_hostname():
    assert "--hostname=mailer-1@%h" in worker_argv(2, False, "info", "mailer-1@%h")
    assert f"--hostname={default_name()}" in worker_argv(2, True, "info")
