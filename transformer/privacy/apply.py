"""Run a validated privacy request on a waveform."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from transformer.privacy.dp_noise import laplace_noise
from transformer.privacy.randomness import PrivacyRandom
from transformer.privacy.request import PrivacyRequest
from transformer.privacy.scramble import scramble_segments
from transformer.privacy.speech_mask import mask_speech

Method = Callable[[np.ndarray, Mapping[str, float], PrivacyRandom, int], np.ndarray]

_METHODS: Mapping[str, Method] = {
    "dp_noise": laplace_noise,
    "scramble": scramble_segments,
    "speech_mask": mask_speech,
}


def apply_privacy(samples: np.ndarray, request: PrivacyRequest, *, sample_rate: int = 16000) -> np.ndarray:
    """Anonymise a mono waveform as ``request`` says.

    Args:
        samples: (n,) float64 mono samples at ``sample_rate`` (the transformer
            passes 16 kHz audio straight after decoding and resampling).
        request: a validated request (``parse_privacy_request``/``enforce_minimum``).

    Returns:
        (n,) float64, same length. Method "none" returns ``samples`` itself
        (no copy); the others return a new array. CPU-bound and synchronous:
        call it from a worker thread, not the event loop.
    """
    if request.method == "none":
        return samples
    waveform = np.asarray(samples, dtype=np.float64)
    if waveform.ndim != 1:
        raise ValueError(f"apply_privacy expects a 1-D mono waveform, got shape {waveform.shape}")
    if waveform.shape[0] == 0:
        return waveform.copy()
    return _METHODS[request.method](waveform, request.params, PrivacyRandom(request.seed), sample_rate)
