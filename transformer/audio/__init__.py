"""Audio bytes -> anonymised, quantised VGGish embeddings: the transformer's numeric front end.

decode.py            libsndfile decoding, limits, mono (decoding budget)
resample.py          16 kHz with the pre-0.3 resampy kaiser_best filter (the reference), path by rate
resample_plan.py     a rate's block layout and matrices, built once (short periods)
resample_blocks.py   resampy's interpolation as block matrix products (short periods)
resample_kernels.py  the same phase by phase, grouped by table offsets, and tap by tap (any times)
resample_stream.py   the same numbers for a live stream, push by push (design: docs/resampler.md)
stream_features.py   a stream's log-mel examples and their loudness as its audio arrives (the file's)
features.py          log-mel examples (the VGGish front end)
loudness.py          per-example and per-window RMS level (the anomaly loudness gate)
embedders.py         which VGGish runtime embeds (ONNX Runtime by default, or TensorFlow)
vggish_layout.py     the VGGish layout and its weights read from the official checkpoint
tf1_checkpoint.py    the TF1 checkpoint reader behind it (no TensorFlow)
vggish_onnx.py       VGGish as an ONNX graph built from those weights
vggish_ort.py        VGGish on ONNX Runtime, fp32 or int8 (the serving runtime)
vggish_int8.py       the int8 graph: static post-training quantisation of the fp32 one
calibration.py       generated household-like sounds that calibrate the int8 graph
vggish.py            the VGGish network on TensorFlow (the reference runtime)
pca.py               PCA + 8-bit quantisation (vggish_postprocess)
pipeline.py          the chain: decode -> resample -> privacy -> log-mel -> VGGish -> PCA/uint8
worker.py            the chain off the event loop, VGGish calls merged across requests
embedded.py          what leaves this stage: embeddings and levels, never samples
constants.py         the reference front end's numbers (docs/reference/model.md §1-3)

Importing the package loads nothing heavy. TensorFlow is loaded only by ``vggish.py``, which
``embedders.load_embedder`` imports only for the ``tensorflow`` runtime; the ONNX default
loads ONNX Runtime (``vggish_ort.py``) and never TensorFlow.
"""
