"""At capacity the transformer refuses at once with 503 + Retry-After on every path, stays up,
answers its health probes, and serves again once the work in flight is done.

The transformer runs with a decoding-memory budget that fits one 5-MB upload
(``AUDIOGUARD_MAX_INFLIGHT_MB=48``: 8 x 5 MB would be 80). One long upload is
sent and, once ``/metrics`` shows it admitted, each path is tried while it runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests
import tritonclient.http as triton_http

from tests.support.serverutil import RunningServer
from tests.support.service_clients import (
    MODEL,
    kserve_grpc,
    metric_value,
    service_pair,
    sifis_post,
    triton_binary,
    wav_bytes,
)

pytestmark = pytest.mark.slow

RETRY_AFTER = 7


def metric(server: RunningServer, name: str, **labels: str) -> float:
    return metric_value(server, name, **labels) or 0.0


@pytest.fixture(scope="module")
def transformer(synthetic_model_dir: Path) -> Iterator[RunningServer]:
    env = {"AUDIOGUARD_MAX_INFLIGHT_MB": "48", "AUDIOGUARD_RETRY_AFTER_SECONDS": str(RETRY_AFTER)}
    with service_pair(synthetic_model_dir, env) as server:
        yield server


def long_upload(seconds: float = 160.0) -> bytes:
    """A 5-MB, 16 kHz mono WAV: a couple of seconds of work for the transformer."""
    rng = np.random.default_rng(11)
    return wav_bytes(np.clip(0.2 * rng.standard_normal(int(seconds * 16000)), -1, 1))


class InFlight:
    """One long upload running in a thread; the tests act while /metrics shows it admitted."""

    def __init__(self, server: RunningServer, audio: bytes) -> None:
        self.result: dict | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(server, audio))

    def _run(self, server: RunningServer, audio: bytes) -> None:
        try:
            self.result = triton_binary(server, audio, {})
        except BaseException as error:  # reported by the test
            self.error = error

    def __enter__(self) -> InFlight:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(120)


def wait_admitted(server: RunningServer, analyses: float) -> None:
    deadline = time.monotonic() + 60
    while metric(server, "audioguard_admission_inflight", budget="analyses") < analyses:
        assert time.monotonic() < deadline, "the long upload was never admitted"
        time.sleep(0.02)


def test_every_path_is_refused_at_once_with_retry_after_then_served(transformer: RunningServer) -> None:
    audio = long_upload()
    rejected_before = metric(transformer, "audioguard_admission_rejected_total", reason="memory")
    with InFlight(transformer, audio) as running:
        wait_admitted(transformer, 1)
        # v2 REST: refused before its body is read
        started = time.monotonic()
        answer = requests.post(
            f"{transformer.http_url}/v2/models/{MODEL}/infer",
            data=b"x" * len(audio),
            headers={"Inference-Header-Content-Length": "2"},
            timeout=30,
        )
        assert answer.status_code == 503 and answer.headers["Retry-After"] == str(RETRY_AFTER)
        assert "capacity" in answer.json()["error"]
        assert time.monotonic() - started < 2
        # the SIFIS endpoint, in its own error format
        sifis = sifis_post(transformer, audio)
        assert sifis.status_code == 503 and sifis.headers["Retry-After"] == str(RETRY_AFTER)
        assert sifis.json()["status"] == "error" and "capacity" in sifis.json()["message"]
        # gRPC
        with pytest.raises(grpc.RpcError) as caught:
            kserve_grpc(transformer, audio, {})
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
        # the probes answer while the service works at capacity
        probe_started = time.monotonic()
        assert requests.get(f"{transformer.http_url}/v2/health/live", timeout=5).status_code == 200
        assert time.monotonic() - probe_started < 1
    assert running.error is None and running.result is not None  # the admitted one finished
    assert metric(transformer, "audioguard_admission_rejected_total", reason="memory") == rejected_before + 3
    assert metric(transformer, "audioguard_admission_inflight", budget="analyses") == 0
    # nothing is held any more: the next request is served
    result = triton_binary(transformer, audio, {})
    assert result["windows"] and int(result["parameters"]["anomaly_count"]) >= 0


def test_a_small_request_still_fits_beside_a_large_one(transformer: RunningServer) -> None:
    with InFlight(transformer, long_upload()) as running:
        wait_admitted(transformer, 1)
        small = triton_binary(transformer, long_upload(2.0), {})  # 64 KB: 0.5 MB of the budget
        assert small["windows"]
    assert running.error is None


def test_a_refused_rest_client_sees_a_503_it_can_retry(transformer: RunningServer) -> None:
    with InFlight(transformer, long_upload()) as running:
        wait_admitted(transformer, 1)
        with pytest.raises(triton_http.InferenceServerException) as caught:
            triton_binary(transformer, long_upload(), {})
        assert caught.value.status() == "503"
    assert running.error is None
