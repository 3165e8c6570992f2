"""Import KServe from a command that is not a KServe server, without it reading that command's flags.

``kserve.model_server`` parses ``sys.argv`` when it is first imported (its
module-level ``args``). In ``audioguard client --grpc`` or ``audioguard serve
--predictor ...`` that parse sees our flags: ``--grpc`` is an ambiguous prefix
of its ``--grpc_port`` and argparse exits with KServe's usage. Commands import
KServe through ``import_kserve`` first; later imports find it loaded.
"""

from __future__ import annotations

import sys


def import_kserve() -> None:
    """Import ``kserve`` (and its ``model_server``) with an empty command line."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        import kserve.model_server  # noqa: F401
    finally:
        sys.argv = saved
