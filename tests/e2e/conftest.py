"""Fixtures the end-to-end modules share: a real predictor process, ffmpeg on the machine."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.serverutil import RunningServer, start_server
from tests.support.service_clients import predictor_args


@pytest.fixture(scope="module")
def predictor(synthetic_model_dir: Path) -> Iterator[RunningServer]:
    """A predictor ModelServer on loopback with the synthetic weights, one per test module."""
    server = start_server("predictor", predictor_args(synthetic_model_dir))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ffmpeg_installed() -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (bash scripts/install-system-tools.sh)")
