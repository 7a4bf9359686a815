//! Criterion benchmarks of the kernel families on realistic layer shapes (ResNet,
//! MobileNet, the VGG/AlexNet classifier, the 7x7 stem), in GFLOP/s: the throughput is
//! given in flops, so criterion's "elem/s" are flop/s. A summary table at the end puts
//! each one beside the host's 128-bit FMA peak, measured first by code from our own
//! generator (`cnnc_codegen::peak`).
//!
//! Each layer is a one-node graph, random constant weights, through the normal passes
//! and the JIT. Only the layer's own kernel is timed, between the hooks of the profiled
//! entry point: not the reorders into and out of the blocked layout that a lone layer
//! needs and a network mostly does not.
//!
//! ```text
//! cargo bench --bench kernels                  # everything, about 2 minutes
//! cargo bench --bench kernels -- depthwise     # the layers whose id contains "depthwise"
//! ```

use std::time::{Duration, Instant};

use cnnc::ir::op::{Conv, Gemm, Unary};
use cnnc::ir::{Graph, Layout, Op, TensorType};
use cnnc::{CompiledModel, Compiler, Tensor};
use cnnc_codegen::peak::FmaPeak;
use cnnc_passes::TargetInfo;
use criterion::{Criterion, Throughput};

/// One benchmarked layer.
struct Layer {
    name: &'static str,
    graph: Graph,
    /// Thread counts to run it at.
    threads: &'static [usize],
    /// Without the Winograd pass: the direct kernel on a 3x3 layer Winograd would take.
    direct: bool,
}

/// Uniform values in [-1, 1) scaled by `1/sqrt(fan_in)` (so outputs stay near 1),
/// from a fixed xorshift: the same weights every run.
struct Rng(u64);

impl Rng {
    fn tensor(&mut self, shape: Vec<usize>, fan_in: usize) -> Tensor {
        let scale = 1.0 / (fan_in as f32).sqrt();
        let data = (0..shape.iter().product::<usize>())
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                ((self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * scale
            })
            .collect();
        Tensor::from_vec(shape, data).unwrap()
    }
}

/// A square convolution with `same`-style padding, bias and ReLU, on a `[1, cin, hw, hw]`
/// input. `blocked_input` reorders the input to the blocked layout first, as the
/// convolution before it in a network would have left it.
struct ConvLayer {
    cin: usize,
    cout: usize,
    hw: usize,
    kernel: usize,
    stride: usize,
    groups: usize,
    blocked_input: bool,
}

impl ConvLayer {
    fn graph(&self, rng: &mut Rng) -> Graph {
        let (k, s) = (self.kernel, self.stride);
        let mut g = Graph::new();
        let mut x = g
            .add_input("x", TensorType::f32(vec![1, self.cin, self.hw, self.hw]))
            .unwrap();
        if self.blocked_input {
            let block = TargetInfo::for_triple(None).lanes as u32;
            let to = Layout::Blocked { block };
            x = g.add("x_blocked", Op::Reorder { to }, &[x]).unwrap();
        }
        let fan_in = self.cin / self.groups * k * k;
        let w = g.add_const(
            "w",
            rng.tensor(vec![self.cout, self.cin / self.groups, k, k], fan_in),
        );
        let b = g.add_const("b", rng.tensor(vec![self.cout], 1));
        let conv = Conv {
            kernel: vec![k, k],
            strides: vec![s, s],
            dilations: vec![1, 1],
            pads: vec![(k / 2, k / 2); 2],
            groups: self.groups,
            epilogue: Default::default(),
        };
        let y = g.add("conv", Op::Conv(conv), &[x, w, b]).unwrap();
        let y = g.add("relu", Op::Unary(Unary::Relu), &[y]).unwrap();
        g.add_output("y", y);
        g
    }
}

/// A fully connected layer on one vector, weights `[n, k]` as ONNX classifiers store
/// them (Gemm with transB), no activation (the last one of VGG and AlexNet).
fn fc(k: usize, n: usize, rng: &mut Rng) -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::f32(vec![1, k])).unwrap();
    let w = g.add_const("w", rng.tensor(vec![n, k], k));
    let b = g.add_const("b", rng.tensor(vec![n], 1));
    let gemm = Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b: true,
        epilogue: Default::default(),
    };
    let y = g.add("fc", Op::Gemm(gemm), &[x, w, b]).unwrap();
    g.add_output("y", y);
    g
}

fn layers() -> Vec<Layer> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let conv = |cin, cout, hw, kernel, stride| ConvLayer {
        cin,
        cout,
        hw,
        kernel,
        stride,
        groups: 1,
        blocked_input: false,
    };
    let depthwise = |c, hw, blocked_input| ConvLayer {
        groups: c,
        blocked_input,
        ..conv(c, c, hw, 3, 1)
    };
    let blocked = |spec: ConvLayer| ConvLayer {
        blocked_input: true,
        ..spec
    };
    let grouped = |spec: ConvLayer, groups| ConvLayer { groups, ..spec };
    let mut layer = |name: &'static str, spec: ConvLayer, threads| Layer {
        name,
        graph: spec.graph(&mut rng),
        threads,
        direct: name.ends_with("_direct"),
    };
    let mut all = vec![
        layer("conv3x3_64_56", conv(64, 64, 56, 3, 1), &[1, 2]),
        layer("conv3x3_64_56_direct", conv(64, 64, 56, 3, 1), &[1]),
        layer("conv3x3_256_14", conv(256, 256, 14, 3, 1), &[1]),
        layer("conv3x3_256_14_direct", conv(256, 256, 14, 3, 1), &[1]),
        layer("conv3x3s2_128_56", conv(128, 128, 56, 3, 2), &[1]),
        layer("conv1x1_256to64_56", conv(256, 64, 56, 1, 1), &[1, 2]),
        layer("conv1x1_64to256_56", conv(64, 256, 56, 1, 1), &[1, 2]),
        // In MobileNet the input comes blocked from the 1x1 convolution before; the
        // `_plain` variants are what a lone depthwise layer gets.
        layer("depthwise3x3_32_112", depthwise(32, 112, true), &[1]),
        layer("depthwise3x3_32_112_plain", depthwise(32, 112, false), &[1]),
        layer("depthwise3x3_576_14", depthwise(576, 14, true), &[1]),
        layer("depthwise3x3_576_14_plain", depthwise(576, 14, false), &[1]),
        layer("stem7x7s2_3to64_224", conv(3, 64, 224, 7, 2), &[1, 2]),
        layer("stem7x7s2_3to64_224_direct", conv(3, 64, 224, 7, 2), &[1]),
        // AlexNet and ZFNet: large kernels and groups, weights beyond L1 per output vector.
        layer(
            "conv5x5s2_96to256_55",
            blocked(conv(96, 256, 55, 5, 2)),
            &[1],
        ),
        layer(
            "conv5x5_96to256_27_g2",
            blocked(grouped(conv(96, 256, 27, 5, 1), 2)),
            &[1],
        ),
        layer(
            "conv3x3_384_13_g2",
            blocked(grouped(conv(384, 384, 13, 3, 1), 2)),
            &[1],
        ),
        layer("conv3x3_512_12", blocked(conv(512, 512, 12, 3, 1)), &[1]),
    ];
    all.push(Layer {
        name: "fc_4096to1000",
        graph: fc(4096, 1000, &mut rng),
        threads: &[1],
        direct: false,
    });
    all
}

/// Floating-point operations of a graph: two per multiply-add.
fn flops(graph: &Graph) -> u64 {
    2 * graph
        .node_ids()
        .map(|id| cnnc::inspect::macs(graph, id))
        .sum::<u64>()
}

/// A layer compiled for a thread count, with which of its steps are the kernel.
struct Bench {
    compiled: CompiledModel,
    inputs: Vec<Tensor>,
    kernel_steps: Vec<bool>,
    /// The kernels that run, as `op[layout] tile`.
    kernels: String,
}

impl Bench {
    fn new(layer: &Layer, threads: usize) -> Bench {
        let compiler = Compiler::new().threads(threads).profile(true);
        let optimized = if layer.direct {
            let mut g = layer.graph.clone();
            let target = TargetInfo::for_triple(None);
            for pass in cnnc_passes::all_passes() {
                if !matches!(pass.name(), "winograd" | "space_to_depth") {
                    pass.run(&mut g, &target).unwrap();
                }
            }
            g
        } else {
            compiler.optimize_graph(layer.graph.clone()).unwrap().0
        };
        let graph = compiler.codegen_ready(optimized).unwrap();
        let compiled = compiler.compile_graph(&graph).unwrap();
        // Every step but the reorders: a Winograd convolution is its transforms too.
        let kernel_nodes: Vec<_> = graph
            .node_ids()
            .filter(|&id| {
                !matches!(
                    graph.node(id).op,
                    Op::Input | Op::Const(_) | Op::Reshape { .. } | Op::Reorder { .. }
                )
            })
            .collect();
        let kernel_names: Vec<&str> = kernel_nodes
            .iter()
            .map(|&id| graph.node(id).outputs[0].name.as_str())
            .collect();
        let kernel_steps = compiled
            .info()
            .steps
            .iter()
            .map(|s| kernel_names.contains(&s.name.as_str()))
            .collect();
        let kernels = kernel_nodes
            .iter()
            .map(|&id| {
                let node = graph.node(id);
                let layout = match node.outputs[0].ty.layout {
                    Layout::Plain => "plain".to_string(),
                    Layout::Blocked { block } => format!("c{block}"),
                };
                match node.tile {
                    Some(t) => format!("{}[{layout}] {t}", node.op.name()),
                    None => format!("{}[{layout}]", node.op.name()),
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let inputs = cnnc::profile::random_inputs(&compiled).unwrap();
        Bench {
            compiled,
            inputs,
            kernel_steps,
            kernels,
        }
    }

    /// Runs the layer once; the time of its kernel steps.
    fn run(&self) -> Duration {
        let mut kernel = Duration::ZERO;
        let mut last = Instant::now();
        self.compiled
            .run_profiled(&self.inputs, &mut |k| {
                let now = Instant::now();
                if self.kernel_steps[k] {
                    kernel += now - last;
                }
                last = now;
            })
            .unwrap();
        kernel
    }
}

/// A line of the summary.
struct Row {
    layer: &'static str,
    kernels: String,
    threads: usize,
    flops: u64,
    /// Kernel times of every run criterion made, sorted.
    times: Vec<Duration>,
}

impl Row {
    fn median(&self) -> Duration {
        self.times[self.times.len() / 2]
    }

    /// From the fastest run: on a shared machine the figure least disturbed by other
    /// processes, as the best-of-N FMA peak is.
    fn gflops(&self) -> f64 {
        self.flops as f64 / self.times[0].as_secs_f64() / 1e9
    }
}

/// The FMA peak of both cores at once, one loop per thread: about twice the one-core
/// peak unless something else runs on the machine, which would also spoil the 2-thread
/// rows.
fn two_core_peak() -> f64 {
    std::thread::scope(|s| {
        let loops: Vec<_> = (0..2)
            .map(|_| s.spawn(|| FmaPeak::new().unwrap().gflops()))
            .collect();
        loops.into_iter().map(|l| l.join().unwrap()).sum()
    })
}

fn summary(rows: &[Row], peak: f64, two_cores: f64) {
    println!();
    println!("128-bit FMA peak (measured, one core): {peak:.1} GFLOP/s");
    println!(
        "both cores at once (measured after the benchmarks): {two_cores:.1} GFLOP/s, {:.2}x one core",
        two_cores / peak
    );
    println!(
        "GFLOP/s from the fastest run; % peak of the one-core peak times the threads; \
         speedup over the 1-thread row (fastest runs)."
    );
    println!();
    println!(
        "| {:<26} | {:>3} | {:>9} | {:>9} | {:>8} | {:>6} | {:>7} | kernel",
        "layer", "thr", "median ms", "min ms", "GFLOP/s", "% peak", "speedup"
    );
    println!(
        "|{:-<28}|{:->4}:|{:->10}:|{:->10}:|{:->9}:|{:->7}:|{:->8}:|{:-<40}",
        "", "", "", "", "", "", "", ""
    );
    for r in rows {
        let speedup = rows
            .iter()
            .find(|o| o.layer == r.layer && o.threads == 1 && r.threads > 1)
            .map_or(String::new(), |one| {
                format!("{:.2}x", r.gflops() / one.gflops())
            });
        println!(
            "| {:<26} | {:>3} | {:>9.3} | {:>9.3} | {:>8.1} | {:>6.1} | {:>7} | {}",
            r.layer,
            r.threads,
            r.median().as_secs_f64() * 1e3,
            r.times[0].as_secs_f64() * 1e3,
            r.gflops(),
            100.0 * r.gflops() / (peak * r.threads as f64),
            speedup,
            r.kernels
        );
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(20)
        .configure_from_args();
    let peak = FmaPeak::new().expect("the host has FMA").gflops();
    let mut rows = Vec::new();
    for layer in layers() {
        let flops = flops(&layer.graph);
        let mut group = c.benchmark_group(layer.name);
        group.throughput(Throughput::Elements(flops));
        for &threads in layer.threads {
            // Compiled only when criterion runs this benchmark (not when filtered out).
            let mut bench = None;
            let mut times = Vec::new();
            group.bench_function(format!("t{threads}"), |b| {
                let bench = bench.get_or_insert_with(|| Bench::new(&layer, threads));
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| {
                            let t = bench.run();
                            times.push(t);
                            t
                        })
                        .sum()
                })
            });
            if let Some(bench) = bench {
                times.sort();
                rows.push(Row {
                    layer: layer.name,
                    kernels: bench.kernels,
                    threads,
                    flops,
                    times,
                });
            }
        }
        group.finish();
    }
    c.final_summary();
    if !rows.is_empty() {
        summary(&rows, peak, two_core_peak());
    }
}
