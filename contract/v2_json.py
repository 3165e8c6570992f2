"""How a v2 answer is written over REST: numbers as ``contract.rounding`` promises, typed parameters.

KServe 0.21 writes an FP32 tensor's elements through Python floats, so a
float32 score 0.8402 leaves as ``0.8402000069618225`` and a window end of 9.6 s
as ``9.600000381469727``. ``encode_response`` writes each FP32 element as the
shortest decimal that reads back as the same float32 (``0.8402``, ``9.6``):
the same float32 for every client, a fraction of the text.

Response parameters: the Open Inference Protocol allows string, number and
boolean values, but KServe 0.21's gRPC ``InferParameter`` has no double field
(only bool, int64 and string), so a fractional number can only cross gRPC as
text. A service writes such a parameter as ``NumberParameter``: gRPC carries it
as its text (``"10.501"``), REST as a JSON number (``10.501``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from kserve.protocol.infer_type import InferResponse, to_http_parameters


class NumberParameter(str):
    """A fractional-number response parameter: its decimal text for gRPC, a number for REST."""

    __slots__ = ()

    @classmethod
    def of(cls, value: float, decimals: int) -> NumberParameter:
        """``value`` written with ``decimals`` decimals (``of(10.5012, 3)`` is ``"10.501"``)."""
        return cls(f"{value:.{decimals}f}")


def encode_response(response: InferResponse) -> tuple[bytes, int | None]:
    """The REST body of ``response`` and, when it has binary outputs, the length of its JSON part
    (the ``Inference-Header-Content-Length``); None for a JSON-only body."""
    content, json_length = response.to_rest()
    if json_length is None:
        assert isinstance(content, dict)
        return _dumps(content, response.parameters), None
    assert isinstance(content, bytes)
    header = _dumps(orjson.loads(content[:json_length]), response.parameters)
    return header + content[json_length:], len(header)


def _dumps(document: dict[str, Any], parameters: Mapping[str, Any] | None) -> bytes:
    for output in document.get("outputs") or []:
        if output.get("datatype") == "FP32" and isinstance(output.get("data"), list):
            # orjson writes a float32 as its shortest round-tripping decimal
            output["data"] = np.asarray(output["data"], dtype=np.float32)
    if parameters:
        document["parameters"] = {
            name: float(value) if isinstance(value, NumberParameter) else value
            for name, value in to_http_parameters(parameters).items()
        }
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
