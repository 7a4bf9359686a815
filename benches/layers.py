#!/usr/bin/env python3
"""cnnc, tract and onnxruntime side by side on the single layers of benches/kernels.rs.

Writes each layer as a one-node ONNX model (Conv + Relu, or Gemm) with seeded random
weights into DIR, times it with `cnnc bench --per-layer --json`, the tract binary of
benches/tract and an onnxruntime session, all on one thread, and prints a Markdown table.
Normally started by benches/layers.sh, which sets up the venv and builds both binaries.
Needs numpy, onnx and onnxruntime (imported after argument parsing, so --help works)."""
import argparse
import json
import os
import subprocess
import sys
import time

# name: (kind, cin, cout, hw, kernel, stride); the same shapes as benches/kernels.rs.
LAYERS = {
    "conv3x3_64_56": ("conv", 64, 64, 56, 3, 1),
    "conv3x3s2_128_56": ("conv", 128, 128, 56, 3, 2),
    "conv1x1_256to64_56": ("conv", 256, 64, 56, 1, 1),
    "conv1x1_64to256_56": ("conv", 64, 256, 56, 1, 1),
    "depthwise3x3_32_112": ("depthwise", 32, 32, 112, 3, 1),
    "depthwise3x3_576_14": ("depthwise", 576, 576, 14, 3, 1),
    "stem7x7s2_3to64_224": ("conv", 3, 64, 224, 7, 2),
    "fc_4096to1000": ("fc", 4096, 1000, 1, 1, 1),
}


def out_shape(kind, cin, cout, hw, k, s):
    if kind == "fc":
        return [1, cout]
    out = (hw + 2 * (k // 2) - k) // s + 1
    return [1, cout, out, out]


def flops(kind, cin, cout, hw, k, s):
    """Two per multiply-add."""
    per_out = cin if kind == "fc" else (1 if kind == "depthwise" else cin) * k * k
    outputs = 1
    for d in out_shape(kind, cin, cout, hw, k, s):
        outputs *= d
    return 2 * outputs * per_out


def write_model(path, kind, cin, cout, hw, k, s):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    groups = cin if kind == "depthwise" else 1
    if kind == "fc":
        x_shape, w_shape = [1, cin], [cout, cin]
        fan_in = cin
    else:
        x_shape, w_shape = [1, cin, hw, hw], [cout, cin // groups, k, k]
        fan_in = cin // groups * k * k
    w = (rng.uniform(-1, 1, w_shape) / np.sqrt(fan_in)).astype(np.float32)
    b = rng.uniform(-1, 1, [cout]).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
    if kind == "fc":
        nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)]
    else:
        p = k // 2
        nodes = [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[k, k],
                             strides=[s, s], pads=[p, p, p, p], group=groups),
            helper.make_node("Relu", ["c"], ["y"]),
        ]
    graph = helper.make_graph(
        nodes, os.path.basename(path)[:-5],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                       out_shape(kind, cin, cout, hw, k, s))], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def cnnc_ms(binary, path, warmup, iters):
    """Whole model and kernel-only median ms (the steps that multiply-add)."""
    out = subprocess.run([binary, "bench", path, "--threads", "1", "--warmup", str(warmup),
                          "--iters", str(iters), "--per-layer", "--json"],
                         check=True, capture_output=True, text=True).stdout
    j = json.loads(out)
    kernel = sum(l["median_ms"] for l in j["layers"] if l["macs"] > 0)
    return j["median_ms"], kernel


def tract_ms(binary, paths, warmup, iters):
    out = subprocess.run([binary, "--warmup", str(warmup), "--iters", str(iters), *paths],
                         check=True, capture_output=True, text=True).stdout
    result = {}
    for line in out.splitlines():
        path, *rest = line.split("\t")
        result[path] = float(rest[0]) if len(rest) == 2 else rest[0]
    return result


def ort_ms(path, warmup, iters):
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    x = np.random.default_rng(1).uniform(-1, 1, inp.shape).astype(np.float32)
    for _ in range(warmup):
        sess.run(None, {inp.name: x})
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        sess.run(None, {inp.name: x})
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True, help="where the .onnx layers are written")
    ap.add_argument("--cnnc", required=True, help="the cnnc binary")
    ap.add_argument("--tract", help="the benches/tract binary (no tract column without)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=30, help="timed runs per runtime and layer")
    args = ap.parse_args()

    os.makedirs(args.dir, exist_ok=True)
    paths = {}
    for name, spec in LAYERS.items():
        paths[name] = os.path.join(args.dir, name + ".onnx")
        write_model(paths[name], *spec)
    print(f"timing {len(LAYERS)} layers ({args.iters} runs each)...", file=sys.stderr)
    tract = tract_ms(args.tract, list(paths.values()), args.warmup, args.iters) if args.tract else {}

    def cell(ms, fl):
        return (f"{ms:.3f} | {fl / ms / 1e6:.1f}") if isinstance(ms, float) else f"{ms} | "

    print("Milliseconds (median) and GFLOP/s per layer, batch 1, one thread. *cnnc kernel* is "
          "the layer's own kernel steps, without the reorders a lone layer needs.\n")
    print("| layer | MFLOP | cnnc ms | GFLOP/s | cnnc kernel ms | GFLOP/s | tract ms | GFLOP/s "
          "| ORT ms | GFLOP/s |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for name, spec in LAYERS.items():
        fl = flops(*spec)
        whole, kernel = cnnc_ms(args.cnnc, paths[name], args.warmup, args.iters)
        t = tract.get(paths[name], "not run")
        ort = ort_ms(paths[name], args.warmup, args.iters)
        print(f"| {name} | {fl / 1e6:.1f} | {cell(whole, fl)} | {cell(kernel, fl)} | "
              f"{cell(t, fl)} | {cell(ort, fl)} |", flush=True)


if __name__ == "__main__":
    main()
