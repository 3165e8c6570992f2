"""The two real ModelServer processes on loopback: predictor + transformer.

One predictor and two transformers (forwarding over gRPC v2 and over REST v2)
start once for this module, with synthetic official-format weights. Every
answer is compared with the in-process chain (``audioguard.offline``) on the
same audio. The predictor-down test starts a pair of its own (it kills and
restarts that predictor on the same ports), so the tests run in any order.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import requests
import soundfile as sf
import tritonclient.http as triton_http
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

from audioguard.offline import OfflineClassifier
from contract import errors
from contract.assets import TRANSFORMER_ASSETS, asset_report, sha512_of
from tests.support.anomaly_table import shipped_groups
from tests.support.dht_broker import DhtBroker
from tests.support.serverutil import (
    PROJECT_ROOT,
    RunningServer,
    listening_addresses,
    module_command,
    service_env,
    start_server,
)
from tests.support.service_clients import (
    MODEL,
    clip,
    kserve_grpc,
    predictor_args,
    sifis_post,
    sifis_url,
    transformer_args,
    triton_binary,
    triton_json,
    wav_bytes,
    windows_from_arrays,
)
from transformer.analysis.labels import load_labels
from transformer.analysis.types import AnalysisResult
from transformer.dht.topics import RESULTS_TOPIC_NAME, RESULTS_TOPIC_UUID
from transformer.predictor_client import PREDICTOR_RETRY_AFTER_SECONDS

pytestmark = pytest.mark.slow

ANALYZER = "test-analyzer"
MAX_UPLOAD_MB = 1.0
#: Above gRPC's default 8 MiB message limit.
LARGE_UPLOAD_MB = 12.0
MAX_AUDIO_SECONDS = 30.0
ATOL = 1e-4
LABELS = load_labels()


# --- test audio -------------------------------------------------------------------------


def silent_flac(seconds: float, sample_rate: int) -> bytes:
    """Silence compresses ~300:1 in FLAC: a small upload holding many samples."""
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(round(seconds * sample_rate)), sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


# --- servers --------------------------------------------------------------------------------


@dataclass
class Predictor:
    """A predictor process; ``server`` changes when a test restarts it on the same ports."""

    server: RunningServer
    model_dir: Path

    @property
    def http_port(self) -> int:
        return int(self.server.http_url.rsplit(":", 1)[1])

    @property
    def grpc_port(self) -> int:
        return int(self.server.grpc_address.rsplit(":", 1)[1])


def restart_on_same_ports(predictor: Predictor) -> RunningServer:
    """Start a new predictor process on the ports of the (stopped) one."""
    args = [
        *predictor_args(predictor.model_dir),
        "--http_port",
        str(predictor.http_port),
        "--grpc_port",
        str(predictor.grpc_port),
    ]
    log = predictor.server.logs.with_suffix(".restart.log")
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            module_command("predictor", args),
            cwd=PROJECT_ROOT,
            env=service_env(None),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = RunningServer(predictor.server.http_url, predictor.server.grpc_address, process, log)
    server.wait_for_status("/v2/health/ready")
    return server


@pytest.fixture(scope="module")
def predictor(synthetic_model_dir: Path) -> Iterator[Predictor]:
    handle = Predictor(start_server("predictor", predictor_args(synthetic_model_dir)), synthetic_model_dir)
    yield handle
    handle.server.stop()


@pytest.fixture(scope="module")
def dht(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DhtBroker]:
    """The real SIFIS DHT broker."""
    with DhtBroker(tmp_path_factory.mktemp("dht")) as broker:
        yield broker


@dataclass(frozen=True)
class Transformers:
    grpc: RunningServer  # forwards over gRPC v2, delivers to the stand-in DHT
    rest: RunningServer  # forwards over REST v2, accepts uploads up to LARGE_UPLOAD_MB
    grpc_tmp: Path  # TMPDIR of the gRPC-forwarding transformer


def launch_transformer(model_dir: Path, protocol: str, host: str, env: dict[str, str]) -> RunningServer:
    """A transformer forwarding to the predictor at ``host`` over ``protocol`` (grpc-v2 or v2)."""
    args = transformer_args(model_dir, host, protocol)
    args += ["--enable_predictor_health_check", "--predictor_request_timeout_seconds", "10"]
    return start_server("transformer", args, env)


@pytest.fixture(scope="module")
def transformers(
    predictor: Predictor, dht: DhtBroker, synthetic_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Transformers]:
    tmp = tmp_path_factory.mktemp("transformer-tmp")
    common_env = {
        "AUDIOGUARD_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB),
        "AUDIOGUARD_MAX_AUDIO_SECONDS": str(MAX_AUDIO_SECONDS),
        "AUDIOGUARD_ANALYZER_ID": ANALYZER,
    }

    def launch(protocol: str, host: str, env: dict[str, str]) -> RunningServer:
        return launch_transformer(synthetic_model_dir, protocol, host, {**common_env, **env})

    grpc_env = {
        "TMPDIR": str(tmp),
        "AUDIOGUARD_DHT_URL": dht.url,
        "AUDIOGUARD_DHT_POST": "all",
        "AUDIOGUARD_OUTBOX_PATH": str(tmp / "outbox.sqlite3"),
    }
    with ThreadPoolExecutor(2) as pool:
        grpc_future = pool.submit(launch, "grpc-v2", predictor.server.grpc_address, grpc_env)
        rest_future = pool.submit(
            launch,
            "v2",
            f"127.0.0.1:{predictor.http_port}",
            {"AUDIOGUARD_MAX_UPLOAD_MB": str(LARGE_UPLOAD_MB)},
        )
        servers = [grpc_future.result(), rest_future.result()]
    yield Transformers(servers[0], servers[1], tmp)
    for server in servers:
        server.stop()


@pytest.fixture(params=["grpc", "rest"])
def transformer(request: pytest.FixtureRequest, transformers: Transformers) -> RunningServer:
    """Each transformer in turn (predictor reached over gRPC v2, then over REST v2)."""
    return transformers.grpc if request.param == "grpc" else transformers.rest


# --- the in-process reference ----------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(synthetic_model_dir: Path) -> OfflineClassifier:
    return OfflineClassifier.from_model_dir(synthetic_model_dir, max_audio_seconds=MAX_AUDIO_SECONDS)


def assert_matches(windows: list[dict[str, Any]], expected: AnalysisResult) -> None:
    """Server windows (all 527 labels each) equal the in-process scores."""
    assert len(windows) == len(expected.windows)
    for got, want in zip(windows, expected.windows, strict=True):
        assert got["start_seconds"] == pytest.approx(want.start_seconds, abs=1e-4)
        assert got["end_seconds"] == pytest.approx(want.end_seconds, abs=1e-4)
        scores = np.zeros(len(LABELS), dtype=np.float64)
        for entry in got["top"]:
            label = LABELS.by_name(entry["label"])
            assert label is not None and label.mid == entry["label_id"]
            scores[label.index] = entry["probability"]
        np.testing.assert_allclose(scores, want.scores, atol=ATOL)


# --- clients -------------------------------------------------------------------------------


# --- tests -------------------------------------------------------------------------------------


def test_services_listen_on_every_interface_by_default_as_in_containers(
    predictor: Predictor, transformers: Transformers
) -> None:
    """No --bind_host: KServe's every interface (the pod network must reach the servers)."""
    for server in (predictor.server, transformers.grpc):
        assert listening_addresses(int(server.http_url.rsplit(":", 1)[1])) == {"0.0.0.0"}
        assert listening_addresses(int(server.grpc_address.rsplit(":", 1)[1])) == {"::"}


def test_metadata_and_readiness(transformer: RunningServer, synthetic_model_dir: Path) -> None:
    metadata = requests.get(f"{transformer.http_url}/v2/models/{MODEL}", timeout=10).json()
    assert metadata["inputs"] == [{"name": "audio", "datatype": "BYTES", "shape": [1]}]
    assert [o["name"] for o in metadata["outputs"]] == [
        "label_id",
        "label",
        "probability",
        "window_start_seconds",
        "window_end_seconds",
        "anomalies",
    ]
    # official or synthetic weights are visible to callers (synthetic never passes as official)
    official = asset_report(synthetic_model_dir, TRANSFORMER_ASSETS)["official"]
    parameters = metadata["parameters"]
    assert parameters["weights_official"] is official
    vggish_file = parameters["assets"]["files"]["vggish_model.ckpt"]
    assert vggish_file["sha512"] == sha512_of(synthetic_model_dir / "vggish_model.ckpt")
    assert parameters["json_audio_encoding"] == {"content_encoding": "base64"}
    assert requests.get(f"{transformer.http_url}/v2/models/{MODEL}/ready", timeout=10).status_code == 200
    assert requests.get(f"{transformer.http_url}/v2/health/ready", timeout=10).status_code == 200
    sifis = requests.get(f"{transformer.http_url}/model/metadata", timeout=10).json()
    assert {"id", "name", "description", "license"} <= set(sifis)
    assert sifis["ready"] is True and sifis["weights_official"] is official
    # the same over gRPC
    with grpc.insecure_channel(transformer.grpc_address) as channel:
        stub = GRPCInferenceServiceStub(channel)
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
        assert stub.ModelReady(pb.ModelReadyRequest(name=MODEL), timeout=10).ready
        grpc_metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL), timeout=10)
    assert [(t.name, t.datatype, list(t.shape)) for t in grpc_metadata.inputs] == [("audio", "BYTES", [1])]
    assert [t.name for t in grpc_metadata.outputs] == [o["name"] for o in metadata["outputs"]]


@pytest.mark.parametrize("client", [triton_binary, triton_json, kserve_grpc], ids=["binary", "json", "grpc"])
def test_v2_clients_match_in_process(
    transformer: RunningServer, reference: OfflineClassifier, client: Callable[..., dict[str, Any]]
) -> None:
    audio = clip(11, seconds=4.0)
    result = client(transformer, audio, {"top_k": 527})
    assert_matches(result["windows"], reference.classify(audio, top_k=527))
    assert result["parameters"]["privacy_method"] == "none"


def test_curl_style_json_without_content_type(
    transformers: Transformers, reference: OfflineClassifier
) -> None:
    audio = clip(12)
    body = {
        "inputs": [
            {
                "name": "audio",
                "shape": [1],
                "datatype": "BYTES",
                "parameters": {"content_encoding": "base64"},
                "data": [base64.b64encode(audio).decode()],
            }
        ],
        "parameters": {"top_k": 527},
    }
    response = requests.post(
        f"{transformers.grpc.http_url}/v2/models/{MODEL}/infer", data=json.dumps(body).encode(), timeout=120
    )
    assert response.status_code == 200, response.text
    outputs = {
        o["name"]: np.asarray(o["data"], dtype=object).reshape(o["shape"]) for o in response.json()["outputs"]
    }
    assert_matches(windows_from_arrays(outputs), reference.classify(audio, top_k=527))


def test_curl_style_binary_extension_without_content_type(
    transformers: Transformers, reference: OfflineClassifier
) -> None:
    """``curl --data-binary @body -H 'Inference-Header-Content-Length: N'``: no Content-Type."""
    audio = clip(17)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "audio",
                    "shape": [1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": 4 + len(audio)},
                }
            ],
            "parameters": {"top_k": 527},
        }
    ).encode()
    element = len(audio).to_bytes(4, "little") + audio
    for server in (transformers.grpc, transformers.rest):
        response = requests.post(
            f"{server.http_url}/v2/models/{MODEL}/infer",
            data=header + element,
            headers={"Inference-Header-Content-Length": str(len(header))},
            timeout=120,
        )
        assert response.status_code == 200, response.text
        outputs = {
            o["name"]: np.asarray(o["data"], dtype=object).reshape(o["shape"])
            for o in response.json()["outputs"]
        }
        assert_matches(windows_from_arrays(outputs), reference.classify(audio, top_k=527))


def test_grpc_upload_above_the_default_8_mib_message_limit(
    transformers: Transformers, reference: OfflineClassifier
) -> None:
    """The transformer's gRPC limit follows --max_upload_mb (KServe's default is 8 MiB)."""
    rng = np.random.default_rng(18)
    stereo = 0.3 * rng.standard_normal((25 * 48000, 2))
    audio = wav_bytes(np.clip(stereo, -1, 1), sample_rate=48000, subtype="FLOAT")
    assert 8 * 1024 * 1024 < len(audio) < LARGE_UPLOAD_MB * 1024 * 1024
    result = kserve_grpc(transformers.rest, audio, {"top_k": 527})
    assert_matches(result["windows"], reference.classify(audio, top_k=527))


def test_all_windows_and_start_time(transformer: RunningServer, reference: OfflineClassifier) -> None:
    audio = clip(13, seconds=24.0)
    result = triton_binary(transformer, audio, {"top_k": 527, "all_windows": True, "start_time": "1.92"})
    expected = reference.classify(audio, top_k=527, all_windows=True, start_time=1.92)
    assert len(expected.windows) == 3  # 1.92..11.52, 11.52..21.12, 14.40..24.00 (the tail window)
    assert_matches(result["windows"], expected)


def test_privacy_method_is_reported(transformers: Transformers) -> None:
    result = kserve_grpc(transformers.grpc, clip(14), {"privacy": "scrample", "top_k": 3})
    assert result["parameters"]["privacy_method"] == "scramble"
    result = triton_binary(transformers.rest, clip(14), {"privacy": "dp_noise", "privacy_epsilon": "2.0"})
    assert result["parameters"]["privacy_method"] == "dp_noise"
    assert result["parameters"]["privacy_requested"] == "dp_noise"


def test_sifis_endpoint_analytics_api_request(
    transformer: RunningServer, reference: OfflineClassifier
) -> None:
    audio = clip(15, seconds=12.0)
    response = sifis_post(transformer, audio)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["audio_file"] == "anonymized_audio"
    assert body["method"] == "nothing" and body["privacy_method"] == "none"
    assert (body["requestor_id"], body["requestor_type"], body["request_id"]) == ("nssd-7", "NSSD", "req-42")
    assert body["analyzer_id"] == ANALYZER
    assert body["analysis_id"].startswith(ANALYZER)
    # the id reveals nothing of the audio: no digest of it, and a new id for the same upload
    assert hashlib.sha256(audio).hexdigest() not in body["analysis_id"]
    again = sifis_post(transformer, audio).json()["analysis_id"]
    assert again != body["analysis_id"] and len(again) == len(body["analysis_id"])
    # what the Analytics-API reads: predictions[0..4] label/probability, best first
    expected = reference.classify(audio, top_k=5)
    assert [p["label"] for p in body["predictions"]] == [p["label"] for p in expected.windows[0].top]
    np.testing.assert_allclose(
        [p["probability"] for p in body["predictions"]],
        [p["probability"] for p in expected.windows[0].top],
        atol=ATOL,
    )
    probabilities = [p["probability"] for p in body["predictions"]]
    assert probabilities == sorted(probabilities, reverse=True)
    # each probability written as its float32's shortest decimal, as every interface writes it
    # (at most 9 significant digits, where a float64 rendering of a float32 has up to 17)
    assert all(len(repr(p).split("e")[0].replace(".", "").lstrip("0")) <= 9 for p in probabilities)
    # synthetic weights in both services: the answer says so, not only the log
    assert body["weights_official"] is False
    assert body["weights_warning"].startswith("these answers do not come from the official model weights")
    # events over every window of the recording: what the shipped group table says of the
    # in-process scores, worked out here from the JSON file itself (not the detection code):
    # 12 s give 3 windows (one every 0.96 s), all within 5 s of each other, so a group that fires
    # in 2 of them is one event and a group that fires in 1 is none (2 hits in 3 windows)
    every = reference.classify(audio, all_windows=True, hop=1)
    assert len(every.windows) == 3
    hits = {
        group["name"]: sum(
            max(float(window.scores[m]) for m in group["members"]) >= group["threshold"]
            for window in every.windows
        )
        for group in shipped_groups()
        if group["enabled"]
    }
    expected_events = sorted(name for name, count in hits.items() if count >= 2)
    assert expected_events, "the clip must raise at least one event for this test to mean anything"
    assert sorted(a["group"] for a in body["anomalies"]) == expected_events
    for event in body["anomalies"]:
        assert 0.0 <= event["window_start_seconds"] <= event["start_seconds"] < event["end_seconds"] <= 11.52


def test_sifis_file_field_start_time_and_filter(
    transformers: Transformers, reference: OfflineClassifier
) -> None:
    audio = clip(16, seconds=6.0)
    expected = reference.classify(audio, top_k=5, start_time=2.0)
    kept = [expected.windows[0].top[0]["label"], expected.windows[0].top[2]["label"]]
    response = requests.post(
        sifis_url(transformers.grpc, "none", "kitchen.flac"),
        files={"file": ("kitchen.flac", audio, "audio/flac")},
        data={"start_time": "2.0", "filter": ",".join(kept)},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["audio_file"] == "kitchen.flac"
    assert [p["label"] for p in body["predictions"]] == kept


def test_concurrent_requests_get_their_own_answers(
    transformers: Transformers, reference: OfflineClassifier
) -> None:
    clips = [clip(100 + i, seconds=2.0 + 0.5 * i) for i in range(8)]
    expected = [reference.classify(audio, top_k=527) for audio in clips]
    # precondition: the clips' answers differ far more than the tolerance
    for i in range(len(clips)):
        for j in range(i):
            assert np.abs(expected[i].windows[0].scores - expected[j].windows[0].scores).max() > 100 * ATOL

    callers = [
        lambda audio: triton_binary(transformers.grpc, audio, {"top_k": 527}),
        lambda audio: kserve_grpc(transformers.grpc, audio, {"top_k": 527}),
        lambda audio: triton_binary(transformers.rest, audio, {"top_k": 527}),
        lambda audio: triton_json(transformers.rest, audio, {"top_k": 527}),
    ]
    jobs = [(i, caller) for i in range(len(clips)) for caller in callers]
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda job: job[1](clips[job[0]]), jobs))
    for (i, _), result in zip(jobs, results, strict=True):
        assert_matches(result["windows"], expected[i])


BAD_INPUTS: list[tuple[str, Callable[[], bytes], dict[str, Any], type[errors.AudioGuardError]]] = [
    ("empty", lambda: b"", {}, errors.EmptyAudio),
    (
        "undecodable",
        lambda: np.random.default_rng(5).integers(0, 256, 20000, dtype=np.uint8).tobytes(),
        {},
        errors.UndecodableAudio,
    ),
    ("zero_length", lambda: wav_bytes(np.zeros(0)), {}, errors.AudioTooShort),
    ("too_short", lambda: wav_bytes(np.zeros(8000)), {}, errors.AudioTooShort),
    ("nan", lambda: wav_bytes(np.full(16000, np.nan), subtype="FLOAT"), {}, errors.NonFiniteAudio),
    ("inf", lambda: wav_bytes(np.full(16000, np.inf), subtype="FLOAT"), {}, errors.NonFiniteAudio),
    (
        "too_long",
        lambda: wav_bytes(np.zeros(int((MAX_AUDIO_SECONDS + 1) * 8000)), sample_rate=8000),
        {},
        errors.AudioTooLarge,
    ),
    (
        "too_large",
        lambda: wav_bytes(np.zeros(int(MAX_UPLOAD_MB * 1024 * 1024 * 0.6)), subtype="PCM_24"),
        {},
        errors.AudioTooLarge,
    ),
    # 10 s is within the duration limit, but 3.84 M samples at 384 kHz exceed the decoding
    # budget of MAX_AUDIO_SECONDS x 96,000 (a ~40-KB upload).
    ("decoding_budget", lambda: silent_flac(10.0, 384_000), {}, errors.AudioTooLarge),
    (
        "sample_rate_out_of_range",
        lambda: wav_bytes(np.zeros(4000), sample_rate=500),
        {},
        errors.AudioParametersOutOfRange,
    ),
    ("start_outside_clip", lambda: clip(20, 2.0), {"start_time": "5.0"}, errors.StartTimeOutOfRange),
    ("bad_top_k", lambda: clip(21, 2.0), {"top_k": 0}, errors.InvalidParameter),
    ("unknown_privacy", lambda: clip(22, 2.0), {"privacy": "blur"}, errors.InvalidParameter),
    ("unknown_parameter", lambda: clip(23, 2.0), {"privcy": "none"}, errors.InvalidParameter),
]


#: The 413 names the limit the operator set (not the body limit with its framing overhead).
UPLOAD_LIMIT_MESSAGE = (
    f"the audio upload exceeds the {MAX_UPLOAD_MB:g} MiB limit (max_upload_mb / AUDIOGUARD_MAX_UPLOAD_MB)"
)
#: Exact messages asserted on every path, by case name.
BAD_INPUT_MESSAGES = {"too_large": UPLOAD_LIMIT_MESSAGE}


#: What a gRPC client must see for each HTTP status (413: what gRPC itself answers for an
#: oversized message).
GRPC_CODE_FOR_STATUS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    413: "RESOURCE_EXHAUSTED",
    503: "UNAVAILABLE",
}


@pytest.mark.parametrize(
    ("name", "make_audio", "parameters", "error"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_is_its_status_on_every_path(
    transformers: Transformers,
    name: str,
    make_audio: Callable[[], bytes],
    parameters: dict[str, Any],
    error: type[errors.AudioGuardError],
) -> None:
    audio = make_audio()
    server = transformers.grpc
    # v2 REST, binary extension (tritonclient's default)
    with pytest.raises(triton_http.InferenceServerException) as caught:
        triton_binary(server, audio, parameters)
    assert caught.value.status() == str(error.status_code), caught.value.message()
    assert "RIFF" not in caught.value.message()
    expected_message = BAD_INPUT_MESSAGES.get(name)
    if expected_message is not None:
        assert caught.value.message() == expected_message
    # v2 gRPC: the code that means what the HTTP status means
    with pytest.raises(grpc.RpcError) as grpc_caught:
        kserve_grpc(server, audio, parameters)
    assert grpc_caught.value.code().name == GRPC_CODE_FOR_STATUS[error.status_code]
    assert "RIFF" not in (grpc_caught.value.details() or "")
    if expected_message is not None:
        assert grpc_caught.value.details() == expected_message
    # SIFIS endpoint (parameters that exist there)
    if set(parameters) <= {"start_time"}:
        response = sifis_post(server, audio, data=parameters)
        assert response.status_code == error.status_code, response.text
        assert response.json()["status"] == "error"
        assert "RIFF" not in response.text
        if expected_message is not None:
            assert response.json()["message"] == expected_message


def test_sifis_wrong_type_and_missing_field_are_400(transformers: Transformers) -> None:
    server = transformers.grpc
    response = requests.post(
        sifis_url(server), files={"audio": ("notes.txt", b"hello", "text/plain")}, timeout=30
    )
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error"
    assert body["message"].startswith("Invalid file type/extension: text/plain")
    response = requests.post(sifis_url(server), data={"start_time": "1"}, timeout=30)
    assert response.status_code == 400 and response.json()["status"] == "error"


SIFIS_PATH_SHAPE = "/model/predict/{audio_file}/{method}/{requestor_id}/{requestor_type}/{request_id}"


@pytest.mark.parametrize(
    ("path", "got"),
    [
        ("sample%2F1.wav/nothing/nssd-7/NSSD/req-42", "got 6;"),  # encoded slash in audio_file
        ("anonymized_audio/nothing/nssd-7/NSSD", "got 4;"),
        ("anonymized_audio/nothing/nssd-7/NSSD/req-42/extra", "got 6;"),
        ("anonymized_audio//nssd-7/NSSD/req-42", "got 5, segment 2 empty;"),
        # five good segments: the count alone ("got 5") would contradict "expected five"
        ("anonymized_audio/nothing/nssd-7/NSSD/req-42/", "got 5 and a trailing slash (remove it);"),
        ("anonymized_audio/nothing/nssd-7/NSSD/", "got 4 and a trailing slash (remove it);"),
        ("", "got 0;"),
    ],
    ids=[
        "encoded_slash",
        "four_segments",
        "six_segments",
        "empty_segment",
        "trailing_slash",
        "four_and_trailing_slash",
        "no_segments",
    ],
)
def test_sifis_path_matching_no_route_is_a_sifis_404(transformers: Transformers, path: str, got: str) -> None:
    """Not FastAPI's {"detail": "Not Found"}: the Analytics-API reads status/message."""
    server = transformers.grpc
    response = requests.post(
        f"{server.http_url}/model/predict/{path}",
        files={"audio": ("sample1.wav", clip(26, 2.0), "audio/wav")},
        timeout=30,
    )
    assert response.status_code == 404, response.text
    body = response.json()
    assert set(body) == {"status", "message"} and body["status"] == "error"
    assert SIFIS_PATH_SHAPE in body["message"]
    assert got in body["message"]


def test_sifis_wrong_method_is_405_other_paths_keep_fastapi_404(transformers: Transformers) -> None:
    server = transformers.grpc
    response = requests.get(sifis_url(server), timeout=30)
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
    assert response.json() == {"status": "error", "message": "this SIFIS path takes POST only"}
    response = requests.get(f"{server.http_url}/model/unknown", timeout=30)
    assert response.status_code == 404 and response.json()["status"] == "error"
    assert SIFIS_PATH_SHAPE in response.json()["message"]
    response = requests.post(f"{server.http_url}/elsewhere/predict", timeout=30)
    assert response.status_code == 404 and response.json() == {"detail": "Not Found"}


def test_binary_element_without_length_prefix_is_400_without_echo(transformers: Transformers) -> None:
    """The request that makes stock KServe answer 500 and quote the file."""
    audio = clip(24, 2.0)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "audio",
                    "shape": [1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(audio)},
                }
            ]
        }
    ).encode()
    response = requests.post(
        f"{transformers.grpc.http_url}/v2/models/{MODEL}/infer",
        data=header + audio,
        headers={"Inference-Header-Content-Length": str(len(header))},
        timeout=30,
    )
    assert response.status_code == 400
    assert "RIFF" not in response.text and "4-byte little-endian length" in response.json()["error"]


def test_sifis_misspelt_method_is_400_not_silently_none(transformers: Transformers) -> None:
    # The old service ran a typo as "none": no anonymisation the caller wanted.
    response = sifis_post(transformers.grpc, clip(27, 2.0), method="scramlbe")
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] == "error" and "'scramlbe'" in body["message"]
    assert all(name in body["message"] for name in ("scramble", "speech_mask", "dp_noise"))
    assert sifis_post(transformers.grpc, clip(27, 2.0), method="nothing").status_code == 200


def test_results_reach_the_dht_through_the_outbox(transformers: Transformers, dht: DhtBroker) -> None:
    audio = clip(25, 3.0)
    response = sifis_post(transformers.grpc, audio, method="scrample")
    assert response.status_code == 200
    analysis_id = response.json()["analysis_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        value = dht.get(RESULTS_TOPIC_NAME, RESULTS_TOPIC_UUID)
        if value is not None and value["analysis_id"] == analysis_id:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the result did not reach the stand-in DHT within 30 s")
    assert value["request_id"] == "req-42" and value["method"] == "scrample"
    assert value["privacy_method"] == "scramble"


def test_no_audio_on_disk_or_in_logs(transformers: Transformers) -> None:
    """A 0.9 MiB upload leaves no trace in the transformer's TMPDIR, outbox or log."""
    noise = np.random.default_rng(26).uniform(-0.9, 0.9, int(0.45 * 1024 * 1024))
    audio = wav_bytes(noise)
    assert sifis_post(transformers.grpc, audio).status_code == 200
    triton_binary(transformers.grpc, audio, {})
    chunks = [audio[i : i + 48] for i in (4096, len(audio) // 2, len(audio) - 100)]
    for path in transformers.grpc_tmp.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert not any(chunk in content for chunk in chunks), f"audio bytes found in {path}"
    log = transformers.grpc.logs.read_bytes()
    assert not any(chunk in log for chunk in chunks)
    assert b"b'RIFF" not in log and b"Failed to encode" not in log


@pytest.fixture
def own_pair(synthetic_model_dir: Path) -> Iterator[tuple[Predictor, Transformers]]:
    """A predictor and both transformers of this test alone (it kills the predictor)."""
    predictor = Predictor(start_server("predictor", predictor_args(synthetic_model_dir)), synthetic_model_dir)
    servers = []
    try:
        servers.append(launch_transformer(synthetic_model_dir, "grpc-v2", predictor.server.grpc_address, {}))
        servers.append(launch_transformer(synthetic_model_dir, "v2", f"127.0.0.1:{predictor.http_port}", {}))
        yield predictor, Transformers(servers[0], servers[1], Path())
    finally:
        for server in servers:
            server.stop()
        predictor.server.stop()


def test_predictor_down_is_503_quickly_then_recovers(
    own_pair: tuple[Predictor, Transformers], reference: OfflineClassifier
) -> None:
    """Kills its predictor, checks fast 503s, restarts it on the same ports, sees recovery."""
    predictor, transformers = own_pair
    audio = clip(30, 3.0)
    expected = reference.classify(audio, top_k=527)
    predictor.server.process.kill()
    predictor.server.process.wait(10)
    try:
        for server in (transformers.grpc, transformers.rest):
            started = time.monotonic()
            with pytest.raises(triton_http.InferenceServerException) as caught:
                triton_binary(server, audio, {"top_k": 527})
            assert caught.value.status() == "503"
            assert time.monotonic() - started < 5
            response = sifis_post(server, audio)
            assert response.status_code == 503 and response.json()["status"] == "error"
            assert response.headers["Retry-After"] == str(PREDICTOR_RETRY_AFTER_SECONDS)
            # the predictor has served once: its outage keeps the transformer ready (unready pods would
            # leave the Service with no endpoints, refusing connections instead of these clear 503s;
            # docs/deploy.md); a transformer whose predictor never answered stays unready
            # (tests/e2e/test_predictor_outage.py)
            assert requests.get(f"{server.http_url}/v2/health/ready", timeout=10).status_code == 200
            assert requests.get(f"{server.http_url}/v2/models/{MODEL}/ready", timeout=10).status_code == 200
    finally:
        predictor.server.stop()
        predictor.server = restart_on_same_ports(predictor)
    for server in (transformers.grpc, transformers.rest):
        deadline = time.monotonic() + 30
        while True:
            try:
                result = triton_binary(server, audio, {"top_k": 527})
                break
            except triton_http.InferenceServerException as error:
                assert error.status() == "503"
                assert time.monotonic() < deadline, "no recovery within 30 s of the predictor's return"
                time.sleep(0.2)
        assert_matches(result["windows"], expected)
        assert requests.get(f"{server.http_url}/v2/health/ready", timeout=10).status_code == 200
