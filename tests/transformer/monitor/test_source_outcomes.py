"""How a source's capture ends and what it says: real ffmpeg processes, real HTTP servers on
loopback (``http.server`` in a thread serving a file; a socket server sending a short live WAV
stream per connection), the notices as the console and the log get them."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
import soundfile as sf

from tests.support.dht_standin import eventually
from tests.support.serverutil import free_port
from tests.transformer.monitor.test_supervisor import FAST, drain, http_wav_server, supervised, wav
from transformer.dht.backoff import Backoff
from transformer.monitor.chunks import ChunkQueue
from transformer.monitor.notices import Notice
from transformer.monitor.reporter import Reporter
from transformer.monitor.sources import SourceSpec
from transformer.monitor.supervisor import SourceSupervisor

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")


def lines(notices: list[Notice]) -> list[str]:
    return [notice.line() for notice in notices]


async def test_a_file_that_cannot_be_read_fails_once_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "notes.wav").write_text("shopping list: milk, eggs\n")
    (tmp_path / "folder.wav").mkdir()
    for name, expected in (
        ("missing.wav", f"gone: failed: file not found: {tmp_path / 'missing.wav'}"),
        ("folder.wav", f"gone: failed: a folder, not a file: {tmp_path / 'folder.wav'}"),
        ("notes.wav", f"gone: failed: not audio (ffmpeg cannot read it): {tmp_path / 'notes.wav'}"),
    ):
        notices: list[Notice] = []
        source = SourceSpec(name="gone", url=f"file:{tmp_path / name}")
        async with supervised(source, notify=notices.append) as (supervisor, _):
            await eventually(lambda s=supervisor: s.status.state == "failed", 10, f"{name} to fail")
            # never tried again: before, a missing or non-audio file was retried for ever
            assert supervisor.status.restarts == 0
        assert lines(notices) == [expected]
        assert supervisor.status.last_error == expected.removeprefix("gone: failed: ")


async def test_an_http_file_is_fetched_once_and_finished_as_a_file(
    tmp_path: Path, file_server: tuple[str, Path, list[str]]
) -> None:
    base, root, requested = file_server
    samples = wav(root / "night.wav", 3.0, rate=22_050, seed=9)
    notices: list[Notice] = []
    source = SourceSpec(name="web", url=f"{base}/night.wav", realtime=False)
    async with supervised(source, queue_size=4, notify=notices.append) as (supervisor, queue):
        received: list[np.ndarray] = []
        while sum(part.shape[0] for part in received) < samples.shape[0]:
            # as fast as possible: the capture waits for room, nothing is dropped
            received.append((await asyncio.wait_for(queue.get(), 20)).samples)
        await eventually(lambda: supervisor.status.state == "finished", 20, "the end of the file")
    np.testing.assert_array_equal(np.concatenate(received), samples / 32768.0)
    assert supervisor.status.dropped_chunks == 0 and supervisor.status.restarts == 0
    # one request: before, the file was taken for a live stream and fetched again for ever
    assert requested == ["/night.wav"]
    assert lines(notices) == ["web: connected (HTTP file of 3.00 s, as fast as possible, 22.05 kHz mono)"]


async def test_a_finite_source_played_at_real_time_takes_its_own_duration(
    tmp_path: Path, file_server: tuple[str, Path, list[str]]
) -> None:
    base, root, requested = file_server
    wav(root / "day.wav", 2.0, seed=4)
    for url in (f"{base}/day.wav", f"file:{root / 'day.wav'}"):
        async with supervised(SourceSpec(name="paced", url=url)) as (supervisor, queue):
            await eventually(lambda s=supervisor: s.status.state == "online", 10, "the first audio")
            started = time.monotonic()
            await eventually(lambda s=supervisor: s.status.state == "finished", 10, "the end")
            took = time.monotonic() - started
            chunks = drain(queue)
        assert sum(chunk.samples.shape[0] for chunk in chunks) == 32_000
        assert 1.7 <= took <= 3.0, (url, took)  # the last 1.9 s at the pace of the audio
    assert requested == ["/day.wav"]


class ShortStreams:
    """A live WAV stream on loopback that gives each connection half a second of audio, then
    closes it (a camera that keeps dropping its clients)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        header = (  # 16-bit mono 16 kHz with the "unknown length" sizes of a live stream
            b"RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80>\x00\x00\x00}\x00\x00"
            b"\x02\x00\x10\x00data\xff\xff\xff\xff"
        )
        audio = (np.random.default_rng(1).uniform(-0.3, 0.3, 8000) * 32767).astype("<i2").tobytes()
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\n\r\n" + header + audio)

    def close(self) -> None:
        self.listener.close()


class CountedBackoff(Backoff):
    """The supervisor's backoff, recording the failure count each delay is asked for."""

    def __init__(self) -> None:
        super().__init__(0.05, 0.2, jitter="proportional")
        self.asked: list[int] = []

    def delay(self, failures: int) -> float:
        self.asked.append(failures)
        return super().delay(failures)


async def test_a_live_stream_is_retried_and_its_delays_start_again_after_it_delivered_audio() -> None:
    server = ShortStreams()
    backoff = CountedBackoff()
    notices: list[Notice] = []
    source = SourceSpec(name="flaky", url=f"http://127.0.0.1:{server.port}/live")
    try:
        queue: ChunkQueue = ChunkQueue(1000)
        supervisor = SourceSupervisor(source, queue, backoff=backoff, notify=notices.append)
        task = asyncio.create_task(supervisor.run())
        await eventually(lambda: len(backoff.asked) >= 3, 30, "three reconnects")
        await supervisor.stop()
        await asyncio.wait_for(task, 10)
    finally:
        server.close()
    # each connection delivered audio: the first delay each time (before: 1, 2, 3 ... as the
    # captures were shorter than 30 s), and a live stream that ends is no file: not finished
    assert backoff.asked[:3] == [1, 1, 1]
    said = lines(notices)
    assert said[0] == "flaky: connected (HTTP stream, 16 kHz mono)"
    assert said[1].startswith("flaky: connection lost: the stream ended; retrying in ")


async def test_an_unreachable_live_source_says_why_and_repeats_itself_only_now_and_then() -> None:
    port = free_port()  # nothing listens
    notices: list[Notice] = []
    source = SourceSpec(name="cam", url=f"http://viewer:s3cret@127.0.0.1:{port}/live")
    async with supervised(source, notify=notices.append) as (supervisor, _):
        await eventually(lambda: supervisor.status.restarts >= 6, 30, "six tries")
    said = lines(notices)
    reason = "cannot connect: connection refused (nothing listens on that port); retrying in "
    assert len(said) == 3 and all(line.startswith(f"cam: {reason}") for line in said), said
    assert not any("s3cret" in line for line in said)


async def test_audio_dropped_behind_a_live_source_is_said_once_per_burst(tmp_path: Path) -> None:
    wav(tmp_path / "loop.wav", 2.0, seed=2)
    port = free_port()
    notices: list[Notice] = []
    reporter = Reporter(notices.append, monitor=None)  # type: ignore[arg-type]  # drops need no monitor
    source = SourceSpec(name="fast", url=f"http://127.0.0.1:{port}/live")
    with http_wav_server(tmp_path / "loop.wav", port, realtime=False):  # faster than anyone reads
        queue: ChunkQueue = ChunkQueue(3, on_drop=reporter.dropped)
        supervisor = SourceSupervisor(source, queue, backoff=FAST)
        task = asyncio.create_task(supervisor.run())
        try:
            await eventually(lambda: any(n.kind == "dropped" for n in notices), 10, "a drop line")
            first = supervisor.status.dropped_chunks
            await eventually(lambda: supervisor.status.dropped_chunks > 3 * first, 20, "more drops")
        finally:
            await supervisor.stop()
            await asyncio.wait_for(task, 10)
    # the drops of one burst are summed in one line; more drops within 10 s say nothing yet
    (dropped,) = [notice for notice in notices if notice.kind == "dropped"]
    assert dropped.line().startswith("fast: dropped ") and dropped.line().endswith(
        " s of audio (the analysis is behind)"
    )
    seconds = float(dropped.what.split()[1])
    assert 0.05 <= seconds <= first * 0.1 + 0.05  # chunks of 0.1 s at most
    assert reporter.dropped_seconds["fast"] > seconds  # the later drops are counted, said later


async def test_an_ffmpeg_that_cannot_run_fails_the_source_once(tmp_path: Path) -> None:
    """A folder or a file without the execute bit as the ffmpeg program: before, the supervisor
    died with the PermissionError unsaid and the source stayed "starting" for ever."""
    wav(tmp_path / "a.wav", 1.0)
    (tmp_path / "not-a-program").write_text("#!/bin/sh\n")  # no execute bit
    for binary in (str(tmp_path), str(tmp_path / "not-a-program")):
        notices: list[Notice] = []
        source = SourceSpec(name="mic", url=f"file:{tmp_path / 'a.wav'}")
        async with supervised(source, notify=notices.append, binary=binary) as (supervisor, _):
            await eventually(lambda s=supervisor: s.status.state == "failed", 10, "the source to fail")
            assert supervisor.status.restarts == 0
        assert lines(notices) == [f"mic: failed: cannot run ffmpeg ({binary}): Permission denied"]


async def test_a_file_that_stops_giving_audio_fails_instead_of_starting_over(tmp_path: Path) -> None:
    """A file ffmpeg stops reading from midway (a named pipe whose writer stalls, as a slow share
    would): before, the stall was retried and the file read again from its start (its events
    twice); now the source fails, saying how much it heard."""
    fifo = tmp_path / "slow.wav"
    os.mkfifo(fifo)
    given = io.BytesIO()  # 8 s: more than ffmpeg's probe reads before it gives its first sample
    sf.write(given, np.zeros(8 * 16_000, dtype=np.int16), 16_000, format="WAV", subtype="PCM_16")
    header_and_audio = bytearray(given.getvalue())
    header_and_audio[4:8] = header_and_audio[40:44] = (0x7FFF_FFF0).to_bytes(4, "little")  # "more to come"
    release = threading.Event()

    def writer() -> None:
        with open(fifo, "wb") as pipe:  # blocks until ffmpeg opens it
            pipe.write(header_and_audio)
            pipe.flush()
            release.wait(30)  # open but silent: the reader waits for more

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    notices: list[Notice] = []
    source = SourceSpec(name="share", url=f"file:{fifo}", realtime=False, no_data_seconds=1.5)
    try:
        async with supervised(source, notify=notices.append) as (supervisor, queue):
            await eventually(lambda: supervisor.status.state == "failed", 20, "the stalled file to fail")
            assert supervisor.status.restarts == 0
            heard = sum(chunk.samples.shape[0] for chunk in drain(queue))
    finally:
        release.set()
        thread.join(10)
    # the seconds it gave, once (ffmpeg holds back its last part-filled packet while it waits)
    assert 7 * 16_000 <= heard <= 8 * 16_000
    assert lines(notices)[-1] == (
        f"share: failed after {heard / 16_000:.2f} s of audio: no audio for 1.5 s; "
        "the rest of the file is not analysed"
    )


async def test_a_password_in_the_query_string_never_reaches_a_log_or_the_status(
    file_server: tuple[str, Path, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    """Many cameras take their password as a query parameter (``?pwd=${CAM_PW}``), which the
    URL's user:password redaction does not see; ffmpeg's lines name the whole URL."""
    base, _, requested = file_server  # an empty folder: 404 for every path
    secret = "s3cr3t/pa ss"  # as written and percent-encoded, both hidden
    notices: list[Notice] = []
    source = SourceSpec(name="cam", url=f"{base}/audio.cgi?user=admin&pwd=${{CAM_PW}}")
    caplog.set_level(logging.DEBUG, logger="transformer.monitor")
    async with supervised(source, notify=notices.append, environ={"CAM_PW": secret}) as (supervisor, _):
        await eventually(lambda: supervisor.status.restarts >= 1, 20, "a failed try")
        status_error = supervisor.status.last_error or ""
    assert requested and all("pwd=" in path for path in requested)  # the password was sent
    ffmpeg_lines = [r.getMessage() for r in caplog.records if "ffmpeg:" in r.getMessage()]
    assert any("pwd=***" in line for line in ffmpeg_lines), ffmpeg_lines  # the URL was there
    said = [*ffmpeg_lines, *lines(notices), status_error, supervisor.status.url]
    for text in said:
        assert secret not in text and quote(secret, safe="") not in text and "s3cr3t" not in text, text
