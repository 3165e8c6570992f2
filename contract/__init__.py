"""The bottom layer: what the transformer and the predictor agree on and share.

The embeddings contract (constants, tensor names), the one error hierarchy, the
official model assets (names, URLs, sha512, download and verification),
adaptive batching and its metrics, the v2 routes both services serve
(``v2_routes``), the KServe server fixes both services install (every patch of
KServe and the tested KServe version in ``kserve_compat``), settings-to-flags
plumbing and the one number and boolean parser (``parsing.py``). It imports
neither service nor the user-facing ``audioguard`` package (enforced by the
import contracts in pyproject.toml).
"""

import os

# numpy's OpenBLAS worker threads busy-wait after every call and steal the cores
# TensorFlow needs next (measured on 2 cores: a 10-s clip took 142 ms instead of
# 103 ms). Our matrices are small, so one BLAS thread loses nothing. This only
# works before numpy is first imported; an operator's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
