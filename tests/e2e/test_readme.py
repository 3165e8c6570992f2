"""The README's first five minutes and its listening example, run as a new user would.

The commands are read from README.md itself and run as written, from the project folder (so
``../shared/audio`` is the shared recordings), against a real ``audioguard serve`` (what
``scripts/run.sh`` runs) on free loopback ports. Three things differ from a user's terminal,
each because the test cannot take the user's place: the server's URL replaces
``127.0.0.1:5000`` (another service may hold that port), the session's synthetic model folder
replaces ``models`` (the README's output is that of ``WEIGHTS=synthetic``: same seed, same
files), and the files the commands write go to a temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.test_local import Supervisor, supervisor
from tests.support.cli import run_audioguard
from tests.support.serverutil import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
SHARED = PROJECT_ROOT / ".." / "shared" / "audio"
README_URL = "http://127.0.0.1:5000"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not SHARED.is_dir(), reason="../shared/audio is not present (the README's recordings)"
    ),
]


def section(title: str) -> str:
    """The README's text under ``## title``, up to the next section."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def command_lines(block: str, program: str) -> list[list[str]]:
    """Each line of a shell block that runs ``program``, as arguments (comments dropped)."""
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.startswith(f"{program} ")]


def audioguard(
    arguments: list[str], *, cwd: Path = PROJECT_ROOT, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The ``audioguard`` command of the venv, as the activated shell runs it."""
    assert arguments[0] == "audioguard", arguments
    return run_audioguard(*arguments[1:], cwd=cwd, timeout=timeout)


def synthetic(model_dir: Path) -> bool:
    """Whether the test's weights are the ones the README's output was printed with."""
    return not os.environ.get("AUDIOGUARD_TEST_MODEL_DIR") and model_dir.is_dir()


def printed_groups(output: str) -> list[str]:
    """The anomaly groups of a client or classify text, in order."""
    return re.findall(r"^    .+? \[(\w+)\] \d\.\d\d \(threshold", output, flags=re.MULTILINE)


@pytest.fixture(scope="module")
def served(synthetic_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    """``audioguard serve`` as scripts/run.sh runs it, for the module's tests."""
    log = tmp_path_factory.mktemp("readme") / "serve.log"
    command = [sys.executable, "-m", "audioguard.cli", "serve", "--model-dir", str(synthetic_model_dir)]
    with supervisor(command, log) as running:
        running.wait_for_banner()
        yield running


def test_first_five_minutes_assumes_run_sh_and_only_shared_recordings() -> None:
    text = section("First five minutes")
    assert "scripts/run.sh" in text
    for block in blocks(text, "bash"):
        # run.sh already downloaded the weights and serves: the page must not do either again
        assert "weights download" not in block and "audioguard serve" not in block, block
    for name in re.findall(r"\.\./shared/audio/([\w.-]+)", text):
        assert (SHARED / name).is_file(), f"the README names ../shared/audio/{name}, which does not exist"


def test_client_prints_the_readmes_output_byte_for_byte(
    served: Supervisor, synthetic_model_dir: Path
) -> None:
    text = section("First five minutes")
    (client,) = command_lines(blocks(text, "bash")[0], "audioguard")
    assert client[:2] == ["audioguard", "client"]
    finished = audioguard([*client, "--url", served.url])
    assert finished.returncode == 0, finished.stderr
    expected = blocks(text, "text")[0]
    if not synthetic(synthetic_model_dir):
        pytest.skip("AUDIOGUARD_TEST_MODEL_DIR is set: the README shows the synthetic weights' output")
    assert finished.stdout == expected


def test_curl_examples_answer_as_the_client_says(served: Supervisor) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    text = section("First five minutes")
    curl_block = blocks(text, "bash")[1]
    assert README_URL in curl_block
    commands = re.split(r"^(?=curl )", curl_block, flags=re.MULTILINE)
    v2, sifis = (command.replace(README_URL, served.url) for command in commands if command.strip())
    expected_groups = printed_groups(blocks(text, "text")[0])
    assert expected_groups, "the README's client output shows no anomaly"

    def run(command: str) -> dict[str, object]:
        finished = subprocess.run(
            ["bash", "-c", command],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert finished.returncode == 0, finished.stderr
        answer: dict[str, object] = json.loads(finished.stdout)
        return answer

    answer = run(v2)
    outputs = {output["name"]: output for output in answer["outputs"]}  # type: ignore[attr-defined]
    windows = outputs["window_start_seconds"]["shape"][0]
    assert windows >= 1
    assert outputs["label"]["shape"] == outputs["probability"]["shape"] == [windows, 3]  # top_k 3
    # the same recording as the client's: the same events
    events = json.loads(outputs["anomalies"]["data"][0])
    assert [event["group"] for event in events] == expected_groups
    assert "weights_official" in answer["parameters"]  # type: ignore[operator]

    answer = run(sifis)
    assert answer["status"] == "ok"
    assert answer["audio_file"] == "sample1.wav" and answer["request_id"] == "req-42"
    assert answer["method"] == "scrample" and answer["privacy_method"] == "scramble"
    assert len(answer["predictions"]) == 5  # type: ignore[arg-type]


def test_classify_draws_the_readmes_picture(synthetic_model_dir: Path, tmp_path: Path) -> None:
    from matplotlib import pyplot

    text = section("First five minutes")
    (classify,) = command_lines(blocks(text, "bash")[2], "audioguard")
    assert classify[:2] == ["audioguard", "classify"]
    recording = Path(next(arg for arg in classify[2:] if arg.startswith("../shared/audio/"))).name
    plot = tmp_path / "timeline.png"
    arguments = [str(plot) if arg == "timeline.png" else arg for arg in classify]
    finished = audioguard([*arguments, "--model-dir", str(synthetic_model_dir)])
    assert finished.returncode == 0, finished.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the picture and its caption are of the recording that command names
    (alt, image) = re.findall(r"!\[([^\]]*)\]\(([^)]+)\)", text)[0]
    assert recording in alt
    if not synthetic(synthetic_model_dir):
        pytest.skip("AUDIOGUARD_TEST_MODEL_DIR is set: the README's picture is of the synthetic weights")
    drawn, shown = pyplot.imread(plot), pyplot.imread(PROJECT_ROOT / image)
    assert drawn.shape == shown.shape and np.array_equal(drawn, shown), (
        f"{image} is not what the README's command draws: redraw it with that command"
    )


def test_listening_example_hears_what_the_client_heard(synthetic_model_dir: Path, tmp_path: Path) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    text = section("Listening")
    (block,) = blocks(text, "bash")
    sources = re.search(r"^cat > (\S+) <<'EOF'\n(.*?)^EOF$", block, flags=re.MULTILINE | re.DOTALL)
    assert sources is not None, block
    (monitor,) = command_lines(block, "audioguard")
    assert monitor[:2] == ["audioguard", "monitor"]
    # a fresh clone next to ../shared: the file's relative path means the same from the
    # sources file's folder and from the working directory
    clone = tmp_path / "clone"
    clone.mkdir()
    (tmp_path / "shared").symlink_to((PROJECT_ROOT / ".." / "shared").resolve(), target_is_directory=True)
    (clone / sources.group(1)).write_text(sources.group(2), encoding="utf-8")
    finished = audioguard([*monitor, "--model-dir", str(synthetic_model_dir)], cwd=clone)
    assert finished.returncode == 0, finished.stderr
    starts = re.findall(r"^START replay: .+? \[(\w+)\]", finished.stdout, flags=re.MULTILINE)
    ends = [line for line in finished.stdout.splitlines() if line.startswith("END   replay: ")]
    # the recording the first five minutes sent to the client, played as a source: the same events
    client_output = blocks(section("First five minutes"), "text")[0]
    assert "gunshots.wav" in sources.group(2) and client_output.startswith("../shared/audio/gunshots.wav")
    if synthetic(synthetic_model_dir):
        assert starts == printed_groups(client_output), finished.stdout
    assert len(ends) == len(starts) >= 1, finished.stdout
    assert all(line.endswith("(source finished)") for line in ends), ends
