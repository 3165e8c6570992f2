"""Detectors for audio leaking out of a service: fingerprints, open-file watcher, TCP relay.

- ``AudioFingerprints``: what a recording looks like wherever a copy of it could
  end up: chunks of the encoded file (raw, base64 at every alignment, hex,
  ``repr`` escapes), the file's digests (md5/sha1/sha256/sha512, hex and base64),
  and chunks of the samples the transformer holds (decoded mono,
  each channel, the 16 kHz waveform) as float32/float64/int16 bytes (raw and
  base64), plus runs of sample values printed as text (``repr``, numpy printing).
- ``OpenFileWatcher``: polls ``/proc/<pid>/fd`` of processes in a background
  thread and reads, through ``/proc``, every file opened after the baseline that
  is deleted (e.g. a spooled upload) or open for writing, while it is open.
- ``TcpRelay``: a loopback forwarder that records every byte a client sends
  upstream (what the transformer sends to the predictor or the DHT).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from transformer.audio.resample import resample_to_16k

CHUNK_BYTES = 64
CHUNK_SAMPLES = 32
#: Consecutive printed sample values that count as a leak: with values printed to
#: only 3 decimals a chance match in a log is ~1e-7 per run of numbers.
TEXT_RUN = 4
#: Decimals a printed float needs to be compared with the samples.
MIN_DECIMALS = 3
MAX_READ_BYTES = 64 * 1024 * 1024
#: A printed number standing on its own (not digits inside base64, hex or a name).
_NUMBER = re.compile(rb"(?<![\w.])-?\d+(?:\.(\d+))?([eE][-+]?\d+)?(?![\w])")
_O_ACCMODE = 0o3


def base64_renderings(chunk: bytes) -> list[bytes]:
    """base64 of ``chunk`` as it appears inside the base64 of a larger buffer, at each of
    the three alignments the chunk can have there (whole 3-byte groups only)."""
    renderings = []
    for skip in range(3):
        groups = (len(chunk) - skip) // 3
        renderings.append(base64.b64encode(chunk[skip : skip + 3 * groups]))
    return renderings


def escaped_rendering(chunk: bytes) -> bytes:
    """How ``repr(bytes)`` shows ``chunk`` (inside the quotes); needs a chunk without quotes."""
    return repr(chunk)[2:-1].encode("ascii")


def _quote_free_offset(data: bytes, offset: int, length: int) -> int:
    """The first offset >= ``offset`` whose ``length`` bytes hold no quote character."""
    while any(byte in data[offset : offset + length] for byte in b"'\""):
        offset += 1
    return offset


@dataclass(frozen=True)
class _SampleSequence:
    """Values of one sample sequence sorted by their rounded key, for run lookups."""

    name: str
    values: np.ndarray  # (n,) float64 or int64, in signal order
    sorted_keys: np.ndarray
    order: np.ndarray

    @classmethod
    def of(cls, name: str, values: np.ndarray, scale: float) -> _SampleSequence:
        keys = np.round(values * scale).astype(np.int64)
        order = np.argsort(keys, kind="stable")
        return cls(name, values, keys[order], order)

    def positions_near(self, key: int, spread: int) -> np.ndarray:
        low = np.searchsorted(self.sorted_keys, key - spread, side="left")
        high = np.searchsorted(self.sorted_keys, key + spread, side="right")
        return self.order[low:high]


@dataclass(frozen=True)
class Finding:
    """One fingerprint found in one place."""

    where: str
    kind: str

    def __str__(self) -> str:
        return f"{self.kind} in {self.where}"


@dataclass
class AudioFingerprints:
    """Fingerprints of one recording (see the module docstring)."""

    needles: dict[bytes, str]  # byte string -> what it is
    encoded_offsets: list[int]  # where the encoded-file chunks start in the file
    float_sequences: list[_SampleSequence]
    int_sequences: list[_SampleSequence]
    mono_16k: np.ndarray  # (n,) float64: the waveform the transformer analyses

    @classmethod
    def of_wav(cls, wav: bytes, chunk_times: Iterable[float]) -> AudioFingerprints:
        """Fingerprints of a PCM16 WAV file; sample chunks start at ``chunk_times`` (seconds).

        The decoded forms are computed as the service computes them (libsndfile's
        int16 scaling, mean over channels, ``resample_to_16k``), so they are the
        same bytes the transformer holds in memory.
        """
        channels_int, rate = sf.read(io.BytesIO(wav), dtype="int16", always_2d=True)
        channels = channels_int.astype(np.float64) / 32768.0
        mono = channels.mean(axis=1)
        mono_16k = resample_to_16k(mono, rate)
        needles: dict[bytes, str] = {}

        data_start = len(wav) - channels_int.nbytes
        encoded_offsets = [int(o) for o in np.linspace(data_start, len(wav) - 4 * CHUNK_BYTES, 6)]
        for index, offset in enumerate(encoded_offsets):
            chunk = wav[offset : offset + CHUNK_BYTES]
            needles[chunk] = f"encoded file bytes #{index}"
            needles[chunk.hex().encode()] = f"encoded file bytes as hex #{index}"
            for rendering in base64_renderings(chunk):
                needles[rendering] = f"encoded file bytes as base64 #{index}"
            quote_free = _quote_free_offset(wav, offset + CHUNK_BYTES, CHUNK_BYTES)
            needles[escaped_rendering(wav[quote_free : quote_free + CHUNK_BYTES])] = (
                f"encoded file bytes as repr() escapes #{index}"
            )

        # a digest of the file identifies it as well as the file does (a known recording)
        for algorithm in ("md5", "sha1", "sha256", "sha512"):
            digest = hashlib.new(algorithm, wav).digest()
            needles[digest.hex().encode()] = f"{algorithm} of the file (hex)"
            needles[digest.hex().upper().encode()] = f"{algorithm} of the file (HEX)"
            needles[base64.b64encode(digest).rstrip(b"=")] = f"{algorithm} of the file (base64)"
            needles[base64.urlsafe_b64encode(digest).rstrip(b"=")] = f"{algorithm} of the file (base64url)"

        forms = {
            "16 kHz waveform": (mono_16k, 16_000),
            "decoded mono": (mono, rate),
            "decoded left channel": (channels[:, 0], rate),
        }
        for name, (signal, signal_rate) in forms.items():
            for seconds in chunk_times:
                start = round(seconds * signal_rate)
                piece = signal[start : start + CHUNK_SAMPLES]
                int16 = np.clip(np.round(piece * 32768.0), -32768, 32767).astype("<i2")
                for dtype_name, raw in (
                    ("float64", piece.astype("<f8").tobytes()),
                    ("float32", piece.astype("<f4").tobytes()),
                    ("int16", int16.tobytes()),
                ):
                    kind = f"{name} as {dtype_name} at {seconds:g} s"
                    needles[raw] = kind
                    for rendering in base64_renderings(raw):
                        needles[rendering] = f"{kind} (base64)"
        float_sequences = [
            _SampleSequence.of("16 kHz waveform printed", mono_16k, 10**MIN_DECIMALS),
            _SampleSequence.of("decoded mono printed", mono, 10**MIN_DECIMALS),
            _SampleSequence.of("decoded left channel printed", channels[:, 0], 10**MIN_DECIMALS),
            _SampleSequence.of("decoded right channel printed", channels[:, 1], 10**MIN_DECIMALS),
        ]
        int_sequences = [
            _SampleSequence.of("PCM samples printed", channels_int.reshape(-1).astype(np.int64), 1),
            _SampleSequence.of("left PCM samples printed", channels_int[:, 0].astype(np.int64), 1),
            _SampleSequence.of(
                "16 kHz waveform printed as int16",
                np.clip(np.round(mono_16k * 32768.0), -32768, 32767).astype(np.int64),
                1,
            ),
        ]
        return cls(needles, encoded_offsets, float_sequences, int_sequences, mono_16k)

    def find(self, data: bytes, where: str) -> list[Finding]:
        """Every fingerprint kind present in ``data`` (binary needles and printed sample runs)."""
        found = {kind for needle, kind in self.needles.items() if needle in data}
        found.update(self._printed_runs(data))
        return [Finding(where, kind) for kind in sorted(found)]

    def _printed_runs(self, data: bytes) -> set[str]:
        floats: list[tuple[float, int]] = []
        ints: list[int] = []
        for match in _NUMBER.finditer(data):
            decimals, exponent = match.group(1), match.group(2)
            if decimals is None:
                if exponent is None and len(match.group(0)) <= 7:
                    ints.append(int(match.group(0)))
            elif len(decimals) >= MIN_DECIMALS:
                floats.append((float(match.group(0)), len(decimals)))
        found: set[str] = set()
        for start in range(len(floats) - TEXT_RUN + 1):
            run = floats[start : start + TEXT_RUN]
            for sequence in self.float_sequences:
                if self._float_run_in(run, sequence):
                    found.add(sequence.name)
        for start in range(len(ints) - TEXT_RUN + 1):
            int_run = ints[start : start + TEXT_RUN]
            for sequence in self.int_sequences:
                for position in sequence.positions_near(int_run[0], 0):
                    if list(sequence.values[position : position + TEXT_RUN]) == int_run:
                        found.add(sequence.name)
        return found

    @staticmethod
    def _float_run_in(run: list[tuple[float, int]], sequence: _SampleSequence) -> bool:
        """True if ``run`` equals consecutive samples to the precision it was printed with."""
        printed = np.array([value for value, _ in run])
        if abs(printed[0]) > 1.0 + 1e-9:
            return False  # samples are in [-1, 1]
        tolerance = np.array([0.5 * 10.0**-decimals + 1e-12 for _, decimals in run])
        positions = sequence.positions_near(round(printed[0] * 10**MIN_DECIMALS), 1)
        positions = positions[positions + len(run) <= sequence.values.size]
        if positions.size == 0:
            return False
        candidates = sequence.values[positions[:, None] + np.arange(len(run))]
        return bool((np.abs(candidates - printed) <= tolerance).all(axis=1).any())


# --- files ------------------------------------------------------------------------------


def read_bounded(path: Path | str) -> bytes:
    """At most MAX_READ_BYTES of a file; b"" when it vanished or cannot be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_READ_BYTES)
    except OSError:
        return b""


def files_under(roots: Iterable[Path]) -> Iterator[Path]:
    """Every regular file below ``roots`` (symlinks not followed)."""
    for root in roots:
        for directory, _, names in os.walk(root):
            for name in names:
                path = Path(directory, name)
                if path.is_file() and not path.is_symlink():
                    yield path


def scan_files(paths: Iterable[Path], fingerprints: AudioFingerprints) -> list[Finding]:
    return [finding for path in paths for finding in fingerprints.find(read_bounded(path), str(path))]


def new_entries(directory: Path, baseline: set[str]) -> list[Path]:
    """Entries of ``directory`` whose names were not in ``baseline``."""
    try:
        return [directory / name for name in os.listdir(directory) if name not in baseline]
    except OSError:
        return []


# --- open files of running processes ------------------------------------------------------


def session_members(leader: int) -> list[int]:
    """Pids whose session id is ``leader`` (a process started with start_new_session)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[4]) == leader:
                    members.append(int(entry))
    return members


@dataclass(frozen=True)
class OpenedFile:
    """A regular file a watched process opened after the baseline."""

    pid: int
    fd: int
    target: str  # readlink of /proc/pid/fd/N, " (deleted)" suffix when unlinked
    writable: bool

    @property
    def deleted(self) -> bool:
        return self.target.endswith(" (deleted)")


@dataclass
class OpenFileWatcher:
    """Poll the open files of ``pids()`` until stopped; read suspicious ones through /proc.

    A file counts as suspicious when it is deleted while open (what a spooled
    upload or ``tempfile.TemporaryFile`` looks like) or open for writing. Its
    content is read while the process still holds it and scanned with
    ``fingerprints``.
    """

    pids: Callable[[], list[int]]
    fingerprints: AudioFingerprints
    interval: float = 0.005
    opened: set[OpenedFile] = field(default_factory=set)
    findings: set[Finding] = field(default_factory=set)
    polls: int = 0
    _baseline: set[tuple[int, int, str]] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> OpenFileWatcher:
        self._baseline = {(pid, fd, target) for pid, fd, target in self._open_fds(self.pids())}
        self._thread = threading.Thread(target=self._run, name="open-file-watcher", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(10)
        self._poll(self.pids())  # whatever is still open at the end

    def _run(self) -> None:
        pids = self.pids()
        refreshed = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - refreshed > 0.5:
                pids, refreshed = self.pids(), time.monotonic()
            self._poll(pids)
            self._stop.wait(self.interval)

    @staticmethod
    def _open_fds(pids: list[int]) -> Iterator[tuple[int, int, str]]:
        for pid in pids:
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for fd in fds:
                with contextlib.suppress(OSError):
                    yield pid, int(fd), os.readlink(f"/proc/{pid}/fd/{fd}")

    def _poll(self, pids: list[int]) -> None:
        self.polls += 1
        for pid, fd, target in self._open_fds(pids):
            if (pid, fd, target) in self._baseline or not target.startswith("/"):
                continue  # sockets, pipes, anon inodes, or open since before the watch
            try:
                flags = int(Path(f"/proc/{pid}/fdinfo/{fd}").read_text().split("flags:")[1].split()[0], 8)
            except (OSError, IndexError, ValueError):
                continue
            opened = OpenedFile(pid, fd, target, writable=bool(flags & _O_ACCMODE))
            self.opened.add(opened)
            if opened.deleted or opened.writable:
                where = f"pid {pid} fd {fd} -> {target}"
                self.findings.update(self.fingerprints.find(read_bounded(f"/proc/{pid}/fd/{fd}"), where))

    def suspicious(self) -> list[OpenedFile]:
        return sorted((f for f in self.opened if f.deleted or f.writable), key=lambda f: (f.pid, f.fd))


# --- network --------------------------------------------------------------------------------


class TcpRelay:
    """Forward 127.0.0.1:``port`` to ``upstream``, recording the bytes sent upstream."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._sent = bytearray()
        self._closed = False
        threading.Thread(target=self._accept, name="tcp-relay", daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def sent(self) -> bytes:
        """Everything clients sent upstream so far."""
        with self._lock:
            return bytes(self._sent)

    def sent_count(self) -> int:
        with self._lock:
            return len(self._sent)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if record:
                    with self._lock:
                        self._sent += chunk
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
