"""The predictor's one settings object (environment ``AUDIOGUARD_PREDICTOR_*`` + CLI flags)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract.constants import ALL_INTERFACES


class PredictorSettings(BaseSettings):
    """Everything an operator can set on the predictor.

    Every field can be given as ``--field_name`` on the command line or as the
    environment variable ``AUDIOGUARD_PREDICTOR_FIELD_NAME``; the flag wins.
    """

    model_config = SettingsConfigDict(env_prefix="AUDIOGUARD_PREDICTOR_", extra="ignore")

    bind_host: str = Field(
        ALL_INTERFACES,
        min_length=1,
        description="Interface the REST and gRPC servers listen on: 0.0.0.0 = every interface "
        "(containers), 127.0.0.1 = this machine only (`audioguard serve` passes it unless --host).",
    )
    model_dir: Path = Field(
        Path("/mnt/models"),
        description="Directory holding classifier_model.h5 (KServe's storage mount); the classifier "
        "converted to ONNX is cached there as classifier_model.onnx when the folder is writable.",
    )
    max_batch_size: int = Field(
        64, ge=1, le=4096, description="Most windows merged into one classifier call."
    )
    max_batch_wait_ms: float = Field(
        5.0, ge=0, le=1000, description="Longest a request waits for others to join its batch."
    )
    max_request_windows: int = Field(
        4096, ge=1, description="Largest number of windows one request may carry (400 above)."
    )
    threads: int = Field(
        0,
        ge=0,
        le=256,
        description="Intra-op threads of the classifier's ONNX Runtime session; 0 = one per core. "
        "Keep it equal to the CPU limit (the chart and the gateway profile set 1).",
    )
    ray_replicas: int = Field(
        0, ge=0, description="Serve the classifier from this many Ray Serve replicas (0 = in process)."
    )
    ray_cpus_per_replica: float = Field(1.0, gt=0, description="CPUs Ray reserves per replica.")
