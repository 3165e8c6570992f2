"""One supervisor per source: ffmpeg started, watched, restarted; its PCM into a bounded queue.

- **A source that ends** (a file, an HTTP resource of known length, standard input) is
  finished at its end and never fetched again. A file that cannot be opened or read (missing,
  a folder, not audio, no audio stream) has **failed**: one clear line, no retry; so has an
  HTTP file whose connection broke after some of its audio (the rest is not analysed).
- **A live source is retried with backoff and jitter** when ffmpeg exits (camera rebooting,
  network gone, host not found): 1, 2, 4 ... 30 s, each +-20 %, back to 1 s after a capture
  that delivered audio. Only the input's description (``ffmpeg_log``: a duration or ``N/A``)
  tells an HTTP file from an HTTP stream; the capture reads it before the first sample.
- **No-data watchdog**: a source that stays connected but sends nothing for
  ``no_data_seconds`` (a frozen camera) is killed and restarted like a dead one.
- **Pace and back-pressure**: chunks go to a bounded queue. A finite source played at real time
  is delivered at the pace of its audio, as a live source arrives. When the consumer falls
  behind such a source, the oldest chunk is dropped and counted (never an unbounded buffer); a
  finite source played as fast as possible waits for room instead (ffmpeg then waits on its
  pipe), so it is analysed whole, however slow the host.
- **Notices** (``notices``): connected (what, its rate and channels), connection lost or cannot
  connect (the reason in words, ``capture_errors``; ffmpeg's own at DEBUG) and the delay before
  the next try (the same reason again only now and then: a dead camera is not a line every
  30 s), failed. **Status** per source (``source_status``) for metrics and the status endpoint.
  A missing ffmpeg or an unreachable source is never a crash of the others; the URL's password
  is never said.

Audio only travels from ffmpeg's pipe to the queue, in memory: float frames at the source's
rate, mixed to mono as the file path mixes (the mean over channels).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np

from transformer.dht.backoff import Backoff
from transformer.monitor.capture_errors import capture_failure, file_problem
from transformer.monitor.chunks import Chunk, ChunkQueue
from transformer.monitor.ffmpeg import ffmpeg_command
from transformer.monitor.ffmpeg_log import FfmpegLog
from transformer.monitor.notices import Notice, Notify, audio_format, log_notice, seconds_text
from transformer.monitor.source_status import SourceStatus, level_dbfs
from transformer.monitor.sources import SourceSpec, file_path, redacted
from transformer.monitor.wav_header import NotFloatWav, PcmFormat, read_wav_header

logger = logging.getLogger(__name__)
_CANNOT_RUN: Final = (errno.EACCES, errno.ENOEXEC, errno.EISDIR, errno.ENOTDIR, errno.EPERM)

FFMPEG_MISSING: Final = "ffmpeg not found: install it (e.g. apt-get install ffmpeg) or give its path"
#: How long ffmpeg may take to exit after closing its output before it is killed.
EXIT_GRACE_SECONDS: Final = 5.0
#: How long the first sample may come before ffmpeg's description of its input is read (it is
#: written first: this only bounds a lost line).
DESCRIBED_WAIT_SECONDS: Final = 2.0
#: Failures in a row said each time; after them the same reason is said every this many tries.
SAID_FAILURES: Final = 3
REPEAT_EVERY: Final = 10
_KINDS: Final = {
    "rtsp": "RTSP stream",
    "http": "HTTP stream",
    "alsa": "ALSA sound card",
    "pulse": "PulseAudio source",
    "stdin": "standard input",
}


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
        environ: dict[str, str] | None = None,
        rng: random.Random | None = None,
        notify: Notify | None = None,
    ) -> None:
        self.source = source
        self.queue = queue
        self.chunk_seconds = chunk_seconds
        self.binary = binary
        # default: 1, 2, 4 ... 30 s, each +-20 % (``rng`` seeds its jitter)
        self.backoff = backoff or Backoff(1.0, 30.0, rng, jitter="proportional")
        self._environ = environ
        self._notify = notify or log_notice
        self._status = SourceStatus(source.name, redacted(source.url))
        self._stopping = asyncio.Event()
        self._seconds = 0.0  # stream time captured before this segment
        self._segment_samples = 0
        self._segment = 0
        # a file and standard input end; an HTTP source ends when its input has a duration
        self._single = source.kind in ("file", "stdin")  # never opened twice
        self._finite = self._single
        self._replay = False  # finite, as fast as possible: waits for room, never dropped
        self._problem: str | None = None  # why this capture ended, when the capture itself saw it
        self._said: str | None = None  # the last reason given for a failed try

    @property
    def status(self) -> SourceStatus:
        """What the status endpoint and the metrics say of this source (drops as the queue counts
        them: another source's overflow may drop this one's audio)."""
        self._status.dropped_chunks = self.queue.dropped[self.source.name]
        return self._status

    async def run(self) -> None:
        """Capture until stopped, finished (the end of a file) or failed (no ffmpeg, a file that
        cannot be read)."""
        failures = 0  # tries in a row that delivered no audio
        while not self._stopping.is_set():
            try:
                url = self.source.resolved_url(self._environ)
            except KeyError as missing:
                self.fail(f"url: environment variable {missing.args[0]} is not set")
                return
            if self.source.kind == "file" and (problem := file_problem(file_path(url))) is not None:
                self.fail(problem)
                return
            before = self.status.seconds_captured
            outcome = await self._capture(url)
            if outcome in ("finished", "failed", "stopped"):
                return
            delivered = self.status.seconds_captured > before
            failures = 1 if delivered else failures + 1  # it delivered audio: the delays start again
            self.status.state, self.status.restarts = "reconnecting", self.status.restarts + 1
            delay = self.backoff.delay(failures)
            self._say_retry(failures, delay, delivered=delivered)
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
                # a terminal's Ctrl-C (or a service manager's signal to the group) is the monitor's
                # to handle: ffmpeg stopped under it would read as a lost connection
                start_new_session=self.source.kind != "stdin",
            )
        except FileNotFoundError:
            self.fail(FFMPEG_MISSING)
            return "failed"
        except OSError as error:  # not a program (a folder, no permission) or no room for a process
            if error.errno in _CANNOT_RUN:
                self.fail(f"cannot run ffmpeg ({self.binary}): {error.strerror}")
                return "failed"
            self.status.last_error = f"cannot start ffmpeg: {error.strerror}"  # EMFILE, EAGAIN: passes
            return "retry"
        self._segment += 1
        self.status.state, self._problem = "starting", None
        log = FfmpegLog(self.source.name, _redactor(url, self.source.secrets(self._environ)))
        said = asyncio.create_task(log.read(process.stderr))
        stopping = asyncio.create_task(self._stopping.wait())
        before = self.status.seconds_captured
        reason = "retry"
        try:
            reason = await self._pump(process, stopping, log)
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
                await asyncio.wait_for(asyncio.shield(said), EXIT_GRACE_SECONDS)
            if not said.done():
                said.cancel()
        if reason == "stalled":
            if self.source.kind == "file" or (self._finite and self.status.seconds_captured > before):
                # a file read again would start over: its events twice
                self.fail(f"{self._problem}; the rest of the file is not analysed")
                return "failed"
            self.status.last_error = self._problem
            return "retry"
        if reason != "eof":
            return reason
        if code == 0 and self._finite and self._problem is None:
            self.status.state = "finished"
            return "finished"
        why = self._problem or capture_failure(log.problems, log.errors, self.source.kind, code)
        if self._single:  # a file does not get better by reading it again
            path = file_path(url) if self.source.kind == "file" else None
            self.fail(f"{why}: {path}" if path is not None and str(path) not in why else why)
            return "failed"
        if self._finite and self.status.seconds_captured > before:  # an HTTP file, broken off
            self.fail(f"connection lost ({why}); the rest of the file is not analysed")
            return "failed"
        self.status.last_error = why
        return "retry"

    async def _pump(
        self, process: asyncio.subprocess.Process, stopping: asyncio.Task[Any], log: FfmpegLog
    ) -> str:
        """Move audio from the pipe to the queue until EOF, a stall or a stop."""
        assert process.stdout is not None
        header = await self._next(asyncio.create_task(read_wav_header(process.stdout)), stopping)
        if isinstance(header, str):
            return header
        if isinstance(header, BaseException):
            if isinstance(header, NotFloatWav):
                self._problem = str(header)
            return "eof"  # ended before its first sample: ffmpeg's words and exit code say why
        pcm: PcmFormat = header
        if self.source.kind == "http":  # only the input's description tells a file from a stream
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(log.described.wait(), DESCRIBED_WAIT_SECONDS)
            self._finite = log.duration is not None
        ends = self._finite and self.source.kind != "stdin"
        paced, self._replay = ends and self.source.realtime, ends and not self.source.realtime
        self._seconds, self._segment_samples = self.status.seconds_captured, 0
        self.status.sample_rate, self.status.channels = pcm.sample_rate, pcm.channels
        self._say_connected(pcm, log.duration)
        chunk_bytes = max(1, round(self.chunk_seconds * pcm.sample_rate)) * pcm.frame_bytes
        leftover = b""
        started = time.monotonic()
        while True:
            data = await self._next(asyncio.create_task(process.stdout.read(chunk_bytes)), stopping)
            if isinstance(data, str):
                return data
            if isinstance(data, BaseException):  # the pipe broke: as an end, ffmpeg's code says why
                self._problem = f"reading ffmpeg's output failed: {data}"
                return "eof"
            if not data:
                return "eof"
            data = leftover + data
            cut = len(data) - len(data) % pcm.frame_bytes
            data, leftover = data[:cut], data[cut:]
            if data:
                frames = np.frombuffer(data, dtype="<f4").reshape(-1, pcm.channels).astype(np.float64)
                # the file path's mix: np.mean over the channels, in float64
                mono = frames[:, 0] if pcm.channels == 1 else np.mean(frames, axis=1)
                if paced:  # delivered when its last sample would have been heard, as a live source's
                    heard = (self._segment_samples + mono.shape[0]) / pcm.sample_rate
                    wait = started + heard - time.monotonic()
                    if wait > 0 and (await asyncio.wait({stopping}, timeout=wait))[0]:
                        self.status.state = "stopped"
                        return "stopped"
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
            self._problem = f"no audio for {self.source.no_data_seconds:g} s"
            return "stalled"
        error = read.exception()
        return error if error is not None else read.result()

    async def _deliver(self, samples: np.ndarray, sample_rate: int, stopping: asyncio.Task[Any]) -> bool:
        """Queue one chunk; False when a stop came while a replay waited for room."""
        start = self._seconds + self._segment_samples / sample_rate  # counted, not summed: exact
        chunk = Chunk(
            self.source.name,
            samples,
            start,
            self._segment,
            sample_rate=sample_rate,
            droppable=not self._replay,
            # a replay runs ahead of the clock: its times are the recording's own, no wall clock
            received_at=None if self._replay else time.time(),
        )
        self._segment_samples += samples.shape[0]
        status = self.status
        status.state, status.last_audio = "online", time.monotonic()
        status.level_dbfs = level_dbfs(samples)
        status.seconds_captured = self._seconds + self._segment_samples / sample_rate
        if self._replay:
            put = asyncio.create_task(self.queue.put(chunk))
            await asyncio.wait({put, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not put.done():
                put.cancel()
                self.status.state = "stopped"
                return False
            return True
        self.queue.offer(chunk)  # the consumer is behind: the oldest live audio goes, counted
        return True

    def _say_connected(self, pcm: PcmFormat, duration: float | None) -> None:
        self._said = None
        if self._finite and self.source.kind != "stdin":
            what = "file" if self.source.kind == "file" else "HTTP file"
            what += "" if duration is None else f" of {duration:.2f} s"
            what += ", played at real time" if self.source.realtime else ", as fast as possible"
        else:
            what = _KINDS[self.source.kind]
        detail = f" ({what}, {audio_format(pcm.sample_rate, pcm.channels)})"
        self._notify(Notice("connected", self.source.name, "connected", detail))

    def _say_retry(self, failures: int, delay: float, *, delivered: bool) -> None:
        """A failed try, said when it is news: a loss, a new reason, the first tries, then now and then."""
        reason = self.status.last_error or "the capture ended"
        retry = f"; retrying in {seconds_text(delay)}"
        if delivered:
            what, detail = "connection lost", f": {reason}{retry}"
        elif reason != self._said or failures <= SAID_FAILURES:
            what, detail = "cannot connect", f": {reason}{retry}"
        elif failures % REPEAT_EVERY == 0:
            what, detail = "still cannot connect", f": {reason} ({failures} tries){retry}"
        else:
            return
        self._said = reason
        self._notify(Notice("retrying", self.source.name, what, detail, warning=True))

    def fail(self, message: str) -> None:
        """Given up for good: one line saying why."""
        self.status.state, self.status.last_error = "failed", message
        seconds = self.status.seconds_captured
        detail = f" after {seconds:.2f} s of audio: {message}" if seconds else f": {message}"
        self._notify(Notice("failed", self.source.name, "failed", detail, warning=True))


def _redactor(url: str, secrets: Sequence[str]) -> Callable[[str], str]:
    """What turns an ffmpeg line into one fit for a log: the URL as ``redacted`` shows it, and
    every value of its variables hidden wherever it stands."""
    shown = redacted(url)

    def redact(text: str) -> str:
        text = text.replace(url, shown)
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    return redact


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
