"""The SIFIS requests and answers: one schema for the HTTP endpoint and the DHT request topic.

A SIFIS caller names a recording, a privacy method (in the Analytics-API's spelling) and its
ids, by a multipart POST to ``/model/predict/...`` or by a value written to the DHT request
topic. Both become the same ``AnalysisOptions`` here: the same ids validation
(``parse_identifier``), the same label count (the operator's ``top_k``, MAX's 5 by default),
MAX's one labelled window, every window scanned for anomalies. The answer to both is the
recording's analysis value (``AnalysisResult.sifis_value``, made by the analysis): the DHT
result record and, with ``status`` instead of its description, the HTTP 200. Nothing here
builds a record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from transformer.analysis.labels import parse_label_filter
from transformer.analysis.types import AnalysisOptions, AnalysisResult, Origin
from transformer.privacy import method_from_sifis_name
from transformer.protocol.params import parse_identifier, parse_start_time
from transformer.protocol.sifis_form import FormPart, text_field


@dataclass(frozen=True)
class SifisConfig:
    """What the SIFIS paths need of the settings (made by ``transformer.wiring``).

    Attributes:
        top_k: labels in ``predictions``.
        unknown_method: "reject" a method name SIFIS does not know (400) or treat it as "none".
        max_upload_mb: the largest recording accepted.
    """

    top_k: int = 5
    unknown_method: Literal["reject", "none"] = "reject"
    max_upload_mb: float = 100.0

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def _options(
    config: SifisConfig,
    *,
    origin: Origin,
    method: str,
    ids: Mapping[str, object | None],
    start_time: float = 0.0,
    label_filter: list[str] | None = None,
) -> AnalysisOptions:
    def identifier(name: str) -> str | None:
        value = ids.get(name)
        return None if value is None else parse_identifier(name, value)

    return AnalysisOptions(
        privacy_method=method_from_sifis_name(method, config.unknown_method),
        start_time=start_time,
        top_k=config.top_k,
        # predictions are MAX's one window; the analysis scans every window for anomalies
        all_windows=False,
        label_filter=label_filter,
        requestor_id=identifier("requestor_id"),
        requestor_type=identifier("requestor_type"),
        request_id=identifier("request_id"),
        audio_file=identifier("audio_file"),
        sifis_method=method,
        origin=origin,
    )


def options_from_form(
    config: SifisConfig, parts: dict[str, FormPart], path: Mapping[str, str]
) -> AnalysisOptions:
    """Options of a POST to the SIFIS endpoint: the path's five segments (``method``, the ids)
    and the form's ``start_time`` and ``filter`` (typed 400s)."""
    start_time = text_field(parts, "start_time")
    return _options(
        config,
        origin="sifis",
        method=path["method"],
        ids=path,
        start_time=0.0 if start_time is None else parse_start_time(start_time),
        label_filter=parse_label_filter(text_field(parts, "filter")),
    )


def options_from_dht_request(config: SifisConfig, request: Mapping[str, Any]) -> AnalysisOptions:
    """Options of a request value read from the DHT request topic (``method`` absent: none).

    Raises:
        InvalidParameter: a bad id, or an unknown ``method`` with ``unknown_method`` "reject".
    """
    method = request.get("method")
    return _options(
        config,
        origin="dht_request",
        method="none" if method is None else str(method),
        ids={
            name: request.get(name) for name in ("requestor_id", "requestor_type", "request_id", "audio_file")
        },
    )


def http_answer(result: AnalysisResult) -> dict[str, Any]:
    """The SIFIS endpoint's 200 body: ``status`` and the analysis value without its description."""
    value = {name: item for name, item in result.sifis_value.items() if name != "description"}
    return {"status": "ok", **value}
