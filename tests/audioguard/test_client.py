"""``audioguard client`` without a server: the request it builds, the way it reads answers."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import pytest

from audioguard import client
from contract.cli_style import hyphenated, known_flags
from contract.weights_status import NOT_OFFICIAL_WARNING
from tests.support.cli import run_audioguard
from tests.support.serverutil import free_port


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


def test_flags_become_typed_v2_parameters() -> None:
    flags = ["--privacy", "dp_noise", "--all-windows", "--top-k", "3", "--start-time", "1.5"]
    args = client.build_parser().parse_args(["a.wav", *flags, "--filter", "Speech,Gunshot, gunfire"])
    assert client.request_parameters(args) == {
        "privacy": "dp_noise",
        "all_windows": True,
        "top_k": 3,
        "start_time": 1.5,  # a JSON number over REST; the gRPC call sends it as text (no double there)
        "filter": "Speech,Gunshot, gunfire",
    }
    assert client.request_parameters(client.build_parser().parse_args(["a.wav"])) == {}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("http://10.0.0.2:5000/", "http://10.0.0.2:5000/"),
        ("https://gateway.local", "https://gateway.local"),
        ("grpc://10.0.0.2:5000", "http://10.0.0.2:5000"),
    ],
)
def test_rest_url_accepts_the_same_forms_as_grpc(given: str, expected: str) -> None:
    assert client.rest_url(given) == expected


def test_underscore_flags_are_aliases_and_bad_values_are_refused_before_any_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = client.build_parser().parse_args(
        hyphenated(["a.wav", "--model_name", "m", "--top_k=2"], known_flags(client.build_parser()))
    )
    assert (args.model_name, args.top_k) == ("m", 2)
    for bad, message in (
        (["--privacy", "scrambel"], "argument --privacy: invalid choice: 'scrambel'"),
        (["--top-k", "600"], "argument --top-k: must be between 1 and 527, got 600"),
    ):
        with pytest.raises(SystemExit) as stop:
            client.main(["a.wav", *bad])
        assert stop.value.code == 2 and message in capsys.readouterr().err


ANOMALY = {  # one event, as the analysis lists it (docs/anomalies-and-dht.md)
    "event_id": "aaaf5643-83d6-5299-af82-3aa66a85315e",
    "group": "glass_break",
    "label": "Glass breaking",
    "threshold": 0.5,
    "peak_score": 0.9199999570846558,
    "start_seconds": 5.04,
    "end_seconds": 6.12,
    "window_start_seconds": 0.0,
    "window_end_seconds": 14.4,
    "triggered_by": [
        {"index": 443, "label": "Shatter", "score": 0.92},
        {"index": 441, "label": "Glass", "score": 0.71},
        {"index": 440, "label": "Crack", "score": 0.6},
        {"index": 470, "label": "Breaking", "score": 0.55},
    ],
}


def test_result_and_text_from_output_tensors() -> None:
    outputs = {
        "label_id": np.array([[b"/m/07qcpgn", b"/m/09d5_"]], dtype=object),
        "label": np.array([[b"Tap", b"Owl"]], dtype=object),
        "probability": np.array([[0.75, 0.8402]], dtype=np.float32),
        "window_start_seconds": np.array([2.88], dtype=np.float32),
        "window_end_seconds": np.array([12.48], dtype=np.float32),
        "anomalies": np.array([json.dumps([ANOMALY]).encode()], dtype=object),
    }
    parameters = {
        "privacy_method": "scramble",
        "privacy_requested": "none",
        "duration_seconds": "16.500",
        "anomaly_scan_start_seconds": "0.000",
        "anomaly_scan_end_seconds": "16.320",
        "weights_official": False,
        "weights_warning": NOT_OFFICIAL_WARNING,
        "analysis_id": "a1",
    }
    result = client.result_from_outputs(outputs, parameters)
    # float32 tensors read back as the numbers the service wrote (not 0.8402000069618225, 2.880000114)
    assert result["windows"] == [
        {
            "start_seconds": 2.88,
            "end_seconds": 12.48,
            "top": [
                {"label_id": "/m/07qcpgn", "label": "Tap", "probability": 0.75},
                {"label_id": "/m/09d5_", "label": "Owl", "probability": 0.8402},
            ],
        }
    ]
    assert result["anomalies"] == [ANOMALY]
    assert (result["duration_seconds"], result["anomaly_scan_seconds"]) == (16.5, [0.0, 16.32])
    assert result["weights_official"] is False and result["parameters"] == parameters
    assert client.describe("a.wav", result).splitlines() == [
        "a.wav  (16.50 s, privacy scramble, asked for none)",
        f"  WARNING: {NOT_OFFICIAL_WARNING}",
        "  2.88-12.48 s",
        "    1. Tap                                      0.75",
        "    2. Owl                                      0.84",
        "  1 anomaly in 0.00-16.32 s:",
        "    Glass breaking [glass_break] 0.92 (threshold 0.50) 5.04-6.12 s: "
        "Shatter 0.92, Glass 0.71, Crack 0.60 (+1 more)",
    ]


def test_official_weights_print_no_warning_and_no_anomaly_is_said() -> None:
    document = {
        "duration_seconds": 3.0,
        "privacy_method": "none",
        "privacy_requested": "none",
        "weights_official": True,
        "windows": [],
        "anomalies": [],
        "anomaly_scan_seconds": [0.0, 2.88],
    }
    assert client.describe("b.wav", document).splitlines() == [
        "b.wav  (3.00 s, privacy none)",
        "  no anomaly in 0.00-2.88 s",
    ]


def test_an_older_service_that_does_not_state_its_weights_is_not_called_official() -> None:
    outputs = {
        "label_id": np.zeros((1, 0), dtype=object),
        "label": np.zeros((1, 0), dtype=object),
        "probability": np.zeros((1, 0), dtype=np.float32),
        "window_start_seconds": np.array([0.0], dtype=np.float32),
        "window_end_seconds": np.array([0.96], dtype=np.float32),
        "anomalies": np.array([b"[]"], dtype=object),
    }
    result = client.result_from_outputs(outputs, {"privacy_method": "none"})
    assert result["weights_official"] is False and result["weights_warning"] == NOT_OFFICIAL_WARNING


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


def test_a_url_of_another_scheme_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF")
    assert client.main([str(audio), "--url", "ftp://127.0.0.1:5000"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{audio}: error: invalid service URL 'ftp://127.0.0.1:5000': expected http://host:port"
    ]


def test_grpc_failure_is_one_line_without_kserve_log_or_traceback(tmp_path: Path) -> None:
    """KServe's gRPC client logs each failed call with a traceback; the command prints only its line."""
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio")
    command = ["client", "--grpc", "--url", f"127.0.0.1:{free_port()}", "--timeout", "20", str(notes)]
    finished = run_audioguard(*command, timeout=120)
    assert finished.returncode == 1
    lines = finished.stderr.splitlines()
    assert len(lines) == 1, finished.stderr
    assert lines[0].startswith(f"{notes}: error: UNAVAILABLE: ")
    assert "Traceback" not in finished.stderr and "kserve.trace" not in finished.stderr


@pytest.fixture
def http1_server() -> Iterator[int]:
    """A plain HTTP/1 server on loopback (what the REST port is to a gRPC client); its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def grpc_server() -> Iterator[int]:
    """A gRPC server on loopback without services (what the gRPC port is to a REST client); its port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(grace=None)


def run_client(*args: str) -> subprocess.CompletedProcess[str]:
    return run_audioguard("client", *args, timeout=120)


def test_grpc_to_the_rest_port_names_the_mix_up(tmp_path: Path, http1_server: int) -> None:
    """gRPC's own words are an HTTP/2 parse error; the command says which port speaks what."""
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF")
    for url in (f"127.0.0.1:{http1_server}", f"http://127.0.0.1:{http1_server}"):
        finished = run_client("--grpc", "--url", url, "--timeout", "20", str(audio))
        assert finished.returncode == 1
        assert finished.stderr.splitlines() == [
            f"{audio}: error: 127.0.0.1:{http1_server} speaks HTTP/1.1, not gRPC: it is the service's "
            "REST port; gRPC is on port 5001 by default (audioguard serve prints both), or leave out --grpc"
        ]


def test_rest_to_the_grpc_port_names_the_mix_up(tmp_path: Path, grpc_server: int) -> None:
    """http.client's own words are a status line of binary HTTP/2 frame bytes."""
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF")
    finished = run_client("--url", f"127.0.0.1:{grpc_server}", "--timeout", "20", str(audio))
    assert finished.returncode == 1
    assert finished.stderr.splitlines() == [
        f"{audio}: error: http://127.0.0.1:{grpc_server} speaks gRPC (HTTP/2), not REST: it is the "
        "service's gRPC port; REST is on port 5000 by default (audioguard serve prints both), or add --grpc"
    ]
