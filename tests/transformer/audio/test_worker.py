"""Cross-request VGGish batching in the transformer model (in process, real weights files).

Concurrent ``AudioTransformer.prepare`` calls share VGGish calls through the
model's ``AdaptiveBatcher``. A wrong split would hand one caller another
caller's embeddings (a privacy and a safety bug), so every answer is compared
exactly with the synchronous, unbatched ``EmbeddingPipeline.embed`` on the
same audio, and merging is proven by the batcher's counters and the
Prometheus metrics. Requests have at least 2 examples each: VGGish's answer
for a row is bit-identical across batch sizes >= 2, while a 1-row call takes
another kernel (1e-5 away).
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from prometheus_client import REGISTRY

from contract.errors import AudioTooShort, UndecodableAudio
from transformer.analysis.analyzer import PreparedAnalysis
from transformer.analysis.types import AnalysisOptions
from transformer.audio.constants import SAMPLE_RATE
from transformer.audio.embedded import EmbeddedAudio
from transformer.audio.pipeline import EmbeddingPipeline
from transformer.model import AudioTransformer
from transformer.privacy import parse_privacy_request
from transformer.settings import TransformerSettings

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

BATCHED = "vggish-batched"
UNBATCHED = "vggish-unbatched"
VGGISH_BATCH_SIZE = 64
#: Long enough for every request of a test to reach the queue before the first call.
BATCH_WAIT_MS = 100.0
#: 2..7 s clips and one of 70 s (72 examples: more than one VGGish call's worth).
CLIP_SECONDS = (2.0, 3.5, 5.0, 7.0, 2.5, 4.0, 6.0, 3.0, 70.0, 2.2, 5.5, 4.5)
NONE = AnalysisOptions(privacy_method="none")


def wav(seconds: float, seed: int) -> bytes:
    """A distinct PCM16 WAV per seed: a random tone over noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    samples = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 5000) * t) + 0.1 * rng.standard_normal(t.size)
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1, 1), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def transformer_model(name: str, model_dir: Path, tmp_path: Path, *, batching: bool) -> AudioTransformer:
    settings = TransformerSettings(
        model_dir=model_dir,
        vggish_batch_size=VGGISH_BATCH_SIZE,
        vggish_request_batching=batching,
        vggish_batch_wait_ms=BATCH_WAIT_MS,
        outbox_path=tmp_path / "outbox.sqlite3",
        dht_url=None,
        listener_enabled=False,
    )
    model = AudioTransformer(name, settings)
    assert model.load() is True
    return model


@pytest.fixture(scope="module")
def batched(synthetic_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AudioTransformer:
    return transformer_model(BATCHED, synthetic_model_dir, tmp_path_factory.mktemp("b"), batching=True)


@pytest.fixture(scope="module")
def unbatched(synthetic_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AudioTransformer:
    return transformer_model(UNBATCHED, synthetic_model_dir, tmp_path_factory.mktemp("u"), batching=False)


@pytest.fixture(scope="module")
def reference(unbatched: AudioTransformer) -> EmbeddingPipeline:
    """The synchronous pipeline: one request, VGGish on its own examples, no event loop."""
    assert unbatched.worker is not None
    return unbatched.worker.pipeline


def metric(name: str, model_name: str) -> float:
    return REGISTRY.get_sample_value(name, {"model_name": model_name}) or 0.0


def vggish_counters(model_name: str) -> dict[str, float]:
    """Calls, request chunks and examples from the transformer's Prometheus metrics."""
    return {
        "calls": metric("audioguard_transformer_vggish_batch_requests_count", model_name),
        "chunks": metric("audioguard_transformer_vggish_batch_requests_sum", model_name),
        "examples": metric("audioguard_transformer_vggish_batch_examples_sum", model_name),
        "timed_calls": metric("audioguard_transformer_vggish_batch_seconds_count", model_name),
    }


def difference(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before[key] for key in after}


def expected_examples(seconds: float) -> int:
    """Complete 96-frame examples of a clip (400-sample frames at hop 160: docs/reference/model.md §1)."""
    frames = 1 + (int(seconds * SAMPLE_RATE) - 400) // 160
    return frames // 96


async def prepare_all(
    model: AudioTransformer, clips: Sequence[bytes]
) -> list[PreparedAnalysis | BaseException]:
    """``prepare`` every clip concurrently; failures are returned, not raised."""
    return await asyncio.gather(
        *(model.analyzer.prepare(clip, NONE) for clip in clips),
        return_exceptions=True,
    )


def assert_same_audio_stage(actual: EmbeddedAudio, expected: EmbeddedAudio) -> None:
    assert actual.embeddings.dtype == np.uint8 and actual.embeddings.shape == expected.embeddings.shape
    np.testing.assert_array_equal(actual.embeddings, expected.embeddings)
    np.testing.assert_array_equal(actual.example_dbfs, expected.example_dbfs)
    assert actual.duration_seconds == expected.duration_seconds
    assert actual.privacy == expected.privacy


async def test_concurrent_requests_each_get_their_own_embeddings(
    batched: AudioTransformer, reference: EmbeddingPipeline
) -> None:
    clips = [wav(seconds, seed) for seed, seconds in enumerate(CLIP_SECONDS)]
    none = parse_privacy_request("none", {})
    expected = [reference.embed(clip, none) for clip in clips]
    sizes = [e.embeddings.shape[0] for e in expected]
    assert sizes == [expected_examples(s) for s in CLIP_SECONDS]
    assert min(sizes) >= 2 and max(sizes) > VGGISH_BATCH_SIZE
    # Every request's rows differ from every other's: a swapped split cannot go unnoticed.
    firsts = {e.embeddings[0].tobytes() for e in expected}
    assert len(firsts) == len(clips)

    stats_before = batched.vggish_batch_stats()
    metrics_before = vggish_counters(BATCHED)
    results = await prepare_all(batched, clips)
    stats_after = batched.vggish_batch_stats()
    metrics = difference(vggish_counters(BATCHED), metrics_before)

    for result, wanted in zip(results, expected, strict=True):
        assert isinstance(result, PreparedAnalysis), result
        assert_same_audio_stage(result.embedded, wanted)

    assert stats_before is not None and stats_after is not None
    calls = stats_after.calls - stats_before.calls
    chunks = stats_after.chunks - stats_before.chunks
    # The 72-example request goes in two chunks (64 + 8); every other request in one.
    assert chunks == len(clips) + 1
    assert stats_after.requests - stats_before.requests == len(clips)
    assert stats_after.windows - stats_before.windows == sum(sizes)
    assert stats_after.failed_calls == stats_before.failed_calls
    assert calls < len(clips), f"{calls} VGGish calls for {len(clips)} requests: nothing was merged"
    assert stats_after.largest_batch <= VGGISH_BATCH_SIZE
    assert metrics == {"calls": calls, "chunks": chunks, "examples": sum(sizes), "timed_calls": calls}


async def test_batching_off_calls_vggish_once_per_request(
    unbatched: AudioTransformer, reference: EmbeddingPipeline
) -> None:
    seconds = (3.0, 4.5, 2.0, 6.0, 5.0, 2.5)
    clips = [wav(s, 100 + seed) for seed, s in enumerate(seconds)]
    none = parse_privacy_request("none", {})
    expected = [reference.embed(clip, none) for clip in clips]
    before = vggish_counters(UNBATCHED)

    results = await prepare_all(unbatched, clips)

    for result, wanted in zip(results, expected, strict=True):
        assert isinstance(result, PreparedAnalysis), result
        assert_same_audio_stage(result.embedded, wanted)
    assert unbatched.vggish_batch_stats() is None
    assert difference(vggish_counters(UNBATCHED), before) == {
        "calls": len(clips),
        "chunks": len(clips),
        "examples": sum(expected_examples(s) for s in seconds),
        "timed_calls": len(clips),
    }


async def test_a_failing_front_end_does_not_fail_the_requests_batched_with_it(
    batched: AudioTransformer, reference: EmbeddingPipeline
) -> None:
    good = [wav(s, 200 + seed) for seed, s in enumerate((3.0, 2.0, 4.0, 5.0, 2.5))]
    undecodable = b"RIFF\x00\x00\x00\x00WAVEnot really audio" + bytes(4000)
    too_short = wav(0.5, 299)
    clips = [good[0], undecodable, good[1], good[2], too_short, good[3], good[4]]
    none = parse_privacy_request("none", {})
    expected = {id(clip): reference.embed(clip, none) for clip in good}
    before = batched.vggish_batch_stats()

    results = await prepare_all(batched, clips)

    assert isinstance(results[1], UndecodableAudio), results[1]
    assert isinstance(results[4], AudioTooShort), results[4]
    for clip, result in zip(clips, results, strict=True):
        if id(clip) in expected:
            assert isinstance(result, PreparedAnalysis), result
            assert_same_audio_stage(result.embedded, expected[id(clip)])
    after = batched.vggish_batch_stats()
    assert before is not None and after is not None
    # The failed front ends never reached the batcher; the good requests were merged.
    assert after.chunks - before.chunks == len(good)
    assert after.failed_calls == before.failed_calls
    assert after.calls - before.calls < len(good)


async def test_a_cancelled_request_stops_its_work_before_vggish(unbatched: AudioTransformer) -> None:
    """The HTTP client left (``contract.disconnects`` cancels the request): its pool job stops
    before its next stage and has ended when the cancellation returns, so VGGish never runs
    for it, then or later."""
    worker = unbatched.worker
    assert worker is not None and worker.jobs_in_progress() == 0
    none = parse_privacy_request("none", {})
    long_clip = wav(120.0, 400)  # a front end of a few hundred milliseconds, then VGGish
    before = vggish_counters(UNBATCHED)
    task = asyncio.create_task(worker.embed(long_clip, none))
    deadline = time.monotonic() + 30
    while worker.jobs_in_progress() == 0:  # until its job runs in the pool
        assert time.monotonic() < deadline and not task.done()
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert worker.jobs_in_progress() == 0  # stopped and ended: its memory may be counted free
    assert difference(vggish_counters(UNBATCHED), before)["calls"] == 0
    # the same work again, to its end: exactly its own VGGish call is counted
    embedded = await worker.embed(long_clip, none)
    assert difference(vggish_counters(UNBATCHED), before) == {
        "calls": 1,
        "chunks": 1,
        "examples": embedded.embeddings.shape[0],
        "timed_calls": 1,
    }
