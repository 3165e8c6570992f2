"""A live WAV stream on loopback, paced in real time, whose loudness a test switches.

An endless 16-bit mono 16 kHz WAV (the "unknown length" sizes of a live stream) over HTTP,
sent in 0.1-s chunks at the pace of the audio, to any number of clients. Quiet noise by default;
``burst(seconds)`` makes the next seconds loud noise (what a test wants detected), and says when
the loud audio started going out (wall clock).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Final

import numpy as np

RATE: Final = 16_000
CHUNK: Final = RATE // 10
HEADER: Final = (
    b"RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80>\x00\x00\x00}\x00\x00"
    b"\x02\x00\x10\x00data\xff\xff\xff\xff"
)


class LiveWavStream:
    """``url`` serves the stream until ``close``; ``quiet_amplitude`` and ``loud_amplitude`` set
    the noise levels (uniform noise of that peak)."""

    def __init__(self, quiet_amplitude: float = 0.001, loud_amplitude: float = 0.5) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/live.wav"
        self.quiet, self.loud = quiet_amplitude, loud_amplitude
        self._loud_until = 0.0
        self._closed = threading.Event()
        self._rng = np.random.default_rng(26)
        threading.Thread(target=self._accept, daemon=True).start()

    def burst(self, seconds: float) -> float:
        """The next ``seconds`` of audio are loud; returns when they start (time.time())."""
        started = time.time()
        self._loud_until = started + seconds
        return started

    def _chunk(self) -> bytes:
        amplitude = self.loud if time.time() < self._loud_until else self.quiet
        samples = self._rng.uniform(-amplitude, amplitude, CHUNK)
        return (samples * 32767).astype("<i2").tobytes()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            try:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\n\r\n" + HEADER)
                due = time.monotonic()
                while not self._closed.is_set():
                    connection.sendall(self._chunk())
                    due += CHUNK / RATE
                    self._closed.wait(max(0.0, due - time.monotonic()))
            except OSError:
                return

    def close(self) -> None:
        self._closed.set()
        self.listener.close()
