"""Session-wide fixtures: model directories with synthetic official-format weights.

The official weights cannot be downloaded on the test machines; these files go
through exactly the same loaders. The 289 MB VGGish checkpoint is written once
per session. Set AUDIOGUARD_TEST_MODEL_DIR to a directory holding the official
files to run the same tests on the real model.
"""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED_AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "audio"

# The image tests need the images scripts/images.sh builds; it runs them itself (with this set).
collect_ignore_glob = [] if os.environ.get("AUDIOGUARD_IMAGES_TAG") else ["images/*"]


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


@pytest.fixture()
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """Serve ``tmp_path/www`` over HTTP on 127.0.0.1; yield (base URL, root, request log)."""
    root = tmp_path / "www"
    root.mkdir()
    requested: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: object) -> None:
            requested.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root, requested
    finally:
        server.shutdown()
        server.server_close()
