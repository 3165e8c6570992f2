"""A v2 REST answer's numbers: FP32 elements as their shortest float32 decimal, typed parameters."""

from __future__ import annotations

import json
from decimal import Decimal

import numpy as np
from kserve.protocol.infer_type import InferOutput, InferResponse

from contract.v2_json import NumberParameter, encode_response


def shortest_float32(text: str) -> Decimal:
    """The fewest-digit decimal that reads back as the float32 nearest to ``text`` (numpy's Dragon4)."""
    return Decimal(np.format_float_positional(np.float32(float(text)), unique=True, trim="-"))


def raw_numbers(body: bytes) -> dict[str, list[str]]:
    """Each output's data elements exactly as the JSON text writes them."""
    document = json.loads(body, parse_float=str, parse_int=str)
    return {o["name"]: o["data"] for o in document["outputs"] if "data" in o}


def response(
    values: np.ndarray, parameters: dict[str, str | int | bool] | None = None, binary: bool = False
) -> InferResponse:
    output = InferOutput("scores", list(values.shape), "FP32", data=values.reshape(-1).tolist())
    return InferResponse("id", "m", [output], parameters=parameters, use_binary_outputs=binary)


def test_fp32_elements_are_their_shortest_float32_decimal() -> None:
    values = np.random.default_rng(5).random(2000, dtype=np.float32)
    values[:4] = [0.8402, 1.92, 9.6, 0.0]
    body, json_length = encode_response(response(values))
    assert json_length is None
    texts = raw_numbers(body)["scores"]
    assert texts[:4] == ["0.8402", "1.92", "9.6", "0.0"]  # not 0.8402000069618225, 1.9199999570846558
    for text, value in zip(texts, values, strict=True):
        assert np.float32(float(text)) == value  # the same float32 ...
        assert Decimal(text) == shortest_float32(text)  # ... in its fewest digits
        assert Decimal(text).as_tuple().digits == shortest_float32(text).as_tuple().digits


def test_parameters_are_typed_over_rest_and_text_over_grpc() -> None:
    parameters: dict[str, str | int | bool] = {
        "duration_seconds": NumberParameter.of(10.50049, 3),
        "anomaly_count": 2,
        "weights_official": False,
        "analyzer_id": "edge-1",
        "request_id": "42",  # a string that looks like a number stays a string
    }
    answer = response(np.array([0.5], dtype=np.float32), parameters=parameters)
    body, _ = encode_response(answer)
    assert json.loads(body)["parameters"] == {
        "duration_seconds": 10.5,
        "anomaly_count": 2,
        "weights_official": False,
        "analyzer_id": "edge-1",
        "request_id": "42",
    }
    assert b'"duration_seconds":10.5,' in body
    # KServe 0.21's gRPC parameters have no double: the same value crosses as its text
    grpc_parameters = answer.to_grpc().parameters
    assert grpc_parameters["duration_seconds"].string_param == "10.500"
    assert grpc_parameters["anomaly_count"].int64_param == 2


def test_binary_outputs_keep_their_bytes_and_the_json_part_its_length() -> None:
    values = np.array([0.8402, 1.92], dtype=np.float32)
    answer = response(values, parameters={"duration_seconds": NumberParameter.of(3, 3)}, binary=True)
    body, json_length = encode_response(answer)
    assert json_length is not None
    header = json.loads(body[:json_length])
    assert header["parameters"] == {"duration_seconds": 3.0}
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 8}
    assert np.frombuffer(body[json_length:], dtype="<f4").tolist() == values.tolist()
