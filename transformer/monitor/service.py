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

``status()`` is what ``GET /v1/monitor`` answers; ``MonitorCollector`` exposes
the same per-source figures on ``/metrics`` at each scrape. Neither says
anything of the audio beyond its level.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

from contract.log_limit import RateLimitedLog, describe_failure, failure_cause
from transformer.analysis.events import EventChange
from transformer.analysis.record_context import RecordContext
from transformer.monitor.chunks import Chunk, ChunkQueue
from transformer.monitor.loop import Monitor, RecordEvents
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
    ) -> None:
        """
        Args:
            sources: the validated sources (``load_sources``).
            monitor: the detection over those sources (its embed/score/record injected).
            queue_chunks: chunks (0.1 s each, all sources) waiting at most; the oldest go first.
                None: ``default_queue_chunks(sources)``.
            ffmpeg: the ffmpeg program.
            session: this run's id (in the status; the monitor's event ids use it too).
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

    async def start(self, *, register_metrics: bool = True) -> None:
        """Start the captures and the consuming loop on the running event loop."""
        self.queue = ChunkQueue(self.queue_chunks)
        self.supervisors = [SourceSupervisor(spec, self.queue, binary=self.ffmpeg) for spec in self.sources]
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
        names = ", ".join(f"{s.name} ({s.kind})" for s in self.sources)
        logger.info("listening to %d source(s): %s", len(self.sources), names)

    async def _supervise(self, supervisor: SourceSupervisor) -> None:
        """Run one capture; when it ends for good, tell the monitor after the source's last audio."""
        await supervisor.run()
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
                for _ in chunks:
                    self.queue.task_done()

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
        return {**status, "open_events": self.monitor.open_groups(name)}


def default_queue_chunks(sources: Sequence[SourceSpec]) -> int:
    """Room for ``QUEUE_SECONDS`` of every source's audio plus its privacy window: an anonymised
    source releases a window's audio at once, and sources started together release together."""
    seconds = sum(QUEUE_SECONDS + source.privacy_window_seconds for source in sources)
    return max(10, math.ceil(seconds / CHUNK_SECONDS))


class MonitorCollector(Collector):
    """The sources' figures on ``/metrics``, read from the live statuses at each scrape."""

    def __init__(self, service: MonitorService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        now = time.monotonic()
        up = GaugeMetricFamily(
            "audioguard_monitor_source_up", "1 while the source delivers audio, else 0.", labels=["source"]
        )
        age = GaugeMetricFamily(
            "audioguard_monitor_source_seconds_since_audio",
            "Seconds since the source's last audio (absent before the first).",
            labels=["source"],
        )
        level = GaugeMetricFamily(
            "audioguard_monitor_source_level_dbfs", "RMS level of the source's last chunk.", labels=["source"]
        )
        open_events = GaugeMetricFamily(
            "audioguard_monitor_open_events", "Events in progress on the source.", labels=["source"]
        )
        restarts = CounterMetricFamily(
            "audioguard_monitor_source_restarts", "Captures restarted (ended or stalled).", labels=["source"]
        )
        dropped = CounterMetricFamily(
            "audioguard_monitor_dropped_chunks",
            "Audio chunks (0.1 s) dropped because detection fell behind.",
            labels=["source"],
        )
        for supervisor in self.service.supervisors:
            status, name = supervisor.status, supervisor.source.name
            up.add_metric([name], 1.0 if status.state == "online" else 0.0)
            if status.last_audio is not None:
                age.add_metric([name], now - status.last_audio)
            if status.level_dbfs is not None:
                level.add_metric([name], status.level_dbfs)
            open_events.add_metric([name], len(self.service.monitor.open_groups(name)))
            restarts.add_metric([name], status.restarts)
            dropped.add_metric([name], status.dropped_chunks)
        failed = CounterMetricFamily(
            "audioguard_monitor_failed_steps", "Detection steps that failed (their audio not analysed)."
        )
        failed.add_metric([], self.service.failed_steps)
        yield from (up, age, level, open_events, restarts, dropped, failed)


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
