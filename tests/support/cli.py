"""The ``audioguard`` command run as a child process, as a user's shell runs it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support.serverutil import PROJECT_ROOT, service_env


def run_audioguard(
    *args: str,
    cwd: Path = PROJECT_ROOT,
    timeout: float = 300,
    env: Mapping[str, str | None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``audioguard ARGS`` (the project on PYTHONPATH, ``env`` over the test's environment): its
    exit status and output, whatever the status; ``timeout`` bounds a hung command."""
    return subprocess.run(
        [sys.executable, "-m", "audioguard.cli", *args],
        cwd=cwd,
        env=service_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
