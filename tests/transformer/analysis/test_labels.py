"""The shipped label table and top-k selection."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from contract.errors import InvalidParameter
from tests.support.serverutil import PROJECT_ROOT
from transformer.analysis.labels import load_labels, parse_label_filter

CSV = PROJECT_ROOT / "transformer" / "data" / "class_labels_indices.csv"


def test_table_has_the_527_rows_in_output_order() -> None:
    labels = load_labels()
    with CSV.open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[1:]
    assert len(labels) == len(rows) == 527
    assert (labels[0].mid, labels[0].display_name) == ("/m/09x0r", "Speech")
    assert labels[427].display_name == "Gunshot, gunfire" and labels[427].mid == "/m/032s66"
    assert labels[137].display_name == rows[137][2]


def test_top_k_orders_by_score_and_reports_mid_and_name() -> None:
    labels = load_labels()
    scores = np.zeros(527, dtype=np.float32)
    scores[[111, 427, 5, 300]] = [0.3, 0.9, 0.6, 0.6]
    top = labels.top_k(scores, 4)
    assert [item["label_id"] for item in top] == [
        labels[427].mid,
        labels[5].mid,
        labels[300].mid,
        labels[111].mid,
    ]
    assert top[0] == {"label_id": "/m/032s66", "label": "Gunshot, gunfire", "probability": pytest.approx(0.9)}
    assert [item["probability"] for item in top] == sorted(
        (item["probability"] for item in top), reverse=True
    )


def test_filter_keeps_only_named_labels_among_top_k() -> None:
    labels = load_labels()
    scores = np.linspace(0, 1, 527)  # the last indices score highest
    kept = labels.top_k(scores, 5, only=[labels[526].display_name, labels[0].display_name])
    # index 0 is not among the top 5, so only one label survives (MAX semantics)
    assert [item["label"] for item in kept] == [labels[526].display_name]


def test_filter_parsing_handles_names_with_commas() -> None:
    assert parse_label_filter("Gunshot, gunfire,Cap gun") == ["Gunshot, gunfire", "Cap gun"]
    assert parse_label_filter("Clang,Ding") == ["Clang", "Ding"]
    assert parse_label_filter("  ") is None
    with pytest.raises(InvalidParameter, match="Not a label"):
        parse_label_filter("Clang,Not a label")


def test_top_k_range_is_validated() -> None:
    with pytest.raises(InvalidParameter, match="top_k"):
        load_labels().top_k(np.zeros(527), 0)
