"""Audio bytes -> anonymised, quantised VGGish embeddings: the transformer's core chain.

decode -> resample to 16 kHz mono -> privacy -> log-mel examples -> VGGish ->
PCA + uint8. Everything here is synchronous and CPU-heavy: the services call
it from worker threads, never on the event loop.

Two stages, so that a server can merge the VGGish calls of concurrent requests:
the per-request front end (``features``: everything up to the log-mel examples
and the loudness) and the VGGish forward pass on the examples, followed by the
per-request PCA/uint8 step (``quantized``). ``embed`` runs both for one request,
as the offline and benchmark users want it.

The front end takes a ``stop`` event: set (the server's client has left), the
next stage does not start and ``Stopped`` is raised in the worker thread.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from contract.assets import PCA_PARAMS, VGGISH_CHECKPOINT, require_assets
from transformer.audio.constants import SAMPLE_RATE, Precision, Runtime
from transformer.audio.decode import DECODE_BUDGET_HZ, load_waveform
from transformer.audio.embedded import AudioFeatures, EmbeddedAudio
from transformer.audio.embedders import Embedder, load_embedder
from transformer.audio.features import waveform_to_examples
from transformer.audio.loudness import example_dbfs, example_profile_dbfs
from transformer.privacy import PrivacyRequest, apply_privacy


class Stopped(Exception):
    """The work was stopped between two stages (its ``stop`` event was set)."""


def check_stop(stop: threading.Event | None) -> None:
    """Raise ``Stopped`` if ``stop`` is set: called between two stages of a request's work."""
    if stop is not None and stop.is_set():
        raise Stopped


class EmbeddingPipeline:
    """The loaded VGGish + PCA and the audio limits; thread-safe ``embed``."""

    def __init__(
        self, embedder: Embedder, *, max_audio_seconds: float, decode_budget_hz: int = DECODE_BUDGET_HZ
    ) -> None:
        self.embedder = embedder
        self.max_audio_seconds = max_audio_seconds
        self.decode_budget_hz = decode_budget_hz

    @classmethod
    def from_model_dir(
        cls,
        model_dir: Path,
        *,
        fc2_relu: bool = True,
        batch_size: int = 64,
        max_audio_seconds: float = 600.0,
        decode_budget_hz: int = DECODE_BUDGET_HZ,
        runtime: Runtime = "onnxruntime",
        precision: Precision = "fp32",
        threads: int = 0,
        cache_dir: Path | None = None,
    ) -> EmbeddingPipeline:
        """Load ``vggish_model.ckpt`` and ``vggish_pca_params.npz`` from ``model_dir`` on ``runtime``."""
        paths = require_assets(model_dir, (VGGISH_CHECKPOINT, PCA_PARAMS))
        embedder = load_embedder(
            paths[VGGISH_CHECKPOINT],
            paths[PCA_PARAMS],
            runtime=runtime,
            precision=precision,
            fc2_relu=fc2_relu,
            batch_size=batch_size,
            threads=threads,
            cache_dir=cache_dir,
        )
        return cls(embedder, max_audio_seconds=max_audio_seconds, decode_budget_hz=decode_budget_hz)

    def waveform(self, audio: bytes) -> np.ndarray:
        """Decode and resample: (n,) float64 16 kHz mono, validated (typed 4xx errors)."""
        return load_waveform(audio, max_seconds=self.max_audio_seconds, budget_hz=self.decode_budget_hz)

    def waveform_features(
        self, samples: np.ndarray, privacy: PrivacyRequest, stop: threading.Event | None = None
    ) -> AudioFeatures:
        """Anonymise a 16 kHz waveform and derive its log-mel examples and loudness
        (``Stopped`` between two stages once ``stop`` is set)."""
        anonymised = apply_privacy(samples, privacy)
        check_stop(stop)
        examples = waveform_to_examples(anonymised)
        check_stop(stop)
        return AudioFeatures(
            examples=examples,
            example_dbfs=example_dbfs(samples, examples.shape[0]),
            duration_seconds=samples.shape[0] / SAMPLE_RATE,
            privacy=privacy,
            example_profile_dbfs=example_profile_dbfs(samples, examples.shape[0]),
        )

    def features(
        self, audio: bytes, privacy: PrivacyRequest, stop: threading.Event | None = None
    ) -> AudioFeatures:
        """The front end: encoded audio file bytes -> log-mel examples and loudness (typed 4xx
        errors; ``Stopped`` between two stages once ``stop`` is set)."""
        samples = self.waveform(audio)
        check_stop(stop)
        return self.waveform_features(samples, privacy, stop)

    def quantized(self, features: AudioFeatures, raw_embeddings: np.ndarray) -> EmbeddedAudio:
        """PCA + uint8 of VGGish's (N, 128) float32 output for ``features.examples``."""
        return EmbeddedAudio(
            embeddings=self.embedder.quantizer(raw_embeddings),
            example_dbfs=features.example_dbfs,
            duration_seconds=features.duration_seconds,
            privacy=features.privacy,
            example_profile_dbfs=features.example_profile_dbfs,
        )

    def embed_features(self, features: AudioFeatures) -> EmbeddedAudio:
        """VGGish (alone, on this request's examples) and PCA/uint8."""
        return self.quantized(features, self.embedder.embed(features.examples))

    def embed(self, audio: bytes, privacy: PrivacyRequest) -> EmbeddedAudio:
        """Encoded audio file bytes -> embeddings (the whole audio stage)."""
        return self.embed_features(self.features(audio, privacy))
