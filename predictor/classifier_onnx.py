"""The multi-level attention classifier as an ONNX graph, built by code from the official weights.

The graph computes what ``predictor.network`` (the Keras reference) computes, for
(B, 10, 128) float32 windows already scaled to (x - 128) / 128, node by node:

    a_k = relu(bn_k(dense_k(a_{k-1})))          k = 1, 2, 3; a_0 = the windows; dropout off
    bn_k(h) = h * s_k + (beta_k - mean_k * s_k),  s_k = gamma_k / sqrt(var_k + 1e-3)   (as Keras folds it)
    level(a, cla, att) = sum_t sigmoid(cla(a)) * w,  w = clip(softmax_classes(att(a)), 1e-7, 1 - 1e-7)
                         normalised over time
    scores = sigmoid(dense_8(concat(level(a_2, dense_4, dense_5), level(a_3, dense_6, dense_7))))

No converter and no TensorFlow: the values are the h5 file's (``predictor.h5_weights``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from contract.constants import EMBEDDING_SIZE, EMBEDDINGS_PER_WINDOW, NUM_CLASSES
from predictor.keras2_layout import ATTENTION_EPSILON, BATCH_NORM_EPSILON

#: The operator set the graph is written in (ONNX Runtime >= 1.14 supports it).
OPSET: Final = 17
INPUT_NAME: Final = "windows"
OUTPUT_NAME: Final = "scores"
#: (input level, per-frame class layer, attention layer) of the two attention levels.
ATTENTION_LEVELS: Final = (("a2", "dense_4", "dense_5"), ("a3", "dense_6", "dense_7"))


class _Graph:
    """Nodes and initialisers of the graph being written."""

    def __init__(self, weights: Mapping[str, np.ndarray]) -> None:
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attributes: int) -> str:
        node = helper.make_node(op, inputs, [output], name=output)
        node.attribute.extend(helper.make_attribute(key, value) for key, value in attributes.items())
        self.nodes.append(node)
        return output

    def dense(self, layer: str, current: str) -> str:
        """``current @ kernel + bias`` over the last axis (Keras Dense without its activation)."""
        kernel = self.constant(f"{layer}/kernel", self.weights[f"{layer}/kernel"].astype(np.float32))
        bias = self.constant(f"{layer}/bias", self.weights[f"{layer}/bias"].astype(np.float32))
        product = self.node("MatMul", [current, kernel], f"{layer}/matmul")
        return self.node("Add", [product, bias], f"{layer}/linear")

    def batch_norm(self, layer: str, current: str) -> str:
        """Inference batch norm in Keras's own float32 arithmetic: ``x * s + (beta - mean * s)``."""
        gamma, beta, mean, variance = (
            self.weights[f"{layer}/{weight}"].astype(np.float32)
            for weight in ("gamma", "beta", "moving_mean", "moving_variance")
        )
        scale = (np.float32(1.0) / np.sqrt(variance + np.float32(BATCH_NORM_EPSILON))) * gamma
        shift = beta - mean * scale
        scaled = self.node("Mul", [current, self.constant(f"{layer}/scale", scale)], f"{layer}/scaled")
        return self.node("Add", [scaled, self.constant(f"{layer}/shift", shift)], f"{layer}/out")


def build_classifier_onnx(weights: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """``"<layer>/<weight>"`` -> array (``read_classifier_weights``) -> the classifier's ONNX model.

    Input ``windows`` (B, 10, 128) float32 scaled embeddings; output ``scores`` (B, 527) float32.
    """
    graph = _Graph(weights)
    time_axis = graph.constant("time_axis", np.array([1], dtype=np.int64))
    low = graph.constant("attention_min", np.array(ATTENTION_EPSILON, dtype=np.float32))
    high = graph.constant("attention_max", np.array(1.0 - ATTENTION_EPSILON, dtype=np.float32))
    current = INPUT_NAME
    hidden: dict[str, str] = {}
    for level in (1, 2, 3):
        current = graph.dense(f"dense_{level}", current)
        current = graph.batch_norm(f"batch_normalization_{level}", current)
        current = hidden[f"a{level}"] = graph.node("Relu", [current], f"a{level}")
    pooled = []
    for source, cla_layer, att_layer in ATTENTION_LEVELS:
        cla = graph.node("Sigmoid", [graph.dense(cla_layer, hidden[source])], f"{cla_layer}/sigmoid")
        att = graph.node("Softmax", [graph.dense(att_layer, hidden[source])], f"{att_layer}/softmax", axis=-1)
        att = graph.node("Clip", [att, low, high], f"{att_layer}/clipped")
        total = graph.node("ReduceSum", [att, time_axis], f"{att_layer}/time_sum", keepdims=1)
        att = graph.node("Div", [att, total], f"{att_layer}/over_time")
        weighted = graph.node("Mul", [cla, att], f"{cla_layer}/weighted")
        pooled.append(graph.node("ReduceSum", [weighted, time_axis], f"{cla_layer}/pooled", keepdims=0))
    merged = graph.node("Concat", pooled, "concatenate_1", axis=-1)
    graph.node("Sigmoid", [graph.dense("dense_8", merged)], OUTPUT_NAME)
    model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            "multi_attention_classifier",
            [
                helper.make_tensor_value_info(
                    INPUT_NAME, TensorProto.FLOAT, ["B", EMBEDDINGS_PER_WINDOW, EMBEDDING_SIZE]
                )
            ],
            [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["B", NUM_CLASSES])],
            graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="audioguard",
    )
    model.ir_version = 8  # readable by every ONNX Runtime that supports opset 17
    return model
