"""A real RTSP camera on loopback for the monitor tests: GStreamer's RTSP server (Debian's
``gir1.2-gst-rtsp-server-1.0``) serving a WAV file's audio as Opus over RTP, as a camera would.

The server runs under the system Python (where Debian's ``python3-gi`` lives, not the project's
venv) as a child process: ``RtspCamera(wav).start()`` returns once it listens, ``url`` is its
stream, ``stop()`` kills it (a camera going away) and ``start()`` again brings it back on the same
port. Each client gets the file from its beginning at real time (a shared live stream would need a
live source; a replay is what the tests need). ``available()`` says whether this machine can run
it; ``scripts/install-system-tools.sh`` installs what it needs.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.serverutil import free_port

SYSTEM_PYTHON = "/usr/bin/python3"
TYPELIB = "GstRtspServer-1.0.typelib"

# Runs under the system Python: argv = wav path, port, mount path.
_SERVER = r"""
import sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer, GLib

Gst.init(None)
wav, port, mount = sys.argv[1], sys.argv[2], sys.argv[3]
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    f'( filesrc location="{wav}" ! wavparse ! audioconvert ! audioresample ! '
    "audio/x-raw,rate=48000,channels=1 ! opusenc bitrate=64000 ! rtpopuspay name=pay0 pt=96 )"
)
factory.set_shared(False)
server.get_mount_points().add_factory(mount, factory)
server.attach(None)
print("listening", flush=True)
GLib.MainLoop().run()
"""


def available() -> str | None:
    """None when an RTSP camera can run here, else why not."""
    if not Path(SYSTEM_PYTHON).is_file():
        return f"no {SYSTEM_PYTHON} for GStreamer's Python bindings"
    found = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
         "from gi.repository import GstRtspServer, Gst; Gst.init(None); "
         "assert all(Gst.ElementFactory.find(n) for n in ('wavparse', 'opusenc', 'rtpopuspay'))"],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if found.returncode != 0:
        return "GStreamer's RTSP server is not installed (bash scripts/install-system-tools.sh)"
    if shutil.which("ffmpeg") is None:
        return "ffmpeg is not installed (bash scripts/install-system-tools.sh)"
    return None


class RtspCamera:
    """GStreamer's RTSP server streaming one WAV file's audio at ``url``."""

    def __init__(self, wav: Path, port: int | None = None, mount: str = "/audio") -> None:
        self.wav, self.port, self.mount = wav, port or free_port(), mount
        self._process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{self.mount}"

    def start(self, timeout: float = 20.0) -> RtspCamera:
        self._process = subprocess.Popen(
            [SYSTEM_PYTHON, "-c", _SERVER, str(self.wav), str(self.port), self.mount],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        if self._process.stdout.readline().strip() != "listening":
            _, errors = self._process.communicate(timeout=10)
            raise RuntimeError(f"the RTSP server did not start: {errors[-1000:]}")
        deadline = time.monotonic() + timeout
        while True:  # the GLib loop accepts connections once it runs
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        """SIGKILL: the camera is gone, its connections reset."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.communicate(timeout=10)
        self._process = None

    def __enter__(self) -> RtspCamera:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
