"""The ``audioguard`` command (also ``python -m audioguard``): Ctrl-C is handled first.

The command's own imports take a few hundred milliseconds and the model loads
seconds more; the SIGINT handler goes in before any of it, so Ctrl-C at any
moment exits 130 without a traceback (``contract.interrupts``).
"""

from __future__ import annotations

import sys

from contract.interrupts import exit_on_interrupt


def main() -> int:
    with exit_on_interrupt():
        from audioguard.cli import main as run

        return run()


if __name__ == "__main__":
    sys.exit(main())
