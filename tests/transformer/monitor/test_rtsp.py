"""A real RTSP camera (GStreamer's RTSP server on loopback, Opus audio over RTP/TCP) captured by
the supervisor's ffmpeg: audio at real time, a camera that dies is reconnected when it returns,
and a live stream's events through the whole monitor."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.dht_standin import eventually
from tests.support.rtsp_server import RtspCamera, available
from tests.transformer.monitor.test_supervisor import drain, supervised, wav
from transformer.monitor.sources import SourceSpec

pytestmark = [pytest.mark.slow, pytest.mark.skipif(available() is not None, reason=str(available()))]


async def test_camera_audio_arrives_at_real_time_and_a_camera_that_comes_back_is_reconnected(
    tmp_path: Path,
) -> None:
    samples = wav(tmp_path / "door.wav", 30.0, rate=48_000, seed=7)
    camera = RtspCamera(tmp_path / "door.wav").start()
    source = SourceSpec(name="front-door", url=camera.url, no_data_seconds=5)
    try:
        async with supervised(source) as (supervisor, queue):
            await eventually(lambda: supervisor.status.state == "online", 30, "the camera online")
            started = time.monotonic()
            await eventually(lambda: supervisor.status.seconds_captured >= 3.0, 30, "three seconds of audio")
            elapsed = time.monotonic() - started
            # a live camera: the audio comes at its own pace, not as fast as the pipe allows
            assert elapsed >= 2.0, elapsed
            first = drain(queue)
            assert {chunk.source for chunk in first} == {"front-door"}
            level = supervisor.status.level_dbfs
            assert level is not None and -30 < level < -5  # the file's noise, through Opus
            (segment,) = {chunk.segment for chunk in first}

            camera.stop()  # the camera reboots: connection reset
            await eventually(lambda: supervisor.status.state == "reconnecting", 30, "a reconnect")
            assert supervisor.status.last_error and "front-door" not in supervisor.status.last_error
            restarts = supervisor.status.restarts
            camera.start()  # back on the same address
            await eventually(
                lambda: not queue.empty() and supervisor.status.state == "online", 60, "audio again"
            )
            assert supervisor.status.restarts >= restarts >= 1
            assert drain(queue)[-1].segment > segment  # a new capture, not continuous with the last
    finally:
        camera.stop()
    assert samples.shape[0] == 30 * 48_000
