"""The musicnn front-end as an ONNX graph, built node by node from the Keras port's weights.

Built directly (not traced from TensorFlow), so the same weights always give the same bytes and
setup needs only the `onnx` package. Layout is ONNX's: convolutions run on (batch, channels,
time, mels); batch normalisation is folded into one multiply-add per channel, as inference does.
"""

from __future__ import annotations

import numpy as np

from model_store.features import N_MELS, PATCH_FRAMES
from model_store.spec import (
    BN_EPSILON,
    MIDEND_LAYERS,
    N_FEATURES,
    NETWORKS,
    OUTPUT_DIMS,
    TEMPORAL_LENGTHS,
    TIMBRAL_WIDTHS,
    output_name,
)

OPSET = 17
IR_VERSION = 8  # read by every ONNX Runtime since 1.10
INPUT = "logmel"
LayerWeights = dict[str, list[np.ndarray]]  # Keras layer name -> its weights, in Keras order


class _Graph:
    """Nodes and constants of one ONNX graph, named deterministically."""

    def __init__(self) -> None:
        from onnx import numpy_helper

        self._from_array = numpy_helper.from_array
        self.nodes: list = []
        self.constants: list = []

    def const(self, name: str, array: np.ndarray) -> str:
        """A constant tensor (float32 unless integer)."""
        a = np.asarray(array)
        a = a.astype(np.int64 if a.dtype.kind in "iu" else np.float32)
        self.constants.append(self._from_array(np.ascontiguousarray(a), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, **attrs) -> str:
        """Add one node whose single output is named `name`."""
        from onnx import helper

        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attrs))
        return name


def _bn(g: _Graph, x: str, weights: list[np.ndarray], name: str, shape: tuple[int, ...]) -> str:
    """Inference batch normalisation as x * scale + shift, broadcast over `shape`."""
    gamma, beta, mean, var = (np.asarray(w, np.float64) for w in weights)
    scale = gamma / np.sqrt(var + BN_EPSILON)
    shift = beta - mean * scale
    y = g.op("Mul", [x, g.const(f"{name}/scale", scale.reshape(shape))], f"{name}/mul")
    return g.op("Add", [y, g.const(f"{name}/shift", shift.reshape(shape))], f"{name}/add")


def _conv_block(
    g: _Graph, x: str, w: LayerWeights, layer: str, pads: list[int], shape: tuple[int, ...]
) -> str:
    """Convolution + ReLU + batch normalisation, with a Keras kernel moved to ONNX's layout."""
    kernel, bias = w[layer]
    order = (3, 2, 0, 1) if kernel.ndim == 4 else (2, 1, 0)  # -> (out, in, *spatial)
    k = g.const(f"{layer}/kernel", np.transpose(kernel, order))
    y = g.op("Conv", [x, k, g.const(f"{layer}/bias", bias)], f"{layer}/conv", pads=pads)
    y = g.op("Relu", [y], f"{layer}/relu")
    return _bn(g, y, w[f"{layer}_bn"], f"{layer}_bn", shape)


def _dense(g: _Graph, x: str, w: LayerWeights, layer: str) -> str:
    """x @ kernel + bias."""
    kernel, bias = w[layer]
    y = g.op("MatMul", [x, g.const(f"{layer}/kernel", kernel)], f"{layer}/matmul")
    return g.op("Add", [y, g.const(f"{layer}/bias", bias)], f"{layer}/add")


def _network(g: _Graph, x: str, w: LayerWeights, net: str) -> dict[str, str]:
    """One musicnn network on the (batch, 1, time, mels) input; its outputs by plain name."""
    p = f"{net}/"
    w = {p + k: v for k, v in w.items()}
    x = _bn(g, x, w[p + "input_bn"], p + "input_bn", (1, 1, 1, 1))
    channels = (1, -1, 1, 1)
    branches = []
    for width in TIMBRAL_WIDTHS:  # (7 x width) over the time-padded input, max over mels
        layer = f"{p}timbral_7x{width}"
        y = _conv_block(g, x, w, layer, [3, 0, 3, 0], channels)
        branches.append(g.op("ReduceMax", [y], f"{layer}/pool", axes=[3], keepdims=0))
    for length in TEMPORAL_LENGTHS:  # (length x 1), 'same' in time, max over mels
        layer = f"{p}temporal_{length}x1"
        before, after = (length - 1) // 2, length // 2
        y = _conv_block(g, x, w, layer, [before, 0, after, 0], channels)
        branches.append(g.op("ReduceMax", [y], f"{layer}/pool", axes=[3], keepdims=0))
    front = g.op("Concat", branches, p + "frontend", axis=1)  # (batch, 561, time)
    mid, h = [front], front
    for i in range(1, MIDEND_LAYERS + 1):
        y = _conv_block(g, h, w, f"{p}midend_{i}", [3, 3], (1, -1, 1))
        h = y if i == 1 else g.op("Add", [y, h], f"{p}midend_{i}_res")
        mid.append(h)
    features = g.op("Concat", mid, p + "midend", axis=1)  # (batch, 753, time)
    max_pool = g.op("ReduceMax", [features], p + "max_pool", axes=[2], keepdims=0)
    mean_pool = g.op("ReduceMean", [features], p + "mean_pool", axes=[2], keepdims=0)
    last = g.const(p + "last_axis", np.array([2]))
    columns = [g.op("Unsqueeze", [pool, last], f"{pool}_col") for pool in (max_pool, mean_pool)]
    pairs = g.op("Concat", columns, p + "max_mean_pairs", axis=2)  # (batch, 753, 2)
    flat = g.const(p + "interleaved_shape", np.array([-1, 2 * N_FEATURES]))
    pooled = g.op("Reshape", [pairs, flat], p + "interleave")  # [max0, mean0, max1, ...]
    y = _bn(g, pooled, w[p + "backend_bn"], p + "backend_bn", (-1,))
    y = g.op("Relu", [_dense(g, y, w, p + "penultimate_dense")], p + "penultimate_relu")
    penultimate = _bn(g, y, w[p + "penultimate_bn"], p + "penultimate_bn", (-1,))
    logits = _dense(g, penultimate, w, p + "logits")
    taggram = g.op("Sigmoid", [logits], p + "taggram")
    return {
        "penultimate": penultimate,
        "mean_pool": mean_pool,
        "max_pool": max_pool,
        "logits": logits,
        "taggram": taggram,
    }


def frontend_onnx(weights: dict[str, LayerWeights]) -> bytes:
    """The serialised ONNX model of both networks (weights keyed by network, then layer),
    mapping (batch, 187, 96) log-mel patches to every output in OUTPUT_DIMS."""
    from onnx import TensorProto, checker, helper

    g = _Graph()
    x = g.op("Unsqueeze", [INPUT, g.const("channel_axis", np.array([1]))], "expand")
    outputs = []
    for net in NETWORKS:
        for name, tensor in _network(g, x, weights[net], net).items():
            key = output_name(net, name)
            outputs.append(g.op("Identity", [tensor], key))
    batch = "batch"
    graph = helper.make_graph(
        g.nodes,
        "musicnn_frontend",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [batch, PATCH_FRAMES, N_MELS])],
        [
            helper.make_tensor_value_info(k, TensorProto.FLOAT, [batch, OUTPUT_DIMS[k]])
            for k in outputs
        ],
        initializer=g.constants,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="mimi model_store.onnx_graph",
        ir_version=IR_VERSION,
    )
    checker.check_model(model)
    return model.SerializeToString()
