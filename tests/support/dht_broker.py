"""The real SIFIS-Home DHT broker (``sifis-dht-broker``) as a child process, for the tests.

The binary comes from ``bash scripts/install-dht-broker.sh`` (third_party/sifis-dht-broker:
the pinned upstream source, built or prebuilt). Each ``DhtBroker`` runs its own broker on
127.0.0.1 with a fresh random shared key (so two brokers of one test run never peer with each
other), libp2p on loopback only, and a persistent SQLite store in its own folder: a broker
stopped, killed or restarted comes back with what it had accepted, on the same port.

Controls: ``stop()`` (SIGTERM), ``kill()`` (SIGKILL), ``start()``/``restart()`` (same port,
same store), ``freeze()``/``thaw()`` (SIGSTOP/SIGCONT: the port stays open and nothing
answers). Observation: ``get``/``entries`` ask the broker's REST API; ``writes`` lists the
persistent writes the broker broadcast on its WebSocket, in order, as seen by an observer
connected before ``start()`` returns.

The faults the broker cannot produce on demand (an HTTP 5xx, a refused WebSocket write) stay
with tests/support/dht_standin.py; each test says which of the two it meets.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import threading
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

from tests.support.broker_process import BrokerProcess
from tests.support.dht_standin import Write, free_port, wait_until

_REPO = Path(__file__).resolve().parents[2]
_INSTALLED = _REPO / ".cache" / "bin" / "sifis-dht-broker"
_START_TIMEOUT_S = 20.0
# The broker has no proxy to go through: loopback only.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def broker_binary() -> Path:
    """The broker executable; skips (or fails in CI) when it was not installed."""
    configured = os.environ.get("AUDIOGUARD_DHT_BROKER")
    binary = Path(configured) if configured else _INSTALLED
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    message = f"the SIFIS DHT broker is not at {binary}: run `bash scripts/install-dht-broker.sh`"
    if os.environ.get("AUDIOGUARD_REQUIRE_DEPLOY_TOOLS"):
        pytest.fail(message)
    pytest.skip(message)


class DhtBroker(BrokerProcess):
    """One real broker process; the same surface as ``DhtStandIn`` where the two overlap."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.binary = broker_binary()
        self.port = port or free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.shared_key = secrets.token_hex(32)
        self.writes: list[Write] = []
        self._lock = threading.Lock()
        self._observer: threading.Thread | None = None
        self._observer_socket: ClientConnection | None = None

    # --- addresses and state ------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def store(self) -> Path:
        return self.workdir / "dht.sqlite"

    @property
    def log(self) -> Path:
        return self.workdir / "broker.log"

    def get(self, topic_name: str, topic_uuid: str) -> Any:
        """The stored value (REST ``GET``), or None when the broker has none."""
        entry = self._rest("GET", f"/topic_name/{topic_name}/topic_uuid/{urllib.parse.quote(topic_uuid)}")
        return entry.get("value") if entry else None

    def entries(self, topic_name: str) -> dict[str, Any]:
        """topic_uuid -> value of one topic (REST ``GET /topic_name/{tn}``)."""
        return {item["topic_uuid"]: item["value"] for item in self._rest("GET", f"/topic_name/{topic_name}")}

    def keys(self) -> set[tuple[str, str]]:
        """(topic_name, topic_uuid) of every stored entry (REST ``GET /get_all``)."""
        return {(item["topic_name"], item["topic_uuid"]) for item in self._rest("GET", "/get_all")}

    def post(self, topic_name: str, topic_uuid: str, value: Any) -> Any:
        """Write over the REST API as another SIFIS client would; returns the echoed value."""
        path = f"/topic_name/{topic_name}/topic_uuid/{urllib.parse.quote(topic_uuid)}"
        return self._rest("POST", path, value)

    def writes_to(self, topic_name: str) -> list[Write]:
        with self._lock:
            return [write for write in self.writes if write.topic_name == topic_name]

    def _rest(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method=method,
        )
        with _OPENER.open(request, timeout=5) as answer:
            return json.loads(answer.read())

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> DhtBroker:
        """Run the broker on ``self.port`` with its store; return once REST and the observer are up."""
        if self.running():
            return self
        log = self.log.open("ab")
        self._process = subprocess.Popen(
            [
                str(self.binary),
                "--url", f"sqlite://{self.store}",
                "--persistent",
                "--shared-key", self.shared_key,
                "--private-key", str(self.workdir / "broker.pem"),
                "--http-port", str(self.port),
                "--loopback",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )  # fmt: skip
        log.close()
        wait_until(self._answers, _START_TIMEOUT_S, f"the DHT broker on port {self.port} (log: {self.log})")
        self._start_observer()
        return self

    def _answers(self) -> bool:
        if not self.running():
            raise RuntimeError(
                f"the DHT broker exited with {self._process and self._process.returncode} (log: {self.log})"
            )
        try:
            self._rest("GET", "/get_all")
        except OSError:
            return False
        return True

    def _ended(self) -> None:
        self._stop_observer()

    def __enter__(self) -> DhtBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the WebSocket observer -----------------------------------------------------------

    def _start_observer(self) -> None:
        connected = threading.Event()
        self._observer = threading.Thread(
            target=self._observe, args=(connected,), name=f"dht-observer-{self.port}", daemon=True
        )
        self._observer.start()
        if not connected.wait(_START_TIMEOUT_S):
            raise AssertionError(f"the observer could not connect to {self.ws_url}")

    def _observe(self, connected: threading.Event) -> None:
        with (
            contextlib.suppress(OSError, WebSocketException),
            connect(self.ws_url, open_timeout=10) as socket,
        ):
            self._observer_socket = socket
            connected.set()
            for frame in socket:
                message = json.loads(frame)
                if isinstance(message, dict) and "Persistent" in message:
                    body = message["Persistent"]
                    if not body.get("deleted"):
                        with self._lock:
                            self.writes.append(
                                Write(body["topic_name"], body["topic_uuid"], body["value"], "broadcast")
                            )

    def _stop_observer(self) -> None:
        socket, thread = self._observer_socket, self._observer
        if socket is not None:
            with contextlib.suppress(OSError, WebSocketException):
                socket.close()
        if thread is not None:
            thread.join(timeout=5)
        self._observer = self._observer_socket = None


def wait_for_value(broker: DhtBroker, topic_name: str, topic_uuid: str, timeout: float = 30.0) -> Any:
    """Poll the broker until it holds an entry; returns its value."""
    found: list[Any] = []

    def present() -> bool:
        value = broker.get(topic_name, topic_uuid)
        if value is not None:
            found.append(value)
        return bool(found)

    wait_until(present, timeout, f"{topic_name}/{topic_uuid} in the DHT")
    return found[0]
