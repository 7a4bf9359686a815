#!/usr/bin/env python3
"""Where the time goes in one model: cnnc's per-layer profile beside onnxruntime's own, as Markdown.

cnnc: `cnnc bench MODEL --per-layer --json` (median ms of every step). onnxruntime: a session with
`enable_profiling`, whose trace gives each node's kernel time per run (median over the timed runs).
Both are mapped back to the nodes of the ONNX model to be compared layer by layer (see
benches/README.md, *Per-layer profile*); the per-category summary needs no such matching.

Normally started by benches/profile.sh, which sets up the venv (the one compare.sh uses).
Needs numpy, onnx and onnxruntime (imported after argument parsing, so --help works anywhere)."""
import argparse
import datetime
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile

import compare  # benches/compare.py: model discovery, input feeds, machine info

CATEGORIES = ["conv 3x3", "conv 1x1 / matmul", "depthwise", "other conv", "gemm / FC",
              "pooling", "elementwise / other", "reorders"]

# ONNX ops that both runtimes fold or fuse into the node before them; a layer found in one runtime
# but not the other is looked for back through these.
FUSABLE = {"BatchNormalization", "Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish",
           "Tanh", "Elu", "Selu", "Softplus", "PRelu", "Add", "Sum", "Sub", "Mul", "Div", "Identity",
           "Dropout"}

log = compare.log


# ----------------------------------------------------------------------------------------------
# the ONNX model


class OnnxGraph:
    """Nodes of the model with their MACs and conv geometry, and the lookups that map a runtime's
    layer name back to a node."""

    def __init__(self, path):
        import onnx
        from onnx import shape_inference
        m = shape_inference.infer_shapes(onnx.load(path))
        g = m.graph
        shapes = {}
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            if vi.type.tensor_type.HasField("shape"):
                shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None
                                   for d in vi.type.tensor_type.shape.dim]
        for t in g.initializer:
            shapes[t.name] = list(t.dims)
        self.nodes = list(g.node)
        self.producer = {o: i for i, n in enumerate(self.nodes) for o in n.output if o}
        self.by_name = {n.name: i for i, n in enumerate(self.nodes) if n.name}
        attrs = [{a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} for n in self.nodes]
        self.macs = [self._macs(n, a, shapes) for n, a in zip(self.nodes, attrs)]
        self.geometry = [self._geometry(n, a, shapes) for n, a in zip(self.nodes, attrs)]

    @staticmethod
    def _macs(n, at, shapes):
        """Multiply-accumulates as compare.count_macs counts them, for one node (0 when unknown)."""
        if n.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul") or len(n.input) < 2:
            return 0
        x, w, y = shapes.get(n.input[0]), shapes.get(n.input[1]), shapes.get(n.output[0])

        def known(*s):
            return all(v is not None and None not in v for v in s)

        if n.op_type == "Conv":
            k = at.get("kernel_shape") or (w[2:] if w else None)
            return math.prod(y) * (x[1] // at.get("group", 1)) * math.prod(k) if known(x, y, k) else 0
        if n.op_type == "ConvTranspose":
            return math.prod(x) * math.prod(w[1:]) if known(x, w) else 0
        if n.op_type == "Gemm":
            return math.prod(y) * (x[0] if at.get("transA", 0) else x[1]) if known(x, y) else 0
        return math.prod(y) * x[-1] if known(x, y) else 0

    @staticmethod
    def _geometry(n, at, shapes):
        """(kernel dims, group, in channels, out channels, output dims, strides) of a Conv, else None."""
        if n.op_type != "Conv":
            return None
        w, y = shapes.get(n.input[1]) or [], shapes.get(n.output[0]) or []
        k = list(at.get("kernel_shape") or w[2:])
        group = at.get("group", 1)
        cin = w[1] * group if len(w) > 1 else None
        cout = w[0] if w else None
        return k, group, cin, cout, y[2:], list(at.get("strides") or [1] * len(k))

    def resolve(self, name):
        """The node a runtime's layer name stands for, or None. Both runtimes derive their names
        from an output tensor or a node name, plus suffixes: cnnc `/c4`, `/winograd_input`,
        `/matmul`, `_1`; ORT `_nchwc`, `/QuickGeluFusion/`."""
        tries = [name]
        for pat in (r"_nchwc$", r"/+$", r"~(_\d+)?$", r"/[^/]*$", r"/[^/]*$", r"_\d+$"):
            tries.append(re.sub(pat, "", tries[-1]))
        for t in tries:
            if t in self.producer:
                return self.producer[t]
            if t in self.by_name:
                return self.by_name[t]
        return None

    def conv_category(self, i):
        """The category of a convolution-like layer anchored on node i (None: not known)."""
        if i is None:
            return None
        op = self.nodes[i].op_type
        if op == "Gemm":
            return "gemm / FC"
        if op == "MatMul":
            return "conv 1x1 / matmul"
        if self.geometry[i] is None:
            return None
        k, group, cin, _, _, _ = self.geometry[i]
        if group > 1:
            return "depthwise" if cin == group else "other conv"
        return {(1, 1): "conv 1x1 / matmul", (3, 3): "conv 3x3"}.get(tuple(k), "other conv")

    def describe(self, i):
        """A short shape description of node i, e.g. `3x3/2 128→128 @28x28 dw`."""
        geo = self.geometry[i]
        if geo is None:
            return self.nodes[i].op_type
        k, group, cin, cout, out, strides = geo
        s = "x".join(map(str, k))
        if any(v != 1 for v in strides):
            s += "/" + "x".join(map(str, sorted(set(strides))))
        s += f" {cin}→{cout} @{'x'.join(map(str, out))}"
        if group > 1:
            s += " dw" if cin == group else f" g{group}"
        return s


# ----------------------------------------------------------------------------------------------
# the two profiles: lists of layers {name, op, ms, cat, node}


CNNC_CATEGORY = {"depthwise_conv": "depthwise", "matmul": "conv 1x1 / matmul", "gemm": "gemm / FC",
                 "max_pool": "pooling", "avg_pool": "pooling", "global_max_pool": "pooling",
                 "global_avg_pool": "pooling", "reorder": "reorders"}


def cnnc_profile(cnnc, path, threads, iters, warmup, og):
    cmd = [cnnc, "bench", path, "--threads", str(threads), "--iters", str(iters),
           "--warmup", str(warmup), "--per-layer", "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("profile.py: cnnc bench: " + compare.short_error(p.stderr, p.returncode))
    j = json.loads(next(l for l in reversed(p.stdout.splitlines()) if l.startswith("{")))
    layers = []
    for l in j["layers"]:
        # reorders are named after the tensor they convert; they are no part of that layer
        node = None if l["op"] == "reorder" else og.resolve(l["name"])
        if l["op"] in ("conv", "winograd_input", "winograd_output", "conv_transpose"):
            cat = og.conv_category(node) or "other conv"
        else:
            cat = CNNC_CATEGORY.get(l["op"], "elementwise / other")
        layers.append({"name": l["name"], "op": l["op"], "ms": l["median_ms"], "cat": cat, "node": node})
    return j, layers


ORT_CATEGORY = {"Gemm": "gemm / FC", "MatMul": "conv 1x1 / matmul", "FusedMatMul": "conv 1x1 / matmul",
                "MaxPool": "pooling", "AveragePool": "pooling", "GlobalAveragePool": "pooling",
                "GlobalMaxPool": "pooling", "ReorderInput": "reorders", "ReorderOutput": "reorders",
                "ConvTranspose": "other conv"}


def ort_conv_category(shapes):
    """From the node's input shapes in the trace: [x, w, ...], w = [out, in / group, kh, kw]."""
    if len(shapes) < 2 or len(shapes[0]) < 3 or len(shapes[1]) < 3:
        return "other conv"
    cin, w = shapes[0][1], shapes[1]
    if w[1] != cin:
        return "depthwise" if w[1] == 1 else "other conv"
    return {(1, 1): "conv 1x1 / matmul", (3, 3): "conv 3x3"}.get(tuple(w[2:]), "other conv")


def ort_profile(path, threads, iters, warmup, og, tmp):
    """Returns (median ms of a run as the trace times it, layers)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tmp, "ort")
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    feed = compare.bench_feed(sess)
    for _ in range(warmup + iters):
        sess.run(None, feed)
    with open(sess.end_profiling()) as f:
        trace = json.load(f)

    # The trace has every run, warm-up included: keep the node events inside the last `iters` runs.
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in trace
                  if e.get("cat") == "Session" and e.get("name") == "model_run")[-iters:]
    per_node = {}  # name -> (op, input shapes, [µs per run])
    for e in trace:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        run = next((k for k, (a, b) in enumerate(runs) if a <= e["ts"] <= b), None)
        if run is None:
            continue
        name = e["name"][:-len("_kernel_time")]
        shapes = [next(iter(d.values())) for d in e["args"].get("input_type_shape", [])]
        entry = per_node.setdefault(name, (e["args"]["op_name"], shapes, [0.0] * len(runs)))
        entry[2][run] += e["dur"]
    layers = []
    for name, (op, shapes, us) in per_node.items():
        node = None if op in ("ReorderInput", "ReorderOutput") else og.resolve(name)
        if op in ("Conv", "FusedConv"):
            cat = ort_conv_category(shapes)
        else:
            cat = ORT_CATEGORY.get(op, "elementwise / other")
        layers.append({"name": name, "op": op, "ms": statistics.median(us) / 1e3, "cat": cat, "node": node})
    run_ms = statistics.median(b - a for a, b in runs) / 1e3
    return run_ms, layers


# ----------------------------------------------------------------------------------------------
# matching


def match(og, cnnc_layers, ort_layers):
    """Groups layers of both runtimes that compute the same part of the ONNX graph.

    Layers resolving to the same node go together. A layer whose node the other runtime has no
    layer for (it fused that node into another one, e.g. ORT names a Conv+Clip after the Clip's
    output, cnnc after the Conv's) joins the first layer of the other runtime found walking back
    through FUSABLE nodes. Returns the groups as lists of ("cnnc" | "ort", layer), in graph order."""
    layers = [("cnnc", l) for l in cnnc_layers] + [("ort", l) for l in ort_layers]
    parent = list(range(len(layers)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    claimed = {"cnnc": {}, "ort": {}}  # node -> first layer index
    for i, (rt, l) in enumerate(layers):
        if l["node"] is not None:
            first = claimed[rt].setdefault(l["node"], i)
            parent[find(i)] = find(first)
    for i, (rt, l) in enumerate(layers):
        other = claimed["ort" if rt == "cnnc" else "cnnc"]
        n = l["node"]
        if n is None:
            continue
        if n not in other and og.nodes[n].op_type in FUSABLE:
            n = walk_back(og, n, other)
        if n in other:
            parent[find(i)] = find(other[n])

    # Graph order: a layer's node index; a layer without one (reorders) goes after the layer
    # before it in its runtime's run order.
    pos, last = [], {"cnnc": -1.0, "ort": -1.0}
    for rt, l in layers:
        last[rt] = float(l["node"]) if l["node"] is not None else last[rt] + 1e-3
        pos.append(last[rt])
    groups = {}
    for i in range(len(layers)):
        groups.setdefault(find(i), []).append(i)
    ordered = sorted(groups.values(), key=lambda g: min(pos[i] for i in g))
    return [[layers[i] for i in g] for g in ordered]


def walk_back(og, n, claimed):
    """The first node of `claimed` found breadth-first from node n back through FUSABLE nodes."""
    queue, seen = [n], {n}
    while queue:
        for t in og.nodes[queue.pop(0)].input:
            p = og.producer.get(t)
            if p is None or p in seen:
                continue
            if p in claimed:
                return p
            seen.add(p)
            if og.nodes[p].op_type in FUSABLE:
                queue.append(p)
    return None


def summarize_group(og, g):
    c = [l for rt, l in g if rt == "cnnc"]
    o = [l for rt, l in g if rt == "ort"]
    nodes = sorted({l["node"] for _, l in g if l["node"] is not None})
    anchor = max(nodes, key=lambda n: (og.macs[n], og.geometry[n] is not None), default=None)
    macs = sum(og.macs[n] for n in nodes)
    name = c[0]["name"] if c else o[0]["name"]
    if anchor is not None and og.nodes[anchor].output:
        name = og.nodes[anchor].output[0]
    cat = (og.conv_category(anchor) if macs else None) or (c or o)[0]["cat"]
    return {
        "name": name, "cat": cat, "macs": macs,
        "shape": og.describe(anchor) if anchor is not None else "",
        "cnnc_ms": sum(l["ms"] for l in c) if c else None,
        "ort_ms": sum(l["ms"] for l in o) if o else None,
        "cnnc_ops": "+".join(dict.fromkeys(l["op"] for l in c)),
        "ort_ops": "+".join(dict.fromkeys(l["op"] for l in o)),
    }


# ----------------------------------------------------------------------------------------------
# report


def fmt(v, digits=3):
    return "—" if v is None else f"{v:.{digits}f}"


def gflops(macs, ms):
    return 2 * macs / (ms * 1e6) if macs and ms else None


def rate_cells(macs, ms, peak):
    g = gflops(macs, ms)
    cells = [fmt(g, 1)]
    if peak:
        cells.append("—" if g is None else f"{100 * g / peak:.0f}%")
    return cells


def report(args, og, cj, cnnc_layers, ort_run_ms, ort_layers, groups):
    import onnxruntime
    peak = args.peak * args.threads if args.peak else None
    c_total = sum(l["ms"] for l in cnnc_layers)
    o_total = sum(l["ms"] for l in ort_layers)
    rows = [summarize_group(og, g) for g in groups]
    both = [r for r in rows if r["cnnc_ms"] is not None and r["ort_ms"] is not None]
    c_matched = sum(r["cnnc_ms"] for r in both)
    o_matched = sum(r["ort_ms"] for r in both)
    cpu, _ = compare.cpu_info()
    version = subprocess.run([args.cnnc, "--version"], capture_output=True, text=True).stdout.strip()
    now = datetime.datetime.now(datetime.timezone.utc)
    rate_head = " | GFLOP/s" + (" | % peak" if peak else "")
    rate_cols = "--:|" * (2 if peak else 1)

    out = [
        f"# Profile of {os.path.basename(os.path.dirname(args.model_path)) or args.model_path}, "
        f"{args.threads} thread{'s' if args.threads > 1 else ''}", "",
        f"`{args.model_path}`; {now:%Y-%m-%d %H:%M} UTC; {cpu}; load average {compare.loadavg()}; "
        f"{version}; onnxruntime {onnxruntime.__version__}. {args.warmup} warm-up + {args.iters} timed "
        "runs each; milliseconds are medians over the timed runs"
        + (f"; % peak is GFLOP/s over {args.peak:g} GFLOP/s per thread." if peak else "."), "",
        "| | cnnc | ORT |", "|---|--:|--:|",
        f"| run, median ms (cnnc: unprofiled runs; ORT: the profiled runs) | {fmt(cj['median_ms'], 2)} "
        f"| {fmt(ort_run_ms, 2)} |",
        f"| sum of the per-layer medians, ms | {fmt(c_total, 2)} | {fmt(o_total, 2)} |",
        f"| layers (cnnc steps, ORT nodes) | {len(cnnc_layers)} | {len(ort_layers)} |",
        f"| time in layers matched with the other runtime | {100 * c_matched / c_total:.0f}% "
        f"| {100 * o_matched / o_total:.0f}% |", "",
        "## By category", "",
        "Each runtime's layers by what they compute, without matching. An activation ORT runs as a "
        "node of its own (e.g. QuickGelu for SiLU) counts as elementwise; one fused into a kernel "
        "counts with that kernel.", "",
        "| category | cnnc ms | cnnc share | ORT ms | ORT share | cnnc/ORT |", "|---|--:|--:|--:|--:|--:|",
    ]
    for cat in CATEGORIES:
        c = sum(l["ms"] for l in cnnc_layers if l["cat"] == cat)
        o = sum(l["ms"] for l in ort_layers if l["cat"] == cat)
        if c or o:
            out.append(f"| {cat} | {fmt(c, 2)} | {100 * c / c_total:.0f}% | {fmt(o, 2)} | "
                       f"{100 * o / o_total:.0f}% | {fmt(c / o, 2) if o else '—'} |")
    out.append(f"| **total** | {fmt(c_total, 2)} | 100% | {fmt(o_total, 2)} | 100% | "
               f"{fmt(c_total / o_total, 2)} |")

    def row(r):
        diff = (r["cnnc_ms"] or 0) - (r["ort_ms"] or 0)
        macs = f"{r['macs'] / 1e6:.3g}" if r["macs"] else ""
        return (f"| `{compare.cell(r['name'])}` | {r['cat']} | {r['shape']} | {macs} | {fmt(r['cnnc_ms'])} | "
                + " | ".join(rate_cells(r["macs"], r["cnnc_ms"], peak)) + f" | {fmt(r['ort_ms'])} | "
                + " | ".join(rate_cells(r["macs"], r["ort_ms"], peak))
                + f" | {diff:+.3f} | {r['cnnc_ops']} | {r['ort_ops']} |")

    head = ("| layer | category | shape | MMACs | cnnc ms" + rate_head + " | ORT ms" + rate_head
            + " | cnnc − ORT ms | cnnc steps | ORT nodes |")
    sep = "|---|---|---|--:|--:|" + rate_cols + "--:|" + rate_cols + "--:|---|---|"
    losers = sorted(rows, key=lambda r: (r["cnnc_ms"] or 0) - (r["ort_ms"] or 0), reverse=True)
    out += ["", f"## Where cnnc loses most (top {args.top})", "",
            "Layers by cnnc ms − ORT ms; a layer only one runtime has counts 0 for the other.", "",
            head, sep] + [row(r) for r in losers[:args.top]]
    out += ["", "## Per layer", "",
            "In graph order. A row is one part of the ONNX graph: the cnnc steps and ORT nodes "
            "mapped to it (see benches/README.md); *layer* is the output of its main node. "
            "— : the runtime has no layer of its own there (fused elsewhere, or not needed).", "",
            head, sep] + [row(r) for r in rows]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(
        description="Per-layer profile of one model in cnnc and onnxruntime, side by side (Markdown).",
        epilog="Normally run through benches/profile.sh, which creates the venv and passes --cnnc, "
               "--cache and --shared.")
    ap.add_argument("model", help="an .onnx file, or a model name of compare.sh --list")
    ap.add_argument("--cnnc", required=True, help="the cnnc binary")
    ap.add_argument("--threads", type=int, default=1, help="threads for both runtimes (default 1)")
    ap.add_argument("--iters", type=int, default=15, help="timed runs per runtime (default 15)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    ap.add_argument("--top", type=int, default=10, help="rows of the where-cnnc-loses table (default 10)")
    ap.add_argument("--peak", type=float, default=None,
                    help="one core's FMA peak in GFLOP/s (`cargo bench --bench kernels` prints it); "
                         "adds %% of peak (times the thread count) beside every GFLOP/s")
    ap.add_argument("--output", default=None, help="write the report here instead of stdout")
    ap.add_argument("--shared", default=os.path.join(compare.REPO, "..", "shared"),
                    help="the shared data folder, for model names (default: ../shared beside the repo)")
    ap.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache", "cnnc-bench"),
                    help="where compare.sh keeps randomized models (default ~/.cache/cnnc-bench)")
    args = ap.parse_args()
    if args.threads < 1 or args.iters < 1 or args.warmup < 0:
        sys.exit("profile.py: --threads and --iters must be positive, --warmup not negative")

    if os.path.isfile(args.model):
        args.model_path = os.path.abspath(args.model)
    else:
        m = compare.select(compare.discover(os.path.abspath(args.shared), os.path.abspath(args.cache)),
                           args.model)[0]
        if m.randomize:
            compare.ensure_randomized(m, os.path.abspath(args.shared))
        args.model_path = m.path

    og = OnnxGraph(args.model_path)
    log(f"profile.py: cnnc, {args.warmup} + {args.iters} runs")
    cj, cnnc_layers = cnnc_profile(args.cnnc, args.model_path, args.threads, args.iters, args.warmup, og)
    log(f"profile.py: onnxruntime, {args.warmup} + {args.iters} runs")
    with tempfile.TemporaryDirectory(prefix="cnnc-profile-") as tmp:
        ort_run_ms, ort_layers = ort_profile(args.model_path, args.threads, args.iters, args.warmup, og, tmp)
    text = report(args, og, cj, cnnc_layers, ort_run_ms, ort_layers, match(og, cnnc_layers, ort_layers))
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
