"""The multi-level attention classifier (Kong's ``decision_level_multi_attention``, as
IBM MAX trained it), built natively in Keras 3 with the Keras 2 layer names.

The official ``classifier_model.h5`` is a Keras 2.2.4 full-model file whose two
attention poolings are ``Lambda`` layers holding marshalled Python 3.6
bytecode, which Keras 3 cannot deserialise, so the graph is built here:
``AttentionPooling`` replaces the Lambdas and keeps their names
``lambda_1``/``lambda_2``. The file's layout (``predictor.keras2_layout``) is
checked before its weights are read by layer name (``predictor.classifier``).

Computation for one window x (10, 128) of (uint8 - 128) / 128 values::

    a1 = drop(relu(bn(dense_1(x))))           (10, 1024)   dropout is off at inference
    a2 = drop(relu(bn(dense_2(a1))))          (10, 1024)
    a3 = drop(relu(bn(dense_3(a2))))          (10, 1024)
    level_k = pool(sigmoid(cla_k(a)), softmax_over_classes(att_k(a)))  for a in (a2, a3)
    scores = sigmoid(dense_8(concat(level_1, level_2)))                (527,)

with ``pool(cla, att) = sum_t cla * att' ``, ``att' = clip(att, 1e-7, 1-1e-7)``
normalised over time.
"""

from __future__ import annotations

from typing import Any

import keras

from contract.constants import NUM_CLASSES
from predictor.keras2_layout import (
    ATTENTION_EPSILON,
    BATCH_NORM_EPSILON,
    DROPOUT_RATE,
    HIDDEN_UNITS,
    MODEL_NAME,
)
from predictor.windows import WINDOW_SHAPE


@keras.saving.register_keras_serializable(package="audioguard")
class AttentionPooling(keras.layers.Layer):
    """Kong's decision-level attention pooling over time.

    Inputs ``[cla, att]``, both (B, T, C) float32: per-frame class
    probabilities and attention weights. ``att`` is clipped to
    [1e-7, 1 - 1e-7] and normalised to sum to 1 over time (axis 1) for every
    class; the output is the attention-weighted sum of ``cla`` over time, (B, C).
    """

    def call(self, inputs: list[Any]) -> Any:
        cla, att = inputs
        att = keras.ops.clip(att, ATTENTION_EPSILON, 1.0 - ATTENTION_EPSILON)
        att = att / keras.ops.sum(att, axis=1, keepdims=True)
        return keras.ops.sum(cla * att, axis=1)

    def compute_output_shape(self, input_shape: list[tuple[int | None, ...]]) -> tuple[int | None, ...]:
        batch, _time, classes = input_shape[0]
        return (batch, classes)


def build_classifier() -> keras.Model:
    """The classifier graph with the Keras 2 layer names, untrained.

    Input (B, 10, 128) float32, output (B, 527) float32 sigmoid scores.
    4,960,269 parameters, of which 6,144 (batch-norm moving statistics) are
    non-trainable.
    """
    inputs = keras.Input(shape=WINDOW_SHAPE, dtype="float32", name="input_1")
    hidden = inputs
    levels = []
    for level in (1, 2, 3):
        hidden = keras.layers.Dense(HIDDEN_UNITS, name=f"dense_{level}")(hidden)
        hidden = keras.layers.BatchNormalization(
            epsilon=BATCH_NORM_EPSILON, name=f"batch_normalization_{level}"
        )(hidden)
        hidden = keras.layers.Activation("relu", name=f"activation_{level}")(hidden)
        hidden = keras.layers.Dropout(DROPOUT_RATE, name=f"dropout_{level}")(hidden)
        levels.append(hidden)
    pooled = []
    # (a2, a3) feed the two attention levels; Keras 2 created dense_4..7 in this order.
    for level_input, cla_name, att_name, pool_name in (
        (levels[1], "dense_4", "dense_5", "lambda_1"),
        (levels[2], "dense_6", "dense_7", "lambda_2"),
    ):
        cla = keras.layers.Dense(NUM_CLASSES, activation="sigmoid", name=cla_name)(level_input)
        att = keras.layers.Dense(NUM_CLASSES, activation="softmax", name=att_name)(level_input)
        pooled.append(AttentionPooling(name=pool_name)([cla, att]))
    merged = keras.layers.Concatenate(axis=-1, name="concatenate_1")(pooled)
    logits = keras.layers.Dense(NUM_CLASSES, name="dense_8")(merged)
    scores = keras.layers.Activation("sigmoid", name="activation_4")(logits)
    return keras.Model(inputs, scores, name=MODEL_NAME)
