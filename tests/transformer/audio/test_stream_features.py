"""A stream's examples and embeddings against the same audio sent as one file."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from transformer.audio.features import waveform_to_examples
from transformer.audio.loudness import example_dbfs, example_profile_dbfs
from transformer.audio.pipeline import EmbeddingPipeline
from transformer.audio.stream_features import StreamingExamples, StreamingLoudness
from transformer.privacy import parse_privacy_request

SHARED_16K = Path(__file__).resolve().parents[4] / "shared" / "audio" / "sample2.flac"


def pcm(seconds: float, seed: int) -> np.ndarray:
    """Sound with structure (tones that come and go over noise), as 16-bit samples."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16_000)) / 16_000
    tone = 0.4 * np.sin(2 * np.pi * 880 * t) * (np.sin(2 * np.pi * 0.3 * t) > 0)
    return ((tone + 0.05 * rng.standard_normal(t.size)) * 32767 * 0.8).astype(np.int16)


def stream(samples: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feed ``samples`` in chunks of random sizes (1 sample to 2 s); examples, levels, profiles."""
    rng = np.random.default_rng(seed)
    front, loudness = StreamingExamples(), StreamingLoudness()
    examples, levels, profiles = [], [], []
    position = 0
    while position < samples.shape[0]:
        size = int(rng.choice([1, 7, 160, 399, 1601, 15_360, 15_601, 32_000]))
        chunk = samples[position : position + size]
        examples.append(front.push(chunk))
        level, profile = loudness.push(chunk)
        levels.append(level)
        profiles.append(profile)
        position += size
        assert front.buffered_samples < 15_600  # never more than the next example needs
        assert loudness.buffered_samples < 15_600
    return np.concatenate(examples), np.concatenate(levels), np.concatenate(profiles)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streamed_examples_equal_the_whole_recordings(seed: int) -> None:
    samples = pcm(21.3, seed)
    whole = samples.astype(np.float64) / 32768.0  # how libsndfile scales a 16-bit file
    examples, levels, profiles = stream(whole, seed)
    expected = waveform_to_examples(whole)
    assert examples.shape == expected.shape == (22, 96, 64)
    np.testing.assert_array_equal(examples, expected)  # bit for bit, not approximately
    np.testing.assert_array_equal(levels, example_dbfs(whole, expected.shape[0]))
    np.testing.assert_array_equal(profiles, example_profile_dbfs(whole, expected.shape[0]))


@pytest.mark.slow
def test_a_streamed_recording_gives_the_files_uint8_embeddings(synthetic_model_dir: Path) -> None:
    """The shared 16 kHz recording (or a generated one) as a file through the service's pipeline,
    and streamed in random chunks with its examples embedded as they complete."""
    if SHARED_16K.is_file():
        audio = SHARED_16K.read_bytes()
        samples, rate = sf.read(io.BytesIO(audio), dtype="int16")
        assert rate == 16_000 and samples.ndim == 1
    else:
        samples = pcm(12.0, 5)
        buffer = io.BytesIO()
        sf.write(buffer, samples, 16_000, subtype="PCM_16", format="WAV")
        audio = buffer.getvalue()
    pipeline = EmbeddingPipeline.from_model_dir(synthetic_model_dir)
    whole = pipeline.embed(audio, parse_privacy_request("none", {}))

    front = StreamingExamples()
    rng = np.random.default_rng(9)
    embedded, position = [], 0
    while position < samples.shape[0]:
        size = int(rng.integers(1, 20_000))
        examples = front.push(samples[position : position + size] / 32768.0)
        position += size
        if examples.shape[0]:  # each example embedded once, as soon as it is complete
            embedded.append(pipeline.embedder.embed_quantized(examples))
    streamed = np.concatenate(embedded)
    assert streamed.dtype == np.uint8 and streamed.shape == whole.embeddings.shape
    np.testing.assert_array_equal(streamed, whole.embeddings)
