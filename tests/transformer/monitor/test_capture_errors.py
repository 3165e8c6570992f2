"""ffmpeg's words turned into reasons a person can act on.

The first tests run the real ffmpeg through a source's supervisor against what this machine can
make fail for real (an unknown host, a closed port on loopback, HTTP answers of a real server in
a thread, no PulseAudio server, a text file given as audio, a missing sound card) and read the
reason the status and the console give. The last one holds ffmpeg 5.1's stderr lines captured
from real runs against what cannot be set up in a test (a TLS port speaking plain text, an RTSP
port that never answers, a camera's refusal) and checks the table on them.
"""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dht_standin import eventually
from tests.support.serverutil import free_port
from tests.transformer.monitor.test_supervisor import supervised
from transformer.monitor.capture_errors import explain
from transformer.monitor.ffmpeg_log import FfmpegLog
from transformer.monitor.notices import Notice
from transformer.monitor.sources import SourceSpec

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")


@pytest.fixture(scope="module")
def answering() -> Iterator[str]:
    """An HTTP server on loopback answering ``/<status>`` with that status."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = int(self.path.strip("/"))
            self.send_response(status)
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="camera"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def first_reason(source: SourceSpec) -> tuple[str, list[Notice]]:
    """The reason the supervisor gives for the first failed capture of ``source``."""
    notices: list[Notice] = []
    async with supervised(source, notify=notices.append) as (supervisor, _):
        await eventually(
            lambda: supervisor.status.restarts >= 1 or supervisor.status.state == "failed", 20, "a failure"
        )
        return supervisor.status.last_error or "", notices


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("401", "authentication failed (401): check the user and password"),
        ("403", "access denied (403)"),
        ("404", "not found (404): check the path"),
        ("503", "server error (5xx)"),
    ],
)
async def test_an_http_servers_refusal_is_named(answering: str, path: str, reason: str) -> None:
    said, notices = await first_reason(SourceSpec(name="cam", url=f"{answering}/{path}"))
    assert said == reason
    assert notices[0].line().startswith(f"cam: cannot connect: {reason}; retrying in ")


async def test_network_failures_are_named_not_passed_through() -> None:
    # ffmpeg's last line for an unknown host is "Input/output error": the reason is a line before
    said, _ = await first_reason(SourceSpec(name="web", url="http://no-such-host.invalid/x"))
    assert said == "host not found: no-such-host.invalid"
    said, _ = await first_reason(SourceSpec(name="cam", url="rtsp://no-such-host.invalid/stream"))
    assert said == "host not found: no-such-host.invalid"
    port = free_port()  # nothing listens there
    said, _ = await first_reason(SourceSpec(name="web", url=f"http://viewer:s3cret@127.0.0.1:{port}/x"))
    assert said == "connection refused (nothing listens on that port)"


async def test_sound_servers_and_cards_that_are_not_there_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_SERVER", "unix:/nonexistent/pulse/native")  # no server, even on a desktop
    said, _ = await first_reason(SourceSpec(name="mic", url="pulse:default"))  # ffmpeg: "No such process"
    assert said == "no sound server (PulseAudio is not running or not reachable)"
    said, _ = await first_reason(SourceSpec(name="mic", url="alsa:hw:7"))  # "Input/output error"
    assert said == "sound card not found"


async def test_a_text_file_or_a_silent_film_given_as_audio_is_named(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a recording\n" * 10)
    said, _ = await first_reason(SourceSpec(name="notes", url=str(tmp_path / "notes.txt")))
    assert said == f"not audio (ffmpeg cannot read it): {tmp_path / 'notes.txt'}"
    film = tmp_path / "film.mp4"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=d=1:s=64x48",
         "-c:v", "mpeg4", str(film)],
        check=True,
    )  # fmt: skip
    said, _ = await first_reason(SourceSpec(name="film", url=f"file:{film}"))
    assert said == f"no audio stream: {film}"


# ffmpeg 5.1 (-loglevel level+info), captured from real runs (kind, stderr, reason)
CAPTURED = [
    (
        "rtsp",
        [
            "[tls @ 0x5590d4771940] [error] An unexpected TLS packet was received.",
            "[error] rtsps://127.0.0.1:18083/x: Input/output error",
        ],
        "TLS failed (does the server speak TLS on that port?)",
    ),
    (
        "rtsp",
        ["[error] rtsp://127.0.0.1:18082/x: Invalid data found when processing input"],
        "no RTSP answer (not an RTSP server, or no answer within 5 s)",
    ),
    (
        "rtsp",
        [
            "[tls @ 0x55a4502f7940] [error] Error in the pull function.",
            "[tls @ 0x55a4502f7940] [error] IO error: Connection timed out",
            "[error] rtsps://127.0.0.1:18082/x: Connection timed out",
        ],
        "connection timed out (no answer within 5 s)",
    ),
    (
        "rtsp",
        [
            "[rtsp @ 0x56436339c9c0] [error] method DESCRIBE failed: 404 Not Found",
            "[error] rtsp://127.0.0.1:33845/nope: Server returned 404 Not Found",
        ],
        "not found (404): check the path",
    ),
    (
        "rtsp",
        [
            "[rtsp @ 0x5612] [error] method DESCRIBE failed: 401 Unauthorized",
            "[error] rtsp://viewer:***@10.0.0.7/s: Server returned 401 Unauthorized (authorization failed)",
        ],
        "authentication failed (401): check the user and password",
    ),
    (
        "file",
        ["[info] Output #0, wav, to 'pipe:1':", "[error] Output file #0 does not contain any stream"],
        "no audio stream",
    ),
    (
        "alsa",
        [
            "ALSA lib confmisc.c:855:(parse_card) cannot find card '0'",
            "ALSA lib conf.c:5180:(_snd_config_evaluate) function snd_func_card_inum returned error: "
            "No such file or directory",
        ],
        "sound card not found",
    ),
]


@pytest.mark.parametrize(("kind", "stderr", "reason"), CAPTURED)
def test_captured_ffmpeg_messages_are_read_as_a_person_needs(
    kind: str, stderr: list[str], reason: str
) -> None:
    log = FfmpegLog("cam", lambda text: text)
    for line in stderr:
        log.take(line)
    assert explain(list(log.problems), kind) == reason  # type: ignore[arg-type]
    assert all("[error]" not in line for line in log.problems)  # ffmpeg's level is not the reason's
