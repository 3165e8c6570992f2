"""The opt-in int8 VGGish: ONNX Runtime's static post-training quantisation of the fp32 graph.

Weights 8-bit per output channel, activations uint8 with ranges calibrated
(min/max) on the generated sounds of ``calibration.py``; QDQ format, which ONNX
Runtime fuses into integer convolutions and matrix products. With AVX-512 VNNI (or
AVX-VNNI) the weights are int8 (u8 x s8 dot products). Without it, u8 x s8 products
can saturate, and 7-bit weights (``reduce_range``) cost fidelity: on an AVX2-only EPYC
only 80 % of uint8 embedding values stayed within +-2 of the reference, against 94 % with
uint8 weights (u8 x u8, no saturation), which run about 25 % slower there and are used.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import onnx

from contract.errors import InvalidConfiguration
from transformer.audio.vggish_onnx import INPUT_NAME

#: Examples per calibration run (all batches the same size).
CALIBRATION_BATCH = 16


def cpu_has_vnni(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True when the CPU has 8-bit dot products without saturation (avx512_vnni or avx_vnni)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []
    )
    return "avx512_vnni" in flags or "avx_vnni" in flags


class _Batches:
    """ONNX Runtime's CalibrationDataReader: the examples in equal batches."""

    def __init__(self, examples: np.ndarray) -> None:
        usable = examples.shape[0] - examples.shape[0] % CALIBRATION_BATCH
        self._batches = iter(
            [{INPUT_NAME: examples[i : i + CALIBRATION_BATCH]} for i in range(0, usable, CALIBRATION_BATCH)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


#: Copies of the fp32 model on disk at the quantiser's peak (ours, the pre-processed one,
#: the calibrator's augmented one), plus room for the int8 result.
SCRATCH_MODEL_COPIES = 3.5


def scratch_folder(candidates: Sequence[Path], needed_bytes: int) -> Path:
    """The first writable folder of ``candidates`` with ``needed_bytes`` free.

    Raises:
        InvalidConfiguration: none has the room; the message names each folder, its free
            space and the way out (a writable ``--vggish_cache_dir``, or a larger /tmp).
    """
    seen = []
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(folder).free
        except OSError:
            seen.append(f"{folder} (not writable)")
            continue
        if not os.access(folder, os.W_OK):
            seen.append(f"{folder} (read-only)")
        elif free < needed_bytes:
            seen.append(f"{folder} ({free / 2**20:.0f} MiB free)")
        else:
            return folder
    raise InvalidConfiguration(
        f"int8 calibration needs about {needed_bytes / 2**20:.0f} MiB of scratch space and found none: "
        f"{', '.join(seen)}. Give --vggish_cache_dir (AUDIOGUARD_VGGISH_CACHE_DIR) a writable volume with "
        "room, where the calibrated model is also cached for later starts, or a larger /tmp"
    )


WeightType = Literal["int8", "uint8"]


def int8_weight_type(vnni: bool) -> WeightType:
    """The weights' type: "int8" where the CPU has VNNI, else "uint8" (see the module)."""
    return "int8" if vnni else "uint8"


def quantize_vggish(
    fp32: onnx.ModelProto, examples: np.ndarray, *, weights: WeightType = "int8", scratch: Path | None = None
) -> onnx.ModelProto:
    """fp32 VGGish + (N, 96, 64) float32 calibration examples -> the int8 (QDQ) model.

    The quantiser works on files, so the models pass through a private temporary
    folder in ``scratch`` (default: the system's temporary folder); only weights go
    there: calibration examples are generated, never a request's.
    """
    from onnxruntime.quantization import (  # heavy; only conversion needs it
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if examples.shape[0] < CALIBRATION_BATCH:
        raise ValueError(f"calibration needs at least {CALIBRATION_BATCH} examples, got {examples.shape[0]}")

    class Reader(_Batches, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory(prefix="audioguard-int8-", dir=scratch) as folder, _temp_root(folder):
        source, prepared, target = (
            Path(folder) / name for name in ("fp32.onnx", "prepared.onnx", "int8.onnx")
        )
        onnx.save(fp32, source)
        # shape inference + graph fusions first, as the quantiser recommends
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            prepared,
            target,
            Reader(examples.astype(np.float32, copy=False)),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=False,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8 if weights == "int8" else QuantType.QUInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"CalibTensorRangeSymmetric": False},
        )
        return onnx.load(target)


@contextlib.contextmanager
def _temp_root(folder: str) -> Iterator[None]:
    """Point ``tempfile`` at ``folder`` while the quantiser runs: its calibrator writes the
    augmented model (as large as the fp32 one) to a temporary folder of its own choosing.
    Start-up only, before any request is served."""
    saved = tempfile.tempdir
    tempfile.tempdir = folder
    try:
        yield
    finally:
        tempfile.tempdir = saved
