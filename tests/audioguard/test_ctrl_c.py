"""Ctrl-C everywhere: the commands exit 130 at once, without a traceback (real processes, SIGINT).

Each command runs as a user runs it (``python -m audioguard ...``, the
``audioguard`` entry point), in its own session; SIGINT goes to its process
group, as a terminal sends it, at a moment read from the process: a native
ONNX Runtime's library mapped (the models are loading), the progress bar on its
terminal (the analysis runs), an event printed (the monitor listens), a file it
holds open or is writing. ``audioguard client`` is in tests/e2e/test_client_disconnect.py
(with the server side), ``audioguard serve`` in tests/e2e/test_local.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import shutil
import signal
import socket
import struct
import termios
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from contract import assets
from tests.support.interrupts import (
    EXIT_BOUND_S,
    ONNXRUNTIME_LIBRARY,
    Command,
    holds_open,
    interrupt,
    maps_library,
    start,
    wait_until,
)


def noise_wav(path: Path, seconds: float, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    sf.write(path, np.clip(0.3 * rng.standard_normal(int(seconds * 16_000)), -1, 1), 16_000, subtype="PCM_16")
    return path


def assert_quiet_exit(command: Command, code: int, seconds: float, expected: int = 130) -> None:
    assert code == expected, command.stderr()[-3000:]
    assert seconds < EXIT_BOUND_S
    assert "Traceback" not in command.stderr() and "KeyboardInterrupt" not in command.stderr()


@contextlib.contextmanager
def running(command: Command) -> Iterator[Command]:
    try:
        yield command
    finally:
        command.kill()


# --- classify ------------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_while_classify_loads_the_model(synthetic_model_dir: Path, tmp_path: Path) -> None:
    wav = noise_wav(tmp_path / "a.wav", 3.0)
    with running(start(["classify", str(wav), "--model-dir", str(synthetic_model_dir)])) as command:
        wait_until(command, lambda: maps_library(command.pid, ONNXRUNTIME_LIBRARY), "loading the models")
        code, seconds = interrupt(command)
    assert_quiet_exit(command, code, seconds)
    assert command.stdout() == "" and command.stderr() == ""


class Terminal:
    """A pseudo-terminal for a command's stderr: its progress bar is drawn as on a screen."""

    def __init__(self, rows: int = 24, columns: int = 80) -> None:
        self.master, self.slave = pty.openpty()
        # a screen's size: tqdm draws nothing on a terminal 0 columns wide
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.text = ""

    def read(self) -> str:
        """Everything written so far (the command's side may have closed: then what is left)."""
        while select.select([self.master], [], [], 0)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every writer has gone
                break
            if not chunk:
                break
            self.text += chunk.decode(errors="replace")
        return self.text

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.mark.slow
def test_ctrl_c_while_classify_analyses_ends_the_progress_line(
    synthetic_model_dir: Path, tmp_path: Path
) -> None:
    """During the analysis of the first of two files (10 minutes: seconds of VGGish), its progress
    bar on the terminal: exit 130, no traceback, and the terminal's line is ended (the prompt
    does not land after the bar)."""
    long = noise_wav(tmp_path / "long.wav", 600.0)
    short = noise_wav(tmp_path / "short.wav", 2.0, seed=1)
    terminal = Terminal()
    try:
        arguments = ["classify", str(long), str(short), "--model-dir", str(synthetic_model_dir)]
        with running(start(arguments, stderr=terminal.slave)) as command:
            os.close(terminal.slave)
            terminal.slave = -1
            wait_until(command, lambda: "0/2" in terminal.read(), "showing the progress bar")
            code, seconds = interrupt(command)
        shown = terminal.read()
    finally:
        terminal.close()
    assert code == 130 and seconds < EXIT_BOUND_S, shown
    assert "Traceback" not in shown and "KeyboardInterrupt" not in shown
    assert shown.endswith("\n"), repr(shown[-200:])
    assert command.stdout() == ""


def test_a_file_that_is_not_audio_is_one_error_before_the_model_loads(tmp_path: Path) -> None:
    """Found at once, with the services' own decode check (their 400's words), exit 2."""
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio at all")
    wav = noise_wav(tmp_path / "a.wav", 2.0)
    command = start(["classify", str(wav), str(notes), "--model-dir", str(tmp_path / "models")])
    with running(command):
        code = command.process.wait(120)
    lines = command.stderr().strip().splitlines()
    assert code == 2
    assert lines[0].startswith(
        f"error: {notes}: the 16 bytes received are not an audio file that can be decoded"
    ), lines
    assert len(lines) == 2 and "model folder" in lines[1]  # the other mistake, in the same run


# --- monitor -------------------------------------------------------------------------------


def sources_file(tmp_path: Path, wav: Path) -> Path:
    sources = tmp_path / "sources.yaml"
    sources.write_text(f"sources:\n  - {{name: kitchen, url: 'file:{wav}', realtime: true}}\n")
    return sources


@pytest.mark.slow
def test_ctrl_c_while_the_monitor_loads_the_model(synthetic_model_dir: Path, tmp_path: Path) -> None:
    sources = sources_file(tmp_path, noise_wav(tmp_path / "a.wav", 30.0))
    arguments = ["monitor", "--sources", str(sources), "--model-dir", str(synthetic_model_dir)]
    with running(start(arguments)) as command:
        wait_until(command, lambda: maps_library(command.pid, ONNXRUNTIME_LIBRARY), "loading the models")
        code, seconds = interrupt(command)
    assert_quiet_exit(command, code, seconds)
    assert command.stdout() == "" and command.stderr() == ""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
@pytest.mark.parametrize(("sig", "expected"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_while_the_monitor_listens_ends_the_open_events(
    synthetic_model_dir: Path, tmp_path: Path, sig: int, expected: int
) -> None:
    """Once listening, one Ctrl-C (SIGTERM: 143) ends every open event (END line with its reason)
    and exits 130 at once."""
    sources = sources_file(tmp_path, noise_wav(tmp_path / "a.wav", 120.0))
    arguments = ["monitor", "--sources", str(sources), "--model-dir", str(synthetic_model_dir)]
    with running(start(arguments)) as command:
        wait_until(command, lambda: "START kitchen:" in command.stdout(), "an event started")
        code, seconds = interrupt(command, sig)
    assert_quiet_exit(command, code, seconds, expected)
    lines = command.stdout().splitlines()
    started = {line.split(" [")[1].split("]")[0] for line in lines if line.startswith("START")}
    ended = [line for line in lines if line.startswith("END")]
    # every open event ends once, saying why
    assert {line.split(" [")[1].split("]")[0] for line in ended} == started
    assert all(line.endswith("(source stopped)") for line in ended), ended


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_a_second_ctrl_c_quits_the_monitor_while_it_analyses_what_it_captured(
    synthetic_model_dir: Path, tmp_path: Path
) -> None:
    """A replay as fast as possible fills a large queue far ahead of the analysis, so the stop
    has minutes of captured audio to analyse: after a second it says so, and a second Ctrl-C
    then quits at once, without the ends (the forced path, not the graceful one)."""
    wav = noise_wav(tmp_path / "a.wav", 600.0)
    sources = tmp_path / "sources.yaml"
    sources.write_text(f"sources:\n  - {{name: kitchen, url: 'file:{wav}', realtime: false}}\n")
    arguments = ["monitor", "--sources", str(sources), "--model-dir", str(synthetic_model_dir)]
    with running(start([*arguments, "--queue-chunks", "6000"])) as command:
        wait_until(command, lambda: "START kitchen:" in command.stdout(), "an event started")
        os.killpg(command.pid, signal.SIGINT)
        wait_until(command, lambda: "Ctrl-C again" in command.stderr(), "the stop said why it waits")
        code, seconds = interrupt(command)
    assert_quiet_exit(command, code, seconds)
    assert not any(line.startswith("END") for line in command.stdout().splitlines())
    assert "kitchen: stopped" not in command.stderr()  # the graceful stop's last line never came


# --- weights -------------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_while_synthetic_weights_are_written_leaves_no_partial_file(tmp_path: Path) -> None:
    """While TensorFlow writes the 289-MB checkpoint (its temporary file exists): exit 130, and
    neither the temporary file nor a checkpoint under the official name stays."""
    dest = tmp_path / "models"

    def writing() -> bool:
        return any(path.name.startswith(f"{assets.VGGISH_CHECKPOINT}.tempstate") for path in dest.glob("*"))

    with running(start(["weights", "synthetic", "--dest", str(dest), "--only", "vggish"])) as command:
        wait_until(command, writing, "writing the checkpoint")
        code, seconds = interrupt(command)
    assert_quiet_exit(command, code, seconds)
    assert sorted(path.name for path in dest.iterdir()) == []


@pytest.mark.slow
def test_ctrl_c_while_weights_verify_reads_the_checkpoint(synthetic_model_dir: Path) -> None:
    checkpoint = synthetic_model_dir / assets.VGGISH_CHECKPOINT
    with running(start(["weights", "verify", str(synthetic_model_dir)])) as command:
        wait_until(command, lambda: holds_open(command.pid, checkpoint), "reading the checkpoint")
        code, seconds = interrupt(command)
    assert_quiet_exit(command, code, seconds)
    assert command.stderr() == ""


class StallingMirror:
    """A weights mirror that sends the headers and the first megabyte of every file, then
    nothing more (a download in progress that the user gives up on)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.sent = threading.Event()
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = self.server.accept()
                self.connections.append(connection)
                connection.recv(65536)
                size = 300 * 1024 * 1024
                connection.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
                connection.sendall(bytes(1024 * 1024))
                self.sent.set()

    def close(self) -> None:
        for connection in [*self.connections, self.server]:
            connection.close()


def test_ctrl_c_during_a_download_leaves_no_partial_file(tmp_path: Path) -> None:
    dest = tmp_path / "models"
    mirror = StallingMirror()
    try:
        arguments = ["weights", "download", "--dest", str(dest), "--mirror", mirror.url]
        with running(start(arguments)) as command:

            def downloading() -> bool:
                return mirror.sent.is_set() and any(
                    part.stat().st_size > 0 for part in dest.glob(".download-*/*.part")
                )

            wait_until(command, downloading, "downloading")
            code, seconds = interrupt(command)
    finally:
        mirror.close()
    assert_quiet_exit(command, code, seconds)
    assert list(dest.iterdir()) == []  # neither the partial file nor its work folder


# --- the services' start-up ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("service", "library"),
    [
        ("transformer", "cygrpc"),  # importing KServe
        ("transformer", ONNXRUNTIME_LIBRARY),  # loading VGGish on ONNX Runtime
        ("predictor", "cygrpc"),  # importing KServe (the classifier then loads in ~0.3 s)
    ],
)
def test_ctrl_c_while_a_service_starts(
    service: str, library: str, synthetic_model_dir: Path, tmp_path: Path
) -> None:
    """``python -m transformer`` / ``python -m predictor`` interrupted while they import and load
    (a native library of that step mapped): exit 130 at once, no traceback."""
    arguments = ["--model_name", "audioguard", "--model_dir", str(synthetic_model_dir)]
    if service == "transformer":
        arguments += ["--predictor_host", "127.0.0.1:1", "--outbox_path", str(tmp_path / "outbox.sqlite3")]
    with running(start(arguments, module=service)) as command:
        wait_until(command, lambda: maps_library(command.pid, library), f"mapping {library}")
        code, seconds = interrupt(command)
    assert_quiet_exit(command, code, seconds)
    assert signal.Signals(code - 128) is signal.SIGINT
