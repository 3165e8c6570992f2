"""SIFIS endpoint pieces: in-memory multipart parsing of the Analytics-API's exact
request, field/type validation, method mapping. (The endpoint over real servers
is tested in tests/e2e/test_services.py.)"""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
import soundfile as sf

from contract.errors import InvalidInput, InvalidParameter
from transformer.privacy import method_from_sifis_name as sifis_privacy_method
from transformer.protocol.sifis_form import audio_part, parse_multipart, text_field
from transformer.protocol.sifis_schema import SifisConfig, options_from_form

URL = "http://localhost:5000/model/predict/anonymized_audio/scrample/nssd-7/NSSD/req-42"


def _prepared(**kwargs) -> tuple[bytes, str]:
    """Body and Content-Type exactly as ``requests`` builds them for ``requests.post``."""
    prepared = requests.Request("POST", URL, **kwargs).prepare()
    return prepared.body, prepared.headers["Content-Type"]


@pytest.fixture(scope="module")
def wav_bytes() -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.sin(np.arange(16000) * 0.05) * 0.5, 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_analytics_api_request_shape(wav_bytes: bytes) -> None:
    body, content_type = _prepared(files={"audio": ("sample1.wav", wav_bytes, "audio/wav")})
    parts = parse_multipart(body, content_type)
    part = audio_part(parts)
    assert part.data == wav_bytes
    assert part.filename == "sample1.wav"
    assert part.content_type == "audio/wav"


def path(
    audio_file: str, method: str, requestor_id: str, requestor_type: str, request_id: str
) -> dict[str, str]:
    """The five segments of a SIFIS path, by name."""
    return {
        "audio_file": audio_file,
        "method": method,
        "requestor_id": requestor_id,
        "requestor_type": requestor_type,
        "request_id": request_id,
    }


def test_readme_curl_field_file_and_form_fields(wav_bytes: bytes) -> None:
    body, content_type = _prepared(
        files={"file": ("x.flac", wav_bytes, "audio/flac")},
        data={"start_time": "1.5", "filter": "Speech,Music"},
    )
    parts = parse_multipart(body, content_type)
    assert audio_part(parts).data == wav_bytes
    assert text_field(parts, "start_time") == "1.5"
    options = options_from_form(
        SifisConfig(), parts, path("anonymized_audio", "scrample", "nssd-7", "NSSD", "req-42")
    )
    assert options.start_time == 1.5
    assert options.label_filter == ["Speech", "Music"]
    assert options.privacy_method == "scramble"
    assert options.sifis_method == "scrample"
    assert (options.requestor_id, options.requestor_type, options.request_id) == ("nssd-7", "NSSD", "req-42")
    assert options.audio_file == "anonymized_audio"
    assert options.top_k == 5


def test_large_upload_parses_in_memory(wav_bytes: bytes) -> None:
    """3 MiB: above Starlette's 1 MiB spool-to-disk threshold."""
    payload = np.random.default_rng(3).integers(0, 256, 3 * 1024 * 1024, dtype=np.uint8).tobytes()
    body, content_type = _prepared(files={"audio": ("big.wav", payload, "audio/wav")})
    assert parse_multipart(body, content_type)["audio"].data == payload


def test_part_without_type_and_octet_stream_are_accepted(wav_bytes: bytes) -> None:
    body, content_type = _prepared(files={"audio": wav_bytes})
    assert audio_part(parse_multipart(body, content_type)).data == wav_bytes
    body, content_type = _prepared(files={"audio": ("a", wav_bytes, "application/octet-stream")})
    assert audio_part(parse_multipart(body, content_type)).data == wav_bytes


def test_wrong_type_is_400_with_the_old_message(wav_bytes: bytes) -> None:
    body, content_type = _prepared(files={"audio": ("notes.txt", b"hello", "text/plain")})
    with pytest.raises(InvalidInput, match="Invalid file type/extension: text/plain"):
        audio_part(parse_multipart(body, content_type))


def test_missing_audio_field_is_400(wav_bytes: bytes) -> None:
    body, content_type = _prepared(files={"sound": ("a.wav", wav_bytes, "audio/wav")})
    with pytest.raises(InvalidInput, match="field 'audio'"):
        audio_part(parse_multipart(body, content_type))


def test_not_multipart_is_400(wav_bytes: bytes) -> None:
    with pytest.raises(InvalidInput, match="multipart/form-data"):
        parse_multipart(wav_bytes, "audio/wav")
    with pytest.raises(InvalidInput, match="multipart/form-data"):
        parse_multipart(b"", None)


def test_truncated_body_is_400(wav_bytes: bytes) -> None:
    body, content_type = _prepared(files={"audio": ("a.wav", wav_bytes, "audio/wav")})
    with pytest.raises(InvalidInput, match=r"incomplete|malformed"):
        parse_multipart(body[: len(body) // 2], content_type)


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("scrample", "scramble"),
        ("scramble", "scramble"),
        ("dp_noise", "dp_noise"),
        ("speech_mask", "speech_mask"),
        ("nothing", "none"),
        ("none", "none"),
        ("", "none"),
        ("DP_NOISE", "dp_noise"),
    ],
)
def test_method_mapping_keeps_old_names(method: str, expected: str) -> None:
    assert sifis_privacy_method(method) == expected
    assert sifis_privacy_method(method, "none") == expected


@pytest.mark.parametrize("method", ["scramlbe", "anything", "speech-mask"])
def test_unknown_method_is_a_400_listing_the_valid_ones(method: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        sifis_privacy_method(method)
    assert caught.value.status_code == 400
    for valid in ("none", "dp_noise", "scramble", "speech_mask", "scrample"):
        assert valid in caught.value.message
    assert repr(method) in caught.value.message


def test_unknown_method_is_none_when_the_operator_keeps_the_old_behaviour() -> None:
    assert sifis_privacy_method("anything", "none") == "none"


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        ({"start_time": "later"}, InvalidParameter, "start_time must be a number"),
        ({"start_time": "-2"}, InvalidParameter, "start_time must be >= 0"),
        ({"filter": "Not A Label"}, InvalidParameter, "unknown label"),
    ],
)
def test_bad_form_fields_are_400(wav_bytes: bytes, data: dict, error: type, match: str) -> None:
    body, content_type = _prepared(files={"audio": ("a.wav", wav_bytes, "audio/wav")}, data=data)
    with pytest.raises(error, match=match):
        options_from_form(
            SifisConfig(), parse_multipart(body, content_type), path("f", "none", "r", "NSSD", "q")
        )


def test_unprintable_ids_are_400(wav_bytes: bytes) -> None:
    body, content_type = _prepared(files={"audio": ("a.wav", wav_bytes, "audio/wav")})
    with pytest.raises(InvalidParameter, match="requestor_id"):
        options_from_form(
            SifisConfig(), parse_multipart(body, content_type), path("f", "none", "bad\x00id", "NSSD", "q")
        )
