"""The opt-in int8 VGGish: ONNX Runtime's static post-training quantisation of the fp32 graph.

Weights int8 per output channel, activations uint8 with ranges calibrated
(min/max) on the generated sounds of ``calibration.py``; QDQ format, which ONNX
Runtime fuses into integer convolutions and matrix products. On CPUs without
AVX-512 VNNI (or AVX-VNNI) the weights use 7 bits (``reduce_range``): their u8 x s8
instructions can overflow with 8-bit weights.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx

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


def quantize_vggish(fp32: onnx.ModelProto, examples: np.ndarray, *, reduce_range: bool) -> onnx.ModelProto:
    """fp32 VGGish + (N, 96, 64) float32 calibration examples -> the int8 (QDQ) model.

    The quantiser works on files, so the models pass through a private temporary
    folder (weights only: calibration examples are generated, never a request's).
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

    with tempfile.TemporaryDirectory(prefix="audioguard-int8-") as folder:
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
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"CalibTensorRangeSymmetric": False},
        )
        return onnx.load(target)
