"""The SIFIS endpoint and the DHT request topic make the same options from the same request."""

from __future__ import annotations

import pytest

from contract.errors import InvalidParameter
from tests.support.analysis_rig import analysed
from transformer.analysis.types import AnalysisOptions
from transformer.protocol.sifis_form import FormPart
from transformer.protocol.sifis_schema import (
    SifisConfig,
    http_answer,
    options_from_dht_request,
    options_from_form,
)

REQUEST = {
    "audio_file": "kitchen.wav",
    "method": "scrample",
    "requestor_id": "nssd-7",
    "requestor_type": "NSSD",
    "request_id": "req-42",
}


def test_both_paths_agree_on_labels_ids_privacy_and_windows() -> None:
    config = SifisConfig(top_k=3)
    over_http = options_from_form(config, {}, REQUEST)
    over_dht = options_from_dht_request(config, {**REQUEST, "description": "x", "Type": "Audio_file"})
    # the operator's top_k reaches both (it was 5 over HTTP and top_k over the DHT)
    assert over_http.top_k == over_dht.top_k == 3
    assert (over_http.origin, over_dht.origin) == ("sifis", "dht_request")
    same = [
        "privacy_method",
        "sifis_method",
        "requestor_id",
        "requestor_type",
        "request_id",
        "audio_file",
        "all_windows",
        "start_time",
    ]
    assert [getattr(over_http, name) for name in same] == [getattr(over_dht, name) for name in same]
    assert over_dht.privacy_method == "scramble" and over_dht.all_windows is False


@pytest.mark.parametrize(
    "bad", [{"requestor_id": "bad\x00id"}, {"request_id": "x" * 1000}, {"request_id": ["a"]}]
)
def test_both_paths_refuse_the_same_bad_ids(bad: dict[str, object]) -> None:
    name = next(iter(bad))
    with pytest.raises(InvalidParameter, match=name):
        options_from_dht_request(SifisConfig(), {**REQUEST, **bad})
    if isinstance(bad[name], str):
        with pytest.raises(InvalidParameter, match=name):
            options_from_form(SifisConfig(), {}, {**REQUEST, **bad})  # type: ignore[dict-item]


def test_an_unknown_method_is_refused_or_none_as_the_operator_says() -> None:
    with pytest.raises(InvalidParameter, match="privacy method"):
        options_from_dht_request(SifisConfig(), {**REQUEST, "method": "blur"})
    assert (
        options_from_dht_request(
            SifisConfig(unknown_method="none"), {**REQUEST, "method": "blur"}
        ).privacy_method
        == "none"
    )
    assert options_from_dht_request(SifisConfig(), {"audio_file": "a.wav"}).privacy_method == "none"


def test_the_http_answer_is_the_dht_result_value_with_a_status() -> None:
    result = analysed({"siren": [0, 1]}, AnalysisOptions(request_id="q", origin="sifis"))
    answer = http_answer(result)
    assert answer["status"] == "ok" and "description" not in answer
    assert {k: v for k, v in answer.items() if k != "status"} == {
        k: v for k, v in result.sifis_value.items() if k != "description"
    }
    assert [e["group"] for e in answer["anomalies"]] == ["siren"]


def test_form_fields_reach_the_options() -> None:
    parts = {"start_time": FormPart("start_time", None, "", b"1.92")}
    assert options_from_form(SifisConfig(), parts, REQUEST).start_time == 1.92
