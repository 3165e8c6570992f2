"""Audio and clients shared by the end-to-end tests: synthetic clips, the v2 clients people
use (tritonclient binary and JSON, KServe's gRPC client), the Analytics-API's SIFIS request."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import requests
import soundfile as sf
import tritonclient.http as triton_http
from kserve import InferenceGRPCClient, InferInput, InferRequest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.serverutil import RunningServer, start_server

MODEL = "audioguard"


def predictor_args(model_dir: Path) -> list[str]:
    """The predictor's flags for ``start_server("predictor", ...)``."""
    return ["--model_name", MODEL, "--model_dir", str(model_dir)]


def transformer_args(model_dir: Path, predictor_host: str, protocol: str = "grpc-v2") -> list[str]:
    """The transformer's flags for ``start_server("transformer", ...)``, calling the predictor at
    ``predictor_host`` (host:port) over ``protocol`` (grpc-v2 or v2)."""
    return [
        "--model_name", MODEL,
        "--model_dir", str(model_dir),
        "--predictor_host", predictor_host,
        "--predictor_protocol", protocol,
    ]  # fmt: skip


@dataclass(frozen=True)
class Services:
    predictor: RunningServer
    transformer: RunningServer


@contextlib.contextmanager
def running_services(model_dir: Path, transformer_env: Mapping[str, str] | None = None) -> Iterator[Services]:
    """A predictor and a transformer calling it over gRPC v2 (``transformer_env`` its extra
    environment); stops both."""
    predictor = start_server("predictor", predictor_args(model_dir))
    try:
        args = transformer_args(model_dir, predictor.grpc_address)
        transformer = start_server("transformer", args, transformer_env)
        try:
            yield Services(predictor, transformer)
        finally:
            transformer.stop()
    finally:
        predictor.stop()


@contextlib.contextmanager
def service_pair(
    model_dir: Path, transformer_env: Mapping[str, str] | None = None
) -> Iterator[RunningServer]:
    """``running_services``' transformer."""
    with running_services(model_dir, transformer_env) as services:
        yield services.transformer


def metric_value(server: RunningServer, name: str, **labels: str) -> float | None:
    """One sample of the server's /metrics, None when absent."""
    text = requests.get(server.http_url + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


# --- test audio -------------------------------------------------------------------------


def wav_bytes(samples: np.ndarray, sample_rate: int = 16000, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def clip(seed: int, seconds: float = 3.0, sample_rate: int = 16000) -> bytes:
    """A distinct synthetic recording per seed: tones, noise, an on/off envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    x = sum(
        rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * rng.uniform(100, 6000) * t + rng.uniform(0, 6))
        for _ in range(3)
    )
    x = x + rng.uniform(0.0, 0.2) * rng.standard_normal(t.size)
    envelope = (np.sin(2 * np.pi * rng.uniform(0.3, 3) * t) > 0) * 0.7 + 0.3
    return wav_bytes(np.clip(x * envelope, -1, 1), sample_rate)


# --- clients -------------------------------------------------------------------------------


def windows_from_arrays(outputs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    return [
        {
            "start_seconds": float(outputs["window_start_seconds"][w]),
            "end_seconds": float(outputs["window_end_seconds"][w]),
            "top": [
                {"label_id": text(i), "label": text(n), "probability": float(p)}
                for i, n, p in zip(
                    outputs["label_id"][w], outputs["label"][w], outputs["probability"][w], strict=True
                )
            ],
        }
        for w in range(outputs["label"].shape[0])
    ]


def host_port(server: RunningServer) -> str:
    return server.http_url.removeprefix("http://")


def triton_binary(server: RunningServer, audio: bytes, parameters: dict[str, Any]) -> dict[str, Any]:
    """tritonclient.http with its defaults: binary input, binary outputs."""
    client = triton_http.InferenceServerClient(host_port(server), network_timeout=120)
    tensor = triton_http.InferInput("audio", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([audio], dtype=np.object_), binary_data=True)
    result = client.infer(MODEL, [tensor], parameters=parameters)
    names = ("label_id", "label", "probability", "window_start_seconds", "window_end_seconds", "anomalies")
    response = result.get_response()
    return {
        "windows": windows_from_arrays({name: result.as_numpy(name) for name in names}),
        "anomalies": json.loads(result.as_numpy("anomalies")[0]),
        "parameters": response.get("parameters", {}),
    }


def triton_json(server: RunningServer, audio: bytes, parameters: dict[str, Any]) -> dict[str, Any]:
    """tritonclient.http JSON-only: base64 text input, JSON outputs."""
    client = triton_http.InferenceServerClient(host_port(server), network_timeout=120)
    tensor = triton_http.InferInput("audio", [1], "BYTES")
    text = base64.b64encode(audio).decode("ascii")
    tensor.set_data_from_numpy(np.array([text], dtype=np.object_), binary_data=False)
    outputs = [
        triton_http.InferRequestedOutput(name, binary_data=False)
        for name in ("label_id", "label", "probability", "window_start_seconds", "window_end_seconds")
    ]
    result = client.infer(
        MODEL, [tensor], outputs=outputs, parameters={"content_encoding": "base64", **parameters}
    )
    names = ("label_id", "label", "probability", "window_start_seconds", "window_end_seconds")
    response = result.get_response()
    assert all("binary_data_size" not in o.get("parameters", {}) for o in response["outputs"])
    return {
        "windows": windows_from_arrays({name: result.as_numpy(name) for name in names}),
        "parameters": response.get("parameters", {}),
    }


def kserve_grpc(server: RunningServer, audio: bytes, parameters: dict[str, Any]) -> dict[str, Any]:
    """KServe's own gRPC client: raw BYTES contents."""

    async def call() -> Any:
        client = InferenceGRPCClient(server.grpc_address, timeout=120, retries=0)
        tensor = InferInput("audio", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([audio], dtype=np.object_), binary_data=True)
        grpc_parameters = {k: v if isinstance(v, bool | int | str) else str(v) for k, v in parameters.items()}
        try:
            return await client.infer(InferRequest(MODEL, [tensor], parameters=grpc_parameters))
        finally:
            await client.close()

    response = asyncio.run(call())
    outputs = {o.name: o.as_numpy() for o in response.outputs}
    return {
        "windows": windows_from_arrays(outputs),
        "anomalies": json.loads(outputs["anomalies"][0]),
        "parameters": {k: (v.string_param or v.int64_param) for k, v in response.parameters.items()},
    }


def sifis_url(server: RunningServer, method: str = "nothing", audio_file: str = "anonymized_audio") -> str:
    return f"{server.http_url}/model/predict/{audio_file}/{method}/nssd-7/NSSD/req-42"


def sifis_post(
    server: RunningServer, audio: bytes, method: str = "nothing", **kwargs: Any
) -> requests.Response:
    """The Analytics-API's exact request."""
    return requests.post(
        sifis_url(server, method), files={"audio": ("sample1.wav", audio, "audio/wav")}, timeout=120, **kwargs
    )
