"""KServe transformer: audio in, privacy-anonymised VGGish embeddings out to the
predictor, top-k labels and safety anomalies back to the caller."""

import os

# One OpenBLAS thread: see contract/__init__.py (must precede numpy's import).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
