"""VGGish as an ONNX graph, built by code from the official checkpoint's weights.

The graph takes (N, 96, 64) float32 log-mel examples and returns the (N, 128)
float32 fc2 output, exactly the network of ``vggish_layout.py``: convolutions
in NCHW (ONNX's layout, kernels HWIO -> OIHW), and fc1_1's rows permuted so
that flattening (C, H, W) feeds the weights TF1 multiplied with the (H, W, C)
flatten. No converter, no TensorFlow: the values are the checkpoint's.
"""

from __future__ import annotations

from collections.abc import MutableMapping

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from contract.constants import EMBEDDING_SIZE
from transformer.audio.constants import EXAMPLE_FRAMES, NUM_MEL_BANDS
from transformer.audio.vggish_layout import (
    POOL_AFTER,
    POOLED_HEIGHT,
    POOLED_WIDTH,
    VGGISH_LAYERS,
)

#: The operator set the graph is written in (ONNX Runtime >= 1.14 and its quantiser support it).
OPSET = 17
INPUT_NAME = "log_mel"
OUTPUT_NAME = "embedding"


def fc1_rows_for_nchw(weights: np.ndarray) -> np.ndarray:
    """fc1_1's (H*W*C, 4096) rows, TF's NHWC flatten order -> the (C*H*W, 4096) NCHW order."""
    channels = weights.shape[0] // (POOLED_HEIGHT * POOLED_WIDTH)
    nhwc = weights.reshape(POOLED_HEIGHT, POOLED_WIDTH, channels, weights.shape[1])
    return np.ascontiguousarray(nhwc.transpose(2, 0, 1, 3).reshape(weights.shape))


def build_vggish_onnx(
    weights: MutableMapping[str, np.ndarray], *, fc2_relu: bool = True, consume: bool = False
) -> onnx.ModelProto:
    """Official variable name -> float32 array (``read_vggish_weights``) -> the VGGish ONNX model.

    With ``consume`` each array leaves ``weights`` once it is in the model, so the weights are
    held once, not twice, while the 289 MB model grows (the serving start's peak memory).
    """
    take = weights.pop if consume else weights.__getitem__
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = [
        numpy_helper.from_array(np.array([1], dtype=np.int64), "channel_axis"),
    ]
    nodes.append(helper.make_node("Unsqueeze", [INPUT_NAME, "channel_axis"], ["image"], name="to_nchw"))
    current = "image"
    for layer in VGGISH_LAYERS:
        kernel = take(layer.weights_variable).astype(np.float32, copy=False)
        bias = take(layer.biases_variable).astype(np.float32, copy=False)
        if layer.is_conv:
            initializers.append(
                numpy_helper.from_array(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)), f"{layer.name}/W")
            )
            initializers.append(numpy_helper.from_array(bias, f"{layer.name}/B"))
            nodes.append(
                helper.make_node(
                    "Conv",
                    [current, f"{layer.name}/W", f"{layer.name}/B"],
                    [f"{layer.name}/conv"],
                    name=layer.name,
                    kernel_shape=[3, 3],
                    pads=[1, 1, 1, 1],
                    strides=[1, 1],
                )
            )
            nodes.append(helper.make_node("Relu", [f"{layer.name}/conv"], [f"{layer.name}/relu"]))
            current = f"{layer.name}/relu"
            if layer.name in POOL_AFTER:
                pool = POOL_AFTER[layer.name]
                nodes.append(
                    helper.make_node(
                        "MaxPool", [current], [pool], name=pool, kernel_shape=[2, 2], strides=[2, 2]
                    )
                )
                current = pool
            continue
        if layer.name == "fc1_1":
            nodes.append(helper.make_node("Flatten", [current], ["flatten"], name="flatten", axis=1))
            current = "flatten"
            kernel = fc1_rows_for_nchw(kernel)
        initializers.append(numpy_helper.from_array(kernel, f"{layer.name}/W"))
        initializers.append(numpy_helper.from_array(bias, f"{layer.name}/B"))
        is_last = layer.name == VGGISH_LAYERS[-1].name
        linear = OUTPUT_NAME if is_last and not fc2_relu else f"{layer.name}/linear"
        nodes.append(
            helper.make_node(
                "Gemm", [current, f"{layer.name}/W", f"{layer.name}/B"], [linear], name=layer.name
            )
        )
        current = linear
        if not (is_last and not fc2_relu):
            current = OUTPUT_NAME if is_last else f"{layer.name}/relu"
            nodes.append(helper.make_node("Relu", [linear], [current]))
    graph = helper.make_graph(
        nodes,
        "vggish",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", EXAMPLE_FRAMES, NUM_MEL_BANDS])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", EMBEDDING_SIZE])],
        initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="audioguard"
    )
    model.ir_version = 8  # readable by every ONNX Runtime that supports opset 17
    return model  # onnx.checker accepts it (tested); checking here would copy 289 MB at every start
