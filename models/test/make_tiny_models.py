"""Generates the tiny ONNX models the segment step's fast tests use (a few hundred bytes each).

    python models/test/make_tiny_models.py      # needs the `onnx` package (tests/reference/requirements.txt)

tiny-red.onnx: input `input` float32 [1,3,64,64] (NCHW, normalised as (px-128)/256), output
`logits` float32 [1,1,64,64] = 10*R - 10*B per pixel (a 1x1 convolution), so after the
manifest's sigmoid a red pixel is subject (~1) and a blue one background (~0): tests know the
exact mask of a synthetic image.

tiny-nhwc.onnx: the same network laid out NHWC ([1,64,64,3] in): loaded with tiny-red's
NCHW manifest it is a model with unexpected inputs.

The output is deterministic (fixed producer, no timestamps), so re-running the recipe gives
byte-identical files.
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
SIZE = 64


def save(model, name):
    model.producer_name = "pixelflow models/test/make_tiny_models.py"
    model.producer_version = "1"
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(HERE, name))


def red_minus_blue_nchw():
    weights = numpy_helper.from_array(np.array([10.0, 0.0, -10.0], dtype=np.float32).reshape(1, 3, 1, 1), "w")
    conv = helper.make_node("Conv", ["input", "w"], ["logits"], kernel_shape=[1, 1])
    graph = helper.make_graph(
        [conv],
        "tiny-red",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1, SIZE, SIZE])],
        [weights],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def red_minus_blue_nhwc():
    weights = numpy_helper.from_array(np.array([10.0, 0.0, -10.0], dtype=np.float32).reshape(3, 1), "w")
    matmul = helper.make_node("MatMul", ["input", "w"], ["hw1"])
    transpose = helper.make_node("Transpose", ["hw1"], ["logits"], perm=[0, 3, 1, 2])
    graph = helper.make_graph(
        [matmul, transpose],
        "tiny-nhwc",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, SIZE, SIZE, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1, SIZE, SIZE])],
        [weights],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


if __name__ == "__main__":
    save(red_minus_blue_nchw(), "tiny-red.onnx")
    save(red_minus_blue_nhwc(), "tiny-nhwc.onnx")
