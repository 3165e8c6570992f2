"""A real Eclipse Mosquitto broker as a child process, and a subscriber as Home Assistant would be.

``Mosquitto`` writes its own config in a test folder and listens on 127.0.0.1 only:
plain MQTT with a password file (``users``: made with ``mosquitto_passwd``), optionally a TLS
listener whose CA and server certificate ``make_tls_files`` creates with openssl, and
persistence (autosaved every second, so retained messages and durable sessions survive a
restart, and a SIGKILL once the last autosave ran). Controls as tests/support/dht_broker.py:
``stop`` (SIGTERM), ``kill`` (SIGKILL), ``start``/``restart`` (same ports, same store),
``freeze``/``thaw`` (SIGSTOP/SIGCONT).

``Subscriber``: a paho-mqtt client in its own thread recording every message it receives.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.broker_process import BrokerProcess
from tests.support.dht_standin import free_port, wait_until

_START_TIMEOUT_S = 10.0


def mosquitto_binary() -> str:
    """The broker executable; skips (fails when deploy tools are required) without it."""
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )
    if binary is None:
        message = (
            "mosquitto is not installed: bash scripts/install-system-tools.sh (apt-get install mosquitto)"
        )
        if os.environ.get("AUDIOGUARD_REQUIRE_DEPLOY_TOOLS"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls_files(folder: Path, name: str = "ca") -> TlsFiles:
    """A fresh CA (its own key) and a server certificate for 127.0.0.1/localhost signed by it."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / f"{name}.crt", folder / f"{name}.key"
    key, csr, cert = folder / "server.key", folder / "server.csr", folder / "server.crt"
    ext = folder / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=audioguard test {name}",
        "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        str(key),
        "-out",
        str(csr),
    )
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", "2", "-extfile", str(ext), "-out", str(cert))  # fmt: skip
    return TlsFiles(ca, cert, key)


class Mosquitto(BrokerProcess):
    """One broker process (module docstring)."""

    def __init__(
        self,
        workdir: Path,
        *,
        users: dict[str, str] | None = None,
        tls: TlsFiles | None = None,
        persistence: bool = True,
    ) -> None:
        self.binary = mosquitto_binary()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.users = users
        self.tls = tls
        self.persistence = persistence
        self._write_config()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"mqtts://127.0.0.1:{self.tls_port}"

    @property
    def log(self) -> Path:
        return self.workdir / "mosquitto.log"

    @property
    def store(self) -> Path:
        return self.workdir / "mosquitto.db"

    def _write_config(self) -> None:
        lines = [
            # started as root, mosquitto would drop to the "mosquitto" user, who cannot write here
            f"user {getpass.getuser()}",
            "per_listener_settings false",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            "persistence_file mosquitto.db",
            "autosave_interval 1",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "max_queued_messages 100000",
            f"listener {self.port} 127.0.0.1",
        ]
        if self.users is None:
            lines.append("allow_anonymous true")
        else:
            passwords = self.workdir / "passwords"
            passwords.write_text("")
            for user, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwords), user, password], check=True)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        if self.tls is not None:
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                f"cafile {self.tls.ca}",
                f"certfile {self.tls.cert}",
                f"keyfile {self.tls.key}",
            ]
        (self.workdir / "mosquitto.conf").write_text("\n".join(lines) + "\n")

    def start(self) -> Mosquitto:
        """Run on the same ports with the same store; return once the plain port accepts."""
        if self.running():
            return self
        self._process = subprocess.Popen(
            [self.binary, "-c", str(self.workdir / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "stderr.log").open("ab"),
        )
        wait_until(self._accepts, _START_TIMEOUT_S, f"mosquitto on port {self.port} (log: {self.log})")
        return self

    def _accepts(self) -> bool:
        if not self.running():
            raise RuntimeError(f"mosquitto exited (log: {self.log}, {self.workdir / 'stderr.log'})")
        with socket.socket() as probe:
            probe.settimeout(0.2)
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def saved_after(self, moment: float) -> bool:
        """The persistence file was written after ``moment`` (time.time())."""
        return self.store.exists() and self.store.stat().st_mtime > moment


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float = 0.0  # time.time() on arrival

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """A paho client recording what it receives; ``session`` keeps a durable session (QoS 1)."""

    def __init__(
        self,
        port: int,
        topics: list[str],
        *,
        session: str | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.topics = topics
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=session or "", clean_session=session is None
        )
        if username is not None:
            client.username_pw_set(username, password)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = lambda *_args: self._subscribed.set()
        client.reconnect_delay_set(0.05, 0.2)
        self._client = client
        client.connect("127.0.0.1", port, keepalive=5)
        client.loop_start()
        wait_until(self._subscribed.is_set, 10, "the test subscriber's SUBACK")

    def _on_connect(self, client: paho.Client, *_args: Any) -> None:
        client.subscribe([(topic, 1) for topic in self.topics])

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            received = Received(message.topic, bytes(message.payload), bool(message.retain), time.time())
            self.messages.append(received)

    def on(self, topic: str) -> list[Received]:
        with self._lock:
            return [message for message in self.messages if message.topic == topic]

    def all(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, condition: Any, timeout: float = 20.0, what: str = "messages") -> None:
        wait_until(lambda: condition(self.all()), timeout, what)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def retained(
    port: int,
    topic_filter: str,
    *,
    timeout: float = 10.0,
    username: str | None = None,
    password: str | None = None,
) -> dict[str, bytes]:
    """What the broker retains under ``topic_filter`` now (a fresh subscription and a probe
    published after it: everything retained arrived before the probe)."""
    probe = f"probe/{time.time_ns()}"
    subscriber = Subscriber(port, [topic_filter, probe], username=username, password=password)
    try:
        publisher = paho.Client(CallbackAPIVersion.VERSION2)
        if username is not None:
            publisher.username_pw_set(username, password)
        publisher.connect("127.0.0.1", port)
        publisher.loop_start()
        publisher.publish(probe, b"x", qos=1).wait_for_publish(timeout)
        publisher.disconnect()
        publisher.loop_stop()
        subscriber.wait_for(lambda messages: any(m.topic == probe for m in messages), timeout, "the probe")
        return {m.topic: m.payload for m in subscriber.all() if m.retain and m.topic != probe}
    finally:
        subscriber.close()
