"""The evaluation set's generator: events are where the annotation says, at the ratio asked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioguard.evaluation.annotations import Event, read_annotations, write_annotations
from audioguard.evaluation.mixtures import GROUP_MAP, Recipe, active_rms, generate_set, place
from audioguard.evaluation.sounds import ALARM_HZ, FOREGROUNDS, RATE, room_tone
from contract.errors import InvalidConfiguration


def alarm_band_times(path: Path) -> np.ndarray:
    """Centres of the 64-ms frames (2-ms hop) where the alarm tone's band stands 8x above its
    median: where the file beeps, found from the signal alone."""
    audio, rate = sf.read(path)
    frames = np.lib.stride_tricks.sliding_window_view(audio, 1024)[::32] * np.hanning(1024)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(1024, 1 / rate)
    band = power[:, (freqs >= ALARM_HZ * 0.965) & (freqs <= ALARM_HZ * 1.035)].max(axis=1)
    centres = (np.arange(band.shape[0]) * 32 + 512) / rate
    return np.asarray(centres[band > 8 * np.median(band)])


def test_the_alarm_beeps_of_the_written_files_start_and_end_where_the_annotation_says(tmp_path: Path) -> None:
    recipe = Recipe(labels=("smoke_alarm_t3", "co_alarm_t4"), negative_seconds=0.0, seed=3)
    annotations = generate_set(tmp_path, recipe)
    events = read_annotations(annotations)
    files = sorted({event.filename for event in events})
    assert len(files) == 2 * 3 * 3  # labels x backgrounds (room tone, rain, real rain) x ratios
    assert {f.split("_")[-1] for f in files} == {"-6dB.wav", "+0dB.wav", "+6dB.wav"}
    for name in files:
        beeping = alarm_band_times(tmp_path / name)
        spans = [(e.onset, e.offset) for e in events if e.filename == name]
        assert len(spans) == recipe.events
        for onset, offset in spans:
            inside = beeping[(beeping >= onset - 1) & (beeping <= offset + 1)]
            assert abs(inside[0] - onset) < 0.025, (name, onset, inside[0])
            assert abs(inside[-1] - offset) < 0.025, (name, offset, inside[-1])
        outside = [t for t in beeping if not any(on - 0.05 <= t <= off + 0.05 for on, off in spans)]
        assert outside == [], f"{name}: the tone sounds outside its annotated events at {outside[:3]}"
    assert json.loads((tmp_path / GROUP_MAP).read_text()) == {
        "smoke_alarm_t3": "smoke_fire_alarm",
        "co_alarm_t4": "smoke_fire_alarm",
    }


@pytest.mark.parametrize("label", list(FOREGROUNDS))
@pytest.mark.parametrize("ratio", [-6.0, 0.0, 6.0])
def test_place_adds_each_foreground_over_exactly_its_span_at_the_ratio(label: str, ratio: float) -> None:
    rng = np.random.default_rng(7)
    background = room_tone(40.0, rng)
    sounds = [FOREGROUNDS[label](rng) for _ in range(2)]
    mixture, spans = place(background, sounds, ratio, 8.0, rng)
    added = mixture - background  # quiet room tone: no normalisation happened
    sounding = np.flatnonzero(np.abs(added) > 1e-9)
    for (onset, offset), sound in zip(spans, sounds, strict=True):
        start, end = round(onset * RATE), round(offset * RATE)
        assert end - start == sound.shape[0]
        here = sounding[(sounding >= start - RATE) & (sounding < end + RATE)]
        assert here[0] == start and here[-1] == end - 1  # the sound's first and last samples
        measured = active_rms(added[start:end]) / np.sqrt(np.mean(background[start:end] ** 2))
        assert 20 * np.log10(measured) == pytest.approx(ratio, abs=0.01)
    assert spans[1][0] - spans[0][1] >= 8.0


def test_the_annotation_file_reads_back_and_a_bad_line_is_named(tmp_path: Path) -> None:
    events = [Event("a.wav", 1.5, 3.25, "siren"), Event("b.wav", 0.0, 0.5, "door_knock")]
    write_annotations(tmp_path / "a.tsv", events)
    assert read_annotations(tmp_path / "a.tsv") == events
    (tmp_path / "bad.tsv").write_text(
        "filename\tonset\toffset\tevent_label\na.wav\t4\t2\tsiren\nb.wav\tx\t1\ts\n"
    )
    with pytest.raises(InvalidConfiguration, match=r"line 2: onset 4.0 must be .* before offset 2.0; line 3"):
        read_annotations(tmp_path / "bad.tsv")
    (tmp_path / "noheader.tsv").write_text("a.wav\t1\t2\tsiren\n")
    with pytest.raises(InvalidConfiguration, match="first line must be the header"):
        read_annotations(tmp_path / "noheader.tsv")
