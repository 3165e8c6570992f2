"""The evaluation set: foregrounds placed at known times into backgrounds, at chosen
event-to-background ratios, in the manner of DCASE 2017 task 2's mixtures.

The event-to-background ratio (EBR) compares the foreground's RMS over its sounding parts
(20-ms frames within 30 dB of its loudest) with the background's RMS over the event's span.
Events of one mixture never overlap and are at least ``gap_seconds`` apart (the service's
lifecycle needs a silence to end an event). Everything follows from the seed: the same recipe
writes the same files. Real recordings (``audioguard/evaluation/data``, licences in its
SOURCES.md) join as backgrounds and as negative-only audio.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import soundfile as sf

from audioguard.evaluation.annotations import Event, write_annotations
from audioguard.evaluation.sounds import BACKGROUNDS, FOREGROUNDS, RATE

ANNOTATIONS: Final = "annotations.tsv"
GROUP_MAP: Final = "groups_map.json"
#: foreground label -> anomaly group (None: a distractor, it must not fire)
LABEL_GROUPS: Final[dict[str, str | None]] = {
    "smoke_alarm_t3": "smoke_fire_alarm",
    "co_alarm_t4": "smoke_fire_alarm",
    "siren": "siren",
    "door_knock": None,
}
RECORDINGS: Final = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Recipe:
    """What the generated set holds: one mixture per label, background and ratio, plus
    negative-only backgrounds."""

    seconds: float = 40.0
    events: int = 2
    ratios_db: tuple[float, ...] = (-6.0, 0.0, 6.0)
    labels: tuple[str, ...] = tuple(FOREGROUNDS)
    backgrounds: tuple[str, ...] = (*BACKGROUNDS, "real_rain")
    negative_seconds: float = 120.0
    real_recordings: bool = True
    gap_seconds: float = 8.0
    seed: int = 0


def active_rms(signal: np.ndarray) -> float:
    """RMS over the 20-ms frames within 30 dB of the loudest one."""
    frame = RATE // 50
    usable = signal[: signal.shape[0] // frame * frame].reshape(-1, frame)
    power = np.mean(usable**2, axis=1)
    return float(np.sqrt(np.mean(power[power >= power.max() * 1e-3])))


def place(
    background: np.ndarray,
    foregrounds: list[np.ndarray],
    ratio_db: float,
    gap: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The mixture and each foreground's (onset, offset) in seconds, in order."""
    total = sum(f.shape[0] for f in foregrounds) + int(gap * RATE) * (len(foregrounds) + 1)
    spare = background.shape[0] - total
    if spare < 0:
        raise ValueError("the background is too short for these events and gaps")
    # the spare time split at random between the gaps
    cuts = np.sort(rng.integers(0, spare + 1, len(foregrounds)))
    mixture = background.copy()
    spans, position = [], int(gap * RATE)
    for index, foreground in enumerate(foregrounds):
        start = position + int(cuts[index])
        end = start + foreground.shape[0]
        gain = 10 ** (ratio_db / 20) * np.sqrt(np.mean(background[start:end] ** 2)) / active_rms(foreground)
        mixture[start:end] += gain * foreground
        spans.append((start / RATE, end / RATE))
        position += foreground.shape[0] + int(gap * RATE)
    peak = np.max(np.abs(mixture))
    if peak > 0.99:  # one gain for the whole mixture: ratios unchanged
        mixture *= 0.99 / peak
    return mixture, spans


def ratio_tag(ratio_db: float) -> str:
    return f"{ratio_db:+.0f}dB"


def recording(name: str) -> np.ndarray:
    """One of the shipped real recordings (16 kHz mono)."""
    audio, rate = sf.read(RECORDINGS / f"{name}.flac", dtype="float64")
    assert rate == RATE, f"{name} must be {RATE} Hz"
    return np.asarray(audio)


def background(name: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A synthesised background, or ``real_NAME``: a shipped recording looped to ``seconds``."""
    if name.startswith("real_"):
        audio = recording(name.removeprefix("real_"))
        return np.tile(audio, int(np.ceil(seconds * RATE / audio.shape[0])))[: round(seconds * RATE)]
    return BACKGROUNDS[name](seconds, rng)


def generate_set(dest: Path, recipe: Recipe | None = None) -> Path:
    """Write the set's WAV files (16 kHz mono PCM16), ``annotations.tsv`` and ``groups_map.json``
    into ``dest``; return the annotation file's path."""
    recipe = recipe or Recipe()
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(recipe.seed)
    events: list[Event] = []
    for label in recipe.labels:
        for name in recipe.backgrounds:
            bed = background(name, recipe.seconds, rng)
            for ratio in recipe.ratios_db:
                filename = f"mix_{label}_{name}_{ratio_tag(ratio)}.wav"
                sounds = [FOREGROUNDS[label](rng) for _ in range(recipe.events)]
                mixture, spans = place(bed, sounds, ratio, recipe.gap_seconds, rng)
                sf.write(dest / filename, mixture, RATE, subtype="PCM_16")
                events += [Event(filename, onset, offset, label) for onset, offset in spans]
    if recipe.negative_seconds > 0:
        for name in [n for n in recipe.backgrounds if not n.startswith("real_")]:
            bed = background(name, recipe.negative_seconds, rng)
            sf.write(dest / f"negative_{name}.wav", bed, RATE, subtype="PCM_16")
    if recipe.real_recordings:  # as recorded, not looped
        for path in sorted(RECORDINGS.glob("*.flac")):
            sf.write(dest / f"negative_real_{path.stem}.wav", recording(path.stem), RATE, subtype="PCM_16")
    write_annotations(dest / ANNOTATIONS, events)
    (dest / GROUP_MAP).write_text(json.dumps({k: LABEL_GROUPS[k] for k in recipe.labels}, indent=2) + "\n")
    return dest / ANNOTATIONS
