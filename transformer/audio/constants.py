"""Front-end and VGGish constants of the reference (IBM MAX / VGGish), docs/reference/model.md §1-3."""

from typing import Final, Literal

SAMPLE_RATE: Final = 16_000
STFT_WINDOW_SAMPLES: Final = 400  # 25 ms
STFT_HOP_SAMPLES: Final = 160  # 10 ms
FFT_LENGTH: Final = 512
NUM_SPECTROGRAM_BINS: Final = FFT_LENGTH // 2 + 1  # 257
NUM_MEL_BANDS: Final = 64
MEL_MIN_HZ: Final = 125.0
MEL_MAX_HZ: Final = 7500.0
MEL_BREAK_FREQUENCY_HERTZ: Final = 700.0
MEL_HIGH_FREQUENCY_Q: Final = 1127.0
LOG_OFFSET: Final = 0.01
EXAMPLE_FRAMES: Final = 96  # 0.96 s of 10 ms frames
#: Samples needed for one example: 400 + 95 * 160.
MIN_SAMPLES_FOR_ONE_EXAMPLE: Final = STFT_WINDOW_SAMPLES + (EXAMPLE_FRAMES - 1) * STFT_HOP_SAMPLES
MIN_SECONDS_FOR_ONE_EXAMPLE: Final = MIN_SAMPLES_FOR_ONE_EXAMPLE / SAMPLE_RATE  # 0.975

# PCA + 8-bit quantisation (vggish_postprocess)
PCA_EIGEN_VECTORS_NAME: Final = "pca_eigen_vectors"
PCA_MEANS_NAME: Final = "pca_means"
QUANTIZE_MIN_VAL: Final = -2.0
QUANTIZE_MAX_VAL: Final = 2.0

# resampy <= 0.2.2 ``kaiser_best`` filter (docs/reference/model.md §1)
KAISER_BEST_ZERO_CROSSINGS: Final = 64
KAISER_BEST_PRECISION: Final = 9  # 2**9 = 512 taps per zero crossing
KAISER_BEST_BETA: Final = 14.769656459379492
KAISER_BEST_ROLLOFF: Final = 0.9475937167399596

# VGGish runtimes (embedders.py) and their precisions
Runtime = Literal["onnxruntime", "tensorflow"]
Precision = Literal["fp32", "int8"]
RUNTIMES: Final[tuple[Runtime, ...]] = ("onnxruntime", "tensorflow")
PRECISIONS: Final[tuple[Precision, ...]] = ("fp32", "int8")
