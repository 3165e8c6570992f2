"""VGGish on ONNX Runtime against the TensorFlow reference: fp32 strict, int8 measured and bounded.

The fp32 bar is the issue's: uint8 embeddings equal on >= 99.9 % of values, scores
within 1e-4 and the same top-5 in every window. The int8 bounds sit just under
what this recipe measured (docs/performance.md, "Fidelity"), so a worse recipe fails.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from bench.vggish_fidelity import Fidelity, compare, recording_examples
from tests.support.signals import chirp, tone, white_noise
from transformer.audio.calibration import calibration_examples, calibration_waveforms
from transformer.audio.embedders import Embedder, load_embedder
from transformer.audio.features import waveform_to_examples
from transformer.audio.vggish_int8 import cpu_has_vnni, int8_weight_type
from transformer.audio.vggish_ort import INT8_CACHE_NAME, OnnxVGGishEmbedder

pytestmark = pytest.mark.slow


def _signals() -> list[np.ndarray]:
    """Generated test audio (not the calibration set): tones, a chirp, noise, clicks, a mix."""
    rng = np.random.default_rng(11)
    clicks = np.zeros(16_000 * 4)
    clicks[::3000] = 0.8
    return [
        tone(440.0, 4.0, 16_000, amplitude=0.3),
        chirp(100.0, 6000.0, 5.0, 16_000),
        white_noise(4.0, 16_000, amplitude=0.05, seed=3),
        clicks + 0.002 * rng.standard_normal(clicks.size),
        tone(3100.0, 3.0, 16_000, amplitude=0.01) + white_noise(3.0, 16_000, amplitude=0.003, seed=4),
    ]


@pytest.fixture(scope="module")
def model_files(synthetic_model_dir: Path) -> tuple[Path, Path]:
    return synthetic_model_dir / "vggish_model.ckpt", synthetic_model_dir / "vggish_pca_params.npz"


@pytest.fixture(scope="module")
def classifier(synthetic_model_dir: Path) -> object:
    from predictor.classifier import AttentionClassifier

    return AttentionClassifier.from_file(synthetic_model_dir / "classifier_model.h5")


@pytest.fixture(scope="module")
def reference(model_files: tuple[Path, Path]) -> Embedder:
    return load_embedder(*model_files, runtime="tensorflow")


@pytest.fixture(scope="module")
def fp32(model_files: tuple[Path, Path]) -> Embedder:
    return load_embedder(*model_files)


@pytest.fixture(scope="module")
def int8(model_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return load_embedder(*model_files, precision="int8", cache_dir=tmp_path_factory.mktemp("int8"))


@pytest.fixture(scope="module")
def signal_examples() -> list[np.ndarray]:
    return [waveform_to_examples(signal) for signal in _signals()]


def _fidelity(
    reference: Embedder, candidate: Embedder, examples: list[np.ndarray], classifier: object
) -> Fidelity:
    ref = [reference.embed_quantized(batch) for batch in examples]
    cand = [candidate.embed_quantized(batch) for batch in examples]
    return compare(ref, cand, classifier.predict)  # type: ignore[attr-defined]


# --- fp32: the default runtime keeps the reference's answers ---------------------------------


def test_fp32_matches_the_reference_on_generated_audio(
    reference: Embedder, fp32: Embedder, signal_examples: list[np.ndarray], classifier: object
) -> None:
    assert fp32.runtime == "onnxruntime" and reference.runtime == "tensorflow"
    raw_ref = reference.embed(np.concatenate(signal_examples))
    raw = fp32.embed(np.concatenate(signal_examples))
    np.testing.assert_allclose(raw, raw_ref, rtol=0, atol=1e-4)
    result = _fidelity(reference, fp32, signal_examples, classifier)
    assert result.equal >= 0.999, result
    assert result.max_score_difference <= 1e-4, result
    assert result.top5_overlap == 5.0 and result.top1_agreement == 1.0, result


def test_fp32_matches_the_reference_on_the_shared_recordings(
    reference: Embedder, fp32: Embedder, classifier: object, shared_audio_dir: Path
) -> None:
    paths = sorted(p for p in shared_audio_dir.iterdir() if p.suffix in (".wav", ".flac"))
    result = _fidelity(reference, fp32, recording_examples(paths), classifier)
    assert result.examples >= 80 and result.windows >= 20
    assert result.equal >= 0.999, result
    assert result.max_score_difference <= 1e-4, result
    assert result.top5_overlap == 5.0, result


def test_fc2_without_relu_matches_the_reference(
    model_files: tuple[Path, Path], signal_examples: list[np.ndarray]
) -> None:
    examples = np.concatenate(signal_examples[:2])
    linear = load_embedder(*model_files, fc2_relu=False).embed(examples)
    reference = load_embedder(*model_files, runtime="tensorflow", fc2_relu=False).embed(examples)
    assert linear.min() < 0  # the switch took effect
    np.testing.assert_allclose(linear, reference, rtol=0, atol=1e-4)


def test_batch_size_does_not_change_the_answer_and_threads_share_a_session(
    model_files: tuple[Path, Path], fp32: Embedder, signal_examples: list[np.ndarray]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    examples = np.concatenate(signal_examples)
    whole = fp32.embed(examples)
    small = load_embedder(*model_files, batch_size=3, threads=1).embed(examples)
    np.testing.assert_allclose(small, whole, rtol=0, atol=1e-5)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(fp32.embed, [examples] * 8))
    for result in results:
        np.testing.assert_array_equal(result, whole)


def test_empty_and_misshapen_input(fp32: Embedder) -> None:
    assert fp32.embed(np.zeros((0, 96, 64))).shape == (0, 128)
    with pytest.raises(ValueError, match=r"expected \(N, 96, 64\) examples, got shape \(2, 64, 96\)"):
        fp32.embed(np.zeros((2, 64, 96)))


def test_the_tensorflow_runtime_refuses_int8(model_files: tuple[Path, Path]) -> None:
    with pytest.raises(ValueError, match="int8 needs --vggish_runtime onnxruntime"):
        load_embedder(*model_files, runtime="tensorflow", precision="int8")


# --- int8: opt-in, calibrated on generated sounds, cached ------------------------------------


def test_int8_fidelity_on_generated_audio(
    reference: Embedder, int8: Embedder, signal_examples: list[np.ndarray], classifier: object
) -> None:
    assert int8.precision == "int8"
    result = _fidelity(reference, int8, signal_examples, classifier)
    assert result.within_2 >= 0.85, result
    assert result.top1_agreement >= 0.9 and result.top5_overlap >= 4.5, result
    assert result.max_score_difference < 0.1, result


def test_int8_fidelity_on_the_shared_recordings(
    reference: Embedder, int8: Embedder, classifier: object, shared_audio_dir: Path
) -> None:
    paths = sorted(p for p in shared_audio_dir.iterdir() if p.suffix in (".wav", ".flac"))
    result = _fidelity(reference, int8, recording_examples(paths), classifier)
    # measured 32 % equal, 77 % within +-1, 95 % within +-2, top-1 100 %, top-5 4.96/5
    assert result.within_1 >= 0.70 and result.within_2 >= 0.92, result
    assert result.top1_agreement >= 0.95 and result.top5_overlap >= 4.8, result


def test_int8_is_cached_with_its_sources_and_rebuilt_when_they_change(
    model_files: tuple[Path, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    signal_examples: list[np.ndarray],
) -> None:
    examples = signal_examples[0]
    caplog.set_level(logging.INFO, logger="transformer.audio.vggish_ort")
    first = load_embedder(*model_files, precision="int8", cache_dir=tmp_path)
    cache = tmp_path / INT8_CACHE_NAME
    assert cache.is_file() and "int8 VGGish calibrated" in caplog.text
    assert [p.name for p in tmp_path.iterdir()] == [INT8_CACHE_NAME]  # no temporary file left
    # every weight matrix in 8 bits of the type this CPU multiplies without saturating
    quantized = [i.data_type for i in onnx.load(cache).graph.initializer if i.name.endswith("W_quantized")]
    expected = {"int8": onnx.TensorProto.INT8, "uint8": onnx.TensorProto.UINT8}[
        int8_weight_type(cpu_has_vnni())
    ]
    assert len(quantized) >= 9 and set(quantized) == {expected}
    written = cache.stat().st_mtime_ns

    caplog.clear()
    again = load_embedder(*model_files, precision="int8", cache_dir=tmp_path)
    assert "loaded from" in caplog.text and "calibrated" not in caplog.text
    assert cache.stat().st_mtime_ns == written
    np.testing.assert_array_equal(again.embed(examples), first.embed(examples))

    caplog.clear()  # another graph (fc2 without ReLU) is another source: rebuilt, not reused
    linear = load_embedder(*model_files, precision="int8", fc2_relu=False, cache_dir=tmp_path)
    assert "made from other weights" in caplog.text and "calibrated" in caplog.text
    assert linear.embed(examples).min() < 0

    caplog.clear()  # a damaged cache is ignored and replaced
    cache.write_bytes(b"not an onnx model")
    load_embedder(*model_files, precision="int8", cache_dir=tmp_path)
    assert "ignoring the int8 VGGish cache" in caplog.text and cache.stat().st_size > 1_000_000


def test_int8_with_an_unwritable_cache_still_serves(
    model_files: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the cache folder would be")  # unwritable even for root
    caplog.set_level(logging.INFO, logger="transformer.audio.vggish_ort")
    embedder = load_embedder(*model_files, precision="int8", cache_dir=blocker / "cache")
    assert "int8 VGGish not cached" in caplog.text
    assert embedder.embed(np.zeros((1, 96, 64))).shape == (1, 128)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_the_weights_type_follows_the_cpu_flags(tmp_path: Path) -> None:
    vnni, avx2, missing = tmp_path / "vnni", tmp_path / "avx2", tmp_path / "absent"
    vnni.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni\n")
    avx2.write_text("processor\t: 0\nflags\t\t: fpu avx2 fma\n")
    assert cpu_has_vnni(vnni) and not cpu_has_vnni(avx2) and not cpu_has_vnni(missing)
    # 8-bit weights everywhere: int8 with VNNI, uint8 without (u8 x s8 could saturate there)
    assert [int8_weight_type(cpu_has_vnni(path)) for path in (vnni, avx2, missing)] == [
        "int8",
        "uint8",
        "uint8",
    ]


def test_calibration_set_is_fixed_and_covers_levels() -> None:
    first, second = calibration_examples(), calibration_examples()
    np.testing.assert_array_equal(first, second)
    assert first.shape == (144, 96, 64) and first.dtype == np.float32
    peaks = [float(np.abs(wave).max()) for wave in calibration_waveforms()]
    assert min(peaks) < 0.01 and max(peaks) > 0.5  # -50 to 0 dBFS
    example_means = first.mean(axis=(1, 2))
    assert example_means.max() - example_means.min() > 4.0  # quiet and loud log-mel


def test_embedder_from_files_reads_the_pca_first(tmp_path: Path) -> None:
    from contract.errors import MissingModelAsset

    (tmp_path / "vggish_model.ckpt").write_bytes(b"\0" * 4096)
    with pytest.raises(MissingModelAsset, match=r"vggish_pca_params\.npz"):
        OnnxVGGishEmbedder.from_files(tmp_path / "vggish_model.ckpt", tmp_path / "vggish_pca_params.npz")


# --- the serving process has no TensorFlow --------------------------------------------------


def test_the_onnxruntime_pipeline_never_imports_tensorflow(synthetic_model_dir: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(synthetic_model_dir, models)
    script = f"""
import sys
from transformer.settings import TransformerSettings
from transformer import wiring
from transformer.privacy import parse_privacy_request
import numpy as np
settings = TransformerSettings(model_dir={str(models)!r}, vggish_precision=sys.argv[1])
pipeline = wiring.embedding_pipeline(settings)
samples = 0.1 * np.sin(np.arange(32000) / 5.0)
embedded = pipeline.embed_features(pipeline.waveform_features(samples, parse_privacy_request("none", {{}})))
heavy = sorted(name for name in sys.modules if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
print(embedded.embeddings.shape, embedded.embeddings.dtype, heavy)
"""
    for precision in ("fp32", "int8"):
        done = subprocess.run(
            [sys.executable, "-c", script, precision],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == "(2, 128) uint8 []", done.stdout


def test_settings_refuse_int8_on_tensorflow_before_anything_loads() -> None:
    from pydantic import ValidationError

    from transformer.settings import TransformerSettings

    with pytest.raises(ValidationError, match="int8 needs vggish_runtime onnxruntime"):
        TransformerSettings(vggish_runtime="tensorflow", vggish_precision="int8")
    with pytest.raises(ValidationError, match="'onnxruntime' or 'tensorflow'"):
        TransformerSettings(vggish_runtime="openvino")  # type: ignore[arg-type]
    assert TransformerSettings().vggish_runtime == "onnxruntime"
    assert TransformerSettings().vggish_precision == "fp32"


def test_the_built_graph_passes_the_onnx_checker_and_consumes_its_weights(
    model_files: tuple[Path, Path],
) -> None:
    import onnx

    from transformer.audio.vggish_layout import read_vggish_weights
    from transformer.audio.vggish_onnx import build_vggish_onnx

    weights = read_vggish_weights(model_files[0])
    kept = build_vggish_onnx(weights)
    assert len(weights) == 18  # not consumed by default
    onnx.checker.check_model(kept, full_check=True)  # with shape inference
    inferred = onnx.shape_inference.infer_shapes(kept, strict_mode=True)
    (output,) = inferred.graph.output
    assert [d.dim_param or d.dim_value for d in output.type.tensor_type.shape.dim] == ["N", 128]
    consumed = build_vggish_onnx(weights, consume=True)
    assert weights == {}  # each array left the dict as it went into the model
    assert consumed.SerializeToString() == kept.SerializeToString()


def test_building_fp32_peaks_under_twice_the_weights_and_then_holds_them_once(
    synthetic_model_dir: Path,
) -> None:
    """The serving start holds the 289 MB of weights about twice at most, not six times (1.9 GB
    before the weights were consumed as the model grew and the checker's copy was dropped), and
    once it is up the session holds them once: ONNX Runtime's Python wrapper kept the serialised
    model too (another 275 MB resident for the process's life)."""
    script = (
        "import sys; from transformer.audio.embedders import load_embedder\n"
        "def status(key):\n"
        "    return int([l for l in open('/proc/self/status') if l.startswith(key)][0].split()[1])\n"
        "before = status('VmRSS')\n"
        "folder = sys.argv[1]\n"
        "embedder = load_embedder(folder + '/vggish_model.ckpt', folder + '/vggish_pca_params.npz')\n"
        "print(status('VmHWM'), status('VmRSS') - before)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(synthetic_model_dir)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    peak_kib, held_kib = (int(value) for value in done.stdout.strip().splitlines()[-1].split())
    weights_mib = (synthetic_model_dir / "vggish_model.ckpt").stat().st_size / 2**20
    assert peak_kib / 1024 < 1300, peak_kib
    assert held_kib / 1024 < 1.3 * weights_mib, (held_kib / 1024, weights_mib)
