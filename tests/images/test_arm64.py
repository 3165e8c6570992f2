"""The arm64 images (scripts/images-arm64.sh), run under qemu-user emulation, against the amd64 ones:
one recording sent by v2 REST and by the SIFIS endpoint through each pair gives the same top-5, and
each transformer image embeds it to the same uint8 embeddings (to +-1: MLAS's kernels differ between
x86-64 and aarch64, the graph and weights do not).

Only scripts/images-arm64.sh runs these (it sets AUDIOGUARD_ARM64_TAG after building the arm64 images);
scripts/images.sh's run of tests/images skips them.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import SHARED_AUDIO
from tests.images.conftest import PREDICTOR_CMD, run_transformer
from tests.support.containers import image_name, podman, run_hardened
from tests.support.serverutil import free_port
from tests.support.service_clients import clip, sifis_post, triton_binary

ARM64_TAG = os.environ.get("AUDIOGUARD_ARM64_TAG", "")
#: Under emulation Python runs 10-30x slower: building VGGish's graph at start takes minutes.
EMULATED_SECONDS = 1800.0
pytestmark = [
    pytest.mark.skipif(
        not ARM64_TAG, reason="the arm64 leg runs only from scripts/images-arm64.sh (AUDIOGUARD_ARM64=1)"
    ),
    # the first test that needs both pairs starts them, one after the other, in its setup
    pytest.mark.timeout(3 * EMULATED_SECONDS),
]
#: Scores of the two architectures' runtimes (same fp32 graph, different kernels).
SCORE_TOLERANCE = 1e-4
#: What a Raspberry Pi 4's kernel shows (Cortex-A72). qemu-user 7.2 passes the host's x86 /proc/cpuinfo
#: through, on which ONNX Runtime's CPU detection (cpuinfo) crashes at import, in a thread, and qemu
#: then hangs; the arm64 containers get this file there instead (a stand-in for the ARM kernel only).
AARCH64_CPUINFO = (
    "".join(
        f"processor\t: {n}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
        "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n"
        "CPU revision\t: 3\n\n"
        for n in range(2)
    )
    + "Hardware\t: BCM2835\nRevision\t: c03111\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1\n"
)
_EMBED = (
    "import base64, json, sys; from pathlib import Path; "
    "from transformer.audio.pipeline import EmbeddingPipeline; "
    "from transformer.privacy import PrivacyRequest; "
    "pipeline = EmbeddingPipeline.from_model_dir(Path('/mnt/models')); "
    "embedded = pipeline.embed(base64.b64decode(sys.argv[1]), PrivacyRequest('none')); "
    "print(json.dumps(embedded.embeddings.tolist()))"
)


@dataclass(frozen=True)
class Answers:
    """What one architecture's pair answered for the recording."""

    architecture: str
    v2_windows: list[dict[str, Any]]
    sifis: dict[str, Any]
    embeddings: np.ndarray
    ready_seconds: dict[str, float]


def recording() -> bytes:
    """The Analytics-API's own sample recording where ../shared is present, else a synthetic clip."""
    sample = SHARED_AUDIO / "sample1.wav"
    return sample.read_bytes() if sample.is_file() else clip(29, seconds=3.0)


def image(service: str, tag: str) -> str:
    return image_name(service).rpartition(":")[0] + f":{tag}"


def answers_of(tag: str, models: Path, state: Path, audio: bytes, *, emulated: bool) -> Answers:
    """Start the pair tagged ``tag`` as the manifests run it, send the recording by v2 REST and by
    SIFIS, embed it in the transformer's container, stop the pair."""
    run = uuid.uuid4().hex[:8]
    predictor_name = f"audioguard-test-predictor-{tag}-{run}"
    transformer_name = f"audioguard-test-transformer-{tag}-{run}"
    state.mkdir()
    state.chmod(0o777)  # the services run as uid 1000
    cpuinfo = []
    if emulated:
        (state.parent / "cpuinfo").write_text(AARCH64_CPUINFO)
        (state.parent / "cpuinfo").chmod(0o644)
        cpuinfo = [f"{state.parent / 'cpuinfo'}:/proc/cpuinfo:ro"]
    try:
        predictor = run_hardened(
            predictor_name,
            image("predictor", tag),
            PREDICTOR_CMD,
            http_port=free_port(),
            grpc_port=free_port(),
            publish=True,
            volumes=[f"{models}:/mnt/models:ro", *cpuinfo],
        )
        predictor.wait_ready(timeout=EMULATED_SECONDS)
        transformer = run_transformer(
            transformer_name,
            predictor.grpc_address,
            volumes=[f"{models}:/mnt/models:ro", f"{state}:/var/lib/audioguard", *cpuinfo],
            env={},
            image=image("transformer", tag),
        )
        transformer.wait_ready(timeout=EMULATED_SECONDS)
        architecture = transformer.exec("python", "-c", "import platform; print(platform.machine())").strip()
        v2 = triton_binary(transformer, audio, {})
        sifis = sifis_post(transformer, audio)
        assert sifis.status_code == 200, sifis.text
        embedded = podman(
            "exec", transformer_name, "python", "-c", _EMBED, base64.b64encode(audio).decode("ascii"),
            timeout=EMULATED_SECONDS,
        )  # fmt: skip
        return Answers(
            architecture=architecture,
            v2_windows=v2["windows"],
            sifis=sifis.json(),
            embeddings=np.asarray(json.loads(embedded.stdout.strip().splitlines()[-1]), dtype=np.int64),
            ready_seconds={
                "predictor": round(predictor.ready_seconds or 0.0, 1),
                "transformer": round(transformer.ready_seconds or 0.0, 1),
            },
        )
    finally:
        for name in (transformer_name, predictor_name):
            podman("rm", "--force", "--time", "10", name, check=False)


@pytest.fixture(scope="module")
def pairs(image_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Answers]]:
    """Both pairs' answers, one pair at a time (emulation needs the CPU to itself)."""
    audio = recording()
    found = {
        arch: answers_of(
            tag,
            image_models,
            tmp_path_factory.mktemp(f"state-{arch}") / "state",
            audio,
            emulated=arch == "arm64",
        )
        for arch, tag in (("amd64", os.environ.get("AUDIOGUARD_IMAGES_TAG", "test")), ("arm64", ARM64_TAG))
    }
    report = os.environ.get("AUDIOGUARD_ARM64_REPORT")
    if report:
        Path(report).write_text(json.dumps({a: f.ready_seconds for a, f in found.items()}, indent=2))
    yield found


def assert_same_top5(amd64: list[dict[str, Any]], arm64: list[dict[str, Any]]) -> None:
    assert len(amd64) == len(arm64) == 5
    assert [p["label"] for p in arm64] == [p["label"] for p in amd64]
    assert [p["probability"] for p in arm64] == pytest.approx(
        [p["probability"] for p in amd64], abs=SCORE_TOLERANCE
    )


@pytest.mark.parametrize("service", ["transformer", "predictor"])
def test_the_arm64_images_are_arm64_and_listed_beside_amd64_in_the_manifest(service: str) -> None:
    inspected = podman("image", "inspect", "--format", "{{.Architecture}}", image(service, ARM64_TAG))
    assert inspected.stdout.strip() == "arm64"
    listed = json.loads(podman("manifest", "inspect", image(service, "multiarch")).stdout)
    assert sorted(entry["platform"]["architecture"] for entry in listed["manifests"]) == ["amd64", "arm64"]


def test_the_pairs_ran_on_their_architectures(pairs: dict[str, Answers]) -> None:
    assert pairs["amd64"].architecture == "x86_64"
    assert pairs["arm64"].architecture == "aarch64"


def test_v2_request_same_top5_on_both_architectures(pairs: dict[str, Answers]) -> None:
    amd64, arm64 = pairs["amd64"].v2_windows, pairs["arm64"].v2_windows
    assert len(arm64) == len(amd64) >= 1
    for window_amd64, window_arm64 in zip(amd64, arm64, strict=True):
        assert window_arm64["start_seconds"] == window_amd64["start_seconds"]
        assert_same_top5(window_amd64["top"], window_arm64["top"])


def test_sifis_request_same_top5_on_both_architectures(pairs: dict[str, Answers]) -> None:
    amd64, arm64 = pairs["amd64"].sifis, pairs["arm64"].sifis
    assert arm64["status"] == amd64["status"] == "ok"
    assert_same_top5(amd64["predictions"], arm64["predictions"])


def test_same_uint8_embeddings_on_both_architectures(pairs: dict[str, Answers]) -> None:
    amd64, arm64 = pairs["amd64"].embeddings, pairs["arm64"].embeddings
    assert amd64.shape == arm64.shape and amd64.shape[1:] == (128,)
    assert amd64.std() > 0  # not a constant: the comparison means something
    assert int(np.abs(amd64 - arm64).max()) <= 1
    assert np.mean(amd64 == arm64) >= 0.99


def test_the_arm64_listen_variant_runs_ffmpeg() -> None:
    listen = image("transformer", f"test-listen-{ARM64_TAG.removeprefix('test-')}")
    if podman("image", "exists", listen, check=False).returncode != 0:
        pytest.skip(f"{listen} was not built (ARM64_LISTEN=false)")
    result = podman(
        "run", "--rm", "--entrypoint", "sh", listen, "-c", "uname -m && ffmpeg -hide_banner -version",
        timeout=EMULATED_SECONDS,
    )  # fmt: skip
    assert result.stdout.splitlines()[0] == "aarch64" and "ffmpeg version" in result.stdout
