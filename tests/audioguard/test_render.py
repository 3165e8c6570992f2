"""What a person reads of an event: its classes, or what a class-agnostic detector measured."""

from __future__ import annotations

from audioguard.monitor import describe_change
from audioguard.render import anomaly_line

LOUD = {
    "label": "Sudden loud sound",
    "group": "sudden_loud",
    "peak_score": 17.2,
    "threshold": 10.0,
    "start_seconds": 25.0,
    "end_seconds": 25.4,
    "triggered_by": [],
    "measures": {"rise_db": 17.2, "peak_dbfs": -31.5, "reference_dbfs": -48.7},
}


def test_a_class_agnostic_event_says_what_was_measured_and_a_label_event_its_classes() -> None:
    assert anomaly_line(LOUD) == (
        "Sudden loud sound [sudden_loud] 17.20 (threshold 10.00) 25.00-25.40 s: "
        "rise_db 17.2, peak_dbfs -31.5, reference_dbfs -48.7"
    )
    start = describe_change({**LOUD, "change": "start", "source": "hall", "started_at": None, "reason": ""})
    assert start == (
        "START hall: Sudden loud sound [sudden_loud] at 25.00 s, peak 17.20: "
        "rise_db 17.2, peak_dbfs -31.5, reference_dbfs -48.7"
    )
    classes = [{"label": f"class {n}", "score": 0.9 - n / 10} for n in range(5)]
    glass = {**LOUD, "group": "glass_break", "label": "Glass", "peak_score": 0.9, "threshold": 0.5}
    line = anomaly_line({**glass, "triggered_by": classes, "measures": {}})
    assert line.endswith(": class 0 0.90, class 1 0.80, class 2 0.70 (+2 more)")
