"""Optional DHT request listener: analyse files named in SIFIS requests (off by default).

With it the service runs without the SIFIS Analytics-API: it subscribes to the
broker's WebSocket (``ws://host:3000/ws``) and, for every persistent write to
``SIFIS:Privacy_Aware_Audio_Anomaly_Detection`` whose value is
``{description, requestor_id, requestor_type, request_id, Type: "Audio_file",
audio_file, method}`` (``Type`` may be absent, as the Analytics-API allows; another
type is ignored), reads ``audio_file`` from the configured folder and hands
the bytes and the request value to an injected ``process`` coroutine (the
transformer's analysis, which records the result in the outbox). A write of ``Type:
"Audio_mode"`` (``{"mode": "away", "source": NAME}``, no source: every source) goes to the
injected ``modes`` coroutine (the monitor's modes, which records the change); a bad one is
logged, naming the problem, and changes nothing.

Only plain file names inside the folder are accepted (no paths, no ``..``, no
symbolic links leading out). Requests written while the socket was down are
not replayed: the broker only broadcasts new writes. A dropped socket is
re-opened with exponential backoff.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from contract.errors import AudioGuardError, AudioTooLarge, InvalidInput
from transformer.dht.backoff import Backoff
from transformer.dht.topics import MODE_REQUEST_TYPE, REQUEST_TOPIC_NAME, REQUEST_TYPE
from transformer.metrics import LISTENER_CONNECTED

logger = logging.getLogger(__name__)

#: ``process(audio_bytes, request_value)``: analyse one requested recording
ProcessCallback = Callable[[bytes, dict[str, Any]], Awaitable[None]]
#: ``modes(request_value)``: apply a mode request (AudioGuardError names a bad one)
ModeCallback = Callable[[dict[str, Any]], Awaitable[object]]


def resolve_audio_file(audio_dir: Path, name: object) -> Path:
    """The file ``name`` inside ``audio_dir``; anything but a plain name of a file there is refused.

    Raises:
        InvalidInput: not a plain file name, leads outside the folder, or no such file.
    """
    if (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or any(char in name for char in "/\\\x00")
        or Path(name).name != name
    ):
        raise InvalidInput(f"audio_file must be a plain file name inside the audio folder, got {name!r:.80}")
    root = audio_dir.resolve()
    path = (root / name).resolve()
    if path.parent != root:
        raise InvalidInput(f"audio_file {name!r} leads outside the audio folder")
    if not path.is_file():
        raise InvalidInput(f"audio_file {name!r} is not a file in the audio folder")
    return path


def _read_limited(path: Path, max_bytes: int | None) -> bytes:
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise AudioTooLarge(f"audio_file {path.name!r} has {size} bytes; at most {max_bytes} are accepted")
    return path.read_bytes()


class RequestListener:
    """Subscribes to DHT analysis requests and processes the named files."""

    def __init__(
        self,
        ws_url: str,
        audio_dir: Path,
        process: ProcessCallback,
        *,
        topic_name: str = REQUEST_TOPIC_NAME,
        max_file_bytes: int | None = None,
        max_concurrency: int = 2,
        backoff: Backoff | None = None,
        open_timeout: float = 10.0,
        modes: ModeCallback | None = None,
    ) -> None:
        """
        Args:
            ws_url: the broker's WebSocket, e.g. ``ws://localhost:3000/ws``.
            audio_dir: folder holding the requested files.
            process: coroutine analysing one recording; its errors are logged, not raised.
            topic_name: request topic.
            max_file_bytes: larger files are refused (None = no limit here).
            max_concurrency: requests analysed at the same time.
            backoff: reconnect delays (default: 0.5 s doubling up to 30 s).
            open_timeout: seconds for the WebSocket handshake.
            modes: applies an ``Audio_mode`` request (None: such requests are ignored).
        """
        self.ws_url = ws_url
        self.audio_dir = audio_dir
        self.process = process
        self.topic_name = topic_name
        self.max_file_bytes = max_file_bytes
        self.backoff = backoff or Backoff(0.5, 30.0)
        self.open_timeout = open_timeout
        self.modes = modes
        self._slots = asyncio.Semaphore(max_concurrency)
        self._task: asyncio.Task[None] | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        #: set while subscribed (a request written before this is not seen)
        self.connected = asyncio.Event()
        #: successful connections so far (reconnects are visible here)
        self.connections = 0

    async def start(self) -> None:
        """Start listening on the running loop."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="dht-request-listener")

    async def stop(self) -> None:
        """Stop listening and cancel analyses in progress."""
        tasks = [task for task in (self._task, *self._jobs) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        self.connected.clear()
        LISTENER_CONNECTED.set(0)

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                async with connect(
                    self.ws_url, open_timeout=self.open_timeout, max_size=None, proxy=None
                ) as connection:
                    failures = 0
                    self.connections += 1
                    self.connected.set()
                    LISTENER_CONNECTED.set(1)
                    logger.info("listening for %s requests on %s", self.topic_name, self.ws_url)
                    await self._listen(connection)
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI, ConnectionClosed) as error:
                logger.warning("DHT request listener: %s: %s", type(error).__name__, error)
            except Exception:
                # anything else (a websockets surprise) must not end the subscription for good
                logger.exception("DHT request listener failed; reconnecting")
            self.connected.clear()
            LISTENER_CONNECTED.set(0)
            failures += 1
            delay = self.backoff.delay(failures)
            logger.info("DHT request listener reconnects in %.1f s", delay)
            await asyncio.sleep(delay)

    async def _listen(self, connection: ClientConnection) -> None:
        async for frame in connection:
            request = self._request_of(frame)
            if request is not None:
                job = asyncio.create_task(self._serve(request))
                self._jobs.add(job)
                job.add_done_callback(self._jobs.discard)

    def _request_of(self, frame: str | bytes) -> dict[str, Any] | None:
        """The request value of a broadcast on the request topic, else None."""
        try:
            message = json.loads(frame)
        except ValueError:
            return None
        persistent = message.get("Persistent") if isinstance(message, dict) else None
        if (
            not isinstance(persistent, dict)
            or persistent.get("topic_name") != self.topic_name
            or persistent.get("deleted")
        ):
            return None
        value = persistent.get("value")
        if not isinstance(value, dict):
            logger.warning("ignored a %s write whose value is not an object", self.topic_name)
            return None
        return value

    async def _serve(self, request: dict[str, Any]) -> None:
        request_id = str(request.get("request_id", ""))[:80]
        kind = request.get("Type")
        if kind == MODE_REQUEST_TYPE and self.modes is not None:
            await self._set_mode(request, request_id)
            return
        # the Analytics-API accepts a request without a Type; only another type is not ours
        if kind is not None and kind != REQUEST_TYPE:
            logger.warning("request %r: Type %r is not %r; ignored", request_id, kind, REQUEST_TYPE)
            return
        async with self._slots:
            try:
                path = resolve_audio_file(self.audio_dir, request.get("audio_file"))
                audio = await asyncio.to_thread(_read_limited, path, self.max_file_bytes)
            except (InvalidInput, AudioTooLarge, OSError) as error:
                logger.warning("request %r refused: %s", request_id, error)
                return
            try:
                await self.process(audio, request)
            except Exception as error:
                # one bad recording must not stop the listener; never log the audio
                logger.warning("request %r failed: %s: %s", request_id, type(error).__name__, error)
            else:
                logger.info("request %r analysed (%s)", request_id, path.name)

    async def _set_mode(self, request: dict[str, Any], request_id: str) -> None:
        assert self.modes is not None
        fields = {key: value for key, value in request.items() if key in ("mode", "source")}
        try:
            await self.modes(fields)
        except AudioGuardError as error:  # names the field, never echoes the value
            logger.warning("mode request %r refused: %s", request_id, error.message)
        else:
            logger.info("mode request %r applied", request_id)
