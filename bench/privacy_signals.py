"""The signals of the privacy report: recorded and synthesised speech, events, their mixtures."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.support import speech_synth as synth
from transformer.audio.decode import load_waveform

SR = 16_000
DEFAULT_AUDIO_DIR = Path(__file__).resolve().parents[2] / "shared" / "audio"
SPEECH_FILES = ("PhilippeRemy_001.wav",)
EVENT_FILES = ("birds1.wav", "gunshots.wav", "thunder.wav", "rain.wav", "snoring.wav")
TTS_SENTENCES = (
    (
        "en-us",
        "Please call me back when you get home tonight. The door code is seven four one nine, "
        "and the spare keys are under the mat.",
    ),
    (
        "en-gb+f3",
        "I told you already, we cannot leave the children alone in the house while the "
        "workers are here. Where did you put the car keys?",
    ),
)
MIX_SNR_DB = (10.0, 0.0)
#: Speech groups the recogniser is run on: clean speech only (mixtures would measure the event).
ASR_GROUPS = ("recorded", "tts")
REALIGN_CHUNK = SR // 4


# --- signals -----------------------------------------------------------------------


def read_clip(path: Path) -> np.ndarray:
    """A recording as the transformer sees it: decoded in memory, mono, 16 kHz float64."""
    return load_waveform(path.read_bytes(), max_seconds=600.0)


def espeak(voice: str, text: str) -> np.ndarray | None:
    """espeak-ng speech (WAV on stdout, decoded in memory) at 16 kHz, None if unavailable."""
    if shutil.which("espeak-ng") is None:
        return None
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "150", "--stdout", text], capture_output=True, check=True
    ).stdout
    return load_waveform(wav, max_seconds=600.0)


def fitted(samples: np.ndarray, length: int) -> np.ndarray:
    """``samples`` looped or cut to ``length``."""
    return np.resize(samples, length)


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples**2)))


def synthetic_events(seconds: float = 8.0) -> dict[str, np.ndarray]:
    return {
        "alarm (synth)": synth.beeping_alarm(seconds),
        "siren (synth)": synth.siren(seconds),
        "glass (synth)": synth.glass_bursts(seconds),
        "scream (synth)": synth.scream(seconds),
        "tone 1 kHz (synth)": synth.tone(seconds),
    }


@dataclass(frozen=True)
class SpeechCase:
    """Speech to protect: ``reference`` is the clean speech, ``signal`` what is anonymised.

    ``event`` is the event sound mixed into ``signal`` (as mixed), None for clean speech.
    """

    group: str
    name: str
    reference: np.ndarray
    signal: np.ndarray
    event: np.ndarray | None = None


def speech_cases(
    audio_dir: Path | None, extra: Sequence[Path], use_tts: bool, events: dict[str, np.ndarray]
) -> list[SpeechCase]:
    cases = []
    recorded = [audio_dir / name for name in SPEECH_FILES] if audio_dir else []
    for path in [*recorded, *extra]:
        clip = read_clip(path)
        cases.append(SpeechCase("recorded", path.name, clip, clip))
    if use_tts:
        for index, (voice, text) in enumerate(TTS_SENTENCES):
            speech = espeak(voice, text)
            if speech is None:
                print("> espeak-ng is not installed (apt-get install espeak-ng): no TTS speech.\n")
                break
            cases.append(SpeechCase("tts", f"tts{index + 1}", speech, speech))
            # Mix the first sentence with every event, the second with a few.
            mixed_events = events if index == 0 else dict(list(events.items())[:2])
            for event_name, event in mixed_events.items():
                looped = fitted(event, speech.size)
                for snr in MIX_SNR_DB:
                    gain = rms(speech) / max(rms(looped), 1e-12) * 10 ** (-snr / 20)
                    name = f"tts{index + 1}+{event_name}@{snr:g}dB"
                    mixed = gain * looped
                    cases.append(SpeechCase("tts+event", name, speech, speech + mixed, mixed))
    cases.append(
        SpeechCase("synthetic", "speech_like", synth.speech_like(8.0, seed=1), synth.speech_like(8.0, seed=1))
    )
    return cases


def event_clips(audio_dir: Path | None, extra: Sequence[Path]) -> dict[str, np.ndarray]:
    recorded = [audio_dir / name for name in EVENT_FILES if (audio_dir / name).exists()] if audio_dir else []
    clips = {path.name: read_clip(path) for path in [*recorded, *extra]}
    clips.update(synthetic_events())
    return clips
