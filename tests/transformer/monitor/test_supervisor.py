"""Source supervisors against real ffmpeg processes and real streams on loopback.

ffmpeg serves a WAV over HTTP (``-listen 1``); a socket server that answers and
then goes silent stands in for a frozen camera (a real one cannot run here).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.support.dht_standin import eventually
from tests.support.serverutil import free_port
from transformer.dht.backoff import Backoff
from transformer.monitor.chunks import Chunk, ChunkQueue
from transformer.monitor.source_status import level_dbfs
from transformer.monitor.sources import SourceSpec
from transformer.monitor.supervisor import FFMPEG_MISSING, SourceSupervisor

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")

FAST = Backoff(0.05, 0.2, jitter="proportional")


def wav(path: Path, seconds: float, *, rate: int = 16_000, seed: int = 0) -> np.ndarray:
    samples = (np.random.default_rng(seed).uniform(-0.3, 0.3, int(seconds * rate)) * 32767).astype(np.int16)
    sf.write(path, samples, rate, subtype="PCM_16")
    return samples


@contextlib.asynccontextmanager
async def supervised(
    source: SourceSpec, queue_size: int = 1000, **options: object
) -> AsyncIterator[tuple[SourceSupervisor, ChunkQueue]]:
    queue: ChunkQueue = ChunkQueue(queue_size)
    supervisor = SourceSupervisor(source, queue, backoff=FAST, **options)  # type: ignore[arg-type]
    task = asyncio.create_task(supervisor.run())
    try:
        yield supervisor, queue
    finally:
        await supervisor.stop()
        await asyncio.wait_for(task, 10)


def drain(queue: asyncio.Queue[Chunk]) -> list[Chunk]:
    chunks = []
    while not queue.empty():
        chunks.append(queue.get_nowait())
    return chunks


@contextlib.contextmanager
def http_wav_server(path: Path, port: int, *, realtime: bool = True) -> Iterator[subprocess.Popen[bytes]]:
    """ffmpeg serving ``path`` looped as a WAV stream on http://127.0.0.1:port/live, at real time
    or (``realtime=False``) as fast as the reader takes it."""
    server = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", *(["-re"] if realtime else []),
         "-stream_loop", "-1", "-i", str(path), "-f", "wav", "-listen", "1", f"http://127.0.0.1:{port}/live"],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield server
    finally:
        server.kill()
        server.wait()


async def test_a_file_arrives_sample_for_sample_then_the_source_is_finished(tmp_path: Path) -> None:
    samples = wav(tmp_path / "a.wav", 3.0)
    source = SourceSpec(name="replay", url=f"file:{tmp_path / 'a.wav'}", realtime=False)
    async with supervised(source) as (supervisor, queue):
        await eventually(lambda: supervisor.status.state == "finished", 20, "the end of the file")
        chunks = drain(queue)
    received = np.concatenate([chunk.samples for chunk in chunks])
    # float at the file's rate, scaled as libsndfile scales 16-bit PCM: the samples, bit for bit
    np.testing.assert_array_equal(received, samples / 32768.0)
    assert {chunk.sample_rate for chunk in chunks} == {16_000}
    assert [chunk.start_seconds for chunk in chunks] == pytest.approx(
        np.cumsum([0] + [c.samples.shape[0] for c in chunks[:-1]]) / 16000
    )
    status = supervisor.status.to_dict()
    assert (status["restarts"], status["dropped_chunks"], status["seconds_captured"]) == (0, 0, 3.0)
    assert status["level_dbfs"] == pytest.approx(level_dbfs(chunks[-1].samples), abs=0.05)
    assert (status["sample_rate"], status["channels"]) == (16_000, 1)


async def test_a_stereo_file_keeps_its_rate_and_is_mixed_as_the_file_path_mixes(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    frames = (rng.uniform(-0.4, 0.4, (44_100 * 2 + 17, 2)) * 32767).astype(np.int16)
    sf.write(tmp_path / "stereo.wav", frames, 44_100, subtype="PCM_16")
    source = SourceSpec(name="stereo", url=str(tmp_path / "stereo.wav"), realtime=False)
    async with supervised(source) as (supervisor, queue):
        await eventually(lambda: supervisor.status.state == "finished", 20, "the end of the file")
        chunks = drain(queue)
    received = np.concatenate([chunk.samples for chunk in chunks])
    decoded, rate = sf.read(tmp_path / "stereo.wav", dtype="float64", always_2d=True)
    np.testing.assert_array_equal(received, np.mean(decoded, axis=1))  # what decode.py computes
    assert {chunk.sample_rate for chunk in chunks} == {rate}
    assert (supervisor.status.sample_rate, supervisor.status.channels) == (44_100, 2)
    assert chunks[-1].start_seconds == pytest.approx((received.size - chunks[-1].samples.size) / 44_100)


async def test_an_http_stream_that_dies_and_comes_back_is_reconnected(tmp_path: Path) -> None:
    wav(tmp_path / "loop.wav", 2.0, rate=44_100, seed=1)
    port = free_port()
    source = SourceSpec(name="radio", url=f"http://127.0.0.1:{port}/live", no_data_seconds=5)
    async with supervised(source) as (supervisor, queue):
        with http_wav_server(tmp_path / "loop.wav", port):
            await eventually(lambda: supervisor.status.state == "online", 20, "the stream online")
            await eventually(lambda: supervisor.status.seconds_captured >= 1.0, 20, "a second of audio")
        # the server is gone: the capture ends and is retried with backoff, not given up
        await eventually(lambda: supervisor.status.state == "reconnecting", 20, "a reconnect")
        assert supervisor.status.last_error == "the stream ended"
        first = drain(queue)
        (segment,) = {chunk.segment for chunk in first}  # one capture delivered it all
        restarts = supervisor.status.restarts
        with http_wav_server(tmp_path / "loop.wav", port):
            await eventually(lambda: not queue.empty(), 30, "audio again")
            assert supervisor.status.state == "online" and supervisor.status.restarts >= restarts >= 1
            assert queue.get_nowait().segment > segment  # a new capture: not continuous with the last
    # the stream's time goes on across the reconnect (ffmpeg resampled it from 44.1 kHz)
    later = drain(queue)
    assert not later or later[0].start_seconds > first[-1].start_seconds


class SilentServer:
    """Answers one HTTP request with a WAV header and a little audio, then holds the line open."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        header = (
            b"RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80>\x00\x00\x00}\x00\x00"
            b"\x02\x00\x10\x00data\xff\xff\xff\xff"
        )
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            connection.recv(65536)
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\n\r\n" + header + b"\x01\x00" * 8000
            )
            self._held.append(connection)  # then nothing more: a frozen camera

    def close(self) -> None:
        self.listener.close()
        for connection in self._held:
            connection.close()


async def test_a_source_that_stalls_without_closing_is_restarted_by_the_watchdog() -> None:
    server = SilentServer()
    try:
        source = SourceSpec(name="frozen", url=f"http://127.0.0.1:{server.port}/", no_data_seconds=1.0)
        async with supervised(source) as (supervisor, _queue):
            await eventually(lambda: server.connections >= 2, 30, "a second connection after the stall")
            assert supervisor.status.restarts >= 1
            assert supervisor.status.last_error == "no audio for 1 s"
    finally:
        server.close()


async def test_missing_ffmpeg_and_an_unreachable_source_are_clear_and_harm_no_other(tmp_path: Path) -> None:
    wav(tmp_path / "a.wav", 1.0)
    port = free_port()  # nothing listens
    unreachable = SourceSpec(name="gone", url=f"http://viewer:s3cret@127.0.0.1:{port}/live")
    no_ffmpeg = SourceSpec(name="nobin", url="pulse:default")
    healthy = SourceSpec(name="fine", url=f"file:{tmp_path / 'a.wav'}", realtime=False)
    async with (
        supervised(unreachable) as (gone, _),
        supervised(no_ffmpeg, binary=str(tmp_path / "no-ffmpeg")) as (nobin, _),
        supervised(healthy) as (fine, _),
    ):
        await eventually(lambda: nobin.status.state == "failed", 10, "the missing ffmpeg")
        await eventually(lambda: gone.status.restarts >= 2, 30, "retries of the unreachable source")
        await eventually(lambda: fine.status.state == "finished", 20, "the healthy source")
    assert nobin.status.last_error == FFMPEG_MISSING
    assert gone.status.state in ("reconnecting", "stopped", "starting")
    error = gone.status.last_error or ""
    assert "refused" in error.lower() or "connect" in error.lower(), error
    assert "s3cret" not in error and "s3cret" not in str(gone.status.to_dict())
    assert fine.status.seconds_captured == 1.0


async def test_when_the_consumer_falls_behind_a_live_source_the_oldest_audio_is_dropped_and_counted(
    tmp_path: Path,
) -> None:
    wav(tmp_path / "loop.wav", 2.0, seed=2)
    port = free_port()
    source = SourceSpec(name="fast", url=f"http://127.0.0.1:{port}/live")
    with http_wav_server(tmp_path / "loop.wav", port, realtime=False):  # faster than anyone reads
        async with supervised(source, queue_size=3) as (supervisor, queue):
            await eventually(lambda: supervisor.status.dropped_chunks >= 20, 30, "drops")
            await supervisor.stop()
            await eventually(lambda: supervisor.status.state == "stopped", 10, "the stop")
            kept = drain(queue)
            for _ in kept:
                queue.task_done()
            # a dropped chunk counts as done: whoever waits for the queue to be worked off returns
            await asyncio.wait_for(queue.join(), 5)
    assert len(kept) == 3
    ends = [chunk.start_seconds + chunk.samples.shape[0] / 16000 for chunk in kept]
    assert [chunk.start_seconds for chunk in kept[1:]] == pytest.approx(ends[:-1])  # the newest, in order
    assert ends[-1] == pytest.approx(supervisor.status.seconds_captured)
    assert kept[0].start_seconds > 0  # the oldest went


async def test_a_file_replayed_as_fast_as_possible_waits_for_the_consumer_and_loses_nothing(
    tmp_path: Path,
) -> None:
    samples = wav(tmp_path / "long.wav", 5.0, seed=5)
    source = SourceSpec(name="replay", url=f"file:{tmp_path / 'long.wav'}", realtime=False)
    async with supervised(source, queue_size=3) as (supervisor, queue):
        await eventually(lambda: queue.full(), 20, "a full queue")
        received: list[np.ndarray] = []
        while sum(part.shape[0] for part in received) < samples.shape[0]:
            # the capture waits for room: nothing is dropped, however slowly the queue is read
            received.append((await asyncio.wait_for(queue.get(), 20)).samples)
            assert supervisor.status.dropped_chunks == 0
        await eventually(lambda: supervisor.status.state == "finished", 20, "the end of the file")
    np.testing.assert_array_equal(np.concatenate(received), samples / 32768.0)
    assert supervisor.status.seconds_captured == 5.0


async def test_a_stop_ends_a_replay_that_waits_for_room(tmp_path: Path) -> None:
    wav(tmp_path / "long.wav", 5.0)
    source = SourceSpec(name="replay", url=f"file:{tmp_path / 'long.wav'}", realtime=False)
    queue: ChunkQueue = ChunkQueue(2)
    supervisor = SourceSupervisor(source, queue, backoff=FAST)
    task = asyncio.create_task(supervisor.run())
    await eventually(lambda: queue.full(), 20, "a full queue")
    await supervisor.stop()
    await asyncio.wait_for(task, 10)  # no consumer: the waiting put is given up, not held
    assert supervisor.status.state == "stopped" and queue.qsize() == 2
