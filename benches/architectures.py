#!/usr/bin/env python3
"""ONNX models of the architectures the shared benchmark set lacks, with seeded random weights:
a U-Net (segmentation: transposed convolutions, skip concatenations), a YOLO-style detector
(SiLU, C3 blocks, SPPF pooling, nearest up-sampling, head reshapes and transposes) and a 3-D
ResNet (video: 3-D convolutions, pools and residuals).

    python architectures.py OUT_DIR [NAME ...]

writes OUT_DIR/NAME/model.onnx for each name (all by default). Used by compare.py, which
regenerates a model when this file changes. Needs numpy and onnx."""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Builder:
    """Nodes and initializers of one graph, with seeded weights."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, prefix):
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, array, dtype=np.float32):
        n = self.name("w")
        self.inits.append(numpy_helper.from_array(np.asarray(array).astype(dtype), n))
        return n

    def node(self, op, inputs, **attrs):
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def uniform(self, lo, hi, shape):
        return self.rng.uniform(lo, hi, shape)

    def conv(self, x, cin, cout, kernel, stride=1, pad=None, bias=True):
        """Conv of `kernel` (a size per axis), `stride` (one or per axis), `pad` (per axis,
        both ends; default half the kernel)."""
        k = list(kernel)
        strides = list(stride) if isinstance(stride, tuple) else [stride] * len(k)
        pad = [kk // 2 for kk in k] if pad is None else list(pad)
        w = self.uniform(-1, 1, [cout, cin] + k) / np.sqrt(cin * np.prod(k))
        ins = [x, self.const(w)] + ([self.const(self.uniform(-0.1, 0.1, cout))] if bias else [])
        return self.node("Conv", ins, kernel_shape=k, strides=strides, pads=pad + pad)

    def batch_norm(self, x, c):
        stats = [self.uniform(0.5, 1.5, c), self.uniform(-0.1, 0.1, c),
                 self.uniform(-0.1, 0.1, c), self.uniform(0.5, 1.5, c)]
        return self.node("BatchNormalization", [x] + [self.const(s) for s in stats])

    def model(self, name, inputs, outputs):
        """The checked model; the outputs' shapes come from ONNX shape inference."""
        ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs]

        def make(outs):
            m = helper.make_model(helper.make_graph(self.nodes, name, ins, outs, self.inits),
                                  opset_imports=[helper.make_opsetid("", 13)])
            m.ir_version = 8
            return m

        inferred = onnx.shape_inference.infer_shapes(make([])).graph.value_info
        types = {v.name: v for v in inferred}
        m = make([types[n] for n in outputs])
        onnx.checker.check_model(m)
        return m


def unet():
    """U-Net (Ronneberger et al.) at 256x256 with 32 to 512 channels: conv-BN-ReLU pairs, 2x2
    max pools, 2x2 stride-2 transposed convolutions, skip concatenations, a 1x1 head."""
    b = Builder(1)

    def block(x, cin, cout):
        for c in (cin, cout):
            x = b.node("Relu", [b.batch_norm(b.conv(x, c, cout, (3, 3)), cout)])
        return x

    widths = [32, 64, 128, 256, 512]
    h, skips = block("image", 3, widths[0]), []
    for i in range(1, 5):
        skips.append(h)
        h = block(b.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2]), widths[i - 1], widths[i])
    for i in range(4, 0, -1):
        w = b.uniform(-1, 1, [widths[i], widths[i - 1], 2, 2]) / np.sqrt(widths[i])
        up = b.node("ConvTranspose", [h, b.const(w), b.const(b.uniform(-0.1, 0.1, widths[i - 1]))],
                    kernel_shape=[2, 2], strides=[2, 2])
        h = block(b.node("Concat", [skips[i - 1], up], axis=1), 2 * widths[i - 1], widths[i - 1])
    out = b.conv(h, widths[0], 2, (1, 1))
    return b.model("unet", [("image", [1, 3, 256, 256])], [out])


def yolo_style():
    """A YOLOv5-style detector at 320x320: SiLU convolutions, C3 blocks, SPPF, a PAN neck with
    nearest up-sampling, three heads reshaped and transposed to [1, boxes, 85] with sigmoid."""
    b = Builder(2)

    def conv(x, cin, cout, k=1, s=1):
        pad = [k // 2 if k % 2 else (k - 2) // 2] * 2
        y = b.conv(x, cin, cout, (k, k), s, pad)
        return b.node("Mul", [y, b.node("Sigmoid", [y])])

    def c3(x, cin, cout, n=1):
        a, skip = conv(x, cin, cout // 2), conv(x, cin, cout // 2)
        for _ in range(n):
            a = b.node("Add", [a, conv(conv(a, cout // 2, cout // 2), cout // 2, cout // 2, 3)])
        return conv(b.node("Concat", [a, skip], axis=1), cout, cout)

    def up(x):
        return b.node("Resize", [x, "", b.const([1, 1, 2, 2])], mode="nearest")

    x = conv("images", 3, 16, 6, 2)
    x = c3(conv(x, 16, 32, 3, 2), 32, 32)
    p3 = c3(conv(x, 32, 64, 3, 2), 64, 64, 2)
    p4 = c3(conv(p3, 64, 128, 3, 2), 128, 128, 3)
    x = c3(conv(p4, 128, 256, 3, 2), 256, 256)
    x = conv(x, 256, 128)
    pools = [x]
    for _ in range(3):
        pools.append(b.node("MaxPool", [pools[-1]], kernel_shape=[5, 5], pads=[2, 2, 2, 2]))
    h5 = conv(conv(b.node("Concat", pools, axis=1), 512, 256), 256, 128)
    x = c3(b.node("Concat", [up(h5), p4], axis=1), 256, 128)
    h4 = conv(x, 128, 64)
    o3 = c3(b.node("Concat", [up(h4), p3], axis=1), 128, 64)
    o4 = c3(b.node("Concat", [conv(o3, 64, 64, 3, 2), h4], axis=1), 128, 128)
    o5 = c3(b.node("Concat", [conv(o4, 128, 128, 3, 2), h5], axis=1), 256, 256)
    heads = []
    for o, c, hw in ((o3, 64, 40), (o4, 128, 20), (o5, 256, 10)):
        y = b.conv(o, c, 255, (1, 1))
        y = b.node("Reshape", [y, b.const([1, 3, 85, hw, hw], np.int64)])
        y = b.node("Sigmoid", [b.node("Transpose", [y], perm=[0, 1, 3, 4, 2])])
        heads.append(b.node("Reshape", [y, b.const([1, -1, 85], np.int64)]))
    out = b.node("Concat", heads, axis=1)
    return b.model("yolo_style", [("images", [1, 3, 320, 320])], [out])


def resnet3d():
    """A small 3-D ResNet (R3D) on a 16-frame 112x112 clip: a 3x7x7 stem, a 1x3x3 max pool,
    3x3x3 residual blocks at 32 and 64 channels (a strided one with a 1x1x1 projection), global
    average pooling and a classifier."""
    b = Builder(3)

    def unit(x, cin, cout, k, s, pad, relu=True, residual=None):
        y = b.batch_norm(b.conv(x, cin, cout, k, s, pad, bias=False), cout)
        if residual is not None:
            y = b.node("Add", [y, residual])
        return b.node("Relu", [y]) if relu else y

    x = unit("clip", 3, 32, (3, 7, 7), (1, 2, 2), (1, 3, 3))
    x = b.node("MaxPool", [x], kernel_shape=[1, 3, 3], strides=[1, 2, 2], pads=[0, 1, 1, 0, 1, 1])
    for _ in range(2):
        a = unit(x, 32, 32, (3, 3, 3), 1, (1, 1, 1))
        x = unit(a, 32, 32, (3, 3, 3), 1, (1, 1, 1), residual=x)
    a = unit(x, 32, 64, (3, 3, 3), 2, (1, 1, 1))
    shortcut = unit(x, 32, 64, (1, 1, 1), 2, (0, 0, 0), relu=False)
    x = unit(a, 64, 64, (3, 3, 3), 1, (1, 1, 1), residual=shortcut)
    a = unit(x, 64, 64, (3, 3, 3), 1, (1, 1, 1))
    x = unit(a, 64, 64, (3, 3, 3), 1, (1, 1, 1), residual=x)
    x = b.node("Flatten", [b.node("GlobalAveragePool", [x])])
    out = b.node("Gemm", [x, b.const(b.uniform(-0.1, 0.1, [10, 64])),
                          b.const(b.uniform(-0.1, 0.1, 10))], transB=1)
    return b.model("resnet3d", [("clip", [1, 3, 16, 112, 112])], [out])


ARCHITECTURES = {"unet": unet, "yolo_style": yolo_style, "resnet3d": resnet3d}


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if len(sys.argv) > 1 else 2)
    out, names = sys.argv[1], sys.argv[2:] or list(ARCHITECTURES)
    for name in names:
        if name not in ARCHITECTURES:
            sys.exit(f"architectures.py: no architecture {name}; known: {', '.join(ARCHITECTURES)}")
        os.makedirs(os.path.join(out, name), exist_ok=True)
        path = os.path.join(out, name, "model.onnx")
        onnx.save(ARCHITECTURES[name](), path + ".tmp")
        os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
