"""One supervisor per source: ffmpeg started, watched, restarted; its PCM into a bounded queue.

- **Restart with backoff and jitter** when ffmpeg exits (camera rebooting, network
  gone): 1, 2, 4 ... 30 s, each +-20 %, back to 1 s once a capture has run for
  ``healthy_after_seconds``. A file that ends is finished, not restarted.
- **No-data watchdog**: a source that stays connected but sends nothing for
  ``no_data_seconds`` (a frozen camera) is killed and restarted like a dead one.
- **Back-pressure**: chunks go to a bounded queue. When the consumer falls behind a
  live source, the oldest chunk is dropped and counted (never an unbounded buffer);
  a file replayed as fast as possible waits for room instead (ffmpeg then waits on
  its pipe), so a replay analyses every second of the file, however slow the host.
- **Status** per source (state, seconds since the last audio, level, its rate and
  channels, restarts, drops, last error with the URL's password removed) for metrics and the
  status endpoint. A missing ffmpeg or an unreachable source is one clear
  message in that source's status, never a crash of the others.

Audio only travels from ffmpeg's pipe to the queue, in memory: float frames at the source's
rate, mixed to mono as the file path mixes (the mean over channels).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np

from transformer.dht.backoff import Backoff
from transformer.monitor.chunks import Chunk, ChunkQueue
from transformer.monitor.ffmpeg import ffmpeg_command
from transformer.monitor.sources import SourceSpec, redacted
from transformer.monitor.wav_header import NotFloatWav, PcmFormat, read_wav_header

logger = logging.getLogger(__name__)

State = Literal["starting", "online", "reconnecting", "finished", "failed", "stopped"]
FFMPEG_MISSING: Final = "ffmpeg not found: install it (e.g. apt-get install ffmpeg) or give its path"
#: How long ffmpeg may take to exit after closing its output before it is killed.
EXIT_GRACE_SECONDS: Final = 5.0


@dataclass
class SourceStatus:
    """What the status endpoint and the metrics say of one source."""

    name: str
    url: str
    state: State = "starting"
    last_audio: float | None = None  # time.monotonic() of the last chunk
    level_dbfs: float | None = None
    restarts: int = 0
    dropped_chunks: int = 0
    seconds_captured: float = 0.0
    sample_rate: int | None = None
    channels: int | None = None
    last_error: str | None = None
    started: float = field(default_factory=time.monotonic)

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        now = time.monotonic() if now is None else now
        return {
            "name": self.name,
            "url": self.url,
            "state": self.state,
            "seconds_since_audio": None if self.last_audio is None else round(now - self.last_audio, 3),
            "level_dbfs": None if self.level_dbfs is None else round(self.level_dbfs, 1),
            "restarts": self.restarts,
            "dropped_chunks": self.dropped_chunks,
            "seconds_captured": round(self.seconds_captured, 3),
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "last_error": self.last_error,
        }


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level of samples in [-1, 1] in dBFS (digital silence and below: -120)."""
    if samples.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(samples))))
    return max(-120.0, 20 * math.log10(rms)) if rms > 0 else -120.0


class SourceSupervisor:
    """Keeps one source's ffmpeg running and its audio flowing into ``queue``."""

    def __init__(
        self,
        source: SourceSpec,
        queue: ChunkQueue,
        *,
        chunk_seconds: float = 0.1,
        binary: str = "ffmpeg",
        backoff: Backoff | None = None,
        healthy_after_seconds: float = 30.0,
        environ: dict[str, str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.source = source
        self.queue = queue
        self.chunk_seconds = chunk_seconds
        self.binary = binary
        # default: 1, 2, 4 ... 30 s, each +-20 % (``rng`` seeds its jitter)
        self.backoff = backoff or Backoff(1.0, 30.0, rng, jitter="proportional")
        self.healthy_after_seconds = healthy_after_seconds
        self._environ = environ
        self._status = SourceStatus(source.name, redacted(source.url))
        self._stopping = asyncio.Event()
        self._seconds = 0.0  # stream time captured before this segment
        self._segment_samples = 0
        self._segment = 0

    @property
    def status(self) -> SourceStatus:
        """What the status endpoint and the metrics say of this source (drops as the queue counts
        them: another source's overflow may drop this one's audio)."""
        self._status.dropped_chunks = self.queue.dropped[self.source.name]
        return self._status

    async def run(self) -> None:
        """Capture until stopped, finished (a file's end) or failed (no ffmpeg, bad URL)."""
        failures = 0  # consecutive captures that ended before they were healthy
        while not self._stopping.is_set():
            try:
                url = self.source.resolved_url(self._environ)
            except KeyError as missing:
                self._fail(f"environment variable {missing.args[0]} of the source URL is not set")
                return
            started = time.monotonic()
            outcome = await self._capture(url)
            if outcome in ("finished", "failed", "stopped"):
                return
            if time.monotonic() - started >= self.healthy_after_seconds:
                failures = 0
            self.status.state, self.status.restarts = "reconnecting", self.status.restarts + 1
            failures += 1
            delay = self.backoff.delay(failures)
            logger.warning(
                "source %s: %s; restarting in %.1f s", self.source.name, self.status.last_error, delay
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
        self.status.state = "stopped"

    async def stop(self) -> None:
        self._stopping.set()

    async def _capture(self, url: str) -> str:
        """One ffmpeg run; returns why it ended ("finished", "failed", "stopped", "retry")."""
        command = ffmpeg_command(self.source, url=url, binary=self.binary)
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=None if self.source.kind == "stdin" else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError:
            self._fail(FFMPEG_MISSING)
            return "failed"
        self._segment += 1
        self.status.state = "starting"
        errors = asyncio.create_task(_last_line(process.stderr))
        stopping = asyncio.create_task(self._stopping.wait())
        reason = "retry"
        try:
            reason = await self._pump(process, stopping)
        finally:
            stopping.cancel()
            if reason == "eof":  # the output ended: let ffmpeg exit on its own, with its own code
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), EXIT_GRACE_SECONDS)
            if process.returncode is None:
                process.kill()
            if process.stdout is not None:  # what is left in the pipe (a stopped replay) is let go:
                with contextlib.suppress(TimeoutError):  # Python 3.11 reports the exit only once
                    await asyncio.wait_for(_discard(process.stdout), EXIT_GRACE_SECONDS)  # it closes
            code = await _reaped(process)
            with contextlib.suppress(TimeoutError):  # its stderr closes with it
                await asyncio.wait_for(asyncio.shield(errors), EXIT_GRACE_SECONDS)
            if not errors.done():
                errors.cancel()
            last = errors.result() if errors.done() and not errors.cancelled() else ""
            last = last.replace(url, redacted(url))
        if reason == "eof":
            if code == 0 and self.source.kind == "file":
                self.status.state = "finished"
                return "finished"
            ended = "the stream ended" if code == 0 else f"ffmpeg exited with code {code}"
            self.status.last_error = last or ended
            return "retry"
        return reason

    async def _pump(self, process: asyncio.subprocess.Process, stopping: asyncio.Task[Any]) -> str:
        """Move audio from the pipe to the queue until EOF, a stall or a stop."""
        assert process.stdout is not None
        header = await self._next(asyncio.create_task(read_wav_header(process.stdout)), stopping)
        if isinstance(header, str):
            return header
        if isinstance(header, BaseException):
            if isinstance(header, NotFloatWav):
                self.status.last_error = str(header)
            return "eof"  # ended before its first sample: the exit code says why
        pcm: PcmFormat = header
        self._seconds, self._segment_samples = self.status.seconds_captured, 0
        self.status.sample_rate, self.status.channels = pcm.sample_rate, pcm.channels
        chunk_bytes = max(1, round(self.chunk_seconds * pcm.sample_rate)) * pcm.frame_bytes
        leftover = b""
        while True:
            data = await self._next(asyncio.create_task(process.stdout.read(chunk_bytes)), stopping)
            if isinstance(data, str):
                return data
            if isinstance(data, BaseException):
                raise data
            if not data:
                return "eof"
            data = leftover + data
            cut = len(data) - len(data) % pcm.frame_bytes
            data, leftover = data[:cut], data[cut:]
            if data:
                frames = np.frombuffer(data, dtype="<f4").reshape(-1, pcm.channels).astype(np.float64)
                # the file path's mix: np.mean over the channels, in float64
                mono = frames[:, 0] if pcm.channels == 1 else np.mean(frames, axis=1)
                if not await self._deliver(mono, pcm.sample_rate, stopping):
                    return "stopped"

    async def _next(self, read: asyncio.Task[Any], stopping: asyncio.Task[Any]) -> Any:
        """What ``read`` gives, its exception, or why it was given up ("stopped", "stalled")."""
        done, _ = await asyncio.wait(
            {read, stopping}, timeout=self.source.no_data_seconds, return_when=asyncio.FIRST_COMPLETED
        )
        if stopping in done:
            read.cancel()
            self.status.state = "stopped"
            return "stopped"
        if read not in done:
            read.cancel()
            self.status.last_error = f"no audio for {self.source.no_data_seconds:g} s"
            return "stalled"
        error = read.exception()
        return error if error is not None else read.result()

    async def _deliver(self, samples: np.ndarray, sample_rate: int, stopping: asyncio.Task[Any]) -> bool:
        """Queue one chunk; False when a stop came while a replay waited for room."""
        start = self._seconds + self._segment_samples / sample_rate  # counted, not summed: exact
        replay = self.source.kind == "file" and not self.source.realtime
        chunk = Chunk(
            self.source.name,
            samples,
            start,
            self._segment,
            sample_rate=sample_rate,
            droppable=not replay,
            received_at=time.time(),
        )
        self._segment_samples += samples.shape[0]
        status = self.status
        status.state, status.last_audio = "online", time.monotonic()
        status.level_dbfs = level_dbfs(samples)
        status.seconds_captured = self._seconds + self._segment_samples / sample_rate
        if replay:
            put = asyncio.create_task(self.queue.put(chunk))
            await asyncio.wait({put, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not put.done():
                put.cancel()
                self.status.state = "stopped"
                return False
            return True
        self.queue.offer(chunk)  # the consumer is behind: the oldest live audio goes, counted
        return True

    def _fail(self, message: str) -> None:
        self.status.state, self.status.last_error = "failed", message
        logger.error("source %s: %s", self.source.name, message)


async def _reaped(process: asyncio.subprocess.Process) -> int:
    """The exit code of a process just killed; -9 if its exit is not reported in time (a lost
    child-watcher notification must not hold the source, or a stop, for ever)."""
    try:
        return await asyncio.wait_for(process.wait(), EXIT_GRACE_SECONDS)
    except TimeoutError:
        logger.warning("ffmpeg (pid %d) did not report its exit after SIGKILL", process.pid)
        return -9


async def _discard(stream: asyncio.StreamReader) -> None:
    """Read ``stream`` to its end, keeping nothing."""
    while await stream.read(1 << 16):
        pass


async def _last_line(stream: asyncio.StreamReader | None) -> str:
    """The last non-empty line ffmpeg wrote to stderr (its error), at most 300 characters."""
    last = ""
    if stream is None:
        return last
    async for raw in stream:
        line = raw.decode("utf-8", "replace").strip()
        if line:
            last = line[:300]
    return last
