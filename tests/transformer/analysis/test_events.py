"""The anomaly event lifecycle on hand-built per-hop verdicts (no audio, no model)."""

from __future__ import annotations

import dataclasses

import pytest

from transformer.analysis.anomalies import Anomaly, TriggeringClass
from transformer.analysis.events import EventChange, EventTracker, LifecycleSettings

HOP = 0.96
WINDOW = 9.6


def fired(group: str, hop: int, score: float = 0.8, threshold: float = 0.5) -> Anomaly:
    """The anomaly of ``group`` in the window of hop ``hop`` (window k covers [0.96 k, 0.96 k + 9.6])."""
    start = hop * HOP
    return Anomaly(
        group=group,
        label=group.replace("_", " ").capitalize(),
        score=score,
        threshold=threshold,
        start_seconds=start,
        end_seconds=start + WINDOW,
        window_index=hop,
        triggered_by=(TriggeringClass(443, f"class of {score}", score),),
    )


def run(tracker: EventTracker, hits: dict[int, list[Anomaly]], hops: int) -> list[tuple[int, EventChange]]:
    """Feed hops 0..hops-1 (misses where ``hits`` has nothing); (hop, change) in order."""
    changes = []
    for hop in range(hops):
        for change in tracker.update(hop * HOP + WINDOW, hits.get(hop, [])):
            changes.append((hop, change))
    return changes


def test_a_single_hop_start_fires_on_the_first_hit() -> None:
    tracker = EventTracker("kitchen", LifecycleSettings(min_hits=1, within_hops=1))
    ((hop, start),) = run(tracker, {3: [fired("glass_break", 3, 0.9)]}, 4)
    assert hop == 3 and start.change == "start"
    assert (start.source, start.group, start.start_seconds, start.end_seconds) == (
        "kitchen",
        "glass_break",
        pytest.approx(3 * HOP),
        None,
    )
    assert start.peak_score == 0.9


def test_an_isolated_hit_is_no_event_by_default_two_in_three_hops_are() -> None:
    lone = EventTracker("hall")
    assert run(lone, {2: [fired("scream", 2)]}, 8) == []

    tracker = EventTracker("hall")  # default: 2 hits within 3 hops
    changes = run(tracker, {2: [fired("scream", 2, 0.6)], 4: [fired("scream", 4, 0.7)]}, 5)
    ((hop, start),) = changes
    # it starts on the second hit, dated from the first one, with the better score
    assert hop == 4 and start.change == "start"
    assert start.start_seconds == pytest.approx(2 * HOP) and start.peak_score == 0.7
    # two hits four hops apart are too far apart
    spread = EventTracker("hall")
    assert run(spread, {1: [fired("scream", 1)], 4: [fired("scream", 4)]}, 6) == []


def test_one_continuous_sound_is_one_event_with_its_peak_and_an_end_after_silence() -> None:
    settings = LifecycleSettings(min_hits=2, within_hops=3, max_not_heard_seconds=3.0)
    tracker = EventTracker("living-room", settings)
    scores = [0.6, 0.7, 0.95, 0.8, 0.7, 0.65, 0.9, 0.6, 0.55, 0.6]
    hits = {hop: [fired("smoke_fire_alarm", hop, score)] for hop, score in enumerate(scores)}
    changes = run(tracker, hits, 20)

    assert [(hop, change.change) for hop, change in changes] == [(1, "start"), (13, "end")]
    start, end = changes[0][1], changes[1][1]
    assert start.event_id == end.event_id and start.start_seconds == 0.0
    # the end is the end of the last window that fired; it comes once 3 s passed without a hit
    assert end.end_seconds == pytest.approx(9 * HOP + WINDOW)
    assert 13 * HOP + WINDOW - end.end_seconds >= 3.0 > 12 * HOP + WINDOW - end.end_seconds
    assert end.peak_score == 0.95 and end.triggered_by[0].label == "class of 0.95"
    assert end.reason == "not heard" and tracker.open_groups == []


def test_a_short_gap_continues_the_event_a_long_one_starts_a_new_one() -> None:
    settings = LifecycleSettings(min_hits=2, within_hops=2, max_not_heard_seconds=2.5)
    tracker = EventTracker("garage", settings)
    hits = {hop: [fired("car_alarm", hop)] for hop in (0, 1, 2, 4, 5, 12, 13)}  # gaps of 1 and 6 hops
    changes = run(tracker, hits, 20)
    assert [(hop, change.change) for hop, change in changes] == [
        (1, "start"),
        (8, "end"),
        (13, "start"),
        (16, "end"),  # 0.96 * 16 + 9.6 - (0.96 * 13 + 9.6) = 2.88 s >= 2.5 s without a hit
    ]
    first, second = changes[0][1], changes[2][1]
    assert first.event_id != second.event_id
    assert changes[1][1].end_seconds == pytest.approx(5 * HOP + WINDOW)
    assert second.start_seconds == pytest.approx(12 * HOP)


def test_groups_and_sources_are_independent_and_ids_repeat_on_a_replay() -> None:
    settings = LifecycleSettings(min_hits=1, within_hops=1, max_not_heard_seconds=1.0)
    hits = {0: [fired("glass_break", 0), fired("scream", 0)], 1: [fired("scream", 1)]}
    changes = run(EventTracker("a", settings), hits, 4)
    assert [(hop, c.group, c.change) for hop, c in changes] == [
        (0, "glass_break", "start"),
        (0, "scream", "start"),
        (2, "glass_break", "end"),  # 1.92 s after its last window; 0.96 s is not yet 1 s
        (3, "scream", "end"),
    ]
    again = run(EventTracker("a", settings), hits, 4)
    other = run(EventTracker("b", settings), hits, 4)
    assert [c.event_id for _, c in again] == [c.event_id for _, c in changes]
    assert not {c.event_id for _, c in other} & {c.event_id for _, c in changes}


def test_closing_a_source_ends_what_is_open_once() -> None:
    tracker = EventTracker("porch", LifecycleSettings(min_hits=1, within_hops=1))
    run(tracker, {0: [fired("dog_alert", 0, 0.7)], 1: [fired("dog_alert", 1, 0.9)]}, 2)
    (end,) = tracker.close()
    assert (end.change, end.reason, end.peak_score) == ("end", "source stopped", 0.9)
    assert end.end_seconds == pytest.approx(HOP + WINDOW)
    assert tracker.close() == []


def test_a_record_is_json_ready_with_rounded_numbers() -> None:
    tracker = EventTracker("kitchen", LifecycleSettings(min_hits=1, within_hops=1))
    (start,) = tracker.update(3 * HOP + WINDOW, [fired("glass_break", 3, 0.9200000166893005)])
    record = start.to_dict()
    assert record == {
        "change": "start",
        "event_id": start.event_id,
        "source": "kitchen",
        "group": "glass_break",
        "label": "Glass break",
        "threshold": 0.5,
        "start_seconds": 2.88,
        "end_seconds": None,
        "window_start_seconds": 2.88,
        "window_end_seconds": None,
        "started_at": None,
        "ended_at": None,
        "peak_score": 0.92,
        "triggered_by": [{"index": 443, "label": "class of 0.9200000166893005", "score": 0.92}],
        "measures": {},
        "reason": "",
    }


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"min_hits": 0}, "min_hits"),
        ({"min_hits": 3, "within_hops": 2}, "within_hops"),
        ({"max_not_heard_seconds": 0}, "max_not_heard_seconds"),
    ],
)
def test_impossible_settings_are_refused(values: dict[str, float], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        LifecycleSettings(**values)  # type: ignore[arg-type]


def placed(group: str, hop: int, onset: float, offset: float) -> Anomaly:
    """``fired`` with the sound placed inside the window (its loud part)."""
    return dataclasses.replace(fired(group, hop), onset_seconds=onset, offset_seconds=offset, located=True)


def test_an_event_is_dated_by_where_its_windows_placed_the_sound_and_keeps_their_span() -> None:
    tracker = EventTracker("hall")
    hits = {4: [placed("glass_break", 4, 12.1, 13.0)], 5: [placed("glass_break", 5, 12.2, 13.3)]}
    changes = run(tracker, hits, 20)
    (_, start), (_, end) = changes
    assert (start.start_seconds, start.window_start_seconds) == (12.1, pytest.approx(4 * HOP))
    assert (end.start_seconds, end.end_seconds) == (12.1, 13.3)
    assert end.window_end_seconds == pytest.approx(5 * HOP + WINDOW) and end.reason == "not heard"


def test_a_window_in_which_nothing_stands_out_counts_whole_as_inside_a_long_alarm() -> None:
    tracker = EventTracker("hall")
    hits = {4: [placed("smoke_fire_alarm", 4, 12.1, 13.84)], 5: [placed("smoke_fire_alarm", 5, 12.1, 14.4)]}
    # the alarm goes on: the windows that lie inside it are loud throughout and place nothing
    # windows that hold its start place it from 12.1 s to their end
    hits |= {hop: [placed("smoke_fire_alarm", hop, 12.1, hop * HOP + WINDOW)] for hop in range(6, 13)}
    hits |= {hop: [fired("smoke_fire_alarm", hop)] for hop in range(13, 41)}
    ((_, start),) = run(tracker, hits, 41)
    (end,) = tracker.close("source finished", source_ended=True)  # still sounding at the end
    assert (start.start_seconds, end.start_seconds) == (12.1, 12.1)
    # to the end of the last window: not 21.12 s, the last end a window placed
    assert end.end_seconds == pytest.approx(40 * HOP + WINDOW) == end.window_end_seconds


def test_a_source_that_ends_before_it_could_give_min_hits_windows_needs_a_hit_in_each() -> None:
    one = EventTracker("short")
    assert run(one, {0: [fired("siren", 0)]}, 1) == []  # one hop: 1 hit of the 2 needed so far
    ((start, end),) = [one.close("source finished", source_ended=True)]
    assert (start.change, end.change, end.reason) == ("start", "end", "source finished")
    assert (start.start_seconds, end.end_seconds) == (0.0, pytest.approx(WINDOW))

    two = EventTracker("short")
    run(two, {1: [fired("siren", 1)]}, 2)  # 1 hit in 2 hops: 2 were possible
    assert two.close("source finished", source_ended=True) == []

    long = EventTracker("long")
    run(long, {9: [fired("siren", 9)]}, 10)  # a lone hit at the end of a long stream
    assert long.close("source finished", source_ended=True) == []

    # a stream that reconnects is not over: its short segment's lone hit is no event
    flaky = EventTracker("flaky")
    run(flaky, {0: [fired("siren", 0)]}, 1)
    assert flaky.close("stream interrupted") == []
