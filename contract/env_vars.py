"""``${VAR}`` in a setting: read from the environment when used, so secrets stay out of files.

One rule for a source's URL (``transformer.monitor.sources``) and the MQTT broker's URL and
credentials (``transformer.mqtt.config``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Final

VARIABLE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_variables(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with each ``${VAR}`` replaced from the environment (KeyError names a missing one)."""
    variables = os.environ if environ is None else environ
    return VARIABLE.sub(lambda match: variables[match.group(1)], text)


def missing_variables(text: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """The ``${VAR}`` names of ``text`` that the environment does not set."""
    variables = os.environ if environ is None else environ
    return sorted({name for name in VARIABLE.findall(text) if name not in variables})
