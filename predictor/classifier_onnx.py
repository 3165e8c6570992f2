"""The multi-level attention classifier as an ONNX graph, built by code from the official weights.

The graph computes what ``predictor.network`` (the Keras reference) computes, for
(B, 10, 128) float32 windows already scaled to (x - 128) / 128, node by node:

    a_k = relu(bn_k(dense_k(a_{k-1})))          k = 1, 2, 3; a_0 = the windows; dropout off
    bn_k(h) = h * s_k + (beta_k - mean_k * s_k),  s_k = gamma_k / sqrt(var_k + 1e-3)   (as Keras computes it,
                                                  folded into dense_k's kernel and bias)
    level(a, cla, att) = sum_t sigmoid(cla(a)) * w,  w = clip(softmax_classes(att(a)), 1e-7, 1 - 1e-7)
                         normalised over time
    scores = sigmoid(dense_8(concat(level(a_2, dense_4, dense_5), level(a_3, dense_6, dense_7))))

The dense layers run on (windows x 10, features) rows, as 2-D Gemm nodes (ONNX Runtime fuses
their bias and ReLU). No converter and no TensorFlow: the values are the h5 file's
(``predictor.h5_weights``), batch norm folded into the kernels before it.
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

    def dense(self, layer: str, current: str, *, batch_norm: str | None = None) -> str:
        """``current @ kernel + bias`` on (rows, features) (Keras Dense without its activation).

        With ``batch_norm`` the inference batch norm that follows is folded in, in Keras's own
        float32 arithmetic: ``x * s + (beta - mean * s)``, ``s = gamma / sqrt(var + 1e-3)``, so
        kernel * s and bias * s + (beta - mean * s): one Gemm instead of three passes.
        """
        kernel = self.weights[f"{layer}/kernel"].astype(np.float32)
        bias = self.weights[f"{layer}/bias"].astype(np.float32)
        if batch_norm is not None:
            gamma, beta, mean, variance = (
                self.weights[f"{batch_norm}/{weight}"].astype(np.float32)
                for weight in ("gamma", "beta", "moving_mean", "moving_variance")
            )
            scale = (np.float32(1.0) / np.sqrt(variance + np.float32(BATCH_NORM_EPSILON))) * gamma
            kernel, bias = kernel * scale, bias * scale + (beta - mean * scale)
        inputs = [current, self.constant(f"{layer}/kernel", kernel), self.constant(f"{layer}/bias", bias)]
        return self.node("Gemm", inputs, f"{layer}/linear")


def build_classifier_onnx(weights: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """``"<layer>/<weight>"`` -> array (``read_classifier_weights``) -> the classifier's ONNX model.

    Input ``windows`` (B, 10, 128) float32 scaled embeddings; output ``scores`` (B, 527) float32.
    """
    graph = _Graph(weights)
    time_axis = graph.constant("time_axis", np.array([1], dtype=np.int64))
    low = graph.constant("attention_min", np.array(ATTENTION_EPSILON, dtype=np.float32))
    high = graph.constant("attention_max", np.array(1.0 - ATTENTION_EPSILON, dtype=np.float32))
    # every frame of every window is one row of the dense layers (2-D Gemm: bias and ReLU fused)
    rows_shape = graph.constant("rows_shape", np.array([-1, EMBEDDING_SIZE], dtype=np.int64))
    frames_shape = graph.constant(
        "frames_shape", np.array([-1, EMBEDDINGS_PER_WINDOW, NUM_CLASSES], dtype=np.int64)
    )
    current = graph.node("Reshape", [INPUT_NAME, rows_shape], "frames")
    hidden: dict[str, str] = {}
    for level in (1, 2, 3):
        current = graph.dense(f"dense_{level}", current, batch_norm=f"batch_normalization_{level}")
        current = hidden[f"a{level}"] = graph.node("Relu", [current], f"a{level}")
    pooled = []
    for source, cla_layer, att_layer in ATTENTION_LEVELS:
        cla = graph.node("Sigmoid", [graph.dense(cla_layer, hidden[source])], f"{cla_layer}/sigmoid")
        att = graph.node("Softmax", [graph.dense(att_layer, hidden[source])], f"{att_layer}/softmax", axis=-1)
        att = graph.node("Clip", [att, low, high], f"{att_layer}/clipped")
        # back to (windows, time, classes) for the pooling over time
        cla = graph.node("Reshape", [cla, frames_shape], f"{cla_layer}/frames")
        att = graph.node("Reshape", [att, frames_shape], f"{att_layer}/frames")
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
