"""The MQTT sink's frozen config and the broker URL it is made from.

``mqtt://host[:1883]`` (TCP), ``mqtts://host[:8883]`` (TLS, checked against ``ca_file`` or the
system's CAs), ``ws://host[:80]/path`` and ``wss://host[:443]/path`` (MQTT over WebSocket).
User name and password come from the URL (``mqtt://user:${MQTT_PASSWORD}@host``) or their own
settings; ``${VAR}`` is read from the environment in all three, as in a source's URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal
from urllib.parse import unquote, urlsplit

from contract.env_vars import expand_variables, missing_variables
from contract.errors import InvalidConfiguration

Transport = Literal["tcp", "websockets"]
#: scheme -> (transport, TLS, default port)
_SCHEMES: Final[Mapping[str, tuple[Transport, bool, int]]] = {
    "mqtt": ("tcp", False, 1883),
    "mqtts": ("tcp", True, 8883),
    "ws": ("websockets", False, 80),
    "wss": ("websockets", True, 443),
}


@dataclass(frozen=True)
class MqttConfig:
    """Where and how the sink publishes (``transformer.wiring`` makes it from the settings).

    Attributes:
        host, port, transport, tls, ws_path: the broker, from its URL.
        username, password: credentials (``${VAR}`` already read), None for none.
        ca_file: CA bundle the broker's certificate is checked against (None: the system's).
        client_id: the MQTT client id (unique per connection: the broker drops an older one).
        prefix: the topics' prefix (``transformer.mqtt.topics``).
        keepalive: seconds between pings; a silent broker is dropped after 1.5 times this.
        timeout: seconds for the connection and for each acknowledgement.
        level_seconds: seconds between two level publishes of a source (0: none).
        discovery_prefix: Home Assistant's discovery prefix ("" = no discovery).
    """

    host: str
    port: int
    transport: Transport = "tcp"
    tls: bool = False
    ws_path: str = "/"
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    client_id: str = "audioguard"
    prefix: str = "audioguard"
    keepalive: int = 30
    timeout: float = 10.0
    level_seconds: float = 10.0
    discovery_prefix: str = "homeassistant"

    @property
    def address(self) -> str:
        """The broker for log lines: scheme, host and port, never a credential."""
        scheme = {("tcp", False): "mqtt", ("tcp", True): "mqtts"}.get(
            (self.transport, self.tls), "wss" if self.tls else "ws"
        )
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def secrets(self) -> tuple[str, ...]:
        """What no log line or status may show."""
        return tuple(value for value in (self.password,) if value)


def broker_config(
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    environ: Mapping[str, str] | None = None,
    **options: object,
) -> MqttConfig:
    """The config for a broker URL; ``options`` are ``MqttConfig``'s other fields.

    Raises:
        InvalidConfiguration: an unknown scheme, no host, a bad port, a ``${VAR}`` not set.
    """
    missing = sorted(
        {name for text in (url, username, password) if text for name in missing_variables(text, environ)}
    )
    if missing:
        raise InvalidConfiguration(f"mqtt: environment variable(s) not set: {', '.join(missing)}")
    parts = urlsplit(expand_variables(url, environ))
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise InvalidConfiguration(
            f"mqtt_url must start with mqtt://, mqtts://, ws:// or wss://, got {scheme or 'no scheme'}"
        )
    transport, tls, default_port = _SCHEMES[scheme]
    try:
        port = parts.port or default_port
    except ValueError:
        raise InvalidConfiguration("mqtt_url: the port is not a number between 0 and 65535") from None
    if not parts.hostname:
        raise InvalidConfiguration("mqtt_url names no host (e.g. mqtt://localhost:1883)")
    user = expand_variables(username, environ) if username else unquote(parts.username or "") or None
    secret = expand_variables(password, environ) if password else unquote(parts.password or "") or None
    return MqttConfig(
        host=parts.hostname,
        port=port,
        transport=transport,
        tls=tls,
        ws_path=parts.path or "/",
        username=user,
        password=secret,
        **options,  # type: ignore[arg-type]
    )
