"""Where the audio of an event came from: what every record of one recording or source says.

Kept apart from ``transformer.analysis.records`` (which builds the records) so that the
monitor can name its sources' contexts without building records itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from contract.weights_status import WeightsStatus
from transformer.analysis.types import Origin


@dataclass(frozen=True)
class RecordContext:
    """What every record of one recording or one live source says about where it came from."""

    origin: Origin
    source: str
    analyzer_id: str
    privacy_method: str
    privacy_params: Mapping[str, Any] = field(default_factory=dict)
    weights: WeightsStatus = field(default_factory=lambda: WeightsStatus(False, None))
    analysis_id: str | None = None
    session: str | None = None
    requestor_id: str | None = None
    requestor_type: str | None = None
    request_id: str | None = None
    audio_file: str | None = None
