"""``audioguard client`` without a server: the request it builds, the way it reads answers."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from audioguard import client
from tests.support.serverutil import PROJECT_ROOT, free_port


def test_rest_body_is_a_json_header_then_one_length_prefixed_bytes_element() -> None:
    audio = b"RIFF\x00\xff\xfe not utf-8 \x80"
    body, json_length = client.rest_body(audio, {"privacy": "scramble"})
    header = json.loads(body[:json_length])
    [tensor] = header["inputs"]
    assert (tensor["name"], tensor["shape"], tensor["datatype"]) == ("audio", [1], "BYTES")
    assert tensor["parameters"]["binary_data_size"] == 4 + len(audio)
    assert header["parameters"] == {"privacy": "scramble"}
    (length,) = struct.unpack("<I", body[json_length : json_length + 4])
    assert length == len(audio)
    assert body[json_length + 4 :] == audio


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("127.0.0.1:5001", "127.0.0.1:5001"),
        ("http://edge.local:5001", "edge.local:5001"),
        ("grpc://10.0.0.2:9000/", "10.0.0.2:9000"),
    ],
)
def test_grpc_target_accepts_urls_and_host_port(given: str, expected: str) -> None:
    assert client.grpc_target(given) == expected


def test_flags_become_v2_parameters_with_floats_as_text() -> None:
    args = client.build_parser().parse_args(
        ["a.wav", "--privacy", "dp_noise", "--all-windows", "--top-k", "3", "--start-time", "1.5"]
    )
    assert client.request_parameters(args) == {
        "privacy": "dp_noise",
        "all_windows": True,
        "top_k": 3,
        "start_time": "1.5",  # gRPC parameters have no double
    }
    assert client.request_parameters(client.build_parser().parse_args(["a.wav"])) == {}


def test_result_and_table_from_output_tensors() -> None:
    anomaly = {"group": "glass_break", "score": 0.9}
    outputs = {
        "label_id": np.array([[b"/m/07qcpgn", b"/m/09d5_"]], dtype=object),
        "label": np.array([[b"Tap", b"Owl"]], dtype=object),
        "probability": np.array([[0.75, 0.5]], dtype=np.float32),
        "window_start_seconds": np.array([0.0], dtype=np.float32),
        "window_end_seconds": np.array([9.6], dtype=np.float32),
        "anomalies": np.array([json.dumps([anomaly]).encode()], dtype=object),
    }
    result = client.result_from_outputs(outputs, {"privacy_method": "none"})
    assert result["windows"] == [
        {
            "start_seconds": 0.0,
            "end_seconds": pytest.approx(9.6),
            "top": [
                {"label_id": "/m/07qcpgn", "label": "Tap", "probability": 0.75},
                {"label_id": "/m/09d5_", "label": "Owl", "probability": 0.5},
            ],
        }
    ]
    assert result["anomalies"] == [anomaly]
    table = client.describe("a.wav", result).splitlines()
    assert table[0] == "a.wav  (privacy applied: none)"
    assert table[1] == "     0.00-   9.60 s  Tap 0.750, Owl 0.500"
    assert table[2].startswith("  ANOMALY ") and json.loads(table[2].removeprefix("  ANOMALY ")) == anomaly


def test_each_failing_file_is_reported_and_the_exit_code_is_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    present = tmp_path / "present.wav"
    present.write_bytes(b"RIFF")
    unreachable = f"http://127.0.0.1:{free_port()}"
    code = client.main([str(tmp_path / "missing.wav"), str(present), "--url", unreachable, "--timeout", "5"])
    assert code == 1
    errors = capsys.readouterr().err.splitlines()
    assert errors[0].startswith(f"{tmp_path / 'missing.wav'}: error:")  # not readable
    # nobody listens: one short line, not urllib3's "HTTPConnectionPool(...): Max retries exceeded"
    assert errors[1] == f"{present}: error: cannot connect to {unreachable} (connection refused)"
    assert len(errors) == 2


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A port whose kernel completes the TCP handshake but nobody ever answers."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
def hanging_up_server() -> Iterator[str]:
    """A server that reads the request, then closes the connection without answering."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with contextlib.suppress(OSError):  # the listener closed at teardown
            while True:
                connection, _ = listener.accept()
                with connection:
                    connection.recv(1 << 16)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    thread.join(timeout=5)


def test_rest_timeout_and_hang_up_are_one_short_line(
    tmp_path: Path, silent_server: str, hanging_up_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF")
    assert client.main([str(audio), "--url", silent_server, "--timeout", "0.5"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{audio}: error: no answer from {silent_server} within 0.5 s"
    ]

    assert client.main([str(audio), "--url", f"{hanging_up_server}/"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{audio}: error: the connection to {hanging_up_server} broke before the answer (")
    assert "HTTPConnectionPool" not in line and "Max retries" not in line


def test_url_without_scheme_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF")
    assert client.main([str(audio), "--url", "127.0.0.1:5000"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{audio}: error: invalid service URL '127.0.0.1:5000': expected http://host:port"
    ]


def test_grpc_failure_is_one_line_without_kserve_log_or_traceback(tmp_path: Path) -> None:
    """KServe's gRPC client logs each failed call with a traceback; the command prints only its line."""
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio")
    command = ["client", "--grpc", "--url", f"127.0.0.1:{free_port()}", "--timeout", "20", str(notes)]
    finished = subprocess.run(
        [sys.executable, "-m", "audioguard.cli", *command],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 1
    lines = finished.stderr.splitlines()
    assert len(lines) == 1, finished.stderr
    assert lines[0].startswith(f"{notes}: error: UNAVAILABLE: ")
    assert "Traceback" not in finished.stderr and "kserve.trace" not in finished.stderr
