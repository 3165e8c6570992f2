import os

# One OpenBLAS thread: see audioguard/__init__.py (must precede numpy's import).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
