"""The sources a monitor listens to: one YAML (or JSON) file, validated as a whole.

```yaml
sources:
  - name: kitchen-camera
    url: rtsps://viewer:${KITCHEN_PASSWORD}@10.0.0.7:7441/stream   # ${VAR}: from the environment
    privacy: scramble
  - name: hall-mic
    url: pulse:default
  - name: replay
    url: file:/recordings/night.wav
    realtime: false
```

Kinds by URL: ``rtsp://``/``rtsps://`` (camera audio), ``http://``/``https://`` (audio
streams), ``file:PATH`` or a bare path, ``alsa:DEVICE`` and ``pulse:DEVICE`` (sound cards),
``stdin:`` (16-bit PCM on the monitor's standard input). Credentials come from the
environment (a Kubernetes Secret), never from the file, and are never logged (``redacted``).
A bad file raises ``InvalidConfiguration`` naming every problem, before anything starts. A
relative ``file:`` path is taken from the sources file's folder (not the current directory):
the file says where its recordings are, wherever the monitor is started from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from contract.env_vars import VARIABLE
from contract.errors import InvalidConfiguration, InvalidParameter
from transformer.analysis.anomaly_groups import NAME_PATTERN, Probability
from transformer.analysis.detectors.sudden_loud import SuddenLoudOverrides
from transformer.analysis.modes import ModesSpec, ScheduleEntry
from transformer.privacy import PrivacyRequest, parse_privacy_request

SourceKind = Literal["rtsp", "http", "file", "alsa", "pulse", "stdin"]
_SCHEMES: Final[Mapping[str, SourceKind]] = {
    "rtsp": "rtsp",
    "rtsps": "rtsp",
    "http": "http",
    "https": "http",
    "file": "file",
    "alsa": "alsa",
    "pulse": "pulse",
    "stdin": "stdin",
}
_VARIABLE: Final = VARIABLE


class SourceSpec(BaseModel):
    """One named source and how to listen to it.

    Attributes:
        name: identifier in metrics, events and the status endpoint (``[A-Za-z0-9_-]``).
        url: where the audio comes from (see the module); ``${VAR}`` is read from the environment.
        realtime: files and finite HTTP resources (a length known, e.g. a WAV a web server
            serves) only: play at the pace of the audio (as a live source: audio the detection
            cannot keep up with is dropped) or as fast as possible (every second analysed: the
            capture waits for the detection).
        privacy: anonymisation applied to the stream before features (None = the service's
            minimum), seamless across chunks (``transformer.privacy.stream``).
        privacy_params: the method's parameters, as a request names them (defaults filled in).
        privacy_window_seconds: audio each anonymisation window spans (the dp_noise peak, the
            scramble shuffle group, the speech_mask analysis block): longer hides more and
            holds the audio back that much longer before detection.
        groups: the anomaly groups this source watches (None = all configured groups).
        thresholds: per anomaly group, a threshold replacing the configured one for this source.
        hop: examples (0.96 s) between the source's detections (None = the service's ``monitor_hop``).
        loudness_gate_dbfs: skip detection when the window is quieter (None = the service's).
        no_data_seconds: restart the capture after this long without a byte of audio.
        sudden_loud: the sudden-loud detector on this source: ``true``/``false``, or its own
            ``rise_db``, ``rise_seconds``, ``floor_dbfs``, ``background_seconds`` (None: the
            service's ``sudden_loud`` settings).
        schedule: the source's own daily mode switches (None: the file's ``modes.schedule``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    url: str = Field(min_length=1)
    realtime: bool = True
    privacy: str | None = None
    privacy_params: dict[str, float] = Field(default_factory=dict)
    privacy_window_seconds: float = Field(4.0, ge=0.5, le=30)
    groups: list[str] | None = Field(None, min_length=1)
    thresholds: dict[str, Probability] = Field(default_factory=dict)
    hop: int | None = Field(None, ge=1, le=10)
    loudness_gate_dbfs: float | None = Field(None, le=0)
    no_data_seconds: float = Field(10.0, gt=0, le=600)
    sudden_loud: bool | SuddenLoudOverrides | None = None
    schedule: list[ScheduleEntry] | None = None

    @field_validator("url")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        source_kind(value)  # raises ValueError naming the accepted forms
        return value

    @model_validator(mode="after")
    def _privacy_request(self) -> SourceSpec:
        try:
            self.privacy_request()
        except InvalidParameter as error:  # names the method or parameter, and what is allowed
            raise ValueError(error.message) from None
        return self

    def privacy_request(self, defaults: Mapping[str, Mapping[str, object]] | None = None) -> PrivacyRequest:
        """The source's validated privacy request (``named`` False when it names no method)."""
        return parse_privacy_request(self.privacy, self.privacy_params, defaults=defaults)

    @property
    def kind(self) -> SourceKind:
        return source_kind(self.url)

    def resolved_url(self, environ: Mapping[str, str] | None = None) -> str:
        """The URL with ``${VAR}`` replaced from the environment (KeyError names a missing one)."""
        variables = os.environ if environ is None else environ
        return _VARIABLE.sub(lambda match: variables[match.group(1)], self.url)

    def secrets(self, environ: Mapping[str, str] | None = None) -> list[str]:
        """The values the URL's ``${VAR}``s stand for, as written and percent-encoded, longest
        first: what no log line or status may show, wherever in the URL they sit (a password in
        a query string, ``?pwd=${CAM_PW}``, is not the URL's password part)."""
        variables = os.environ if environ is None else environ
        values = {variables[name] for name in _VARIABLE.findall(self.url) if variables.get(name)}
        values |= {quote(value, safe="") for value in values}
        return sorted(values, key=len, reverse=True)

    def missing_variables(self, environ: Mapping[str, str] | None = None) -> list[str]:
        """The ``${VAR}`` names of the URL that the environment does not set."""
        variables = os.environ if environ is None else environ
        return sorted({name for name in _VARIABLE.findall(self.url) if name not in variables})


def file_path(url: str) -> Path:
    """The path a ``file:`` source (its resolved URL) names: ``file:`` or ``file://`` removed,
    ``~`` expanded."""
    path = url[5:] if url.lower().startswith("file:") else url
    if path.startswith("///"):  # file:///abs/path, the URL form
        path = path[2:]
    return Path(os.path.expanduser(path))


def source_kind(url: str) -> SourceKind:
    """The kind of source a URL names; ValueError for anything else."""
    scheme = url.split(":", 1)[0].lower() if ":" in url and not url.startswith("/") else ""
    if scheme in _SCHEMES:
        return _SCHEMES[scheme]
    if not scheme or len(scheme) == 1:  # a bare path (or a Windows drive letter)
        return "file"
    raise ValueError(
        f"unknown source {redacted(url)!r}: use rtsp://, rtsps://, http://, https://, file:PATH (or a path), "
        "alsa:DEVICE, pulse:DEVICE or stdin:"
    )


def redacted(url: str) -> str:
    """The URL without its password (for logs, metrics and the status endpoint)."""
    parts = urlsplit(url)
    if parts.password is None and "${" not in (parts.netloc or ""):
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ""
    return urlunsplit((parts.scheme, f"{user}{host}", parts.path, parts.query, parts.fragment))


class SourcesFile(BaseModel):
    """A whole sources file: the sources and their modes (``transformer.analysis.modes``)."""

    model_config = ConfigDict(extra="forbid")

    sources: list[SourceSpec] = Field(min_length=1)
    modes: ModesSpec = Field(default_factory=ModesSpec)


def parse_sources(document: Any, origin: str = "sources", folder: Path | None = None) -> list[SourceSpec]:
    """Validate a parsed sources document; InvalidConfiguration lists every problem. ``folder``:
    where relative ``file:`` paths are (the sources file's; None: the current directory)."""
    return parse_sources_file(document, origin, folder).sources


def parse_sources_file(document: Any, origin: str = "sources", folder: Path | None = None) -> SourcesFile:
    """``parse_sources`` with the file's ``modes`` section."""
    try:
        parsed = SourcesFile.model_validate(document)
        sources = parsed.sources
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
            for problem in error.errors()
        )
        raise InvalidConfiguration(f"{origin}: {problems}") from None
    names = [source.name for source in sources]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidConfiguration(f"{origin}: source names must be unique, repeated: {', '.join(repeated)}")
    if sum(source.kind == "stdin" for source in sources) > 1:
        raise InvalidConfiguration(f"{origin}: only one source can read standard input")
    if folder is not None:
        parsed.sources = [_anchored(source, folder) for source in sources]
    return parsed


def _anchored(source: SourceSpec, folder: Path) -> SourceSpec:
    """``source`` with a relative file path made absolute from ``folder`` (a path that starts with
    ``${VAR}`` or ``~`` is left to the variable or the home folder)."""
    if source.kind != "file":
        return source
    path = source.url[5:] if source.url.lower().startswith("file:") else source.url
    if path.startswith(("/", "~", "${")):
        return source
    return source.model_copy(update={"url": f"file:{os.path.normpath(folder / path)}"})


def load_sources(path: Path) -> list[SourceSpec]:
    """Read and validate a sources file (YAML, of which JSON is a subset)."""
    return load_sources_file(path).sources


def load_sources_file(path: Path) -> SourcesFile:
    """Read and validate a sources file (YAML, of which JSON is a subset) with its ``modes``."""
    import yaml  # KServe's dependency: in every image

    try:
        text = Path(path).read_text("utf-8")
    except OSError as error:
        raise InvalidConfiguration(
            f"cannot read the sources file {path}: {error.strerror or error}"
        ) from None
    try:
        document = yaml.safe_load(text) if path.suffix.lower() != ".json" else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as error:
        raise InvalidConfiguration(f"{path} is not valid YAML/JSON: {error}") from None
    return parse_sources_file(document, str(path), Path(path).absolute().parent)
