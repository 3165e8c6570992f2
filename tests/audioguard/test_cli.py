"""The `audioguard` command line: weights commands and offline classification."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import soundfile as sf

from audioguard.cli import main
from contract import assets
from tests.support.anomaly_table import shipped_groups
from tests.support.cli import run_audioguard
from tests.support.serverutil import PROJECT_ROOT, free_port
from transformer.analysis.labels import load_labels


def _wav(path: Path, seconds: float, sample_rate: int = 16_000, freq: float = 1000.0) -> Path:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    rng = np.random.default_rng(int(freq))
    samples = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)
    sf.write(path, samples, sample_rate, subtype="PCM_16")
    return path


def test_synthetic_weights_are_never_reported_official(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["weights", "synthetic", "--dest", str(tmp_path), "--only", "pca,classifier"]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {assets.PCA_PARAMS, assets.CLASSIFIER_H5}
    assert "SYNTHETIC" in capsys.readouterr().out

    # the checkpoint is missing: exit 2 and the command to run
    assert main(["weights", "verify", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["official"] is False
    assert report["files"][assets.VGGISH_CHECKPOINT]["present"] is False
    assert "audioguard weights download" in captured.err


@pytest.mark.parametrize("answer", ["closed_port", "http_404"])
def test_download_failure_is_one_line_naming_the_host_and_the_offline_way(
    answer: str, file_server: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    """Offline or a broken mirror: a short error, not requests' traceback."""
    served, _, requested = file_server  # serves an empty directory: 404 for every file
    mirror = served if answer == "http_404" else f"http://127.0.0.1:{free_port()}"
    dest = tmp_path / "models"
    command = ["weights", "download", "--dest", str(dest), "--mirror", mirror]
    finished = run_audioguard(*command, timeout=60)
    assert finished.returncode == 2  # the command's code for an AudioGuardError
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1, finished.stderr
    assert "Traceback" not in finished.stderr
    host = urlsplit(mirror).netloc
    assert lines[0].startswith(f"error: download of http://{host}/{assets.VGGISH_CHECKPOINT} failed")
    reason = "HTTP 404" if answer == "http_404" else "cannot connect: Connection refused"
    assert f"({reason}" in lines[0]
    assert "audioguard weights synthetic" in lines[0] and "WEIGHTS=synthetic bash scripts/run.sh" in lines[0]
    # the server logs a 404 twice (request line and error); nothing after the first failure
    assert set(requested) == ({f"/{assets.VGGISH_CHECKPOINT}"} if answer == "http_404" else set())
    assert not dest.exists() or list(dest.iterdir()) == []  # no partial file, no leftover work dir


def test_unknown_synthetic_part_is_a_usage_error_before_tensorflow_loads(tmp_path: Path) -> None:
    """A one-line usage error and exit 2, not a ValueError traceback; nothing written."""
    script = (
        "import sys\n"
        "from audioguard.cli import main\n"
        "try:\n"
        f"    main(['weights', 'synthetic', '--dest', {str(tmp_path)!r}, '--only', 'vgg,pca'])\n"
        "except SystemExit as stop:\n"
        "    print(stop.code, 'tensorflow' in sys.modules)\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.stdout.split() == ["2", "False"], finished.stderr
    assert "Traceback" not in finished.stderr
    assert finished.stderr.splitlines() == [
        "audioguard weights synthetic: error: argument --only: unknown part(s) 'vgg': "
        "choose from vggish, pca, classifier",
        "try 'audioguard weights synthetic --help'",
    ]
    assert list(tmp_path.iterdir()) == []


def _run_synthetic(dest: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    command = ["weights", "synthetic", "--dest", str(dest), "--only", "pca,classifier", *flags]
    return run_audioguard(*command, timeout=120)


def test_synthetic_refuses_to_overwrite_existing_files_unless_forced(tmp_path: Path) -> None:
    mine = b"an operator's own PCA file"
    (tmp_path / assets.PCA_PARAMS).write_bytes(mine)

    refused = _run_synthetic(tmp_path)
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert lines[0].startswith("error: refusing to overwrite existing ") and assets.PCA_PARAMS in lines[0]
    assert "--force" in lines[0] and assets.CLASSIFIER_H5 not in lines[0]  # only the existing one
    assert (tmp_path / assets.PCA_PARAMS).read_bytes() == mine
    assert not (tmp_path / assets.CLASSIFIER_H5).exists()  # nothing written when one target exists

    forced = _run_synthetic(tmp_path, "--force")
    assert forced.returncode == 0, forced.stderr
    with np.load(tmp_path / assets.PCA_PARAMS) as replaced:  # the synthetic npz now
        assert set(replaced.files) == {"pca_eigen_vectors", "pca_means"}
    assert (tmp_path / assets.CLASSIFIER_H5).read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"


@pytest.mark.slow
def test_synthetic_vggish_prints_no_tensorflow_banner(tmp_path: Path) -> None:
    """scripts/run.sh's weights step (WEIGHTS=synthetic): TensorFlow writes the checkpoint, and its
    native banners (absl, oneDNN, cpu_feature_guard) ignore TF_CPP_MIN_LOG_LEVEL; none is output."""
    # as a user's shell runs it: neither variable set
    unset: dict[str, str | None] = {"TF_CPP_MIN_LOG_LEVEL": None, "AUDIOGUARD_LOG_LEVEL": None}
    finished = run_audioguard("weights", "synthetic", "--dest", str(tmp_path), "--only", "vggish", env=unset)
    assert finished.returncode == 0, finished.stderr
    assert finished.stderr == ""
    assert finished.stdout.splitlines() == [
        f"{assets.VGGISH_CHECKPOINT}: {tmp_path / assets.VGGISH_CHECKPOINT} "
        "(SYNTHETIC: random weights in the official format, not the real model)"
    ]


@pytest.mark.parametrize("force", [False, True])
def test_synthetic_never_overwrites_an_official_file(
    force: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The official PCA file cannot be fetched offline: this file's own sum is made the official one."""
    official = tmp_path / assets.PCA_PARAMS
    official.write_bytes(b"stands in for the published vggish_pca_params.npz")
    digest = hashlib.sha512(official.read_bytes()).hexdigest()
    monkeypatch.setitem(
        assets.OFFICIAL_ASSETS, assets.PCA_PARAMS, assets.OfficialAsset(assets.PCA_PARAMS, digest, None)
    )
    before = official.read_bytes()
    flags = ["--force"] if force else []
    assert main(["weights", "synthetic", "--dest", str(tmp_path), "--only", "pca", *flags]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: refusing to overwrite {assets.PCA_PARAMS} in {tmp_path}: the official")
    assert "even with --force" in line
    assert official.read_bytes() == before


def test_classify_missing_weights_names_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wav = _wav(tmp_path / "a.wav", 2.0)
    assert main(["classify", str(wav), "--model_dir", str(tmp_path / "empty")]) == 2
    assert "audioguard weights" in capsys.readouterr().err


@pytest.mark.slow
def test_classify_where_every_file_fails_prints_only_the_errors(
    synthetic_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _wav(tmp_path / "bad.wav", 0.5)  # audio by its header: found too short once decoded
    assert main(["classify", str(bad), "--model-dir", str(synthetic_model_dir)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # no empty line after the error
    assert captured.err.splitlines()[-1].startswith(f"{bad}: error: ")


#: What loading the model imports: none of it may happen while the arguments are checked.
MODEL_MODULES = (
    "onnxruntime",
    "tensorflow",
    "keras",
    "h5py",
    "predictor.classifier",
    "transformer.audio.vggish",
)
ARGUMENT_PROBE = """
import contextlib, io, json, sys
from audioguard.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as stop:
            code = stop.code
    results.append([code, err.getvalue()])
loaded = [m for m in json.loads(sys.argv[2]) if m in sys.modules]
print(json.dumps({"results": results, "loaded": loaded}))
"""


def test_classify_checks_every_argument_before_loading_the_model(tmp_path: Path) -> None:
    """Each mistake is found in the first second, not after the model's tens of seconds: the
    probe shows the model was never loaded (none of its modules imported)."""
    wav = _wav(tmp_path / "a.wav", 1.0)
    models = tmp_path / "models"
    models.mkdir()
    for name in assets.ALL_ASSETS:  # present (only their presence is checked before the load)
        (models / name).write_bytes(b"")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / assets.PCA_PARAMS).write_bytes(b"")
    ok = ["classify", str(wav), "--model-dir", str(models)]
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio")
    cases = {
        "missing.wav: no such file": ["classify", str(tmp_path / "missing.wav"), "--model-dir", str(models)],
        f"{notes}: the 9 bytes received are not an audio file that can be decoded": [
            "classify", str(wav), str(notes), "--model-dir", str(models),
        ],
        f"model folder {tmp_path / 'nowhere'} does not exist": [
            "classify", str(wav), "--model_dir", str(tmp_path / "nowhere"),
        ],
        f"vggish_model.ckpt, classifier_model.h5 not found in {partial}": [
            "classify", str(wav), "--model-dir", str(partial),
        ],
        "argument --privacy: invalid choice: 'scrambel'": [*ok, "--privacy", "scrambel"],
        "argument --top-k: must be between 1 and 527, got 0": [*ok, "--top-k", "0"],
        "argument --hop: must be between 1 and 10, got 11": [*ok, "--hop", "11"],
        "argument --start-time: must be a number of seconds >= 0, got '-1'": [*ok, "--start-time=-1"],
        "--filter: ": [*ok, "--filter", "Speech,Not a label"],
        f"--plot: folder {tmp_path / 'no' / 'such'} does not exist": [
            *ok, "--plot", str(tmp_path / "no" / "such" / "t.png"),
        ],
    }  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", ARGUMENT_PROBE, json.dumps(list(cases.values())), json.dumps(MODEL_MODULES)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)
    assert probe["loaded"] == []
    for (message, _), (code, stderr) in zip(cases.items(), probe["results"], strict=True):
        assert code == 2, (message, stderr)
        assert message in stderr, stderr


@pytest.mark.slow
def test_weights_verify_on_full_synthetic_dir(
    synthetic_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["weights", "verify", str(synthetic_model_dir)]) == 1  # present, not official
    report = json.loads(capsys.readouterr().out)
    assert all(status["present"] and not status["official"] for status in report["files"].values())


@pytest.mark.slow
def test_classify_prints_top5_windows_and_the_services_anomalies(
    synthetic_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    short = _wav(tmp_path / "short.wav", 3.0)
    long = _wav(tmp_path / "long.wav", 25.0, sample_rate=44_100, freq=300.0)
    # audio by its header (a file that is not audio stops the command before the model loads),
    # too short once decoded: that file fails, the others are classified
    bad = _wav(tmp_path / "bad.wav", 0.5)

    code = main(
        [
            "classify",
            str(short),
            str(bad),
            str(long),
            "--model_dir",
            str(synthetic_model_dir),
            "--json",
            "--all-windows",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1  # one file failed, the others were still classified
    assert f"{bad}: error: the clip lasts 0.5 s" in captured.err
    results = {Path(item["file"]).name: item for item in json.loads(captured.out)}
    assert set(results) == {"short.wav", "long.wav"}
    assert len(results["short.wav"]["windows"]) == 1
    # 25 s -> 26 examples -> windows at 0, 9.6 and one aligned to the end (16 * 0.96)
    windows = results["long.wav"]["windows"]
    assert all(set(window) == {"start_seconds", "end_seconds", "top"} for window in windows)  # as v2
    assert [window["start_seconds"] for window in windows] == [0.0, 9.6, 15.36]
    assert [window["end_seconds"] for window in windows] == [9.6, 19.2, 24.96]
    top = results["short.wav"]["windows"][0]["top"]
    assert len(top) == 5
    assert [t["probability"] for t in top] == sorted((t["probability"] for t in top), reverse=True)
    assert all(0.0 <= t["probability"] <= 1.0 for t in top)
    # the service's analysis: weights verdict, the whole recording scanned with the shipped groups
    document = results["long.wav"]
    assert document["weights_official"] is False and "official model weights" in document["weights_warning"]
    assert document["anomaly_scan_seconds"] == [0.0, 24.96]
    groups = {group["name"]: group for group in shipped_groups()}
    assert document["anomalies"], "synthetic weights fire groups on any sound (the reason for the warning)"
    for anomaly in document["anomalies"]:  # one entry per event
        group = groups[anomaly["group"]]
        assert anomaly["threshold"] == group["threshold"] <= anomaly["peak_score"]
        assert {cls["index"] for cls in anomaly["triggered_by"]} <= set(group["members"])
        assert 0.0 <= anomaly["window_start_seconds"] <= anomaly["start_seconds"] < anomaly["end_seconds"]
        assert anomaly["end_seconds"] <= anomaly["window_end_seconds"] <= 24.96
    assert len({a["event_id"] for a in document["anomalies"]}) == len(document["anomalies"])

    # the same file as text: a warning line, then one line per anomaly with 2-decimal scores
    assert main(["classify", str(long), "--model-dir", str(synthetic_model_dir), "--all-windows"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0] == f"{long}  (25.00 s, privacy none)"
    assert text[1].startswith("  WARNING: these answers do not come from the official model weights")
    count = len(document["anomalies"])
    heading = text.index(f"  {count} anomal{'y' if count == 1 else 'ies'} in 0.00-24.96 s:")
    first = document["anomalies"][0]
    assert text[heading + 1] == (
        f"    {first['label']} [{first['group']}] {first['peak_score']:.2f} "
        f"(threshold {first['threshold']:.2f}) {first['start_seconds']:.2f}-{first['end_seconds']:.2f} s: "
        + ", ".join(f"{c['label']} {c['score']:.2f}" for c in first["triggered_by"][:3])
        + (f" (+{len(first['triggered_by']) - 3} more)" if len(first["triggered_by"]) > 3 else "")
    )
    assert len(text) == heading + 1 + count


@pytest.mark.slow
def test_classify_plot_draws_the_texts_windows_over_the_whole_recording(
    synthetic_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import matplotlib.image

    from audioguard.offline import OfflineClassifier
    from audioguard.timeline import timeline_data

    wav = _wav(tmp_path / "clip.wav", 16.5)
    out = tmp_path / "timeline.png"
    argv = ["classify", str(wav), "--model-dir", str(synthetic_model_dir), "--all-windows", "--json"]
    assert main([*argv, "--plot", str(out)]) == 0
    (document,) = json.loads(capsys.readouterr().out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(io.BytesIO(out.read_bytes())).shape
    assert width == 1100 and height >= 520

    # the data behind the picture is the text's own analysis (no second run with another hop)
    result = OfflineClassifier.from_model_dir(synthetic_model_dir).classify(
        wav.read_bytes(), all_windows=True
    )
    timeline = timeline_data(result, load_labels(), title="clip.wav")
    assert [list(span) for span in timeline.windows] == [
        [w["start_seconds"], w["end_seconds"]] for w in document["windows"]
    ]
    assert timeline.duration_seconds == document["duration_seconds"] == 16.5  # the axis covers it all
    table = {item["label"] for window in document["windows"] for item in window["top"]}
    assert {series.label for series in timeline.classes} <= table
    assert len(timeline.classes) + timeline.hidden_classes == len(table)
    for series in timeline.classes:
        for window, score in zip(document["windows"], series.scores, strict=True):
            shown = {item["label"]: item["probability"] for item in window["top"]}
            if series.label in shown:
                assert score == pytest.approx(shown[series.label], abs=1e-6)
    fired = {a["group"]: a["threshold"] for a in document["anomalies"]}
    assert {lane.group: lane.threshold for lane in timeline.lanes} == fired
    assert sum(len(lane.spans) for lane in timeline.lanes) == len(document["anomalies"])
    assert timeline.warning == document["weights_warning"]


def test_underscore_spellings_are_accepted_as_aliases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --model_dir and --model-dir reach the same option: the missing folder is named either way
    for flag in ("--model_dir", "--model-dir"):
        assert main(["classify", str(tmp_path / "a.wav"), flag, str(tmp_path / "m")]) == 2
        assert f"model folder {tmp_path / 'm'} does not exist" in capsys.readouterr().err
