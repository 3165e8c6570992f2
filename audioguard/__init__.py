"""Shared pieces of the audio anomaly classifier: the contract between the
transformer and the predictor (constants, errors), the official model assets
(download, checksums, synthetic official-format files) and the command line."""

import os

# numpy's OpenBLAS worker threads busy-wait after every call and steal the cores
# TensorFlow needs next (measured on 2 cores: a 10-s clip took 142 ms instead of
# 103 ms). Our matrices are small, so one BLAS thread loses nothing. This only
# works before numpy is first imported; an operator's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
