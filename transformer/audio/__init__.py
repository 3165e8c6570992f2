"""Audio bytes -> anonymised, quantised VGGish embeddings: the transformer's numeric front end.

decode.py     libsndfile decoding, limits, mono (decoding budget)
resample.py   16 kHz with the pre-0.3 resampy kaiser_best filter (the reference), path by rate
resample_plan.py     a rate's block layout and matrices, built once (short periods)
resample_blocks.py   resampy's interpolation as block matrix products (short periods)
resample_kernels.py  the same phase by phase, grouped by table offsets, and tap by tap (any times)
features.py   log-mel examples (the VGGish front end)
loudness.py   per-example and per-window RMS level (the anomaly loudness gate)
vggish.py     the VGGish network from the official checkpoint (TensorFlow)
pca.py        PCA + 8-bit quantisation (vggish_postprocess)
pipeline.py   the chain: decode -> resample -> privacy -> log-mel -> VGGish -> PCA/uint8
worker.py     the chain off the event loop, VGGish calls merged across requests
embedded.py   what leaves this stage: embeddings and levels, never samples
constants.py  the reference front end's numbers (model.md §1-3)

Importing the package loads nothing heavy: TensorFlow comes with vggish/pipeline/worker only.
"""
