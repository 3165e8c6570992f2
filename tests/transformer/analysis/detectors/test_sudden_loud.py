"""sudden_loud on the file road: the real analysis (``Analyzer``) over the loudness the audio stage
measures of generated beds with bursts at known times and levels (``bench.detector_beds``); the
classifier's scores are zero, so only the detector can raise an event."""

from __future__ import annotations

import numpy as np
import pytest

from bench.detector_beds import Burst, rain, rain_start, room, with_bursts
from tests.support.analysis_rig import AUDIO, Rig
from tests.support.records import assert_event_records
from transformer.analysis.detectors.sudden_loud import GROUP, SuddenLoudOverrides, SuddenLoudSettings
from transformer.analysis.records import SCHEMA_VERSION, recording_event_records
from transformer.analysis.types import AnalysisOptions, AnalysisResult
from transformer.audio.loudness import example_dbfs, example_profile_dbfs

SECONDS = 60.0


DEFAULTS = SuddenLoudSettings()


async def analysed(audio: np.ndarray, settings: SuddenLoudSettings | None = DEFAULTS) -> AnalysisResult:
    """``audio`` through the file road: its examples' real loudness, zero scores."""
    examples = (audio.size - 15_600) // 15_360 + 1
    rig = Rig(
        np.zeros((examples + 1, 527)),
        example_dbfs(audio, examples),
        example_profile_dbfs(audio, examples),
        examples=examples,
    )
    return await rig.analyzer(sudden_loud=settings).analyze(AUDIO, AnalysisOptions(audio_file="hall.wav"))


def loud_events(result: AnalysisResult) -> list[dict[str, object]]:
    assert all(event["group"] == GROUP for event in result.anomalies)  # zero scores: no label group
    return result.anomalies


async def test_a_burst_over_the_background_raises_one_event_with_its_rise_and_peak() -> None:
    rng = np.random.default_rng(1)
    audio = with_bursts(room(SECONDS, rng), [Burst(30.0, 20.0, 0.4)], rng)
    result = await analysed(audio)
    [event] = loud_events(result)
    assert event["start_seconds"] == pytest.approx(30.0, abs=0.12)  # placed to its 0.12-s part
    measures = event["measures"]
    assert isinstance(measures, dict)
    assert measures["rise_db"] >= 15.0 and measures["reference_dbfs"] == pytest.approx(-50.0, abs=2.0)
    assert measures["peak_dbfs"] == pytest.approx(measures["reference_dbfs"] + measures["rise_db"], abs=0.2)
    assert event["peak_score"] == pytest.approx(measures["rise_db"], abs=0.1)
    assert event["threshold"] == SuddenLoudSettings().rise_db and event["triggered_by"] == []
    records = assert_event_records(recording_event_records(result))  # the documented schema
    assert [r["change"] for r in records] == ["start", "end"]
    assert {r["schema_version"] for r in records} == {SCHEMA_VERSION} == {2}
    assert records[0]["description"] == "Audio anomaly started: Sudden loud sound (hall.wav)"


async def test_two_bursts_far_apart_are_two_events_and_off_means_none() -> None:
    rng = np.random.default_rng(2)
    audio = with_bursts(rain(SECONDS, rng), [Burst(20.0, 18.0), Burst(45.0, 18.0)], rng)
    starts = [event["start_seconds"] for event in loud_events(await analysed(audio))]
    assert starts == [pytest.approx(20.0, abs=0.12), pytest.approx(45.0, abs=0.12)]
    assert (await analysed(audio, None)).anomalies == []  # the service's default: off


@pytest.mark.parametrize("ramp_seconds", [10.0, 20.0])
async def test_rain_starting_slowly_raises_nothing_however_loud_it_ends(ramp_seconds: float) -> None:
    rng = np.random.default_rng(3)
    audio = rain_start(
        SECONDS, rng, at=15.0, ramp_seconds=ramp_seconds
    )  # 30 dB up, ends ~20 dB over the room
    assert example_dbfs(audio, 60).max() - example_dbfs(audio, 60)[:10].max() > 15.0
    assert loud_events(await analysed(audio)) == []


async def test_small_rises_and_sounds_under_the_floor_raise_nothing() -> None:
    rng = np.random.default_rng(4)
    small = with_bursts(room(SECONDS, rng), [Burst(30.0, 6.0)], rng)
    assert loud_events(await analysed(small)) == []
    quiet_room = room(SECONDS, rng, dbfs=-85.0)  # a burst 20 dB over it peaks near -65 dBFS
    faint = with_bursts(quiet_room, [Burst(30.0, 20.0)], rng)
    assert loud_events(await analysed(faint)) == []  # under the -45 dBFS floor
    assert len(loud_events(await analysed(faint, SuddenLoudSettings(floor_dbfs=-75.0)))) == 1


def test_settings_are_validated_with_messages_naming_each_key() -> None:
    with pytest.raises(ValueError) as raised:
        SuddenLoudSettings(rise_db=1.0, floor_dbfs=3.0, background_percentile=float("nan"))
    message = str(raised.value)
    assert "rise_db must be between 3 and 60 dB, got 1.0" in message
    assert "floor_dbfs must be between -120 and 0, got 3.0" in message
    assert "background_percentile must be between 0 and 100" in message
    overrides = SuddenLoudOverrides(rise_db=15.0)
    assert overrides.applied_to(SuddenLoudSettings(floor_dbfs=-40.0)) == SuddenLoudSettings(
        15.0, floor_dbfs=-40.0
    )
