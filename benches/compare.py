#!/usr/bin/env python3
"""Side-by-side benchmark of cnnc against onnxruntime (CPU), written as a Markdown report.

For every model and thread count: one output-agreement check (the same input through
`cnnc run` and onnxruntime), then ROUNDS rounds that alternate one `cnnc bench --json` call
with one onnxruntime timing block of the same warm-up and iteration counts (the order flips
every round), so load on the machine hits both runtimes alike.

Normally started by benches/compare.sh, which sets up the Python venv and builds cnnc.
Needs numpy, onnx and onnxruntime (imported after argument parsing, so --help works anywhere)."""
import argparse
import datetime
import gc
import hashlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# Classic model-zoo nets whose weights are ConstantOfShape nodes: benchmarked on copies made by
# ../shared/tools/randomize_weights.py (see ../shared/bench-models/README.md).
RANDOMIZE = ["resnet50", "inception_v1", "inception_v2", "bvlc_alexnet", "zfnet512", "vgg19"]
RANDOMIZE_SEED = 0

# Architectures the shared set lacks (segmentation, detection, video), written by
# architectures.py into the cache; reported beside the others, outside their geometric mean.
GENERATED = ["unet", "yolo_style", "resnet3d"]
GENERATOR = os.path.join(HERE, "architectures.py")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# models


class Model:
    def __init__(self, name, path, source, randomize, generated=False):
        self.name = name
        self.path = path            # the .onnx file that is benchmarked
        self.source = source        # the folder it comes from (test_data_set_0 lives there)
        self.randomize = randomize  # path is a randomized copy of source/model.onnx
        self.generated = generated  # path is written by architectures.py


def discover(shared, cache):
    """Every model of the benchmark set, in report order."""
    models = []
    bench = os.path.join(shared, "bench-models")
    conf = os.path.join(shared, "onnx-conformance", "models")
    for d in sorted(os.listdir(bench)) if os.path.isdir(bench) else []:
        if os.path.isfile(os.path.join(bench, d, "model.onnx")):
            models.append(Model(d, os.path.join(bench, d, "model.onnx"), os.path.join(bench, d), False))
    for d in sorted(os.listdir(conf)) if os.path.isdir(conf) else []:
        if d.endswith("_random") and os.path.isfile(os.path.join(conf, d, "model.onnx")):
            models.append(Model(d, os.path.join(conf, d, "model.onnx"), os.path.join(conf, d), False))
    for d in RANDOMIZE:
        src = os.path.join(conf, d)
        out = os.path.join(cache, "models", f"{d}_seed{RANDOMIZE_SEED}", "model.onnx")
        models.append(Model(d, out, src, True))
    for d in GENERATED:
        folder = os.path.join(cache, "models", "generated", d)
        models.append(Model(d, os.path.join(folder, "model.onnx"), folder, False, True))
    return models


def select(models, spec):
    if not spec or spec == "all":
        return models
    by_name = {m.name: m for m in models}
    chosen = []
    for tok in [t.strip() for t in spec.split(",") if t.strip()]:
        if tok in by_name:
            m = by_name[tok]
        else:
            hits = [m for m in models if tok in m.name]
            if len(hits) != 1:
                what = "matches several models" if hits else "is not a model"
                sys.exit(f"compare.py: '{tok}' {what}; models: {', '.join(by_name)}")
            m = hits[0]
        if m not in chosen:
            chosen.append(m)
    return chosen


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ensure_randomized(m, shared):
    """Writes the randomized copy into the cache once; regenerates it when the source model or
    the randomizer changed (the key is stored beside the copy)."""
    tool = os.path.join(shared, "tools", "randomize_weights.py")
    src = os.path.join(m.source, "model.onnx")
    key = f"{file_sha256(tool)} {file_sha256(src)} seed={RANDOMIZE_SEED}\n"
    stamp = os.path.join(os.path.dirname(m.path), "key.txt")
    if os.path.isfile(m.path) and os.path.isfile(stamp) and open(stamp).read() == key:
        return
    os.makedirs(os.path.dirname(m.path), exist_ok=True)
    tmp = m.path + ".tmp"
    log(f"[{m.name}] randomizing weights: {src} -> {m.path}")
    t = time.time()
    subprocess.run([sys.executable, tool, src, tmp, "--seed", str(RANDOMIZE_SEED)], check=True)
    os.replace(tmp, m.path)
    with open(stamp, "w") as f:
        f.write(key)
    log(f"[{m.name}] randomized in {time.time() - t:.0f} s")


def ensure_generated(m):
    """Writes a generated architecture into the cache once; again when architectures.py
    changed (its hash is stored beside the model)."""
    key = f"{file_sha256(GENERATOR)}\n"
    stamp = os.path.join(os.path.dirname(m.path), "key.txt")
    if os.path.isfile(m.path) and os.path.isfile(stamp) and open(stamp).read() == key:
        return
    log(f"[{m.name}] generating {m.path}")
    out = os.path.dirname(os.path.dirname(m.path))
    subprocess.run([sys.executable, GENERATOR, out, m.name], check=True)
    with open(stamp, "w") as f:
        f.write(key)


def count_macs(path):
    """Multiply-accumulates of Conv, ConvTranspose, Gemm and MatMul from ONNX shape inference,
    or None when a shape is unknown."""
    import onnx
    from onnx import shape_inference
    m = shape_inference.infer_shapes(onnx.load(path))
    g = m.graph
    shapes = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
        if vi.type.tensor_type.HasField("shape"):
            shapes[vi.name] = dims
    for t in g.initializer:
        shapes[t.name] = list(t.dims)

    def known(*s):
        return all(x is not None and None not in x for x in s)

    total = 0
    for n in g.node:
        at = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            x, y = shapes.get(n.input[0]), shapes.get(n.output[0])
            w = shapes.get(n.input[1])
            if n.op_type == "Conv":
                k = at.get("kernel_shape") or (w[2:] if w else None)
                if not known(x, y, k):
                    return None
                total += math.prod(y) * (x[1] // at.get("group", 1)) * math.prod(k)
            elif n.op_type == "ConvTranspose":
                if not known(x, w):
                    return None
                total += math.prod(x) * math.prod(w[1:])
            elif n.op_type == "Gemm":
                if not known(x, y):
                    return None
                total += math.prod(y) * (x[0] if at.get("transA", 0) else x[1])
            else:
                if not known(x, y):
                    return None
                total += math.prod(y) * x[-1]
    return total


# ----------------------------------------------------------------------------------------------
# cnnc


def short_error(stderr, code):
    lines = [l.strip() for l in (stderr or "").splitlines() if l.strip()]
    msg = lines[-1] if lines else f"exit code {code}"
    if code is not None and code < 0:
        msg = f"killed by signal {-code}" + (f": {msg}" if lines else "")
    return msg


def cnnc_bench(cnnc, path, threads, iters, warmup, timeout, fma_peak=False, per_layer=False):
    """One `cnnc bench --json` call: (dict, None) or (None, error). With `fma_peak` the
    call also measures the core's 128-bit FMA peak (`fma_peak_gflops`); with `per_layer`
    it times every layer (`layers`: name, op, macs, median_ms)."""
    cmd = [cnnc, "bench", path, "--threads", str(threads), "--iters", str(iters),
           "--warmup", str(warmup), "--json"] + (["--fma-peak"] if fma_peak else []) \
        + (["--per-layer"] if per_layer else [])
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"cnnc bench timed out after {timeout} s"
    if p.returncode != 0:
        return None, "cnnc bench: " + short_error(p.stderr, p.returncode)
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line), None
            except ValueError:
                break
    return None, "cnnc bench printed no JSON: " + p.stdout.strip()[-200:]


def cnnc_run(cnnc, path, threads, inputs, tmp, timeout):
    """`cnnc run` on the given arrays: ({output name: array}, None) or (None, error)."""
    import numpy as np
    cmd = [cnnc, "run", path, "--threads", str(threads), "--output-dir", os.path.join(tmp, "out")]
    for k, (name, a) in enumerate(inputs.items()):
        f = os.path.join(tmp, f"input_{k}.npy")
        np.save(f, a)
        cmd += ["--input", f if len(inputs) == 1 else f"{name}={f}"]
    shutil.rmtree(os.path.join(tmp, "out"), ignore_errors=True)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"cnnc run timed out after {timeout} s"
    if p.returncode != 0:
        return None, "cnnc run: " + short_error(p.stderr, p.returncode)
    out = {}
    for f in os.listdir(os.path.join(tmp, "out")):
        if f.endswith(".npy"):
            out[f[:-4]] = np.load(os.path.join(tmp, "out", f))
    return out, None


# ----------------------------------------------------------------------------------------------
# onnxruntime


def ort_session(path, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_time(sess, feed, iters, warmup):
    """Milliseconds of each of `iters` runs after `warmup` untimed ones."""
    run = sess.run
    for _ in range(warmup):
        run(None, feed)
    times = []
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(iters):
            t = time.perf_counter()
            run(None, feed)
            times.append((time.perf_counter() - t) * 1e3)
    finally:
        if gc_was:
            gc.enable()
    return times


_NP_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int64)": "int64",
             "tensor(int32)": "int32", "tensor(uint8)": "uint8", "tensor(int8)": "int8"}


def input_specs(sess):
    out = []
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
        out.append((i.name, shape, _NP_TYPES.get(i.type, "float32")))
    return out


def bench_feed(sess):
    """Timing input: seeded uniform [-1, 1), like the one `cnnc bench` makes."""
    import numpy as np
    rng = np.random.default_rng(1)
    return {n: rng.uniform(-1, 1, s).astype(t) for n, s, t in input_specs(sess)}


def agreement_feed(sess, source):
    """Agreement input: source/test_data_set_0/input_K.pb when it fits the model's input,
    otherwise seeded N(0, 1). Returns (feed, description)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper
    rng = np.random.default_rng(0)
    feed, used_pb = {}, []
    for k, (n, s, t) in enumerate(input_specs(sess)):
        pb = os.path.join(source, "test_data_set_0", f"input_{k}.pb")
        a = None
        if os.path.isfile(pb):
            try:
                a = numpy_helper.to_array(onnx.load_tensor(pb))
                if list(a.shape) != list(s) or a.dtype != np.dtype(t):
                    a = None
            except Exception:
                a = None
        if a is None:
            a = rng.standard_normal(s).astype(t)
        else:
            used_pb.append(k)
        feed[n] = np.ascontiguousarray(a)
    desc = "test_data_set_0" if used_pb and len(used_pb) == len(feed) else "seeded N(0,1)"
    return feed, desc


def agreement_model(path, tmp):
    """The model to check agreement on: when a graph output is a Softmax (possibly through
    Reshape/Flatten/Squeeze/Identity), a copy in tmp that also outputs the Softmax's input, since
    a saturated softmax (one-hot) agrees trivially. Returns (path, names of the added outputs)."""
    import onnx
    m = onnx.load(path)
    g = m.graph
    prod = {o: n for n in g.node for o in n.output}
    have = {o.name for o in g.output}
    extra = []
    for o in g.output:
        n = prod.get(o.name)
        while n is not None and n.op_type in ("Reshape", "Flatten", "Squeeze", "Identity"):
            n = prod.get(n.input[0])
        if n is not None and n.op_type == "Softmax" and n.input[0] not in have:
            extra.append(n.input[0])
            have.add(n.input[0])
    if not extra:
        return path, []
    for name in extra:
        g.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    out = os.path.join(tmp, "agreement.onnx")
    onnx.save(m, out)
    return out, extra


def max_rel_err(ours, ref):
    """max |a - b| / max |b| over each output, the worst output; or an error string."""
    import numpy as np
    worst = 0.0
    for name, b in ref.items():
        key = name.replace("/", "_").replace("\\", "_")
        if key not in ours:
            return None, f"cnnc wrote no {key}.npy"
        a = ours[key].astype(np.float64)
        b = np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            if a.size != b.size:
                return None, f"{name}: shape {list(a.shape)} vs ORT {list(b.shape)}"
            a = a.reshape(b.shape)
        if not np.all(np.isfinite(a)):
            return None, f"{name}: cnnc output has {int(np.sum(~np.isfinite(a)))} non-finite values"
        e = float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), 1e-30) if b.size else 0.0
        worst = max(worst, e)
    return worst, None


# ----------------------------------------------------------------------------------------------
# measurement


def odd(n):
    n = int(n)
    return n if n % 2 else n + 1


def plan_counts(args, per_run_s):
    """(iters, warmup) for one timing block, from the slower runtime's seconds per run."""
    iters = args.iters
    if iters is None:
        iters = min(args.max_iters, max(args.min_iters, round(args.block_seconds / max(per_run_s, 1e-6))))
        iters = odd(iters) if iters < args.max_iters else iters
    warmup = args.warmup
    if warmup is None:
        warmup = min(3, max(1, round(0.3 / max(per_run_s, 1e-6))))
    return iters, warmup


def measure_model(m, args, tmp):
    """Results of one model: {threads: {...}} plus a note; never raises for model failures."""
    res = {"name": m.name, "path": m.path, "macs": None, "threads": {}, "notes": [], "plan": None}
    if m.randomize:
        try:
            ensure_randomized(m, args.shared)
        except Exception as e:  # noqa: BLE001 - reported in the table
            res["error"] = f"randomize_weights.py failed: {e}"
            return res
    if m.generated:
        try:
            ensure_generated(m)
        except Exception as e:  # noqa: BLE001 - reported in the table
            res["error"] = f"architectures.py failed: {e}"
            return res
    try:
        res["macs"] = count_macs(m.path)
    except Exception as e:  # noqa: BLE001
        res["notes"].append(f"MACs not counted: {e}")

    try:
        agreement_path, extra_outputs = agreement_model(m.path, tmp)
    except Exception as e:  # noqa: BLE001
        agreement_path, extra_outputs = m.path, []
        res["notes"].append(f"no logits check: {e}")

    sessions = {}
    for t in args.threads:
        try:
            t0 = time.perf_counter()
            sessions[t] = (ort_session(m.path, t), (time.perf_counter() - t0) * 1e3)
        except Exception as e:  # noqa: BLE001
            sessions[t] = (None, f"ORT: {str(e).strip().splitlines()[0][:300]}")

    # probe: one run of each runtime at the first thread count sets the iteration counts
    t0 = args.threads[0]
    per_run = []
    if args.iters is None or args.warmup is None:
        j, err = cnnc_bench(args.cnnc, m.path, t0, 1, 1, args.timeout)
        if j:
            per_run.append(j["median_ms"] / 1e3)
        sess = sessions[t0][0]
        if sess is not None:
            feed = bench_feed(sess)
            per_run.append(min(ort_time(sess, feed, 1, 1)) / 1e3)
    iters, warmup = plan_counts(args, max(per_run) if per_run else 1.0)
    res["plan"] = {"iters": iters, "warmup": warmup, "rounds": args.rounds,
                   "probe_ms": [round(x * 1e3, 1) for x in per_run]}
    log(f"[{m.name}] {iters} iterations x {args.rounds} rounds, {warmup} warm-up"
        + (f" (probe {', '.join(f'{x * 1e3:.1f}' for x in per_run)} ms per run)" if per_run else ""))

    for t in args.threads:
        r = {"cnnc": [], "ort": [], "compile_ms": [], "cnnc_threads": set(), "errors": [],
             "fma_peak": []}
        res["threads"][t] = r
        sess, info = sessions[t]
        if sess is None:
            r["ort_error"] = info
        else:
            r["ort_init_ms"] = info

        # agreement
        if sess is not None:
            feed, desc = agreement_feed(sess, m.source)
            r["agree_input"] = desc
            try:
                ref = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))
            except Exception as e:  # noqa: BLE001
                ref = None
                r["ort_error"] = f"ORT run: {str(e).strip().splitlines()[0][:300]}"
                sess = None
            apath, plain_ref = m.path, ref
            if ref is not None and extra_outputs:
                try:
                    apath = agreement_path
                    asess = ort_session(apath, t)
                    ref = dict(zip([o.name for o in asess.get_outputs()], asess.run(None, feed)))
                    del asess
                    r["agree_logits"] = extra_outputs
                except Exception as e:  # noqa: BLE001 - fall back to the outputs alone
                    apath = m.path
                    res["notes"].append(f"no logits check: {str(e).strip().splitlines()[0][:200]}")
            if ref is not None:
                ours, err = cnnc_run(args.cnnc, apath, t, feed, tmp, args.timeout)
                if err and apath != m.path:
                    # the copy with the logits as an output failed: fall back to the model itself
                    ours2, err2 = cnnc_run(args.cnnc, m.path, t, feed, tmp, args.timeout)
                    if not err2:
                        res["notes"].append(f"no logits check ({t} thread{'s' if t > 1 else ''}): {err}")
                        ours, err, ref = ours2, None, plain_ref
                        r.pop("agree_logits", None)
                if err:
                    r["agree_error"] = err
                else:
                    r["agree"], r["agree_error"] = max_rel_err(ours, ref)
        else:
            r["agree_error"] = "no ORT reference"

        # rounds, alternating which runtime goes first
        feed = bench_feed(sess) if sess is not None else None
        cnnc_failed = False
        for k in range(args.rounds):
            order = ("cnnc", "ort") if k % 2 == 0 else ("ort", "cnnc")
            for who in order:
                if who == "cnnc" and not cnnc_failed:
                    j, err = cnnc_bench(args.cnnc, m.path, t, iters, warmup, args.timeout,
                                        fma_peak=t == 1)
                    if err:
                        r["cnnc_error"] = err
                        cnnc_failed = True  # a failure is deterministic: do not retry it
                    else:
                        r["cnnc"].append((j["median_ms"], j["min_ms"], j["max_ms"]))
                        r["compile_ms"].append(j["compile_ms"])
                        r["cnnc_threads"].add(j.get("threads", t))
                        if j.get("fma_peak_gflops"):
                            r["fma_peak"].append(j["fma_peak_gflops"])
                elif who == "ort" and sess is not None:
                    try:
                        r["ort"].append(ort_time(sess, feed, iters, warmup))
                    except Exception as e:  # noqa: BLE001
                        r["ort_error"] = f"ORT run: {str(e).strip().splitlines()[0][:300]}"
                        sess = None
        # The layers' own times, for the ceiling's kernel bound: a call of its own, as
        # profiling compiles in timers that the timed rounds above must not carry.
        if t == 1 and not cnnc_failed:
            j, err = cnnc_bench(args.cnnc, m.path, t, iters, warmup, args.timeout, per_layer=True)
            if err:
                res["notes"].append(f"no per-layer times: {err}")
            else:
                r["layers"] = [(x["macs"], x["median_ms"]) for x in j.get("layers", [])]
        r["cnnc_threads"] = sorted(r["cnnc_threads"])
        summarize(r)
        log(f"[{m.name}] threads {t}: cnnc {fmt_ms(r.get('cnnc_median'))} ms"
            f" (compile {fmt_ms(r.get('compile_median'), 0)} ms), ORT {fmt_ms(r.get('ort_median'))} ms,"
            f" ratio {fmt_ratio(r.get('ratio'))}, rel err {fmt_err(r)}")
    del sessions
    gc.collect()
    return res


def summarize(r):
    if r["cnnc"]:
        r["cnnc_median"] = statistics.median(x[0] for x in r["cnnc"])
        r["cnnc_min"] = min(x[1] for x in r["cnnc"])
        r["compile_median"] = statistics.median(r["compile_ms"])
    if r["ort"]:
        allt = [x for block in r["ort"] for x in block]
        r["ort_median"] = statistics.median(allt)
        r["ort_min"] = min(allt)
        r["ort_round_medians"] = [statistics.median(b) for b in r["ort"]]
    if r.get("cnnc_median") and r.get("ort_median"):
        r["ratio"] = r["cnnc_median"] / r["ort_median"]


# ----------------------------------------------------------------------------------------------
# report


def fmt_ms(v, digits=None):
    if v is None:
        return "—"
    if digits is None:
        digits = 2 if v < 10 else 1 if v < 1000 else 0
    return f"{v:,.{digits}f}"


def fmt_ratio(v):
    return "—" if v is None else f"{v:.2f}"


def fmt_macs(v):
    if v is None:
        return "?"
    return f"{v / 1e9:.2f} G" if v >= 1e9 else f"{v / 1e6:.0f} M"


def fmt_err(r):
    if r.get("agree_error"):
        return "error (see Errors)"
    v = r.get("agree")
    return "—" if v is None else f"{v:.1e}"


def cell(s):
    return str(s).replace("|", "\\|").replace("\n", " ")


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else None


# AMD's Zen generations by family and model ranges, as Linux's arch/x86/kernel/cpu/amd.c
# tells them apart.
ZEN = [
    ("Zen 3", 0x19, [(0x00, 0x0F), (0x20, 0x5F)]),
    ("Zen 4", 0x19, [(0x10, 0x1F), (0x60, 0xAF)]),
    ("Zen 5", 0x1A, [(0x00, 0x2F), (0x40, 0x4F), (0x60, 0x7F)]),
    ("Zen 6", 0x1A, [(0x50, 0x5F), (0x90, 0xAF), (0xC0, 0xCF)]),
]


def amd_core(family, model):
    """The Zen generation of an AMD family/model pair, where it is one we know: it decides
    what AVX-512 is worth (Zen 4 runs it on 256-bit units, Zen 5 on 512-bit ones), and
    virtual machines often name the CPU only "AMD EPYC"."""
    for name, fam, ranges in ZEN:
        if family == fam and any(lo <= model <= hi for lo, hi in ranges):
            return name
    return None


def cpu_info():
    name, flags, vendor, family, model = None, set(), None, None, None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                k, v = k.strip(), v.strip()
                if k == "model name" and name is None:
                    name = v
                elif k == "flags" and not flags:
                    flags = set(v.split())
                elif k == "vendor_id" and vendor is None:
                    vendor = v
                elif k == "cpu family" and family is None and v.isdigit():
                    family = int(v)
                elif k == "model" and model is None and v.isdigit():
                    model = int(v)
    except OSError:
        pass
    name = name or platform.processor() or "unknown CPU"
    if family is not None and model is not None:
        core = amd_core(family, model) if vendor == "AuthenticAMD" else None
        name += f" (family {family:X}h, model {model:X}h" + (f": {core}" if core else "") + ")"
    isa = [x for x in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "amx_tile") if x in flags]
    return name, isa


def git(*a):
    try:
        return subprocess.run(["git", "-C", REPO, *a], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def is_generated(args, x):
    return any(m.generated for m in args.selected if m.name == x["name"])


def write_report(path, results, args, header):
    lines = [l.replace("@LOAD_END@", loadavg()) for l in header]
    ok = [x for x in results if not x.get("error")]
    for t in args.threads:
        lines += [f"## {t} thread{'s' if t > 1 else ''}", "",
                  "| model | MACs | runs | cnnc compile ms | cnnc median ms | cnnc min ms "
                  "| ORT median ms | ORT min ms | cnnc/ORT | max rel err |",
                  "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        ratios, min_ratios, generated = [], [], []
        for x in results:
            extra = is_generated(args, x)
            if x.get("error"):
                lines.append(f"| {x['name']} | {fmt_macs(x['macs'])} | | {cell(x['error'])} | | | | | | |")
                continue
            r = x["threads"].get(t, {})
            p = x["plan"] or {}
            runs = f"{p.get('rounds', 0)}×{p.get('iters', 0)}" if p else ""
            if r.get("cnnc_error"):
                c = [cell(r["cnnc_error"]), "", ""] if not r.get("cnnc") else \
                    [fmt_ms(r.get("compile_median"), 0), fmt_ms(r.get("cnnc_median")), fmt_ms(r.get("cnnc_min"))]
            else:
                c = [fmt_ms(r.get("compile_median"), 0), fmt_ms(r.get("cnnc_median")), fmt_ms(r.get("cnnc_min"))]
            if r.get("ort_error") and not r.get("ort"):
                o = [cell(r["ort_error"]), ""]
            else:
                o = [fmt_ms(r.get("ort_median")), fmt_ms(r.get("ort_min"))]
            ratio = r.get("ratio")
            if ratio and extra:
                generated.append(ratio)
            elif ratio:
                ratios.append(ratio)
            if r.get("cnnc_min") and r.get("ort_min") and not extra:
                min_ratios.append(r["cnnc_min"] / r["ort_min"])
            threads_note = ""
            if r.get("cnnc_threads") and r["cnnc_threads"] != [t]:
                threads_note = f" (cnnc used {','.join(map(str, r['cnnc_threads']))} threads)"
            mark = " †" if extra else ""
            lines.append(f"| {x['name']}{mark}{threads_note} | {fmt_macs(x['macs'])} | {runs} | "
                         + " | ".join(c + o) + f" | {fmt_ratio(ratio)} | {fmt_err(r)} |")
        g = geomean(ratios)
        lines += ["", f"Geometric mean of cnnc/ORT over the {len(ratios)} model{'s' if len(ratios) != 1 else ''}"
                  f" where both ran: **{fmt_ratio(g)}**"
                  + ("" if g is None else f" ({'cnnc faster' if g < 1 else 'ORT faster'})") + ".", ""]
        if min_ratios:
            # On a shared machine the medians carry the load of the moment; the
            # fastest runs are closest to what each runtime can do.
            lines[-1:] = [f"Of the fastest runs (cnnc min / ORT min), over {len(min_ratios)} models: "
                          f"**{fmt_ratio(geomean(min_ratios))}**.", ""]
        if generated:
            lines[-1:] = [f"† Generated by `benches/architectures.py` (architectures the shared set "
                          f"lacks), outside the means above; their own geometric mean over "
                          f"{len(generated)}: **{fmt_ratio(geomean(generated))}**.", ""]

    if len(args.threads) > 1:
        base = args.threads[0]
        others = args.threads[1:]
        lines += ["## Thread scaling", "",
                  f"Speedup over {base} thread{'s' if base > 1 else ''} (higher is better): of the "
                  "medians, and of the fastest runs (min over min), which a busy shared machine "
                  "disturbs least.", "",
                  "| model | " + " | ".join(f"cnnc {base}→{t} | ORT {base}→{t} | cnnc {base}→{t} fastest "
                                           f"| ORT {base}→{t} fastest" for t in others) + " |",
                  "|---|" + "--:|--:|--:|--:|" * len(others)]
        stats = ("median", "min")
        gm = {(rt, t, st): [] for t in others for rt in ("cnnc", "ort") for st in stats}
        for x in ok:
            extra = is_generated(args, x)
            row = [x["name"] + (" †" if extra else "")]
            for t in others:
                for st in stats:
                    for rt in ("cnnc", "ort"):
                        a = x["threads"].get(base, {}).get(f"{rt}_{st}")
                        b = x["threads"].get(t, {}).get(f"{rt}_{st}")
                        if a and b and not extra:
                            gm[(rt, t, st)].append(a / b)
                        row.append(f"{a / b:.2f}" if a and b else "—")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("| geometric mean (without †) | " + " | ".join(
            fmt_ratio(geomean(gm[(rt, t, st)])) for t in others for st in stats
            for rt in ("cnnc", "ort")) + " |")
        lines.append("")

    lines += ceiling_lines(ok, lambda x: is_generated(args, x))

    notes = []
    for x in results:
        if x.get("error"):
            notes.append(f"- {x['name']}: {x['error']}")
        for n in x.get("notes", []):
            notes.append(f"- {x['name']}: {n}")
        for t, r in x["threads"].items():
            for k in ("cnnc_error", "ort_error", "agree_error"):
                if r.get(k):
                    notes.append(f"- {x['name']}, {t} thread{'s' if t > 1 else ''}: {r[k]}")
    if notes:
        lines += ["## Errors and notes", ""] + notes + [""]

    lines += ["## Models", "",
              "| model | file | agreement input and tensors | timing per round |", "|---|---|---|---|"]
    for x in results:
        src = x["path"]
        for base, label in ((args.shared, "../shared"), (args.cache, "$CNNC_BENCH_CACHE")):
            if src.startswith(base.rstrip("/") + "/"):
                src = label + src[len(base.rstrip("/")):]
        m = next(m for m in args.selected if m.name == x["name"])
        if m.randomize:
            src += f" (randomize_weights.py --seed {RANDOMIZE_SEED} of ../shared/onnx-conformance/models/{m.name})"
        if m.generated:
            src += " (benches/architectures.py)"
        agree_in = next((r.get("agree_input") for r in x["threads"].values() if r.get("agree_input")), "—")
        logits = next((r.get("agree_logits") for r in x["threads"].values() if r.get("agree_logits")), None)
        if logits:
            agree_in += "; outputs and softmax input " + ", ".join(f"`{cell(n)}`" for n in logits)
        p = x.get("plan") or {}
        timing = f"{p['warmup']} warm-up + {p['iters']} timed runs" if p else "—"
        lines.append(f"| {x['name']} | {cell(src)} | {agree_in} | {timing} |")
    lines.append("")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines))
    os.replace(tmp, path)


def kernel_bound_ms(layers, peak):
    """cnnc's run with every layer that multiply-adds (as cnnc computes it: Winograd
    products with their own, fewer, multiply-adds) at `peak` GFLOP/s and every other
    layer at its measured time: what faster kernels alone could reach."""
    return sum(min(ms, 2 * macs / peak / 1e6) if macs else ms for macs, ms in layers)


def ceiling_lines(ok, generated):
    """The 1-thread results against cnnc's ceiling, the 128-bit FMA peak: how fast each
    runtime did the model's multiply-adds, the cnnc/ORT ratio that running every one
    of them at that peak would give (Winograd needs fewer, so it can go below), and the
    one cnnc's own layers would give with every kernel at the peak (`kernel_bound_ms`).
    The means leave out the `generated` models."""
    peaks = [p for x in ok for p in x["threads"].get(1, {}).get("fma_peak", [])]
    if not peaks:
        return []
    peak = max(peaks)
    lines = ["## Against the 128-bit ceiling (1 thread)", "",
             "cnnc's kernels use at most 128-bit vectors (what Cranelift emits on x86-64); their "
             f"ceiling, this core's 128-bit FMA peak, measured by `cnnc bench --fma-peak` after "
             f"each 1-thread cnnc call (the best of {len(peaks)}), is **{peak:.1f} GFLOP/s**. "
             "**GFLOP/s** is 2 × MACs over the median time (a Winograd convolution does fewer "
             "multiplications than it is credited with, so it can exceed the peak). "
             "**cnnc/ORT at the peak** is the ratio cnnc would reach doing every multiply-add "
             "of the model at the 128-bit peak and nothing else: above a target ratio, only "
             "fewer multiplications (Winograd) or wider vectors can reach it. **every kernel "
             "at the peak** is the ratio of cnnc's own layers (`cnnc bench --per-layer`, a call "
             "of its own after the rounds) with each one that multiply-adds at the peak (as "
             "cnnc runs it: Winograd's products with their own multiply-adds) and the others "
             "(transforms, reorders, pools, elementwise ops) at their measured times: what "
             "faster kernels alone could reach. No kernel runs at the peak: the best reach "
             "80-90% of it (`cargo bench --bench kernels`).", "",
             "| model | cnnc GFLOP/s | % of peak | ORT GFLOP/s | cnnc/ORT at the peak "
             "| every kernel at the peak |",
             "|---|--:|--:|--:|--:|--:|"]
    floors, bounds = [], []
    for x in ok:
        r = x["threads"].get(1, {})
        if not (x.get("macs") and r.get("cnnc_median") and r.get("ort_median")):
            continue
        gflop = 2 * x["macs"] / 1e9
        ours, ort = gflop / (r["cnnc_median"] / 1e3), gflop / (r["ort_median"] / 1e3)
        floor = ort / peak  # (2 MACs / peak) / ORT time
        bound = kernel_bound_ms(r["layers"], peak) / r["ort_median"] if r.get("layers") else None
        mark = " †" if generated(x) else ""
        if not mark:
            floors.append(floor)
            if bound is not None:
                bounds.append(bound)
        lines.append(f"| {x['name']}{mark} | {ours:.1f} | {100 * ours / peak:.0f}% | {ort:.1f} "
                     f"| {floor:.2f} | {fmt_ratio(bound)} |")
    lines.append("")
    if floors:
        lines += [f"Geometric mean of cnnc/ORT at the peak (without †): "
                  f"**{fmt_ratio(geomean(floors))}**"
                  + (f"; with every kernel at the peak: **{fmt_ratio(geomean(bounds))}**"
                     if len(bounds) == len(floors) else "") + ".", ""]
    return lines


def header_lines(args):
    import numpy
    import onnx
    import onnxruntime
    cpu, isa = cpu_info()
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    if dirty:
        commit += " (with uncommitted changes)"
    try:
        version = subprocess.run([args.cnnc, "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        version = "?"
    command = os.environ.get("CNNC_BENCH_COMMAND") or " ".join(["python3", *sys.argv])
    now = datetime.datetime.now(datetime.timezone.utc)
    return [
        "# cnnc vs ONNX Runtime", "",
        f"Written by `benches/compare.sh` ([benches/README.md](benches/README.md)); "
        "times are milliseconds per inference of batch 1.", "",
        "| | |", "|---|---|",
        f"| date | {now:%Y-%m-%d %H:%M} UTC |",
        f"| machine | {cell(cpu)}, {os.cpu_count()} logical cores"
        + (f" ({' '.join(isa)})" if isa else "") + f", {platform.system()} {platform.release()} |",
        f"| load average (1, 5, 15 min) | {loadavg()} at the start, @LOAD_END@ at the end |",
        f"| cnnc | commit {commit}, {cell(version)}, binary `{args.cnnc}` |",
        f"| onnxruntime | {onnxruntime.__version__} (CPUExecutionProvider; onnx {onnx.__version__}, "
        f"numpy {numpy.__version__}, Python {platform.python_version()}) |",
        f"| command | `{cell(command)}` |", "",
        "**Method.** For each model and thread count T: onnxruntime runs an `InferenceSession` with "
        "`intra_op_num_threads=T`, `inter_op_num_threads=1`, sequential execution and "
        "`ORT_ENABLE_ALL` graph optimizations, timed with `time.perf_counter()` around each `run`; "
        "cnnc runs `cnnc bench MODEL --threads T --iters K --warmup W --json` (compiles in memory, then "
        f"times K runs). {args.rounds} rounds alternate one cnnc call with one onnxruntime block of "
        "the same W warm-up and K timed runs (the runtime going first flips every round), so load on "
        "the machine hits both. K is scaled per model from a one-run probe (see *Models*); **runs** "
        "is rounds × K for each runtime. "
        "**cnnc median** is the median of the per-round medians that `cnnc bench` reports, "
        "**cnnc min** the fastest single run; **ORT median/min** are over all timed runs of all "
        "rounds. **cnnc compile** is the median per-round compile time (ONNX import, passes and "
        "Cranelift code generation, in memory). **cnnc/ORT** is the ratio of the medians (below 1: "
        "cnnc faster); under each geometric mean of it, the same of the fastest runs (cnnc min / "
        "ORT min), which a busy shared machine disturbs least. **max rel err** is max|cnnc − ORT| / max|ORT| over the output tensor "
        "(the worst output), for the same input through `cnnc run --threads T` and the ORT session; "
        "when an output is a softmax, the logits going into it are compared too (a saturated "
        "softmax would agree trivially). "
        "MACs count Conv, ConvTranspose, Gemm and MatMul multiply-accumulates from ONNX shape "
        "inference.", "",
    ]


# ----------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(
        description="Benchmark cnnc against onnxruntime and write BENCHMARKS.md.",
        epilog="Normally run through benches/compare.sh, which creates the venv, builds cnnc and "
               "passes --cnnc, --cache and --shared.")
    ap.add_argument("--cnnc", required=True, help="the cnnc binary")
    ap.add_argument("--models", default="all",
                    help="comma-separated model names (a unique part of a name is enough); default all")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating cnnc/ORT rounds per model and thread count (default 3)")
    ap.add_argument("--iters", type=int, default=None,
                    help="timed runs per round for every model (default: scaled per model)")
    ap.add_argument("--warmup", type=int, default=None,
                    help="untimed runs per round (default: 1-3, scaled per model)")
    ap.add_argument("--block-seconds", type=float, default=1.5,
                    help="target timed seconds per round and runtime when scaling iterations (default 1.5)")
    ap.add_argument("--min-iters", type=int, default=3, help="least timed runs per round (default 3)")
    ap.add_argument("--max-iters", type=int, default=51, help="most timed runs per round (default 51)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds before a cnnc call is abandoned")
    ap.add_argument("--output", default=os.path.join(REPO, "BENCHMARKS.md"),
                    help="the Markdown report (default: BENCHMARKS.md at the repo root)")
    ap.add_argument("--json", default=None, help="also write the raw measurements here")
    ap.add_argument("--shared", default=os.path.join(REPO, "..", "shared"),
                    help="the shared data folder (default: ../shared beside the repo)")
    ap.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache", "cnnc-bench"),
                    help="cache folder for randomized models (default ~/.cache/cnnc-bench)")
    ap.add_argument("--list", action="store_true", help="list the models and exit")
    ap.add_argument("--prepare", action="store_true",
                    help="only write the randomized copies and generated models into the cache")
    args = ap.parse_args()

    args.shared = os.path.abspath(args.shared)
    args.cache = os.path.abspath(args.cache)
    args.cnnc = os.path.abspath(args.cnnc)
    args.threads = [int(t) for t in args.threads.split(",") if t.strip()]
    if not args.threads or min(args.threads) < 1 or args.rounds < 1:
        sys.exit("compare.py: --threads needs positive counts and --rounds at least 1")
    if os.path.realpath(args.cache).startswith(os.path.realpath(REPO) + os.sep):
        sys.exit(f"compare.py: the cache {args.cache} is inside the repository; put it elsewhere")
    if not os.path.isdir(args.shared):
        sys.exit(f"compare.py: no shared data folder at {args.shared} (use --shared or CNNC_BENCH_SHARED)")
    models = discover(args.shared, args.cache)
    if args.list:
        for m in models:
            kind = "  (randomized copy)" if m.randomize else "  (generated)" if m.generated else ""
            print(f"{m.name:24} {m.path}{kind}")
        return
    args.selected = select(models, args.models)
    if args.prepare:
        for m in args.selected:
            if m.randomize:
                ensure_randomized(m, args.shared)
            if m.generated:
                ensure_generated(m)
        return
    if not os.access(args.cnnc, os.X_OK):
        sys.exit(f"compare.py: {args.cnnc} is not an executable")

    header = header_lines(args)
    out = os.path.abspath(args.output)
    results = []
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="cnnc-bench-") as tmp:
        for m in args.selected:
            t = time.time()
            results.append(measure_model(m, args, tmp))
            log(f"[{m.name}] done in {time.time() - t:.0f} s")
            write_report(out, results, args, header)  # a partial report survives an interruption
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    log(f"wrote {out} ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
