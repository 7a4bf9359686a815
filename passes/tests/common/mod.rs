//! Shared harness of the pass tests: run one pass by name, print the graph before and
//! after for a snapshot, prove with the reference interpreter that the rewrite kept the
//! results, and cut small graphs (one block) out of real models.

// Each test file uses part of the harness.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::path::PathBuf;

use cnnc_ir::op::Conv;
use cnnc_ir::{DType, Graph, Op, Scalar, Tensor, TensorType, Value, interp, print, verify};
use cnnc_passes::{OptLevel, Pipeline, TargetInfo, all_passes};

/// A small deterministic generator (xorshift), so every run sees the same numbers.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // xorshift never leaves 0.
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// `n` values uniform in [lo, hi).
    pub fn floats(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n)
            .map(|_| lo + (hi - lo) * (self.unit() + 1.0) / 2.0)
            .collect()
    }

    pub fn tensor(&mut self, shape: &[usize]) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_vec(shape.to_vec(), self.floats(n, -1.0, 1.0)).unwrap()
    }
}

/// A constant from values.
pub fn tensor(shape: &[usize], values: Vec<f32>) -> Tensor {
    Tensor::from_vec(shape.to_vec(), values).unwrap()
}

/// A constant of random values in [-1, 1), seeded by its name so graphs are stable.
pub fn random_const(g: &mut Graph, name: &str, shape: &[usize]) -> Value {
    random_const_in(g, name, shape, -1.0, 1.0)
}

/// A constant of random values in [lo, hi) (BatchNorm variances must be positive).
pub fn random_const_in(g: &mut Graph, name: &str, shape: &[usize], lo: f32, hi: f32) -> Value {
    let seed = name
        .bytes()
        .fold(17u64, |h, b| h.wrapping_mul(31) ^ b as u64);
    let n = shape.iter().product();
    g.add_const(name, tensor(shape, Rng::new(seed).floats(n, lo, hi)))
}

pub fn input(g: &mut Graph, name: &str, shape: &[usize]) -> Value {
    g.add_input(name, TensorType::f32(shape.to_vec())).unwrap()
}

/// A square 2-D convolution's attributes (tests edit the fields they need).
pub fn conv2d(kernel: usize, stride: usize, pad: usize, groups: usize) -> Conv {
    Conv {
        kernel: vec![kernel; 2],
        strides: vec![stride; 2],
        dilations: vec![1; 2],
        pads: vec![(pad, pad); 2],
        groups,
        epilogue: Default::default(),
    }
}

/// `op(x)` for a `Conv` or `DepthwiseConv` op, with random constant weights
/// `[m, c / groups, kernel...]` and, with `bias`, a random bias `[m]`.
pub fn add_conv(g: &mut Graph, name: &str, x: Value, m: usize, op: Op, bias: bool) -> Value {
    let (Op::Conv(c) | Op::DepthwiseConv(c)) = &op else {
        panic!("not a convolution: {op:?}");
    };
    let mut shape = vec![m, g.value_type(x).shape[1] / c.groups];
    shape.extend(&c.kernel);
    let w = random_const(g, &format!("{name}.w"), &shape);
    let mut ins = vec![x, w];
    if bias {
        ins.push(random_const(g, &format!("{name}.b"), &[m]));
    }
    g.add(name, op, &ins).unwrap()
}

/// An inference BatchNormalization of `x` over axis 1 with random statistics.
pub fn add_bn(g: &mut Graph, name: &str, x: Value) -> Value {
    let c = g.value_type(x).shape[1];
    let gamma = random_const(g, &format!("{name}.gamma"), &[c]);
    let beta = random_const(g, &format!("{name}.beta"), &[c]);
    let mean = random_const(g, &format!("{name}.mean"), &[c]);
    let var = random_const_in(g, &format!("{name}.var"), &[c], 0.5, 1.5);
    g.add(
        name,
        Op::BatchNorm { epsilon: 1e-5 },
        &[x, gamma, beta, mean, var],
    )
    .unwrap()
}

/// What one pass did to a graph.
pub struct Rewrite {
    pub pass: String,
    pub changes: usize,
    pub before: Graph,
    pub after: Graph,
}

impl Rewrite {
    /// The snapshot text: the change count, then both graphs.
    pub fn text(&self) -> String {
        format!(
            "{}: {} change(s)\nbefore:\n{}\nafter:\n{}",
            self.pass,
            self.changes,
            print(&self.before),
            print(&self.after)
        )
    }

    /// For negative cases: the pass must leave the graph exactly as it was.
    pub fn assert_unchanged(&self) {
        assert_eq!(self.changes, 0, "{} changed:\n{}", self.pass, self.text());
        assert_eq!(
            print(&self.before),
            print(&self.after),
            "{} reported no change but edited the graph",
            self.pass
        );
    }

    /// How many nodes of the result have this op name (`conv`, `scale_shift`, ...).
    pub fn count(&self, op: &str) -> usize {
        let g = &self.after;
        g.node_ids()
            .filter(|&id| g.node(id).op.name() == op)
            .count()
    }
}

/// Runs the pass `name` on `graph` and verifies the result.
pub fn apply(name: &str, graph: &mut Graph) -> usize {
    let pass = all_passes()
        .into_iter()
        .find(|p| p.name() == name)
        .unwrap_or_else(|| panic!("no pass named {name}"));
    let changes = pass
        .run(graph, &TargetInfo::default())
        .unwrap_or_else(|e| panic!("{name} failed: {e}\n{}", print(graph)));
    verify(graph).unwrap_or_else(|e| panic!("{name} left an invalid graph: {e}\n{}", print(graph)));
    changes
}

/// Runs every pass that comes before `name` in the pipeline, so that a graph cut from a
/// model reaches the pass in the form the pipeline gives it (constants folded, batch
/// norms folded, ...).
pub fn prepare(name: &str, graph: &mut Graph) {
    let passes = all_passes();
    let at = passes
        .iter()
        .position(|p| p.name() == name)
        .unwrap_or_else(|| panic!("no pass named {name}"));
    for p in &passes[..at] {
        apply(p.name(), graph);
    }
}

/// Runs the pass `name` on `graph`, checks that the interpreter gives the same outputs
/// before and after, and returns both graphs for a snapshot.
pub fn rewrite(name: &str, graph: Graph) -> Rewrite {
    let before = graph.clone();
    let mut after = graph;
    let changes = apply(name, &mut after);
    same_outputs(&before, &after, 1);
    Rewrite {
        pass: name.to_string(),
        changes,
        before,
        after,
    }
}

/// [`rewrite_prepared`] without layout assignment, for the passes that rewrite what it
/// leaves plain.
pub fn rewrite_prepared_plain(name: &str, mut graph: Graph) -> Rewrite {
    let passes = all_passes();
    let at = passes
        .iter()
        .position(|p| p.name() == name)
        .unwrap_or_else(|| panic!("no pass named {name}"));
    for p in passes[..at].iter().filter(|p| p.name() != "assign_layout") {
        apply(p.name(), &mut graph);
    }
    rewrite(name, graph)
}

/// [`rewrite`] after the passes before `name` have prepared the graph.
pub fn rewrite_prepared(name: &str, mut graph: Graph) -> Rewrite {
    prepare(name, &mut graph);
    rewrite(name, graph)
}

/// The whole -O2 pipeline: the results are unchanged, and the text lists what each pass
/// did, then both graphs.
pub fn pipeline(graph: Graph) -> String {
    let mut after = graph.clone();
    let log = Pipeline::new(OptLevel::O2)
        .verify_each(true)
        .run(&mut after, &TargetInfo::default(), None)
        .unwrap_or_else(|e| panic!("pipeline failed: {e}"));
    same_outputs(&graph, &after, 1);
    let mut text = String::new();
    for r in &log {
        writeln!(
            text,
            "{}: {} change(s), {} -> {} nodes",
            r.pass, r.changes, r.nodes_before, r.nodes_after
        )
        .unwrap();
    }
    format!(
        "{text}before:\n{}\nafter:\n{}",
        print(&graph),
        print(&after)
    )
}

const RTOL: f64 = 1e-4;
const ATOL: f64 = 1e-5;

/// Runs both graphs on the same random inputs (uniform in [-1, 1), shapes from the graph
/// inputs) and requires every output to agree: same shape and element type, and values
/// within `ATOL + RTOL * |before|` (folding a normalization into weights rounds
/// differently, nothing else should).
pub fn same_outputs(before: &Graph, after: &Graph, seed: u64) {
    let mut rng = Rng::new(seed);
    let inputs: Vec<Tensor> = before
        .inputs()
        .iter()
        .map(|&id| {
            let ty = &before.node(id).outputs[0].ty;
            assert_eq!(ty.dtype, DType::F32, "random inputs are f32 only");
            rng.tensor(&ty.shape)
        })
        .collect();
    let types = |g: &Graph| -> Vec<TensorType> {
        g.inputs()
            .iter()
            .map(|&id| g.node(id).outputs[0].ty.clone())
            .collect()
    };
    assert_eq!(
        types(before),
        types(after),
        "the pass changed the graph inputs"
    );
    let run = |g: &Graph, what: &str| {
        interp::run(g, &inputs)
            .unwrap_or_else(|e| panic!("interpreting the graph {what} failed: {e}\n{}", print(g)))
    };
    let want = run(before, "before");
    let got = run(after, "after");
    assert_eq!(
        want.len(),
        got.len(),
        "the pass changed the number of outputs"
    );
    for ((w, g), out) in want.iter().zip(&got).zip(before.outputs()) {
        let name = &out.name;
        assert_eq!(w.dtype(), g.dtype(), "output {name}: element type changed");
        assert_eq!(w.shape(), g.shape(), "output {name}: shape changed");
        let (wv, gv) = (w.to_f64s(), g.to_f64s());
        // NaN or infinity before the pass would make the comparison prove nothing.
        assert!(
            wv.iter().all(|v| v.is_finite()),
            "output {name} is not finite before the pass; choose other weights"
        );
        let mut worst: Option<(usize, f64)> = None;
        for (i, (&a, &b)) in wv.iter().zip(&gv).enumerate() {
            let excess = if b.is_finite() {
                (a - b).abs() - (ATOL + RTOL * a.abs())
            } else {
                f64::INFINITY
            };
            if excess > 0.0 && worst.is_none_or(|(_, e)| excess > e) {
                worst = Some((i, excess));
            }
        }
        if let Some((i, _)) = worst {
            panic!(
                "output {name} {:?} differs at flat index {i}: before {}, after {} \
                 (rtol {RTOL}, atol {ATOL})\nbefore:\n{}\nafter:\n{}",
                w.shape(),
                wv[i],
                gv[i],
                print(before),
                print(after)
            );
        }
    }
}

/// A folder of the shared test data (`shared/` lies beside the checkout).
pub fn shared(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared")
        .join(rel)
}

/// Imports `shared/<model>/model.onnx` for cutting.
pub fn cut(model: &str) -> Cut {
    let path = shared(model).join("model.onnx");
    let onnx = cnnc_frontend::OnnxModel::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let graph = cnnc_frontend::import(&onnx, &Default::default()).unwrap_or_else(|e| panic!("{e}"));
    Cut {
        graph,
        inputs: Vec::new(),
        strip: String::new(),
        randomize: None,
    }
}

/// A subgraph of an imported model: the nodes that compute some tensors from others.
pub struct Cut {
    graph: Graph,
    inputs: Vec<(String, Vec<usize>)>,
    strip: String,
    randomize: Option<u64>,
}

impl Cut {
    /// Makes the tensor `name` a graph input of type f32 `shape`. The shape may have
    /// smaller spatial dims than in the model (types are inferred again), which keeps
    /// the interpreter fast; ops with fixed shapes (Reshape) then fail loudly.
    pub fn input(mut self, name: &str, shape: &[usize]) -> Self {
        self.inputs.push((name.to_string(), shape.to_vec()));
        self
    }

    /// Drops `prefix` from every tensor name, so snapshots stay readable.
    pub fn strip(mut self, prefix: &str) -> Self {
        self.strip = prefix.to_string();
        self
    }

    /// Replaces every splat float constant (the light zoo models' ConstantOfShape
    /// weights, which make all channels alike) by random values: weights scaled by
    /// 1/sqrt(fan-in), batch-norm variances in [0.5, 1.5). Dense constants stay.
    pub fn randomize(mut self, seed: u64) -> Self {
        self.randomize = Some(seed);
        self
    }

    /// The graph computing the tensors `outputs`: their producers back to the cut inputs,
    /// constants and the model's own inputs.
    pub fn outputs(self, outputs: &[&str]) -> Graph {
        let src = &self.graph;
        let mut by_name: HashMap<&str, Value> = HashMap::new();
        for id in src.node_ids() {
            for (port, o) in src.node(id).outputs.iter().enumerate() {
                by_name.insert(&o.name, Value::new(id, port));
            }
        }
        let find = |name: &str| -> Value {
            *by_name
                .get(name)
                .unwrap_or_else(|| panic!("no tensor {name} in the model"))
        };
        let strip = |name: &str| -> String {
            name.strip_prefix(self.strip.as_str())
                .unwrap_or(name)
                .to_string()
        };
        let cut_at: HashSet<Value> = self.inputs.iter().map(|(name, _)| find(name)).collect();

        // The nodes the outputs need, stopping at the cut inputs.
        let mut needed = HashSet::new();
        let mut stack: Vec<Value> = outputs.iter().map(|n| find(n)).collect();
        while let Some(v) = stack.pop() {
            if cut_at.contains(&v) || !needed.insert(v.node) {
                continue;
            }
            stack.extend(src.inputs_of(v.node));
        }
        // BatchNorm variances, which random values must keep positive.
        let variances: HashSet<Value> = needed
            .iter()
            .filter(|&&id| matches!(src.node(id).op, Op::BatchNorm { .. }))
            .map(|&id| src.inputs_of(id)[4])
            .collect();

        let mut g = Graph::new();
        let mut map: HashMap<Value, Value> = HashMap::new();
        for (name, shape) in &self.inputs {
            let v = g
                .add_input(strip(name), TensorType::f32(shape.clone()))
                .unwrap();
            map.insert(find(name), v);
        }
        let mut rng = self.randomize.map(Rng::new);
        for id in src.topo_order().unwrap() {
            if !needed.contains(&id) {
                continue;
            }
            let node = src.node(id);
            let out = Value::new(id, 0);
            assert!(
                (0..node.outputs.len()).all(|p| !cut_at.contains(&Value::new(id, p))),
                "{} makes a cut input and a tensor the outputs need",
                node.name
            );
            let name = strip(&node.outputs[0].name);
            let new = match &node.op {
                Op::Input => g.add_input(name, node.outputs[0].ty.clone()).unwrap(),
                Op::Const(t) => {
                    let t = match (&mut rng, t.splat_value()) {
                        (Some(rng), Some(Scalar::F32(_))) if !t.shape().is_empty() => {
                            random_weights(rng, t.shape(), variances.contains(&out))
                        }
                        _ => t.clone(),
                    };
                    g.add_const(name, t)
                }
                op => {
                    let ins: Vec<Value> = src.inputs_of(id).iter().map(|v| map[v]).collect();
                    let names = node.outputs.iter().map(|o| strip(&o.name)).collect();
                    let new = g
                        .add_node(strip(&node.name), op.clone(), &ins, names)
                        .unwrap_or_else(|e| panic!("cannot rebuild {}: {e}", node.name));
                    for port in 1..node.outputs.len() {
                        map.insert(Value::new(id, port), Value::new(new, port));
                    }
                    Value::new(new, 0)
                }
            };
            map.insert(out, new);
        }
        for name in outputs {
            g.add_output(strip(name), map[&find(name)]);
        }
        verify(&g).unwrap();
        g
    }
}

fn random_weights(rng: &mut Rng, shape: &[usize], variance: bool) -> Tensor {
    let n: usize = shape.iter().product();
    let values = if variance {
        rng.floats(n, 0.5, 1.5)
    } else {
        // Unit variance: per output for weights [out, fan-in...], per value for vectors
        // (biases, batch-norm scales, shifts and means).
        let fan_in = if shape.len() >= 2 { n / shape[0] } else { 1 };
        let s = (3.0 / fan_in as f32).sqrt();
        rng.floats(n, -s, s)
    };
    tensor(shape, values)
}
