"""The user-facing layer: the ``audioguard`` command (weights, offline classify,
local serving, client), the offline classifier, plots and synthetic weights.

It sits on top of both services and the ``contract`` package; nothing below
imports it.
"""

import os

# One OpenBLAS thread: see contract/__init__.py (must precede numpy's import).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
