"""TensorFlow's native log lines: off at the default log level, at DEBUG when asked for.

TensorFlow prints from C++: on import the absl banner ("All log messages before
absl::InitializeLog() ..."), oneDNN's "custom operations are on", and later
cpu_feature_guard's instruction list. ``TF_CPP_MIN_LOG_LEVEL`` hides only the
lines written after absl is initialised (``quiet_native_logs``); what is printed
while the library loads is captured from fd 2 and logged at DEBUG
(``native_stderr_to_debug``). Kept free of gRPC and KServe: the ``audioguard``
CLI imports it on every start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from typing import Final

#: The services' log level (DEBUG, INFO, WARNING ...).
LOG_LEVEL_ENV: Final = "AUDIOGUARD_LOG_LEVEL"


#: TensorFlow's C++ log threshold (2: its INFO and WARNING lines, cpu_feature_guard's among them, off).
NATIVE_LOG_ENV: Final = "TF_CPP_MIN_LOG_LEVEL"


def quiet_native_logs() -> None:
    """Set ``TF_CPP_MIN_LOG_LEVEL=2`` unless the user set it or the services log at DEBUG; call
    before TensorFlow loads. (What TensorFlow prints while it loads, the absl and oneDNN
    banners, ignores it: see ``native_stderr_to_debug``.)"""
    if os.environ.get(LOG_LEVEL_ENV, "").upper() != "DEBUG":
        os.environ.setdefault(NATIVE_LOG_ENV, "2")


@contextlib.contextmanager
def native_stderr_to_debug(library: str) -> Iterator[None]:
    """Capture what native code writes to fd 2 while importing ``library``; re-log it at DEBUG.

    (TensorFlow's C++ start-up banners ignore ``TF_CPP_MIN_LOG_LEVEL`` before absl is
    initialised.) Python exceptions still propagate; their text is Python's, not fd 2's.
    """
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        try:
            os.dup2(captured.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            native = logging.getLogger(library)
            for line in captured.read().decode("utf-8", "replace").splitlines():
                if line.strip():
                    native.debug("%s", line)
