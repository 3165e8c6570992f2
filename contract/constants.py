"""Numbers that both services must agree on (the embeddings contract).

Front-end constants that only the transformer needs live in
``transformer/audio/constants.py``.
"""

from typing import Final

#: Number of AudioSet classes scored by the classifier (rows of the label CSV).
NUM_CLASSES: Final = 527
#: VGGish embedding size after PCA.
EMBEDDING_SIZE: Final = 128
#: Embeddings per classifier input window (MAX's ten 0.96 s examples = 9.6 s).
EMBEDDINGS_PER_WINDOW: Final = 10
#: Duration covered by one VGGish example / embedding, in seconds.
EXAMPLE_SECONDS: Final = 0.96
#: Quantised embeddings are uint8; the classifier sees (x - 128) / 128.
QUANTISED_CENTRE: Final = 128.0
#: The predictor's v2 input: quantised embeddings, UINT8 [W, 10, 128] (one row per window).
EMBEDDINGS_TENSOR: Final = "embeddings"
#: The predictor's v2 output: sigmoid scores, FP32 [W, 527].
SCORES_TENSOR: Final = "scores"
#: Every interface: where KServe (and so each service, in a container) listens by default.
ALL_INTERFACES: Final = "0.0.0.0"
