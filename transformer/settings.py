"""The transformer's one settings object (environment ``AUDIOGUARD_*`` + CLI flags)."""

from __future__ import annotations

import importlib.util
import ipaddress
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract.constants import ALL_INTERFACES
from contract.errors import InvalidParameter
from transformer.analysis.detectors.novelty import NoveltySettings
from transformer.analysis.detectors.sudden_loud import SuddenLoudSettings
from transformer.analysis.events import LifecycleSettings
from transformer.audio.constants import Precision, Runtime
from transformer.dht.topics import (
    ANOMALY_TOPIC_NAME,
    MODE_TOPIC_NAME,
    REQUEST_TOPIC_NAME,
    RESULTS_TOPIC_NAME,
    RESULTS_TOPIC_UUID,
)
from transformer.privacy.request import ENFORCEMENT_MODES, canonical_method

_LIFECYCLE = LifecycleSettings()  # the one home of the lifecycle defaults
_LOUD = SuddenLoudSettings()  # and of the sudden-loud detector's


class TransformerSettings(BaseSettings):
    """Everything an operator can set on the transformer.

    Every field can be given as ``--field_name`` on the command line or as the
    environment variable ``AUDIOGUARD_FIELD_NAME``; the flag wins.
    """

    # hide_input_in_errors: a failing check must not print the settings given (passwords, tokens)
    model_config = SettingsConfigDict(env_prefix="AUDIOGUARD_", extra="ignore", hide_input_in_errors=True)

    bind_host: str = Field(
        ALL_INTERFACES,
        min_length=1,
        description="Interface the REST and gRPC servers listen on: 0.0.0.0 = every interface "
        "(containers), 127.0.0.1 = this machine only (`audioguard serve` passes it unless --host).",
    )

    # --- model and limits -------------------------------------------------------
    model_dir: Path = Field(
        Path("/mnt/models"),
        description="Directory holding vggish_model.ckpt and vggish_pca_params.npz (KServe's storage mount).",
    )
    max_audio_seconds: float = Field(
        600.0, gt=0, description="Longest accepted recording, checked before full decoding."
    )
    decode_budget_hz: int = Field(
        96_000,
        ge=16_000,
        le=768_000 * 64,
        description="Samples (frames x channels) decoded per second of max_audio_seconds: bounds the "
        "decoding and resampling work of one request (a small FLAC can hold minutes of 384 kHz). "
        "96000 = the whole duration limit at 48 kHz stereo; faster or wider files get "
        "a shorter maximum duration (413).",
    )
    max_upload_mb: float = Field(
        100.0, gt=0, description="Largest accepted encoded audio upload, in MiB (413 above)."
    )
    vggish_batch_size: int = Field(
        64, ge=1, le=1024, description="Examples per VGGish call (bigger batches are faster on CPU)."
    )
    vggish_fc2_relu: bool = Field(
        True, description="Apply ReLU after fc2 as IBM MAX does (false = upstream VGGish after 2020)."
    )
    vggish_runtime: Runtime = Field(
        "onnxruntime",
        description="What runs VGGish: onnxruntime (the graph built from the checkpoint; no TensorFlow "
        "in the process) or tensorflow (the Keras reference; needs TensorFlow installed).",
    )
    vggish_precision: Precision = Field(
        "fp32",
        description="fp32 (embeddings equal to the reference) or int8 (onnxruntime only: about 3x "
        "faster, calibrated once on generated sounds and cached beside the weights; see docs/performance.md "
        "for its measured fidelity).",
    )
    vggish_threads: int = Field(
        0,
        ge=0,
        le=256,
        description="Intra-op threads of the ONNX Runtime session; 0 = one per core.",
    )
    vggish_cache_dir: Path | None = Field(
        None,
        description="Where the calibrated int8 model is cached and calibrated (about 1 GB of scratch "
        "files); unset = beside the weights (model_dir). When it is read-only, int8 calibrates in the "
        "temporary folder at every start, and refuses to start if neither has the room.",
    )
    max_inflight_analyses: int = Field(
        64,
        ge=1,
        description="Analyses admitted at once (REST, gRPC and SIFIS together); more get 503 with "
        "Retry-After at once instead of waiting in memory.",
    )
    max_inflight_mb: float | None = Field(
        None,
        gt=0,
        description="Decoding memory admitted requests may take, counted as 8x each upload's size "
        "(a PCM WAV decoded as float64); beyond it 503 + Retry-After. Unset = the memory limit "
        "less 1536 MiB for the service itself.",
    )
    memory_limit_mb: float | None = Field(
        None,
        gt=0,
        description="The container's memory limit; unset = read from the cgroup (memory.max), "
        "or 4096 when there is none.",
    )
    retry_after_seconds: int = Field(
        2, ge=1, le=3600, description="Retry-After of a 503 at capacity, in seconds."
    )
    inference_threads: int = Field(
        2, ge=1, description="Worker threads for decoding and feature extraction off the event loop."
    )

    # --- clip handling and output ----------------------------------------------
    window_hop: int = Field(
        10, ge=1, le=10, description="Hop between 10-embedding windows of a long recording, in embeddings."
    )
    top_k: int = Field(5, ge=1, le=527, description="Default number of labels returned per window.")

    # --- privacy -----------------------------------------------------------------
    privacy_minimum: str = Field(
        "none",
        description="Weakest anonymisation a request may ask for (none < dp_noise < scramble < speech_mask).",
    )
    privacy_enforcement: str = Field(
        "upgrade",
        description="What to do with a request naming a method below the minimum: upgrade it or "
        "reject it (403). A request naming no method gets the minimum.",
    )
    scramble_segment_seconds: float = Field(
        1.0, gt=0, le=10, description="Segment length shuffled by the scramble method."
    )
    sifis_unknown_method: Literal["reject", "none"] = Field(
        "reject",
        description="A SIFIS or DHT request whose method names no privacy method (e.g. a typo): "
        "reject it (400 listing the valid ones) or treat it as none, as the old service did. "
        "none and nothing always mean no transformation.",
    )

    # --- anomalies -----------------------------------------------------------------
    anomaly_groups_file: Path | None = Field(
        None, description="JSON file overriding the shipped anomaly groups (members, thresholds)."
    )
    loudness_gate_dbfs: float | None = Field(
        None, le=0, description="Skip anomaly detection in windows quieter than this RMS level (dBFS)."
    )
    sudden_loud: bool = Field(
        False,
        description="Raise sudden_loud events (a level rising fast over the background, any sound) in "
        "live sources and uploaded recordings; a source can turn it on or off in the sources file.",
    )
    sudden_loud_rise_db: float = Field(
        _LOUD.rise_db, description="sudden_loud: dB a level must rise over the background (3-60)."
    )
    sudden_loud_rise_seconds: float = Field(
        _LOUD.rise_seconds, description="sudden_loud: ... within this many seconds (0.12-5)."
    )
    sudden_loud_floor_dbfs: float = Field(
        _LOUD.floor_dbfs, description="sudden_loud: the level must also reach this RMS level (dBFS)."
    )
    voices_while_armed: bool = Field(
        True,
        description="Raise voices_while_armed events (speech presence, never content) on a live source "
        "while its mode watches that group (away, by default); speech is not even analysed otherwise.",
    )
    voices_min_speech_seconds: float = Field(
        1.0, ge=0.1, le=9.6, description="voices_while_armed: seconds of speech a 9.6-s window must hold."
    )
    unusual_sound: bool = Field(
        False,
        description="Learn each live source's normal sounds (statistics of its VGGish embeddings) and "
        "raise unusual_sound events for windows far outside them once learnt.",
    )
    unusual_sound_learning_hours: float = Field(
        24.0,
        ge=1 / 60,
        le=720,
        description="unusual_sound: hours of scored audio learnt from (half to model, half to calibrate).",
    )
    unusual_sound_quantile: float = Field(
        0.9999,
        ge=0.9,
        le=0.99999,
        description="unusual_sound: the calibrated threshold's quantile (0.9-0.99999), times a 1.2 margin.",
    )
    novelty_dir: Path = Field(
        Path("state/novelty"),
        description="Folder of each live source's unusual_sound model (statistics only, never audio).",
    )
    baselines_path: Path = Field(
        Path("state/baselines.json"),
        description="JSON file of each live source's learned loudness baseline per hour of day "
        "(numbers only, never audio), kept across restarts.",
    )

    # --- SIFIS DHT delivery --------------------------------------------------------
    dht_url: str | None = Field(
        None,
        description="Base URL of the SIFIS DHT broker, e.g. http://localhost:3000 (unset = no delivery).",
    )
    dht_transport: Literal["rest", "websocket"] = Field(
        "rest", description="Post to the DHT over REST (persistent) or its WebSocket."
    )
    dht_post: Literal["anomalies", "all"] = Field(
        "anomalies", description="Post only results that contain anomalies, or every result."
    )
    dht_timeout_seconds: float = Field(5.0, gt=0, description="Timeout of one DHT request.")
    outbox_path: Path = Field(
        Path("state/outbox.sqlite3"), description="SQLite outbox holding anomalies until the DHT has them."
    )
    outbox_max_items: int = Field(
        100_000,
        ge=1,
        description="Outbox capacity; when full the oldest non-anomaly results are dropped first.",
    )
    listener_enabled: bool = Field(
        False, description="Subscribe to DHT analysis requests over WebSocket and process them."
    )
    listener_audio_dir: Path | None = Field(
        None, description="Folder the listener reads the requested audio files from."
    )

    # --- SIFIS identity ------------------------------------------------------------
    analyzer_id: str = Field(
        default_factory=socket.gethostname, description="analyzer_id reported in SIFIS results (host name)."
    )

    @field_validator("privacy_minimum", mode="before")
    @classmethod
    def _canonical_privacy_minimum(cls, value: object) -> object:
        """One method name rule for the whole service (aliases such as scrample accepted)."""
        try:
            return canonical_method(value) if isinstance(value, str) else value
        except InvalidParameter as error:
            raise ValueError(error.message) from None

    @field_validator("privacy_enforcement")
    @classmethod
    def _known_enforcement(cls, value: str) -> str:
        if value not in ENFORCEMENT_MODES:
            raise ValueError(f"privacy_enforcement must be one of {', '.join(ENFORCEMENT_MODES)}")
        return value

    @model_validator(mode="after")
    def _int8_needs_onnxruntime(self) -> TransformerSettings:
        if self.vggish_precision == "int8" and self.vggish_runtime != "onnxruntime":
            raise ValueError(
                "vggish_precision int8 needs vggish_runtime onnxruntime (TensorFlow runs fp32 only)"
            )
        if self.vggish_runtime == "tensorflow" and importlib.util.find_spec("tensorflow") is None:
            raise ValueError(
                "vggish_runtime tensorflow: TensorFlow is not installed in this image (it serves VGGish "
                "on ONNX Runtime); use --vggish_runtime onnxruntime"
            )
        return self

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    # --- SIFIS DHT topics (appended with issue 5) -------------------------------------
    dht_results_topic: str = Field(
        RESULTS_TOPIC_NAME,
        min_length=1,
        description="DHT topic_name of analysis results (what SIFIS consumers read).",
    )
    dht_results_uuid: str = Field(
        RESULTS_TOPIC_UUID,
        min_length=1,
        description="DHT topic_uuid of analysis results (constant: each result replaces the previous).",
    )
    dht_anomaly_topic: str = Field(
        ANOMALY_TOPIC_NAME,
        min_length=1,
        description="DHT topic_name of anomaly events (one topic_uuid per event).",
    )
    dht_mode_topic: str = Field(
        MODE_TOPIC_NAME,
        min_length=1,
        description="DHT topic_name of live sources' mode changes (one topic_uuid per change).",
    )
    listener_topic: str = Field(
        REQUEST_TOPIC_NAME,
        min_length=1,
        description="DHT topic_name of the analysis requests the listener answers.",
    )

    # --- VGGish request batching (appended with the cross-request batching) ------------
    vggish_request_batching: bool = Field(
        True,
        description="Merge the VGGish calls of concurrent requests into one call of up to "
        "vggish_batch_size examples (false = each request calls VGGish alone).",
    )
    vggish_batch_wait_ms: float = Field(
        2.0,
        ge=0,
        le=1000,
        description="Longest a request's VGGish examples wait for other requests to join their "
        "call (0 still merges what queued while VGGish was busy).",
    )

    # --- continuous listening (issue 16) ---------------------------------------------
    sources_file: Path | None = Field(
        None,
        description="YAML/JSON file of live sources (camera RTSP audio, HTTP streams, sound cards, "
        "files) to listen to continuously besides serving requests; events go to the DHT outbox "
        "(unset = no listening). Credentials as ${VAR} from the environment.",
    )
    monitor_hop: int = Field(
        1,
        ge=1,
        le=10,
        description="Examples (0.96 s each) between two windows scanned for anomalies, in a live "
        "source and in an uploaded recording alike (the same audio gives the same events).",
    )
    event_min_hits: int = Field(
        _LIFECYCLE.min_hits, ge=1, description="Windows with a hit that start an anomaly event ..."
    )
    event_within_hops: int = Field(
        _LIFECYCLE.within_hops, ge=1, description="... among this many latest windows."
    )
    event_max_not_heard_seconds: float = Field(
        _LIFECYCLE.max_not_heard_seconds, gt=0, description="An event ends after this long without a hit."
    )
    monitor_queue_chunks: int | None = Field(
        None,
        ge=10,
        description="Audio chunks (0.1 s, all sources together) waiting for detection at most; when "
        "the host falls behind the oldest are dropped and counted. Unset: 5 s per source plus its "
        "privacy window (a window's audio is released at once).",
    )
    ffmpeg_path: str = Field("ffmpeg", min_length=1, description="The ffmpeg program capturing live sources.")

    @model_validator(mode="after")
    def _event_lifecycle(self) -> TransformerSettings:
        # one rule, the lifecycle's own (its messages name the fields)
        LifecycleSettings(self.event_min_hits, self.event_within_hops, self.event_max_not_heard_seconds)
        return self

    @model_validator(mode="after")
    def _sudden_loud(self) -> TransformerSettings:
        try:
            self.sudden_loud_settings()
        except ValueError as error:
            # its messages name its keys: say them as the settings' names
            problems = [f"sudden_loud_{problem}" for problem in str(error).split("; ")]
            raise ValueError("; ".join(problems)) from None
        return self

    def novelty_settings(self) -> NoveltySettings:
        """The unusual_sound detector's settings (whether it is on or not)."""
        return NoveltySettings(
            learning_seconds=self.unusual_sound_learning_hours * 3600, quantile=self.unusual_sound_quantile
        )

    def sudden_loud_settings(self) -> SuddenLoudSettings:
        """The sudden-loud detector's service-wide settings (whether it is on or not)."""
        return SuddenLoudSettings(
            rise_db=self.sudden_loud_rise_db,
            rise_seconds=self.sudden_loud_rise_seconds,
            floor_dbfs=self.sudden_loud_floor_dbfs,
        )

    # --- MQTT sink (issue 27) --------------------------------------------------------------
    mqtt_url: str | None = Field(
        None,
        description="MQTT broker for the event records besides the DHT: mqtt://host:1883, mqtts://host:8883 "
        "(TLS), ws:// or wss://host/path; user:${VAR}@ read from the environment (unset = no MQTT).",
    )
    mqtt_username: str | None = Field(
        None, description="MQTT user name (overrides the URL's); ${VAR} is read from the environment."
    )
    mqtt_password: str | None = Field(
        None,
        description="MQTT password (overrides the URL's); ${VAR} is read from the environment. Never logged.",
    )
    mqtt_ca_file: Path | None = Field(
        None,
        description="CA bundle the mqtts:// or wss:// broker's certificate is checked against "
        "(unset: the system's CAs).",
    )
    mqtt_client_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{0,64}$",
        description="MQTT client id, unique per connection (the broker drops an older one with the same "
        "id); unset: audioguard-<host name>, so replicas do not evict each other.",
    )
    mqtt_topic_prefix: str = Field(
        "audioguard",
        pattern=r"^[^#+]{0,128}$",
        description="Prefix of every topic: <prefix>/<source>/<group>/state|event, <prefix>/<source>/level, "
        "<prefix>/status; also names the Home Assistant entities (one per installation).",
    )
    mqtt_keepalive_seconds: int = Field(
        30, ge=5, le=3600, description="MQTT keep-alive; a silent broker is dropped after 1.5 times this."
    )
    mqtt_timeout_seconds: float = Field(
        10.0, gt=0, description="Seconds for the MQTT connection and for each acknowledgement (PUBACK)."
    )
    mqtt_level_seconds: float = Field(
        10.0, ge=0, description="Seconds between two level publishes of a live source (0 = none)."
    )
    mqtt_cooldown_seconds: float = Field(
        30.0,
        ge=0,
        description="An event of a source and group starting less than this after the previous one ended "
        "is not published on MQTT (the DHT gets it); 0 = off (docs/mqtt.md).",
    )
    mqtt_incident_seconds: float = Field(
        5.0,
        ge=0,
        description="The same group starting on several live sources within this is one incident: one "
        "incident_id on their MQTT records and one message <prefix>/incident/<group>; 0 = off.",
    )
    mqtt_discovery_prefix: str = Field(
        "homeassistant",
        pattern=r"^[^#+]{0,128}$",
        description="Home Assistant's MQTT discovery prefix ('' = no discovery configs).",
    )

    @field_validator("mqtt_topic_prefix", "mqtt_discovery_prefix")
    @classmethod
    def _topic_prefix(cls, value: str) -> str:
        # a topic level is never empty: "a//b" or a trailing "/" would split the topics oddly
        if value and ("" in value.split("/")):
            raise ValueError(
                f"a topic prefix has no empty level (no leading, trailing or double /), got {value!r}"
            )
        return value

    # --- the web page /ui (issue 26) ----------------------------------------------------------
    ui_enabled: bool = Field(
        True, description="Serve the web page /ui (live sources, timeline, threshold tuning, file upload)."
    )
    ui_token: str | None = Field(
        None,
        repr=False,
        description="Token the page asks for when bind_host is not loopback (Authorization: Bearer, or "
        "typed once into the page). Set it from the environment (AUDIOGUARD_UI_TOKEN). Never logged.",
    )
    ui_username: str | None = Field(
        None, min_length=1, description="Basic-auth user of the page when bind_host is not loopback."
    )
    ui_password: str | None = Field(
        None,
        repr=False,
        description="Basic-auth password of the page (AUDIOGUARD_UI_PASSWORD). Never logged.",
    )
    ui_store_path: Path = Field(
        Path("state/ui.sqlite3"),
        description="SQLite file of the page's timeline and live window scores (numbers only, never audio).",
    )
    ui_retention_hours: float = Field(
        24.0, ge=1, le=24, description="Hours of window scores and event records the page keeps."
    )

    @model_validator(mode="after")
    def _ui_credentials(self) -> TransformerSettings:
        # checked here, not by field constraints: a field's error would quote the secret
        if (self.ui_username is None) != (self.ui_password is None):
            raise ValueError("ui_username and ui_password go together (basic auth needs both)")
        if self.ui_token is not None and len(self.ui_token) < 16:
            raise ValueError("ui_token must be at least 16 characters")
        if self.ui_password is not None and len(self.ui_password) < 8:
            raise ValueError("ui_password must be at least 8 characters")
        return self

    @property
    def ui_open(self) -> bool:
        """Whether the page may be served without credentials: the servers listen on loopback only."""
        return is_loopback(self.bind_host)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
