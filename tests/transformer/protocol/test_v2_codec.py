"""v2 request/response coding: bodies built by real clients (tritonclient, KServe)."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import struct

import numpy as np
import orjson
import pytest
import soundfile as sf
import tritonclient.http as triton_http
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse

from contract.errors import InvalidInput, InvalidParameter
from contract.v2_json import encode_response
from contract.v2_rest import decode_rest_body
from contract.weights_status import NOT_OFFICIAL_WARNING, WeightsStatus, weights_official_parameter
from transformer.analysis.types import AnalysisOptions, AnalysisResult, WindowPrediction
from transformer.protocol import v2_response
from transformer.protocol.predictor_tensors import embeddings_request, scores_from_response
from transformer.protocol.v2_request import parse_audio_request, parse_options
from transformer.protocol.v2_response import encode_result, response_parameters


@pytest.fixture(scope="module")
def wav_bytes() -> bytes:
    """A short 16-bit WAV whose bytes are not valid UTF-8 (as real audio files)."""
    rng = np.random.default_rng(7)
    buffer = io.BytesIO()
    sf.write(buffer, rng.uniform(-0.9, 0.9, 1600), 16000, format="WAV", subtype="PCM_16")
    data = buffer.getvalue()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    return data


def _triton_body(inputs, parameters=None, outputs=None) -> tuple[bytes, str | None]:
    body, json_size = triton_http.InferenceServerClient.generate_request_body(
        inputs, outputs=outputs, parameters=parameters
    )
    return body, None if json_size is None else str(json_size)


def test_tritonclient_binary_bytes_input_keeps_the_file(wav_bytes: bytes) -> None:
    tensor = triton_http.InferInput("audio", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([wav_bytes], dtype=np.object_), binary_data=True)
    body, header_length = _triton_body([tensor], parameters={"privacy": "scramble", "top_k": 3})
    assert header_length is not None  # the binary extension really is in use

    call = parse_audio_request(decode_rest_body(body, header_length, "audioguard"))

    assert call.audio == wav_bytes
    assert call.options.privacy_method == "scramble"
    assert call.options.top_k == 3


def test_tritonclient_json_base64_input_with_request_parameter(wav_bytes: bytes) -> None:
    tensor = triton_http.InferInput("audio", [1], "BYTES")
    text = base64.b64encode(wav_bytes).decode("ascii")
    tensor.set_data_from_numpy(np.array([text], dtype=np.object_), binary_data=False)
    body, header_length = _triton_body([tensor], parameters={"content_encoding": "base64"})
    assert header_length is None

    call = parse_audio_request(decode_rest_body(body, header_length, "audioguard"))

    assert call.audio == wav_bytes


def test_curl_style_json_with_input_level_encoding(wav_bytes: bytes) -> None:
    document = {
        "inputs": [
            {
                "name": "audio",
                "shape": [1],
                "datatype": "BYTES",
                "parameters": {"content_encoding": "base64"},
                "data": [base64.b64encode(wav_bytes).decode("ascii")],
            }
        ],
        "parameters": {"start_time": "1.92", "all_windows": True, "requestor_id": "nssd-1"},
    }
    request = decode_rest_body(json.dumps(document).encode(), None, "m")
    call = parse_audio_request(request)
    assert call.audio == wav_bytes
    assert call.options.start_time == pytest.approx(1.92)
    assert call.options.all_windows is True
    assert call.options.requestor_id == "nssd-1"


def test_json_text_without_encoding_is_refused(wav_bytes: bytes) -> None:
    document = {"inputs": [{"name": "audio", "shape": [1], "datatype": "BYTES", "data": ["UklGRg=="]}]}
    with pytest.raises(InvalidParameter, match="content_encoding"):
        parse_audio_request(decode_rest_body(json.dumps(document).encode(), None, "m"))


def test_grpc_raw_contents_keep_the_file(wav_bytes: bytes) -> None:
    """The gRPC path (KServe's from_grpc) already keeps bytes; the codec must read them."""
    client_side = InferInput("audio", [1], "BYTES")
    client_side.set_data_from_numpy(np.array([wav_bytes], dtype=np.object_), binary_data=True)
    message = InferRequest("m", [client_side], parameters={"start_time": "0.96", "top_k": 2}).to_grpc()

    call = parse_audio_request(InferRequest.from_grpc(message))

    assert call.audio == wav_bytes
    assert call.options.start_time == pytest.approx(0.96)
    assert call.options.top_k == 2


def test_grpc_bytes_contents_keep_the_file(wav_bytes: bytes) -> None:
    client_side = InferInput("audio", [1], "BYTES", data=[wav_bytes])
    message = InferRequest("m", [client_side]).to_grpc()
    assert not message.raw_input_contents  # really the typed-contents variant
    assert parse_audio_request(InferRequest.from_grpc(message)).audio == wav_bytes


@pytest.mark.parametrize(
    ("document", "header", "error"),
    [
        (b"not json", None, "not valid JSON"),
        (b'{"inputs": 3}', None, '"inputs" list'),
        (b'{"inputs": [{"name": "audio", "shape": [1], "datatype": "BYTES"}]}', None, "neither"),
        (b'{"inputs": [{"name": "audio", "shape": [1], "datatype": "BYTES"}]}', "abc", "integer"),
        (b'{"inputs": [{"name": "audio", "shape": [1], "datatype": "BYTES"}]}', "900", "between 1"),
    ],
)
def test_malformed_bodies_are_400(document: bytes, header: str | None, error: str) -> None:
    with pytest.raises(InvalidInput, match=error):
        decode_rest_body(document, header, "m")


AUDIO_INPUT_JSON = '{"name": "audio", "shape": [1], "datatype": "BYTES", "data": ["UklGRg=="]}'


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e309"])
def test_non_json_numbers_are_named_without_the_binary_header_hint(number: str) -> None:
    """A pure-JSON body carries no binary part: the header is not the problem, the number is."""
    body = f'{{"inputs": [{AUDIO_INPUT_JSON}], "parameters": {{"start_time": {number}}}}}'.encode()
    with pytest.raises(InvalidInput) as caught:
        decode_rest_body(body, None, "m")
    message = caught.value.message
    assert message.startswith("the request body is not valid JSON (")
    assert "NaN, Infinity and numbers beyond the double range such as 1e309 are not JSON" in message
    # the parser's position (1-based column): where the number starts, after any sign
    assert f"column {body.decode().index(number.lstrip('-')) + 1};" in message
    assert "Inference-Header-Content-Length" not in message


def test_binary_data_after_the_json_without_the_header_gets_the_header_hint(wav_bytes: bytes) -> None:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "audio",
                    "shape": [1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": 4 + len(wav_bytes)},
                }
            ]
        }
    ).encode()
    body = header + struct.pack("<I", len(wav_bytes)) + wav_bytes
    with pytest.raises(InvalidInput) as caught:
        decode_rest_body(body, None, "m")
    assert caught.value.message == (
        "the request body is not a v2 inference request: more data follows its JSON (binary tensors "
        "need the Inference-Header-Content-Length header giving the JSON part's length)"
    )
    with pytest.raises(InvalidInput) as caught:
        decode_rest_body(wav_bytes, None, "m")  # the file posted as the whole body
    assert "it is binary data, not JSON" in caught.value.message
    assert "Inference-Header-Content-Length" in caught.value.message


def test_json_part_named_by_a_wrong_header_length_says_so() -> None:
    document = f'{{"inputs": [{AUDIO_INPUT_JSON}]}}'.encode()
    with pytest.raises(InvalidInput) as caught:
        decode_rest_body(document + b"\x00\x00\x00\x00", str(len(document) - 3), "m")
    message = caught.value.message
    length = len(document) - 3
    assert f"its JSON part (the first {length} bytes, per Inference-Header-Content-Length)" in message
    assert message.endswith("the header must give the JSON part's length in bytes")


def test_binary_size_beyond_body_is_400() -> None:
    header = (
        b'{"inputs":[{"name":"audio","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":100}}]}'
    )
    with pytest.raises(InvalidInput, match="binary_data_size"):
        decode_rest_body(header + b"\x00" * 10, str(len(header)), "m")


def test_binary_element_without_length_prefix_is_400_and_echoes_nothing(wav_bytes: bytes) -> None:
    """A file sent raw (no 4-byte length) is refused; the message holds no payload bytes."""
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "audio",
                    "shape": [1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(wav_bytes)},
                }
            ]
        }
    ).encode()
    with pytest.raises(InvalidInput) as caught:
        parse_audio_request(decode_rest_body(header + wav_bytes, str(len(header)), "m"))
    assert "RIFF" not in caught.value.message
    assert "4-byte little-endian length" in caught.value.message


@pytest.mark.parametrize(
    ("inputs", "error"),
    [
        (
            [{"name": "wave", "shape": [1], "datatype": "BYTES", "data": ["x"]}],
            "exactly one input named 'audio'",
        ),
        ([{"name": "audio", "shape": [1], "datatype": "FP32", "data": [1.0]}], "datatype BYTES"),
        ([{"name": "audio", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}], "exactly one element"),
    ],
)
def test_wrong_tensors_are_400(inputs: list[dict], error: str) -> None:
    with pytest.raises(InvalidInput, match=error):
        parse_audio_request(decode_rest_body(json.dumps({"inputs": inputs}).encode(), None, "m"))


def test_bad_base64_is_400() -> None:
    document = {
        "inputs": [{"name": "audio", "shape": [1], "datatype": "BYTES", "data": ["@@@"]}],
        "parameters": {"content_encoding": "base64"},
    }
    with pytest.raises(InvalidInput, match="base64"):
        parse_audio_request(decode_rest_body(json.dumps(document).encode(), None, "m"))


@pytest.mark.parametrize(
    ("parameters", "error"),
    [
        ({"privcy": "speech_mask"}, "unknown request parameter"),
        ({"start_time": "soon"}, "start_time must be a number"),
        ({"start_time": -1}, "start_time must be >= 0"),
        ({"start_time": "nan"}, "finite"),
        ({"top_k": 0}, "top_k must be an integer between 1 and 527"),
        ({"top_k": 2.5}, "top_k"),
        ({"top_k": 528}, "top_k"),
        ({"all_windows": "maybe"}, "all_windows must be a boolean"),
        ({"requestor_id": ""}, "requestor_id must be 1 to"),
        ({"request_id": "x" * 300}, "request_id must be 1 to"),
        ({"requestor_type": ["a"]}, "requestor_type must be a string"),
        ({"privacy": 3}, "privacy must be a method name"),
    ],
)
def test_bad_parameters_are_invalid_parameter(parameters: dict, error: str) -> None:
    with pytest.raises(InvalidParameter, match=error):
        parse_options(parameters)


def test_parameters_pass_privacy_params_and_ignore_client_extras() -> None:
    options = parse_options(
        {"privacy": "dp_noise", "privacy_epsilon": "0.5", "binary_data_output": True, "request_id": 42}
    )
    assert options == AnalysisOptions(
        privacy_method="dp_noise", privacy_params={"epsilon": "0.5"}, request_id="42"
    )


def test_unknown_requested_output_is_400() -> None:
    document = {
        "inputs": [{"name": "audio", "shape": [1], "datatype": "BYTES", "data": ["x"]}],
        "outputs": [{"name": "scores"}],
    }
    with pytest.raises(InvalidParameter, match="unknown output"):
        decode_rest_body(json.dumps(document).encode(), None, "m", output_names=v2_response.OUTPUT_NAMES)


def test_embeddings_request_binary_and_json_carry_the_same_tensor() -> None:
    windows = np.random.default_rng(1).integers(0, 256, (3, 10, 128), dtype=np.uint8)
    binary = embeddings_request(windows, model_name="m", request_id="r", binary=True)
    message = binary.to_grpc()
    assert message.inputs[0].datatype == "UINT8" and list(message.inputs[0].shape) == [3, 10, 128]
    assert message.raw_input_contents[0] == windows.tobytes()

    as_json, json_length = embeddings_request(windows, model_name="m", request_id="r", binary=False).to_rest()
    assert json_length is None
    assert as_json["inputs"][0]["data"] == windows.reshape(-1).tolist()

    with pytest.raises(ValueError, match="uint8"):
        embeddings_request(windows.astype(np.float32), model_name="m", request_id=None, binary=True)


def test_scores_from_response_checks_the_shape() -> None:
    scores = np.random.default_rng(2).random((2, 527), dtype=np.float32)
    response = InferResponse.from_rest(
        {
            "model_name": "m",
            "outputs": [
                {"name": "scores", "shape": [2, 527], "datatype": "FP32", "data": scores.reshape(-1).tolist()}
            ],
        }
    )
    np.testing.assert_array_equal(scores_from_response(response, 2), scores)
    with pytest.raises(ValueError, match="shape"):
        scores_from_response(response, 3)


def _result() -> AnalysisResult:
    top = [
        [
            {"label_id": "/m/07yv9", "label": "Vehicle", "probability": 0.75},
            {"label_id": "/m/0k4j", "label": "Car", "probability": 0.5},
        ],
        [
            {"label_id": "/m/04rlf", "label": "Music", "probability": 0.25},
            {"label_id": "/m/09x0r", "label": "Speech", "probability": 0.125},
        ],
    ]
    return AnalysisResult(
        windows=[WindowPrediction(0.0, 9.6, top[0]), WindowPrediction(9.6, 12.48, top[1])],
        anomalies=[
            {
                "group": "glass_break",
                "score": 0.9,
                "start_seconds": 0.0,
                "end_seconds": 9.6,
                "classes": ["Glass"],
            }
        ],
        # what the analysis records for a request that named no method under a
        # scramble minimum (the rule is tested in tests/transformer/test_analysis.py)
        privacy_requested="scramble",
        privacy_applied="scramble",
        analyzer_id="host",
        analysis_id="host2026" + "a" * 64,
        duration_seconds=12.5,
        options=AnalysisOptions(requestor_id="r1", request_id="q1"),
        scanned_seconds=(0.0, 12.48),
        weights=WeightsStatus(embedding_official=True, classifier_official=True),
    )


def test_encode_result_json_outputs_and_parameters() -> None:
    request = InferRequest("audioguard", [], request_id="abc")
    document, json_length = encode_result(_result(), request).to_rest()
    assert json_length is None
    outputs = {o["name"]: o for o in document["outputs"]}
    assert outputs["label"]["shape"] == [2, 2]
    assert outputs["label"]["data"] == ["Vehicle", "Car", "Music", "Speech"]
    assert outputs["label_id"]["data"] == ["/m/07yv9", "/m/0k4j", "/m/04rlf", "/m/09x0r"]
    assert outputs["probability"]["data"] == [0.75, 0.5, 0.25, 0.125]
    assert outputs["window_end_seconds"]["data"] == pytest.approx([9.6, 12.48])
    assert json.loads(outputs["anomalies"]["data"][0])[0]["group"] == "glass_break"
    assert document["id"] == "abc"
    assert document["parameters"]["privacy_method"] == "scramble"
    # the request named no method: it asked for the service default (the minimum, applied)
    assert document["parameters"]["privacy_requested"] == "scramble"
    assert document["parameters"]["requestor_id"] == "r1"
    # the whole recording was scanned for anomalies, whatever windows the labels cover
    parameters = document["parameters"]
    scanned = (parameters["anomaly_scan_start_seconds"], parameters["anomaly_scan_end_seconds"])
    assert scanned == ("0.000", "12.480")
    assert "requestor_type" not in document["parameters"]
    assert parameters["weights_official"] is True and "weights_warning" not in parameters


def test_rest_answer_writes_times_to_the_millisecond_and_the_seconds_as_numbers() -> None:
    """What a REST client reads (``contract.v2_json``); gRPC keeps the seconds as text."""
    # times as the windowing computes them: sums of 0.96 s, off in the last bits
    windows = [WindowPrediction(0.96 * 2, 0.96 * 12, _result().windows[0].top)]
    result = dataclasses.replace(
        _result(), windows=windows, duration_seconds=12.5004, scanned_seconds=(0.0, 0.96 * 13)
    )
    request = InferRequest("audioguard", [], request_id="abc")
    body, _ = encode_response(encode_result(result, request))

    assert b'"name":"window_start_seconds","shape":[1],"datatype":"FP32","data":[1.92]' in body
    assert b'"name":"window_end_seconds","shape":[1],"datatype":"FP32","data":[11.52]' in body
    assert b'"data":[0.75,0.5]' in body
    parameters = json.loads(body)["parameters"]
    seconds = [
        parameters[f"{name}_seconds"] for name in ("duration", "anomaly_scan_start", "anomaly_scan_end")
    ]
    assert seconds == [12.5, 0.0, 12.48]
    assert isinstance(parameters["anomaly_count"], int) and isinstance(parameters["weights_official"], bool)

    grpc_parameters = encode_result(result, request).to_grpc().parameters
    assert grpc_parameters["duration_seconds"].string_param == "12.500"
    assert grpc_parameters["anomaly_scan_end_seconds"].string_param == "12.480"


def test_non_official_weights_are_stated_in_the_response_over_rest_and_grpc() -> None:
    synthetic = dataclasses.replace(_result(), weights=WeightsStatus(False, True))
    request = InferRequest("audioguard", [], request_id="abc")
    response = encode_result(synthetic, request)

    document, _ = response.to_rest()
    assert document["parameters"]["weights_official"] is False
    assert document["parameters"]["weights_warning"] == NOT_OFFICIAL_WARNING
    grpc_parameters = response.to_grpc().parameters
    assert grpc_parameters["weights_official"].bool_param is False
    assert weights_official_parameter(grpc_parameters) is False
    assert grpc_parameters["weights_warning"].string_param == NOT_OFFICIAL_WARNING


def test_privacy_requested_is_the_named_method_when_one_was_named() -> None:
    named = dataclasses.replace(
        _result(), options=AnalysisOptions(privacy_method="Nothing"), privacy_requested="none"
    )
    parameters = response_parameters(named)
    assert (parameters["privacy_requested"], parameters["privacy_method"]) == ("none", "scramble")


def test_encode_result_binary_outputs_parse_back_with_tritonclient() -> None:
    request = InferRequest("audioguard", [], parameters={"binary_data_output": True})
    body, json_length = encode_result(_result(), request).to_rest()
    assert isinstance(body, bytes) and json_length is not None

    parsed = triton_http.InferenceServerClient.parse_response_body(body, header_length=json_length)

    np.testing.assert_array_equal(parsed.as_numpy("probability"), np.float32([[0.75, 0.5], [0.25, 0.125]]))
    assert parsed.as_numpy("label")[1, 0] == b"Music"
    anomalies = json.loads(parsed.as_numpy("anomalies")[0])
    assert anomalies[0]["classes"] == ["Glass"]


def test_encode_result_honours_requested_outputs_and_grpc() -> None:
    document = {
        "inputs": [{"name": "audio", "shape": [1], "datatype": "BYTES", "data": ["x"]}],
        "outputs": [{"name": "label", "parameters": {"binary_data": False}}],
    }
    request = decode_rest_body(orjson.dumps(document), None, "m")
    rest, _ = encode_result(_result(), request).to_rest()
    assert [o["name"] for o in rest["outputs"]] == ["label"]

    message = encode_result(_result(), InferRequest("m", [])).to_grpc()
    names = [o.name for o in message.outputs]
    assert names == list(v2_response.OUTPUT_NAMES)
    # a caller without raw inputs gets typed contents
    assert list(message.outputs[names.index("probability")].contents.fp32_contents) == [
        0.75,
        0.5,
        0.25,
        0.125,
    ]
    assert list(message.outputs[names.index("label")].contents.bytes_contents)[:2] == [b"Vehicle", b"Car"]
    assert message.parameters["anomaly_count"].int64_param == 1


def test_encode_result_for_a_grpc_caller_with_raw_inputs(wav_bytes: bytes) -> None:
    """A gRPC caller that sent raw contents gets raw outputs (KServe's rule)."""
    client_side = InferInput("audio", [1], "BYTES")
    client_side.set_data_from_numpy(np.array([wav_bytes], dtype=np.object_), binary_data=True)
    request = InferRequest.from_grpc(InferRequest("m", [client_side]).to_grpc())
    assert request.use_binary_outputs

    message = encode_result(_result(), request).to_grpc()

    names = [o.name for o in message.outputs]
    labels = message.raw_output_contents[names.index("label")]
    first = struct.unpack_from("<I", labels)[0]
    assert labels[4 : 4 + first] == b"Vehicle"
    window_start = message.raw_output_contents[names.index("window_start_seconds")]
    assert struct.unpack("<2f", window_start) == pytest.approx((0.0, 9.6))


def test_filter_keeps_maxs_labels_including_names_with_commas() -> None:
    options = parse_options({"filter": "Speech,Gunshot, gunfire"})
    assert options.label_filter == ["Speech", "Gunshot, gunfire"]


@pytest.mark.parametrize("value", ["Speech,Not a label", 3])
def test_a_bad_filter_is_a_400_naming_the_problem(value: object) -> None:
    with pytest.raises(InvalidParameter, match=r"filter|label"):
        parse_options({"filter": value})
