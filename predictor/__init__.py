"""KServe predictor: the multi-level attention classifier over quantised VGGish
embeddings, with adaptive batching."""

import os

# One OpenBLAS thread: see contract/__init__.py (must precede numpy's import).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
