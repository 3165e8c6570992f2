"""``audioguard evaluate`` end to end on a small generated set (a real process, real ffmpeg
captures, the synthetic official-format weights): its report, and that its events are the live
monitor's own on the same recording (one road), which the replay reproduces."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from audioguard.evaluation.drive import run_recordings
from audioguard.evaluation.mixtures import Recipe, generate_set
from audioguard.evaluation.replay import replay
from audioguard.evaluation.report import MEANINGLESS
from tests.support.cli import run_audioguard

SMALL = Recipe(
    labels=("smoke_alarm_t3", "door_knock"),
    backgrounds=("room_tone",),
    ratios_db=(0.0,),
    negative_seconds=60.0,
    real_recordings=False,
)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_set(tmp_path_factory.mktemp("small-set"), SMALL)


def events_of(records: list[dict[str, object]]) -> list[tuple[str, float, float]]:
    return sorted(
        (str(r["group"]), round(float(r["start_seconds"]), 2), round(float(r["end_seconds"]), 2))  # type: ignore[arg-type]
        for r in records
        if r["change"] == "end"
    )


def test_evaluate_reports_per_group_and_privacy_method_and_its_events_are_the_monitors(
    synthetic_model_dir: Path, small_set: Path, tmp_path: Path
) -> None:
    report, plot = tmp_path / "report.json", tmp_path / "report.png"
    done = run_audioguard(
        "evaluate", "--annotations", str(small_set), "--model-dir", str(synthetic_model_dir),
        "--privacy", "none,scramble", "--json", str(report), "--plot", str(plot), timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == MEANINGLESS  # synthetic weights: said first
    assert lines[1].startswith(
        "set: 3 recordings, 0.04 h, 2 annotated events of smoke_fire_alarm (2 distractor"
    )
    document = json.loads(report.read_text())
    assert document["weights_official"] is False and set(document["methods"]) == {"none", "scramble"}
    for method in ("none", "scramble"):
        assert f"privacy {method}: PSDS2 over all groups" in done.stdout
        figures = document["methods"][method]["groups"]["smoke_fire_alarm"]
        assert figures["events"] == 2 and figures["tp"] + figures["fn"] == 2
        assert figures["negative_hours"] == pytest.approx(
            100 / 3600, abs=1e-4
        )  # the knocks (40 s), the negative (60 s)
        assert 0 <= figures["psds2"] <= 1
        curve = document["methods"][method]["curves"]["smoke_fire_alarm"]
        assert [point["threshold"] for point in curve][:2] == [0.05, 0.1]
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # one road: the live monitor on one of the recordings raises the very events evaluate counted
    mixture = sorted(small_set.parent.glob("mix_smoke_alarm_t3_*.wav"))[0]
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        f"sources:\n  - {{name: m, url: 'file:{mixture}', realtime: false, privacy: scramble}}\n"
    )
    monitor = run_audioguard(
        "monitor", "--sources", str(sources), "--model-dir", str(synthetic_model_dir), "--json"
    )
    assert monitor.returncode == 0, monitor.stderr
    live = events_of([json.loads(line) for line in monitor.stdout.splitlines()])
    evaluated = sorted(
        (e["group"], round(e["onset"], 2), round(e["offset"], 2))
        for e in document["methods"]["scramble"]["events"]
        if e["filename"] == mixture.name
    )
    assert live and evaluated == live


def test_the_replay_at_the_live_thresholds_gives_the_live_events(
    synthetic_model_dir: Path, small_set: Path
) -> None:
    from audioguard.offline import OfflineClassifier

    classifier = OfflineClassifier.from_model_dir(synthetic_model_dir)
    files = sorted(small_set.parent.glob("*.wav"))
    heard = asyncio.run(run_recordings(classifier, files, "dp_noise"))
    assert sum(len(h.events) for h in heard) > 0
    for one in heard:
        assert len(one.windows) <= len(one.hops) and one.hops == sorted(one.hops)
        live = sorted((e.group, e.start_seconds, e.end_seconds, e.peak_score) for e in one.events)
        again = sorted((e.group, e.start_seconds, e.end_seconds, e.peak_score) for e in replay(one, {}))
        assert again == live
    # a higher threshold never adds an event of a group
    for one in heard:
        assert len(replay(one, dict.fromkeys([g.name for g in classifier.groups], 0.99))) <= len(one.events)


def test_calibrate_listens_to_a_sources_file_and_writes_a_groups_file_the_service_loads(
    synthetic_model_dir: Path, small_set: Path, tmp_path: Path
) -> None:
    from transformer.analysis.anomaly_groups import load_anomaly_groups

    negative = small_set.parent / "negative_room_tone.wav"  # 60 s of room tone
    sources = tmp_path / "sources.yaml"
    sources.write_text(f"sources:\n  - {{name: room, url: 'file:{negative}', realtime: false}}\n")
    out = tmp_path / "calibrated.json"
    done = run_audioguard(
        "calibrate", "--sources", str(sources), "--duration", "600", "--budget", "200/hour",
        "--groups", "smoke_fire_alarm,siren", "--model-dir", str(synthetic_model_dir),
        "--out", str(out), "--evaluation-set", str(small_set), timeout=120,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("MEANINGLESS FIGURES") and "these thresholds fit random weights" in lines[0]
    assert lines[1].startswith("0.02 h of audio; budget 200 false alarms per hour per source, 95% confidence")
    rows = {line.split()[0]: line.split() for line in lines[3:5]}
    assert set(rows) == {"smoke_fire_alarm", "siren"}
    written = {entry["name"]: entry["threshold"] for entry in json.loads(out.read_text())["groups"]}
    groups = {group.name: group for group in load_anomaly_groups(out)}
    for name, row in rows.items():
        if row[2] == "-":  # no threshold met the budget: said, and left out of the file
            assert name not in written and done.returncode == 1
        else:
            assert groups[name].threshold == written[name] == float(row[2])
    assert rows["smoke_fire_alarm"][5] != "-"  # the expected recall on the evaluation set


def test_a_bad_label_map_is_one_error_before_the_model_loads(small_set: Path, tmp_path: Path) -> None:
    (tmp_path / "map.json").write_text('{"smoke_alarm_t3": "smoke_alarm"}')
    done = run_audioguard(
        "evaluate", "--annotations", str(small_set), "--labels", str(tmp_path / "map.json"),
        "--model-dir", str(tmp_path / "no-models"),
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"error: label map {tmp_path / 'map.json'}: label(s) door_knock missing from the map; "
        "group(s) smoke_alarm are not anomaly groups"
    )
