"""The page's live view: ``GET /v1/monitor``'s status of each source plus its newest scored window.

One road: the state, level, restarts and open events are the monitor's own status
(``MonitorService.status``), the scores those its detection step read (``SourceState.latest``,
kept by ``transformer.monitor.loop``). Nothing is computed here that the monitor did not.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from transformer.monitor.service import MonitorService

#: Seconds between two live updates (the page is at most this much behind, plus a step).
UPDATE_SECONDS: Final = 0.25
#: A stream ends after this long; the browser reconnects at once (bounds a server stop's wait).
STREAM_SECONDS: Final = 30.0


def snapshot(monitor: MonitorService) -> dict[str, Any]:
    """Every source's status, its watched groups' latest scores and thresholds, its top labels."""
    status = monitor.status()
    for source in status["sources"]:
        state = monitor.monitor.heard(source["name"])
        latest = state.latest
        source["window"] = None if latest is None else latest.to_dict()
        source["thresholds"] = {g.name: g.threshold for g in state.detector.groups if g.enabled}
        source["events"] = state.events
    status["now"] = time.time()
    return status


async def live_stream(
    monitor: MonitorService, disconnected: Callable[[], Any], sleep: Callable[[float], Any]
) -> AsyncIterator[bytes]:
    """Server-sent events: a ``status`` event with the snapshot every ``UPDATE_SECONDS``, for
    ``STREAM_SECONDS`` (the browser's EventSource then reconnects)."""
    yield b"retry: 300\n\n"
    ends = time.monotonic() + STREAM_SECONDS
    while time.monotonic() < ends and not await disconnected():
        text = json.dumps(snapshot(monitor), separators=(",", ":"))
        yield f"event: status\ndata: {text}\n\n".encode()
        await sleep(UPDATE_SECONDS)
