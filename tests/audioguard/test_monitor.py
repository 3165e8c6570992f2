"""``audioguard monitor`` as a user runs it: a real process, real ffmpeg captures, printed events."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from tests.support.cli import run_audioguard
from tests.support.records import assert_event_records
from tests.support.serverutil import PROJECT_ROOT

WEIGHTS_WARNING = "WARNING: these answers do not come from the official model weights"
CLOCK = re.compile(r" at \d\d:\d\d:\d\d")


def run_monitor(
    *args: str, timeout: float = 300, cwd: Path = PROJECT_ROOT
) -> subprocess.CompletedProcess[str]:
    return run_audioguard("monitor", *args, cwd=cwd, timeout=timeout)


def said(stderr: str) -> list[str]:
    """The monitor's lines about its sources, their local times checked and replaced by ``at T``."""
    lines = [line for line in stderr.splitlines() if not line.startswith(WEIGHTS_WARNING)]
    for line in lines:
        assert CLOCK.search(line), f"no local time in {line!r}"
    return [CLOCK.sub(" at T", line, count=1) for line in lines]


def test_a_bad_sources_file_or_model_folder_is_one_line_before_anything_loads(tmp_path: Path) -> None:
    sources = tmp_path / "sources.yaml"
    sources.write_text("sources:\n  - name: cam\n    url: ftp://cam/stream\n")
    done = run_monitor("--sources", str(sources), "--model-dir", str(tmp_path), timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {sources}: sources.0.url: Value error, unknown source 'ftp://cam/stream': use rtsp://, "
        "rtsps://, http://, https://, file:PATH (or a path), alsa:DEVICE, pulse:DEVICE or stdin:"
    ]
    sources.write_text("sources:\n  - name: cam\n    url: rtsp://cam/stream\n")
    done = run_monitor("--sources", str(sources), "--model_dir", str(tmp_path / "none"), timeout=60)
    assert done.returncode == 2 and "not found in" in done.stderr and "audioguard weights" in done.stderr
    done = run_monitor("--sources", str(sources), "--min-hits", "4", "--within-hops", "2", timeout=60)
    assert done.returncode == 2 and "within_hops (2) must be >= min_hits (4)" in done.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_two_file_sources_each_raise_events_that_start_once_and_end_once(
    synthetic_model_dir: Path, tmp_path: Path
) -> None:
    rng = np.random.default_rng(4)
    sf.write(tmp_path / "a.wav", 0.3 * rng.standard_normal(16_000 * 13), 16_000, subtype="PCM_16")
    sf.write(tmp_path / "b.wav", 0.2 * rng.standard_normal((44_100 * 12, 2)), 44_100, subtype="PCM_16")
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "sources:\n"
        f"  - {{name: kitchen, url: 'file:{tmp_path / 'a.wav'}', realtime: false}}\n"
        f"  - {{name: hall, url: '{tmp_path / 'b.wav'}', realtime: false, privacy: scramble}}\n"
    )
    done = run_monitor("--sources", str(sources), "--model-dir", str(synthetic_model_dir), "--json")
    assert done.returncode == 0, done.stderr
    records = assert_event_records(json.loads(line) for line in done.stdout.splitlines())
    assert records, "synthetic weights fire groups on any sound"
    # the non-official weights are said once, on stderr, and no native banner is
    assert done.stderr.count("WARNING: these answers do not come from the official model weights") == 1
    assert "absl" not in done.stderr and "oneDNN" not in done.stderr
    for source, seconds, privacy in (("kitchen", 13.0, "none"), ("hall", 12.0, "scramble")):
        mine = [r for r in records if r["source"] == source]
        assert {r["privacy_method"] for r in mine} == {privacy}
        assert {(r["origin"], r["analysis_id"]) for r in mine} == {("live", None)}
        starts = {r["event_id"]: r for r in mine if r["change"] == "start"}
        ends = {r["event_id"]: r for r in mine if r["change"] == "end"}
        assert starts and set(starts) == set(ends), source  # each event starts once and ends once
        assert len({r["group"] for r in starts.values()}) == len(starts)  # one event per group: no duplicates
        for event_id, end in ends.items():
            assert (
                end["reason"] == "source finished"
                and 0 <= starts[event_id]["start_seconds"] < end["end_seconds"]
            )
            assert end["end_seconds"] <= seconds
    # replayed as fast as possible, a file is analysed whole however small the queue: with room
    # for one second of audio the events are the same as above (the capture waits; before, the
    # drops left the queue's count of unfinished chunks wrong and the monitor never exited)
    small = run_monitor(
        "--sources", str(sources), "--model-dir", str(synthetic_model_dir), "--json", "--queue-chunks", "10"
    )  # fmt: skip
    assert small.returncode == 0, small.stderr

    def kitchen_events(lines: str) -> list[tuple[object, ...]]:
        return sorted(
            (r["change"], r["group"], r["start_seconds"], r["end_seconds"], r["peak_score"])
            for r in map(json.loads, lines.splitlines())
            if r["source"] == "kitchen"
        )

    fewer, more = kitchen_events(small.stdout), kitchen_events(done.stdout)
    assert [event[:4] for event in fewer] == [event[:4] for event in more]
    # the peaks agree to float32 rounding (the steps batch the examples differently)
    assert [event[4] for event in fewer] == pytest.approx([event[4] for event in more], abs=1e-5)


def test_an_unknown_group_or_an_unset_variable_is_one_error_before_the_model(tmp_path: Path) -> None:
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "sources:\n"
        "  - {name: kitchen, url: 'rtsp://viewer:${AUDIOGUARD_TEST_UNSET_PW}@10.0.0.7/s'}\n"
        "  - {name: hall, url: 'pulse:default', groups: [glass_brake], thresholds: {screem: 0.3}}\n"
    )
    # the model folder is empty: its check comes after the sources', before any model loads
    done = run_monitor("--sources", str(sources), "--model-dir", str(tmp_path), timeout=60)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(
        f"error: {sources}: source hall: groups: unknown anomaly group(s) glass_brake (known: "
    )
    assert "; source hall: thresholds: unknown anomaly group(s) screem (known: " in line
    assert line.endswith("; source kitchen: url: environment variable AUDIOGUARD_TEST_UNSET_PW is not set")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_when_no_source_can_be_opened_the_monitor_says_so_before_the_model_loads(
    synthetic_model_dir: Path, tmp_path: Path
) -> None:
    sources = tmp_path / "sources.yaml"
    sources.write_text("sources:\n  - {name: night, url: 'file:recordings/night.wav'}\n")
    started = time.monotonic()
    done = run_monitor("--sources", str(sources), "--model-dir", str(synthetic_model_dir), timeout=60)
    took = time.monotonic() - started
    # one line and out: before, the file was tried again for ever, after the model had loaded
    assert done.returncode == 1 and done.stdout == ""
    assert said(done.stderr) == [
        f"night: failed at T: file not found: {tmp_path / 'recordings' / 'night.wav'}"
    ]
    assert WEIGHTS_WARNING not in done.stderr and took < 30, took


def cut(source: Path, path: Path, seconds: float) -> None:
    """The first ``seconds`` of a recording, its samples unchanged."""
    samples, rate = sf.read(source, dtype="int16")
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples[: int(seconds * rate)], rate, subtype="PCM_16")


def event_key(record: dict[str, Any]) -> tuple[object, ...]:
    return (
        record["change"],
        record["group"],
        record["start_seconds"],
        record["end_seconds"],
        record["reason"],
    )


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_the_monitor_says_what_became_of_each_source(
    synthetic_model_dir: Path,
    shared_audio_dir: Path,
    tmp_path: Path,
    file_server: tuple[str, Path, list[str]],
) -> None:
    base, served, requested = file_server
    conf = tmp_path / "conf"
    cut(shared_audio_dir / "gunshots.wav", conf / "recordings" / "short.wav", 6.5)  # under one window
    cut(shared_audio_dir / "gunshots.wav", conf / "recordings" / "tiny.wav", 0.5)  # under one example
    shutil.copy(conf / "recordings" / "short.wav", served / "short.wav")
    quiet = 10 ** (-70 / 20) * np.random.default_rng(5).standard_normal(16_000 * 3)  # -70 dBFS
    sf.write(conf / "recordings" / "quiet.wav", quiet, 16_000, subtype="PCM_16")
    (conf / "recordings" / "notes.txt").write_text("not a recording\n" * 20)
    sources = conf / "sources.yaml"
    sources.write_text(
        "sources:\n"
        f"  - {{name: shots, url: 'file:{shared_audio_dir / 'gunshots.wav'}', realtime: false}}\n"
        "  - {name: short, url: 'file:recordings/short.wav', realtime: false}\n"  # the file's folder
        f"  - {{name: web, url: '{base}/short.wav', realtime: false}}\n"  # the same, over HTTP
        "  - {name: quiet, url: 'recordings/quiet.wav', realtime: false, loudness_gate_dbfs: -50}\n"
        "  - {name: tiny, url: 'recordings/tiny.wav', realtime: false}\n"
        "  - {name: gone, url: 'file:recordings/missing.wav'}\n"
        "  - {name: notes, url: 'recordings/notes.txt'}\n"
    )
    elsewhere = tmp_path / "elsewhere"  # relative paths are not the current directory's
    elsewhere.mkdir()
    done = run_monitor(
        "--sources", str(sources), "--model-dir", str(synthetic_model_dir), "--json", cwd=elsewhere
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # two sources failed; the others were heard to the end
    records = assert_event_records(json.loads(line) for line in done.stdout.splitlines())  # JSON alone
    starts = {name: sum(r["change"] == "start" and r["source"] == name for r in records) for name in
              ("shots", "short", "web")}  # fmt: skip
    assert starts["shots"] and starts["short"], "synthetic weights fire groups on any sound"

    def events(name: str) -> list[tuple[object, ...]]:
        return sorted(event_key(r) for r in records if r["source"] == name)

    # a WAV served over HTTP is a file: fetched once, the events of the same file read from disk
    assert events("web") == events("short") and requested == ["/short.wav"]
    # a recording shorter than a window played as a source: the anomalies `classify` finds in it
    classified = subprocess.run(
        [sys.executable, "-m", "audioguard.cli", "classify", str(conf / "recordings" / "short.wav"),
         "--model-dir", str(synthetic_model_dir), "--json"],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    (document,) = json.loads(classified.stdout)
    ends = {r["group"]: r for r in records if r["source"] == "short" and r["change"] == "end"}
    assert sorted(ends) == sorted(a["group"] for a in document["anomalies"])
    for anomaly in document["anomalies"]:
        end = ends[anomaly["group"]]
        assert (end["start_seconds"], end["end_seconds"]) == (
            anomaly["start_seconds"],
            anomaly["end_seconds"],
        )
        assert end["peak_score"] == pytest.approx(anomaly["peak_score"], abs=1e-5)

    recordings = conf / "recordings"
    expected = {
        "listening to 7 sources at T: shots (file), short (file), web (http), quiet (file), tiny (file), "
        "gone (file), notes (file)",
        f"gone: failed at T: file not found: {recordings / 'missing.wav'}",
        f"notes: failed at T: not audio (ffmpeg cannot read it): {recordings / 'notes.txt'}",
        "shots: connected at T (file of 10.50 s, as fast as possible, 44.1 kHz mono)",
        f"shots: finished at T after 10.50 s of audio: {starts['shots']} events",
        "short: connected at T (file of 6.50 s, as fast as possible, 44.1 kHz mono)",
        f"short: finished at T after 6.50 s of audio: {starts['short']} events",
        "web: connected at T (HTTP file of 6.50 s, as fast as possible, 44.1 kHz mono)",
        f"web: finished at T after 6.50 s of audio: {starts['web']} events",
        "quiet: connected at T (file of 3.00 s, as fast as possible, 16 kHz mono)",
        "quiet: finished at T after 3.00 s of audio: no anomaly heard (too quiet: every window under the "
        "-50 dBFS loudness gate)",
        "tiny: connected at T (file of 0.50 s, as fast as possible, 44.1 kHz mono)",
        "tiny: finished at T after 0.50 s of audio: nothing analysed (too short: one example needs 0.975 s)",
        f"done at T: 27.00 s of audio from 7 sources, {sum(starts.values())} events, 2 failed",
    }
    lines = said(done.stderr)
    assert sorted(lines) == sorted(expected), "\n".join(lines)
    assert lines[0].startswith("listening") and lines[-1].startswith("done")
    for name in ("shots", "short", "web", "quiet", "tiny"):
        mine = [line for line in lines if line.startswith(f"{name}: ")]
        assert mine[0].startswith(f"{name}: connected") and mine[1].startswith(f"{name}: finished")
