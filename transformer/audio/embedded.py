"""What the audio stage hands on: derived numbers only, never samples.

Kept apart from ``transformer.audio.pipeline`` (which loads a VGGish runtime and the
settings) so that the analysis and its tests can name these types without either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transformer.privacy import PrivacyRequest


@dataclass(frozen=True)
class AudioFeatures:
    """What the front end derives from one recording: no samples, only log-mel and loudness.

    Attributes:
        examples: (N, 96, 64) float64 log-mel examples of the anonymised audio (VGGish input).
        example_dbfs: (N,) float64 loudness of each example before anonymisation.
        duration_seconds: length of the decoded recording.
        privacy: the anonymisation that was applied.
        example_profile_dbfs: (N, 8) float64 loudness of each 0.12-s part of each example
            (``transformer.audio.loudness.example_profile_dbfs``), before anonymisation.
    """

    examples: np.ndarray
    example_dbfs: np.ndarray
    duration_seconds: float
    privacy: PrivacyRequest
    example_profile_dbfs: np.ndarray | None = None


@dataclass(frozen=True)
class EmbeddedAudio:
    """What leaves the audio stage: no samples, only derived numbers.

    Attributes:
        embeddings: (N, 128) uint8 quantised embeddings, one per 0.96 s example.
        example_dbfs: (N,) float64 loudness of each example before anonymisation.
        duration_seconds: length of the decoded recording.
        privacy: the anonymisation that was applied.
        example_profile_dbfs: (N, 8) float64 loudness of each 0.12-s part of each example, before
            anonymisation (None: not measured; events are then placed by their windows).
    """

    embeddings: np.ndarray
    example_dbfs: np.ndarray
    duration_seconds: float
    privacy: PrivacyRequest
    example_profile_dbfs: np.ndarray | None = None
