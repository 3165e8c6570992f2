"""Session-wide fixtures: model directories with synthetic official-format weights.

The official weights cannot be downloaded on the test machines; these files go
through exactly the same loaders. The 289 MB VGGish checkpoint is written once
per session. Set AUDIOGUARD_TEST_MODEL_DIR to a directory holding the official
files to run the same tests on the real model.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "audio"


@pytest.fixture(scope="session")
def synthetic_classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory holding only a synthetic ``classifier_model.h5``."""
    from audioguard.synthetic import write_synthetic_assets

    model_dir = tmp_path_factory.mktemp("classifier-model")
    write_synthetic_assets(model_dir, include=("classifier",))
    return model_dir


@pytest.fixture(scope="session")
def synthetic_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory with all three official files (synthetic unless overridden)."""
    override = os.environ.get("AUDIOGUARD_TEST_MODEL_DIR")
    if override:
        return Path(override)
    from audioguard.synthetic import write_synthetic_assets

    model_dir = tmp_path_factory.mktemp("model")
    write_synthetic_assets(model_dir)
    return model_dir


@pytest.fixture(scope="session")
def shared_audio_dir() -> Path:
    """The real recordings next to the project (../shared/audio); skip when absent."""
    if not SHARED_AUDIO.is_dir():
        pytest.skip("../shared/audio is not present (optional real-recording test)")
    return SHARED_AUDIO
