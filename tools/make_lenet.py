"""Writes examples/lenet: a LeNet-5 ONNX model with fixed random weights, one random
input and the output onnxruntime computes for it (the ONNX test-data layout).

Run once in a venv with numpy, onnx and onnxruntime:
    python tools/make_lenet.py examples/lenet
The result is committed; CI does not run this script.
"""

import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def main(out_dir: str) -> None:
    rng = np.random.default_rng(5)

    def weight(name, *shape):
        fan_in = int(np.prod(shape[1:]))
        w = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape).astype(np.float32)
        return numpy_helper.from_array(w, name)

    def bias(name, n):
        return numpy_helper.from_array(rng.normal(0.0, 0.05, size=n).astype(np.float32), name)

    inits = [
        weight("conv1.w", 6, 1, 5, 5), bias("conv1.b", 6),
        weight("conv2.w", 16, 6, 5, 5), bias("conv2.b", 16),
        weight("fc1.w", 120, 400), bias("fc1.b", 120),
        weight("fc2.w", 84, 120), bias("fc2.b", 84),
        weight("fc3.w", 10, 84), bias("fc3.b", 10),
    ]
    pool = dict(kernel_shape=[2, 2], strides=[2, 2])
    nodes = [
        helper.make_node("Conv", ["image", "conv1.w", "conv1.b"], ["c1"], name="conv1", pads=[2, 2, 2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", **pool),
        helper.make_node("Conv", ["p1", "conv2.w", "conv2.b"], ["c2"], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("MaxPool", ["r2"], ["p2"], name="pool2", **pool),
        helper.make_node("Flatten", ["p2"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc1.w", "fc1.b"], ["g1"], name="fc1", transB=1),
        helper.make_node("Relu", ["g1"], ["h1"], name="relu3"),
        helper.make_node("Gemm", ["h1", "fc2.w", "fc2.b"], ["g2"], name="fc2", transB=1),
        helper.make_node("Relu", ["g2"], ["h2"], name="relu4"),
        helper.make_node("Gemm", ["h2", "fc3.w", "fc3.b"], ["logits"], name="fc3", transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "lenet5",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="cnnc tools/make_lenet.py")
    model.ir_version = 8
    onnx.checker.check_model(model)

    os.makedirs(os.path.join(out_dir, "test_data_set_0"), exist_ok=True)
    path = os.path.join(out_dir, "model.onnx")
    onnx.save(model, path)

    image = rng.random((1, 1, 28, 28), dtype=np.float32)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (probs,) = sess.run(None, {"image": image})
    image.tofile(os.path.join(out_dir, "image.f32"))
    data = os.path.join(out_dir, "test_data_set_0")
    with open(os.path.join(data, "input_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(image, "image").SerializeToString())
    with open(os.path.join(data, "output_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(probs, "probabilities").SerializeToString())


if __name__ == "__main__":
    main(sys.argv[1])
