"""Why ``contract.v2_rest`` exists: KServe 0.21's own REST decoding loses audio.

The first test pins KServe's behaviour: when it starts keeping binary BYTES as
bytes, it fails, and the workaround (``decode_rest_body`` and the infer routes of
both services) can be removed in favour of KServe's decoder.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
import tritonclient.http as triton_http
from kserve.errors import InferenceError
from kserve.protocol.infer_type import InferRequest

from contract.v2_rest import decode_rest_body
from transformer.protocol.v2_request import parse_audio_request


def binary_audio_request() -> tuple[bytes, bytes, int]:
    """(audio file, v2 REST body with the binary extension, JSON length) as tritonclient sends it."""
    buffer = io.BytesIO()
    sf.write(buffer, np.random.default_rng(3).uniform(-0.9, 0.9, 1600), 16000, format="WAV", subtype="PCM_16")
    audio = buffer.getvalue()
    tensor = triton_http.InferInput("audio", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([audio], dtype=np.object_), binary_data=True)
    body, json_length = triton_http.InferenceServerClient.generate_request_body([tensor])
    assert json_length is not None
    return audio, body, json_length


def kserve_decoded_audio(body: bytes, json_length: int) -> bytes | None:
    """The audio element as KServe 0.21's REST path decodes it, None when it cannot."""
    try:
        request = InferRequest.from_bytes(body, json_length, "audioguard")
        element = request.inputs[0].as_numpy().reshape(-1)[0]
    except (InferenceError, UnicodeDecodeError, ValueError):
        # 0.21: InferenceError("Failed to encode b'RIFF...'"), a 500 quoting the file
        return None
    return element if isinstance(element, bytes) else str(element).encode("utf-8", "surrogateescape")


def test_kserve_still_loses_binary_audio_so_the_workaround_is_needed() -> None:
    audio, body, json_length = binary_audio_request()
    assert audio.decode("utf-8", "replace").encode("utf-8") != audio  # real audio is not UTF-8 text
    assert kserve_decoded_audio(body, json_length) != audio


def test_the_workaround_keeps_the_audio_bytes() -> None:
    audio, body, json_length = binary_audio_request()
    assert parse_audio_request(decode_rest_body(body, str(json_length), "audioguard")).audio == audio
