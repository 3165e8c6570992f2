"""Both images, built by scripts/images.sh, run as the manifests run them and used through every
interface: v2 REST (binary), gRPC and the SIFIS endpoint, transformer -> predictor, anomalies and
results to the real SIFIS DHT broker through the outbox on its volume."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.images.conftest import PREDICTOR_CMD, Deployment, resident_mib, run_transformer
from tests.support.containers import Container, image_name, image_size_bytes, podman, run_hardened
from tests.support.dht_standin import wait_until
from tests.support.serverutil import free_port
from tests.support.service_clients import MODEL, clip, kserve_grpc, sifis_post, triton_binary, wav_bytes
from transformer.analysis.labels import load_labels
from transformer.dht.topics import RESULTS_TOPIC_NAME, RESULTS_TOPIC_UUID

#: Packages no process of the image imports; the image must not hold them.
NOT_IN = {
    "transformer": [
        "ray", "matplotlib", "scipy", "clang", "PIL", "pip", "audioguard", "predictor", "pytest",
        "kubernetes.aio", "resampy", "numba", "llvmlite", "tensorflow", "keras", "h5py",
    ],
    "predictor": [
        "ray", "matplotlib", "scipy", "clang", "PIL", "pip", "audioguard", "transformer", "pytest",
        "resampy", "numba", "soundfile", "kubernetes.aio", "tensorflow", "keras",
    ],
}  # fmt: skip
#: What each process needs (a wrong lock would leave one out).
NEEDED = {
    "transformer": ["kserve", "onnxruntime", "onnx", "soundfile", "websockets", "contract", "transformer"],
    "predictor": ["kserve", "onnxruntime", "onnx", "h5py", "contract", "predictor"],
}
_FIND = (
    "import importlib.util as u, json, sys; "
    "print(json.dumps({m: u.find_spec(m) is not None for m in sys.argv[1:]}))"
)


def _containers(deployment: Deployment) -> dict[str, Container]:
    return {"predictor": deployment.predictor, "transformer": deployment.transformer}


@pytest.mark.parametrize("service", ["transformer", "predictor"])
def test_image_holds_only_what_its_process_imports(service: str) -> None:
    names = [*NOT_IN[service], *NEEDED[service]]
    found = json.loads(
        podman("run", "--rm", "--entrypoint", "python", image_name(service), "-c", _FIND, *names).stdout
    )
    assert [name for name in NOT_IN[service] if found[name]] == []
    assert [name for name in NEEDED[service] if not found[name]] == []


@pytest.mark.parametrize("service", ["transformer", "predictor"])
def test_runs_unprivileged_on_a_read_only_root(deployment: Deployment, service: str) -> None:
    container = _containers(deployment)[service]
    status = dict(
        line.split(":\t", 1) for line in container.exec("cat", "/proc/1/status").splitlines() if ":\t" in line
    )
    assert status["Uid"].split()[:2] == ["1000", "1000"]
    assert status["CapEff"].strip() == "0000000000000000" and status["CapPrm"].strip() == "0000000000000000"
    assert status["NoNewPrivs"].strip() == "1"
    config = container.inspect()["HostConfig"]
    assert config["ReadonlyRootfs"] is True
    write = podman("exec", container.name, "sh", "-c", "touch /opt/venv/x", check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr


@pytest.mark.parametrize("service", ["transformer", "predictor"])
def test_the_image_healthcheck_passes(deployment: Deployment, service: str) -> None:
    container = _containers(deployment)[service]
    healthcheck = container.inspect()["Config"]["Healthcheck"]
    assert healthcheck["Test"][0] == "CMD" and "HEALTHCHECK_URL" in " ".join(healthcheck["Test"])
    result = podman("healthcheck", "run", container.name, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_v2_rest_binary_through_both_containers(deployment: Deployment) -> None:
    answer = triton_binary(deployment.transformer, clip(11, seconds=2.0), {})
    labels = {label.display_name for label in load_labels()}
    (window,) = answer["windows"]
    top = window["top"]
    assert len(top) == 5 and {entry["label"] for entry in top} <= labels
    assert np.all(np.diff([entry["probability"] for entry in top]) <= 0)
    assert window["start_seconds"] == 0.0


def test_a_44_1_khz_stereo_upload_is_resampled_in_the_image(deployment: Deployment) -> None:
    """The resampler (numpy, BLAS and FFT; no numba) runs in the slimmed image."""
    rng = np.random.default_rng(15)
    stereo = 0.2 * rng.standard_normal((2 * 44100, 2))
    answer = triton_binary(deployment.transformer, wav_bytes(stereo, 44100), {})
    (window,) = answer["windows"]
    # two whole 0.96-s examples in 2 s
    assert len(window["top"]) == 5 and window["end_seconds"] == pytest.approx(1.92, abs=1e-6)


def test_grpc_through_both_containers(deployment: Deployment) -> None:
    answer = kserve_grpc(deployment.transformer, clip(12, seconds=2.0), {})
    (window,) = answer["windows"]
    assert len(window["top"]) == 5


def test_sifis_request_reaches_the_real_broker_through_the_outbox_volume(deployment: Deployment) -> None:
    answer = sifis_post(deployment.transformer, clip(13, seconds=3.0))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["predictions"]) == 5 and body["request_id"] == "req-42"

    def delivered() -> bool:
        value = deployment.broker.get(RESULTS_TOPIC_NAME, RESULTS_TOPIC_UUID)
        return value is not None and value["analysis_id"] == body["analysis_id"]

    wait_until(delivered, 60, "the SIFIS result at the DHT broker")
    files = deployment.transformer.exec("ls", "/var/lib/audioguard").split()
    assert "outbox.sqlite3" in files


def test_audio_sent_to_the_predictor_is_refused_without_echo(deployment: Deployment) -> None:
    audio = clip(14, seconds=1.0)
    answer = requests.post(
        f"{deployment.predictor.http_url}/v2/models/{MODEL}/infer",
        json={"inputs": [{"name": "audio", "shape": [1], "datatype": "BYTES", "data": [audio.hex()]}]},
        timeout=30,
    )
    assert answer.status_code == 400
    assert audio.hex()[:32] not in answer.text


def test_nothing_is_written_outside_the_mounted_volumes(deployment: Deployment) -> None:
    # after every request above (the module's tests run in file order)
    for container in _containers(deployment).values():
        assert container.changed_paths() == [], container.name
    assert sorted(p.name for p in deployment.models.iterdir()) == [
        "classifier_model.h5", "vggish_model.ckpt", "vggish_pca_params.npz",
    ]  # fmt: skip


def test_the_default_predictor_image_explains_that_ray_needs_the_ray_variant(image_models: object) -> None:
    started = time.monotonic()
    result = podman(
        "run", "--rm", "--user", "1000:1000", "--read-only", "--tmpfs", "/tmp",
        "--volume", f"{image_models}:/mnt/models:ro",
        image_name("predictor"), *PREDICTOR_CMD, "--ray_replicas", "1",
        check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "--ray_replicas needs Ray" in result.stderr and "RAY=true" in result.stderr
    assert time.monotonic() - started < 120


def test_the_ray_variant_serves_the_classifier_from_ray_replicas(
    image_models: object, report: dict[str, dict[str, float]]
) -> None:
    """The RAY=true build, as the manifests run the predictor, with one Ray Serve replica."""
    predictor = run_hardened(
        f"audioguard-test-predictor-ray-{uuid.uuid4().hex[:8]}",
        image_name("predictor") + "-ray",
        [*PREDICTOR_CMD, "--ray_replicas", "1"],
        http_port=free_port(),
        grpc_port=free_port(),
        publish=True,
        volumes=[f"{image_models}:/mnt/models:ro"],
    )
    try:
        predictor.wait_ready()
        report["predictor-ray"] = {
            "image_bytes": image_size_bytes(image_name("predictor") + "-ray"),
            "ready_seconds": round(predictor.ready_seconds or 0.0, 1),
        }
        windows = np.random.default_rng(16).integers(0, 256, size=(2, 10, 128), dtype=np.uint8)
        body = {
            "inputs": [
                {
                    "name": "embeddings",
                    "shape": [2, 10, 128],
                    "datatype": "UINT8",
                    "data": windows.ravel().tolist(),
                }
            ]
        }
        answer = requests.post(f"{predictor.http_url}/v2/models/{MODEL}/infer", json=body, timeout=60)
        assert answer.status_code == 200, answer.text
        (output,) = answer.json()["outputs"]
        assert output["name"] == "scores" and output["shape"] == [2, 527]
        scores = np.asarray(output["data"])
        assert np.all((scores >= 0) & (scores <= 1))
        assert "Ray Serve" in predictor.logs() or "ServeReplica" in predictor.logs()
    finally:
        predictor.remove()


def test_resident_memory_of_both_services(
    deployment: Deployment, report: dict[str, dict[str, float]]
) -> None:
    """After the requests above: the transformer, with no TensorFlow, holds ~0.75 GB (measured 750
    MiB here) against the 1.35 GB it held with it: 56 %, short of issue 14's goal of half (the
    runtime benchmark, same run, gives 990 against 1992 MiB, 50 %). ONNX Runtime keeps the 289 MB
    of weights about twice (not prepacking, not the optimiser: both measured). The bound guards
    against a regression. The predictor, on ONNX Runtime since issue 29, converted the classifier
    at start (read-only models: no cache) and answered: issue 29's bound is 250 MiB (bench/
    predictor_benchmark.py measured ~195 MiB ready, ~220 after traffic; 620-670 on TensorFlow)."""
    for service, container in _containers(deployment).items():
        report[service]["rss_mib"] = round(resident_mib(container))
        assert "tensorflow" not in container.exec("cat", "/proc/1/maps"), service
    assert report["transformer"]["rss_mib"] < 810, report["transformer"]
    assert report["predictor"]["rss_mib"] < 250, report["predictor"]


def test_int8_without_scratch_space_refuses_to_start_with_the_way_out(deployment: Deployment) -> None:
    """Read-only models and the manifests' small /tmp: int8 cannot calibrate there. One clear line
    naming the folders and the flag, not ENOSPC halfway through a 289 MB write."""
    transformer = run_transformer(
        f"audioguard-test-transformer-int8-{uuid.uuid4().hex[:8]}",
        deployment.predictor.grpc_address,
        volumes=[f"{deployment.models}:/mnt/models:ro"],
        env={},
        extra=("--vggish_precision", "int8"),
    )
    try:
        assert transformer.wait_exit(timeout=120) == 1
        logs = transformer.logs()
        assert "cannot start: int8 calibration needs about" in logs
        assert "/mnt/models (read-only)" in logs and "/tmp (" in logs and "--vggish_cache_dir" in logs
        assert "Traceback" not in logs
    finally:
        transformer.remove()


def test_int8_transformer_calibrates_into_its_cache_volume_and_starts_from_it_next_time(
    deployment: Deployment, report: dict[str, dict[str, float]], tmp_path: Path
) -> None:
    """--vggish_precision int8 with read-only models and a writable --vggish_cache_dir: the first
    start calibrates there (scratch and cache), the next one loads the cached model."""
    cache = tmp_path / "int8-cache"
    cache.mkdir()
    cache.chmod(0o777)  # the service runs as uid 1000
    volumes = [f"{deployment.models}:/mnt/models:ro", f"{cache}:/cache"]
    extra = ("--vggish_precision", "int8", "--vggish_cache_dir", "/cache")
    for start in ("calibrating", "cached"):
        transformer = run_transformer(
            f"audioguard-test-transformer-int8-{uuid.uuid4().hex[:8]}",
            deployment.predictor.grpc_address,
            volumes=volumes,
            env={},
            extra=extra,
        )
        try:
            transformer.wait_ready()
            logs = transformer.logs()
            if start == "calibrating":
                assert "int8 VGGish calibrated" in logs and "not cached" not in logs
                assert [p.name for p in cache.iterdir()] == ["vggish_model.int8.onnx"]  # no scratch left
            else:
                assert "int8 VGGish loaded from /cache/vggish_model.int8.onnx" in logs
            answer = triton_binary(transformer, clip(17, seconds=3.0), {})
            (window,) = answer["windows"]
            assert len(window["top"]) == 5
            report[f"transformer-int8-{start}"] = {
                "ready_seconds": round(transformer.ready_seconds or 0.0, 1),
                "rss_mib": round(resident_mib(transformer)),
            }
            assert transformer.changed_paths() == []
        finally:
            transformer.remove()


def test_the_listen_variant_captures_a_live_source_and_delivers_its_events(
    deployment: Deployment, report: dict[str, dict[str, float]], tmp_path: Path
) -> None:
    """The LISTEN=true build (ffmpeg inside) with --sources_file, hardened as the chart runs it: a
    recording played out by ffmpeg in the container, its events at the real DHT broker, nothing
    written outside the volumes. The default image has no ffmpeg."""
    assert "None" in deployment.transformer.exec(
        "python", "-c", "import shutil; print(shutil.which('ffmpeg'))"
    )
    sources = tmp_path / "sources"
    sources.mkdir()
    rng = np.random.default_rng(16)
    (sources / "night.wav").write_bytes(wav_bytes(0.3 * rng.standard_normal(12 * 16_000), 16_000))
    (sources / "sources.yaml").write_text(
        "sources:\n  - {name: replay, url: 'file:/sources/night.wav', realtime: false}\n"
    )
    for path in (sources, *sources.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    outbox.chmod(0o777)  # the service runs as uid 1000
    transformer = run_transformer(
        f"audioguard-test-transformer-listen-{uuid.uuid4().hex[:8]}",
        deployment.predictor.grpc_address,
        volumes=[
            f"{deployment.models}:/mnt/models:ro",
            f"{sources}:/sources:ro",
            f"{outbox}:/var/lib/audioguard",
        ],
        env={"AUDIOGUARD_DHT_URL": deployment.broker.url},
        extra=("--sources_file", "/sources/sources.yaml"),
        image=image_name("transformer") + "-listen",
    )
    try:
        transformer.wait_ready()
        url = transformer.http_url + "/v1/monitor"
        found: dict[str, object] = {}

        def finished() -> bool:
            (found["source"],) = requests.get(url, timeout=10).json()["sources"]
            return found["source"]["state"] == "finished"  # type: ignore[index]

        def delivered() -> bool:
            entries = deployment.broker.entries("SIFIS:Audio_Anomaly").values()
            values = [v for v in entries if v.get("source") == "replay"]
            starts = {v["event_id"] for v in values if v["change"] == "start"}
            found["records"] = values
            return bool(starts) and starts == {v["event_id"] for v in values if v["change"] == "end"}

        wait_until(lambda: time.sleep(0.2) or finished(), 120, "the recording to play out in the container")
        source = found["source"]
        assert isinstance(source, dict)
        assert source["seconds_captured"] == pytest.approx(12.0, abs=0.05) and source["open_events"] == []
        wait_until(lambda: time.sleep(0.2) or delivered(), 60, "the live events at the DHT")
        records = found["records"]
        assert isinstance(records, list)
        assert all(r["privacy_method"] == "none" and r["weights_official"] is False for r in records)
        assert all(r["schema_version"] == 2 and r["origin"] == "live" for r in records)
        report["transformer-listen"] = {
            "image_bytes": image_size_bytes(image_name("transformer") + "-listen"),
            "ready_seconds": round(transformer.ready_seconds or 0.0, 1),
            "rss_mib": round(resident_mib(transformer)),
        }
        assert transformer.changed_paths() == []
    finally:
        transformer.remove()


def test_the_transformer_image_explains_that_tensorflow_is_not_in_it(image_models: object) -> None:
    result = podman(
        "run", "--rm", "--user", "1000:1000", "--read-only", "--tmpfs", "/tmp",
        "--volume", f"{image_models}:/mnt/models:ro", image_name("transformer"),
        "--model_name", MODEL, "--model_dir", "/mnt/models", "--predictor_host", "127.0.0.1:1",
        "--vggish_runtime", "tensorflow",
        check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "not installed in this image" in result.stderr and "--vggish_runtime onnxruntime" in result.stderr
