"""``audioguard monitor`` as a user runs it: a real process, real ffmpeg captures, printed events."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.support.records import assert_event_records
from tests.support.serverutil import PROJECT_ROOT


def run_monitor(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "audioguard.cli", "monitor", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


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
