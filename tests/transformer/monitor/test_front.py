"""A source's front end against the file path: a stream gives the embeddings of the same file."""

from __future__ import annotations

import asyncio
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from transformer.audio.decode import load_waveform
from transformer.audio.features import waveform_to_examples
from transformer.audio.loudness import example_dbfs, example_profile_dbfs
from transformer.audio.pipeline import EmbeddingPipeline
from transformer.monitor.chunks import Chunk, ChunkQueue
from transformer.monitor.front import Examples, SourceFront
from transformer.monitor.sources import SourceSpec
from transformer.monitor.supervisor import SourceSupervisor
from transformer.privacy import PrivacyRequest, apply_privacy, parse_privacy_request
from transformer.privacy.stream import PassThrough, stream_anonymiser

SHARED_STEREO = Path(__file__).resolve().parents[4] / "shared" / "audio" / "birds1.wav"


def stereo_wav(seconds: float, rate: int = 44_100, seed: int = 0) -> bytes:
    """Two channels of structured sound (tones that come and go over noise), 16-bit."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    left = 0.4 * np.sin(2 * np.pi * 880 * t) * (np.sin(2 * np.pi * 0.3 * t) > 0)
    right = 0.3 * np.sin(2 * np.pi * 2500 * t + 1) * (np.sin(2 * np.pi * 0.7 * t) > 0)
    frames = np.stack([left, right], axis=1) + 0.05 * rng.standard_normal((t.size, 2))
    buffer = io.BytesIO()
    sf.write(buffer, (frames * 32767 * 0.8).astype(np.int16), rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def pushed(front: SourceFront, mono: np.ndarray, seed: int) -> Examples:
    """``mono`` in random chunks (1 sample to 1 s), then finish: all examples and their loudness."""
    rng = np.random.default_rng(seed)
    parts, position = [], 0
    while position < mono.size:
        size = int(rng.choice([1, 3, 441, 1000, 4410, 17_640, 44_100]))
        parts.append(front.push(mono[position : position + size]))
        position += size
    parts.append(front.finish())
    return Examples(*(np.concatenate([getattr(p, name) for p in parts]) for name in Examples._fields))


def file_loudness(audio: bytes, count: int) -> tuple[np.ndarray, np.ndarray]:
    """What the file path measures: each example's level and profile, before anonymisation."""
    waveform = load_waveform(audio, max_seconds=60.0)
    return example_dbfs(waveform, count), example_profile_dbfs(waveform, count)


@pytest.mark.parametrize("rate", [44_100, 48_000, 22_050, 8_000])
def test_a_stream_at_any_rate_gives_the_file_paths_examples(rate: int) -> None:
    audio = stereo_wav(12.3, rate)
    frames, _ = sf.read(io.BytesIO(audio), dtype="float64", always_2d=True)
    examples, levels, profiles = pushed(SourceFront(rate, PassThrough()), np.mean(frames, axis=1), rate)
    expected = waveform_to_examples(load_waveform(audio, max_seconds=60.0))
    assert examples.shape == expected.shape == (12, 96, 64)
    np.testing.assert_allclose(examples, expected, rtol=0, atol=1e-9)  # float64 rounding only
    file_levels, file_profiles = file_loudness(audio, 12)
    assert levels.shape == (12,) and profiles.shape == (12, 8)
    np.testing.assert_allclose(levels, file_levels, rtol=0, atol=1e-9)
    np.testing.assert_allclose(profiles, file_profiles, rtol=0, atol=1e-9)


def test_a_stream_within_one_privacy_window_is_anonymised_as_the_file_is() -> None:
    audio = stereo_wav(3.5)
    frames, _ = sf.read(io.BytesIO(audio), dtype="float64", always_2d=True)
    for method in ("dp_noise", "scramble", "speech_mask"):
        parsed = parse_privacy_request(method, {})
        request = PrivacyRequest(parsed.method, parsed.params, seed=11)
        front = SourceFront(44_100, stream_anonymiser(request))
        examples, levels, profiles = pushed(front, np.mean(frames, axis=1), 1)
        expected = waveform_to_examples(apply_privacy(load_waveform(audio, max_seconds=60.0), request))
        np.testing.assert_allclose(examples, expected, rtol=0, atol=1e-9)
        # the loudness is the audio's before anonymisation, as the file path measures it
        file_levels, file_profiles = file_loudness(audio, expected.shape[0])
        np.testing.assert_allclose(levels, file_levels, rtol=0, atol=1e-9)
        np.testing.assert_allclose(profiles, file_profiles, rtol=0, atol=1e-9)


async def captured(path: Path) -> list[Chunk]:
    """The file through a real ffmpeg capture, as fast as it decodes."""
    queue: ChunkQueue = ChunkQueue(100_000)
    supervisor = SourceSupervisor(SourceSpec(name="replay", url=str(path), realtime=False), queue)
    await asyncio.wait_for(supervisor.run(), 60)
    assert supervisor.status.state == "finished"
    return [queue.get_nowait() for _ in range(queue.qsize())]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
async def test_a_wav_captured_by_ffmpeg_gives_the_uploaded_files_uint8_embeddings(
    synthetic_model_dir: Path, tmp_path: Path
) -> None:
    """The shared 44.1 kHz stereo recording (or a generated one) uploaded to the service's
    pipeline, and captured by ffmpeg with its examples embedded as they complete."""
    path = SHARED_STEREO if SHARED_STEREO.is_file() else tmp_path / "stereo.wav"
    if not SHARED_STEREO.is_file():
        path.write_bytes(stereo_wav(13.0))
    pipeline = EmbeddingPipeline.from_model_dir(synthetic_model_dir)
    whole = pipeline.embed(path.read_bytes(), parse_privacy_request("none", {}))

    chunks = await captured(path)
    front = SourceFront(chunks[0].sample_rate, PassThrough())
    embedded = []
    for chunk in chunks:
        examples = front.push(chunk.samples).features
        if examples.shape[0]:  # each example embedded once, as soon as it is complete
            embedded.append(pipeline.embedder.embed_quantized(examples))
    examples = front.finish().features
    if examples.shape[0]:
        embedded.append(pipeline.embedder.embed_quantized(examples))
    streamed = np.concatenate(embedded)
    assert chunks[0].sample_rate == 44_100 and streamed.shape == whole.embeddings.shape
    assert streamed.dtype == np.uint8
    np.testing.assert_array_equal(streamed, whole.embeddings)  # 100 % equal
