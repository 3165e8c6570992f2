"""The monitor as a running service: one supervisor per source, one consuming loop, status, metrics.

``python -m transformer --sources_file FILE`` runs it beside the request routes
(events through the DHT outbox) and ``audioguard monitor`` runs it alone (events
printed). The loop takes every chunk waiting (up to ``MAX_CHUNKS_PER_STEP``, all
sources together) and hands them to ``Monitor.process``: one VGGish call and one
predictor call per step. A step that fails (the predictor is down or serves another
model, the outbox cannot be written) is counted and logged at most once a minute per
cause, in one line without a traceback (``contract.log_limit``); the loop goes on with
the next audio, and the supervisors keep capturing meanwhile (the bounded queue drops
the oldest audio if the outage outlasts it).

``status()`` is what ``GET /v1/monitor`` answers; ``MonitorCollector`` (``metrics``) exposes
the same per-source figures on ``/metrics`` at each scrape. Neither says
anything of the audio beyond its level. What happens to the sources (connected, lost, failed,
finished with its events, audio dropped, the summary at the stop) is told as it happens
(``notices``: the console of ``audioguard monitor``, the service's log).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
from prometheus_client.registry import REGISTRY

from contract.errors import InvalidParameter
from contract.log_limit import RateLimitedLog, describe_failure, failure_cause
from transformer.analysis.events import EventChange
from transformer.analysis.modes import SetBy, mode_request
from transformer.analysis.record_context import RecordContext
from transformer.monitor.chunks import Chunk, ChunkQueue
from transformer.monitor.loop import Monitor, RecordEvents
from transformer.monitor.metrics import MonitorCollector
from transformer.monitor.notices import Notify, log_notice
from transformer.monitor.reporter import Reporter
from transformer.monitor.sources import SourceSpec
from transformer.monitor.supervisor import SourceSupervisor

logger = logging.getLogger(__name__)

#: Chunks handed to the monitor at once: all that is waiting, up to this many (0.1 s each, all
#: sources together). A host that falls behind then works in larger batches (one VGGish and one
#: predictor call per step, each source's chunks resampled and anonymised as one piece), which
#: costs less per second of audio: it catches up instead of dropping.
MAX_CHUNKS_PER_STEP: Final = 1024
#: Seconds of each source's audio the queue holds by default, beyond its privacy window.
QUEUE_SECONDS: Final = 5.0
#: Seconds of audio per chunk (the supervisors' reads).
CHUNK_SECONDS: Final = 0.1
#: Shortest time between two log lines about steps failing for the same cause.
FAILURE_LOG_SECONDS: Final = 60.0


class MonitorService:
    """Every source captured and listened to until ``stop``."""

    def __init__(
        self,
        sources: Sequence[SourceSpec],
        monitor: Monitor,
        *,
        queue_chunks: int | None = None,
        ffmpeg: str = "ffmpeg",
        session: str | None = None,
        notify: Notify | None = None,
    ) -> None:
        """
        Args:
            sources: the validated sources (``load_sources``).
            monitor: the detection over those sources (its embed/score/record injected).
            queue_chunks: chunks (0.1 s each, all sources) waiting at most; the oldest go first.
                None: ``default_queue_chunks(sources)``.
            ffmpeg: the ffmpeg program.
            session: this run's id (in the status; the monitor's event ids use it too).
            notify: how a notice about the sources is said (default: a log line).
        """
        self.sources = list(sources)
        self.monitor = monitor
        self.session = session or str(uuid.uuid4())
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.queue: ChunkQueue | None = None
        self.queue_chunks = default_queue_chunks(sources) if queue_chunks is None else queue_chunks
        self.ffmpeg = ffmpeg
        self.supervisors: list[SourceSupervisor] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._consumer: asyncio.Task[None] | None = None
        self._collector: MonitorCollector | None = None
        self.steps = self.failed_steps = 0
        self.failures = RateLimitedLog(logger, FAILURE_LOG_SECONDS)
        self.notify = notify or log_notice
        self.reporter = Reporter(self.notify, monitor)

    async def start(self, *, register_metrics: bool = True) -> None:
        """Start the captures and the consuming loop on the running event loop."""
        self.queue = ChunkQueue(self.queue_chunks, on_drop=self.reporter.dropped)
        self.reporter.listening(self.sources)
        if self.monitor.modes is not None:  # every source's first mode, recorded
            await self.monitor.modes.update()
        self.supervisors = [
            SourceSupervisor(spec, self.queue, binary=self.ffmpeg, notify=self.notify)
            for spec in self.sources
        ]
        self._tasks = [
            asyncio.create_task(
                self._supervise(supervisor), name=f"audioguard-source-{supervisor.source.name}"
            )
            for supervisor in self.supervisors
        ]
        self._consumer = asyncio.create_task(self._consume(), name="audioguard-monitor")
        if register_metrics:
            self._collector = MonitorCollector(self)
            REGISTRY.register(self._collector)

    async def _supervise(self, supervisor: SourceSupervisor) -> None:
        """Run one capture; when it ends for good, tell the monitor after the source's last audio."""
        try:
            await supervisor.run()
        except Exception as error:  # a fault of the supervisor itself: that source fails, said once
            logger.exception("source %s: its capture broke down", supervisor.source.name)
            supervisor.fail(f"the capture broke down ({type(error).__name__}: {error})")
        if supervisor.status.state in ("finished", "failed") and self.queue is not None:
            name = supervisor.source.name
            end = Chunk(name, np.zeros(0, dtype=np.int16), 0.0, 0, final=True, droppable=False)
            await self.queue.put(end)

    async def wait_sources_done(self) -> None:
        """Return once every capture has ended (files played out, sources failed) and its audio is
        processed; a live stream never ends, so this waits for ``stop`` there."""
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.queue is not None and self._consumer is not None and not self._consumer.done():
            await self.queue.join()

    async def stop(self) -> None:
        """Stop the captures, process what they delivered, end the open events (recorded)."""
        for supervisor in self.supervisors:
            await supervisor.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.queue is not None and self._consumer is not None and not self._consumer.done():
            await self.queue.join()
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
        try:
            await self.monitor.close()
        except Exception as error:  # the ends could not be recorded: say so, the stop goes on
            logger.error("the open events could not be ended: %s", describe_failure(error))
        self.reporter.stopped(self.supervisors)
        if self._collector is not None:
            REGISTRY.unregister(self._collector)
            self._collector = None

    async def _consume(self) -> None:
        assert self.queue is not None
        while True:
            chunks = [await self.queue.get()]
            while not self.queue.empty() and len(chunks) < MAX_CHUNKS_PER_STEP:
                chunks.append(self.queue.get_nowait())
            try:
                await self.monitor.process(chunks)
                self.steps += 1
            except Exception as error:  # one failing step never stops the listening
                self.failed_steps += 1
                self.failures.log(
                    logging.WARNING,
                    failure_cause(error),
                    # the windows due in the step are lost, not just its chunks: no seconds to give
                    "listening: a detection step failed, its windows not analysed (%d step(s) so far): %s",
                    self.failed_steps,
                    describe_failure(error),
                    error=error,
                )
            finally:
                for chunk in chunks:
                    if chunk.final:  # its audio analysed and its events ended: say how it went
                        self.reporter.ended(self._supervisor(chunk.source))
                    self.queue.task_done()

    def _supervisor(self, name: str) -> SourceSupervisor:
        return next(supervisor for supervisor in self.supervisors if supervisor.source.name == name)

    def status(self) -> dict[str, Any]:
        """Per source: state, seconds since its last audio, level, restarts, drops, open events."""
        now = time.monotonic()
        return {
            "session": self.session,
            "started_at": self.started_at,
            "steps": self.steps,
            "failed_steps": self.failed_steps,
            "sources": [self._source_status(supervisor, now) for supervisor in self.supervisors],
        }

    def _source_status(self, supervisor: SourceSupervisor, now: float) -> dict[str, Any]:
        status = supervisor.status.to_dict(now)
        name = supervisor.source.name
        if status["state"] == "finished" and name not in self.monitor.ended:
            status["state"] = "finishing"  # played out; its held-back audio is still being analysed
        modes = {} if self.monitor.modes is None else self.monitor.modes.board.status().get(name, {})
        novelty = self.monitor.heard(name).novelty
        learnt = {} if novelty is None else {"unusual_sound": novelty.status()}
        return {**status, "open_events": self.monitor.open_groups(name), **modes, **learnt}

    async def reset_novelty(self, request: object) -> dict[str, Any]:
        """Forget what ``{"source": NAME}`` (no source: every source) learnt of its normal sounds
        (its stored model too); InvalidParameter names a bad request. Each source's state after."""
        names = [supervisor.source.name for supervisor in self.supervisors] or [s.name for s in self.sources]
        learning = [name for name in names if self.monitor.heard(name).novelty is not None]
        if not learning:
            raise InvalidParameter("no source learns its normal sounds (unusual_sound is off)")
        if not isinstance(request, dict) or set(request) - {"source"}:
            raise InvalidParameter(
                'a reset request is a JSON object: {"source": NAME} or {} for every source'
            )
        source = request.get("source")
        if source is not None and source not in learning:
            raise InvalidParameter(f"'source' must be one of the sources that learn ({', '.join(learning)})")
        chosen = learning if source is None else [source]
        self.monitor.learnt.forget_novelty(chosen)
        return {name: self.monitor.heard(name).novelty.status() for name in chosen}  # type: ignore[union-attr]

    async def set_mode(self, request: object, by: SetBy) -> dict[str, Any]:
        """Apply a mode request (``{"mode", "source"}``, InvalidParameter if bad); the changes it
        made (recorded before this returns) and every source's mode now."""
        if self.monitor.modes is None:
            raise InvalidParameter("this monitor runs without modes")
        board = self.monitor.modes.board
        mode, source = mode_request(request, board.sources)
        changes = await self.monitor.modes.request(mode, source, by)
        return {
            "changed": [
                {"source": change.source, "mode": change.mode, "previous": change.previous}
                for change in changes
            ],
            "modes": board.status(),
        }


def default_queue_chunks(sources: Sequence[SourceSpec]) -> int:
    """Room for ``QUEUE_SECONDS`` of every source's audio plus its privacy window: an anonymised
    source releases a window's audio at once, and sources started together release together."""
    seconds = sum(QUEUE_SECONDS + source.privacy_window_seconds for source in sources)
    return max(10, math.ceil(seconds / CHUNK_SECONDS))


def logged_events(record: RecordEvents | None) -> RecordEvents:
    """``record`` (the outbox; None without a DHT) after one INFO line per start or end (never audio)."""

    def log_then_record(changes: Sequence[EventChange], context: RecordContext) -> None:
        for change in changes:
            logger.info(
                "live event %s on %s: %s [%s] at %.2f s, peak %.2f",
                change.change,
                change.source,
                change.label,
                change.group,
                change.start_seconds if change.end_seconds is None else change.end_seconds,
                change.peak_score,
            )
        if record is not None:
            record(changes, context)

    return log_then_record
