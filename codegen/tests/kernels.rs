//! Randomized property tests: every kernel generator against the reference interpreter
//! (`cnnc_ir::interp`), through `common::check`, which also runs each case on one and
//! on two threads and requires bit-identical results.
//!
//! Each family draws hundreds of cases, each from its own seed (derived from the family
//! name and the case number). A failure names the seed and the case; to rerun a single
//! case:
//!
//! ```text
//! KERNELS_SEED=<seed> cargo test -p cnnc-codegen --test kernels -- --exact <family>
//! ```
//!
//! The fixed cases at the end reproduce disagreements that the families once found
//! (NaN through log, nearest resize with exclude_outside, instance norm precision, erf
//! saturation, Gemm with beta 0, leaked JIT code, a 1x1 convolution with end padding).
//!
//! `KERNELS_SCALE=<k>` multiplies the number of cases of every family (a longer soak).
//!
//! Tolerances: the interpreter computes in f64 and rounds once, the kernels in f32.
//! Unless a family says otherwise, `RTOL`/`ATOL` cover the f32 rounding of sums of a
//! few hundred products of values in [-1, 1).

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use cnnc_ir::op::{
    Activation, Binary, Conv, ConvTranspose, CoordMode, DepthToSpaceMode, Epilogue, Gemm, Lrn,
    NearestMode, PadMode, Pool, PoolKind, ReduceKind, Resize, ResizeMode, SliceAxis, Tile, Unary,
};
use cnnc_ir::{DType, Graph, Layout, Op, Tensor, TensorType, Value};
use cnnc_passes::TargetInfo;
use cnnc_passes::winograd::rewrite_with;
use common::{Rng, check};

const RTOL: f64 = 1e-4;
const ATOL: f64 = 1e-5;

// ---------------------------------------------------------------------------------
// The runner.

struct Case {
    desc: String,
    graph: Graph,
    inputs: Vec<Tensor>,
    rtol: f64,
    atol: f64,
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of case `i` of `family` (never 0: xorshift would stay at 0).
fn seed_for(family: &str, i: usize) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in family.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    splitmix(h ^ splitmix(i as u64)) | 1
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else {
        "(non-string panic)".into()
    }
}

/// Runs `cases` cases of a family (or only `KERNELS_SEED`), and fails listing every
/// failing seed with its case.
fn run_family(family: &str, cases: usize, make: fn(&mut Rng) -> Case) {
    let scale: usize = std::env::var("KERNELS_SCALE")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1);
    let seeds: Vec<u64> = match std::env::var("KERNELS_SEED") {
        Ok(s) => vec![s.trim().parse().expect("KERNELS_SEED must be a u64")],
        Err(_) => (0..cases * scale).map(|i| seed_for(family, i)).collect(),
    };
    let mut failures = Vec::new();
    for &seed in &seeds {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let case = make(&mut Rng(seed));
            check(&case.graph, &case.inputs, case.rtol, case.atol)
                .map_err(|e| format!("{}: {e}", case.desc))
        }));
        let err = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(p) => format!("panicked: {}", panic_text(&*p)),
        };
        failures.push(format!("seed {seed}: {err}"));
    }
    if !failures.is_empty() {
        let shown: Vec<&str> = failures.iter().take(12).map(|s| s.as_str()).collect();
        panic!(
            "{family}: {} of {} cases failed:\n{}",
            failures.len(),
            seeds.len(),
            shown.join("\n")
        );
    }
}

/// Builds a case's graph; an invalid case (rejected by `infer`) panics naming it.
struct B {
    g: Graph,
    inputs: Vec<Tensor>,
    desc: String,
    names: usize,
}

impl B {
    fn new(desc: String) -> Self {
        B {
            g: Graph::new(),
            inputs: Vec::new(),
            desc,
            names: 0,
        }
    }

    fn name(&mut self, prefix: &str) -> String {
        self.names += 1;
        format!("{prefix}{}", self.names)
    }

    /// A graph input (always f32: the harness feeds f32 data) holding `t` at run time.
    fn input(&mut self, t: Tensor) -> Value {
        let name = self.name("x");
        let v = self
            .g
            .add_input(name, TensorType::f32(t.shape().to_vec()))
            .unwrap_or_else(|e| panic!("invalid case {}: {e}", self.desc));
        self.inputs.push(t);
        v
    }

    fn constant(&mut self, t: Tensor) -> Value {
        let name = self.name("c");
        self.g.add_const(name, t)
    }

    /// A weight or parameter: a constant or a graph input.
    fn param(&mut self, t: Tensor, constant: bool) -> Value {
        if constant {
            self.constant(t)
        } else {
            self.input(t)
        }
    }

    fn node(&mut self, op: Op, ins: &[Value]) -> Value {
        let name = self.name("n");
        self.g
            .add(name, op, ins)
            .unwrap_or_else(|e| panic!("invalid case {}: {e}", self.desc))
    }

    fn multi(&mut self, op: Op, ins: &[Value], outputs: usize) -> Vec<Value> {
        let name = self.name("n");
        let names = (0..outputs).map(|i| format!("{name}_{i}")).collect();
        let id = self
            .g
            .add_node(name, op, ins, names)
            .unwrap_or_else(|e| panic!("invalid case {}: {e}", self.desc));
        (0..outputs).map(|p| Value::new(id, p)).collect()
    }

    fn out(&mut self, v: Value) {
        let name = self.name("y");
        self.g.add_output(name, v);
    }

    fn done(self, rtol: f64, atol: f64) -> Case {
        Case {
            desc: self.desc,
            graph: self.g,
            inputs: self.inputs,
            rtol,
            atol,
        }
    }
}

// ---------------------------------------------------------------------------------
// Random helpers.

/// True with probability 1/n.
fn chance(rng: &mut Rng, n: usize) -> bool {
    rng.range(0, n - 1) == 0
}

fn uniform(rng: &mut Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * (rng.unit() + 1.0) * 0.5
}

fn filled(rng: &mut Rng, shape: &[usize], f: impl Fn(&mut Rng) -> f32) -> Tensor {
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| f(rng)).collect();
    Tensor::from_vec(shape.to_vec(), v).unwrap()
}

fn ranged(rng: &mut Rng, shape: &[usize], lo: f32, hi: f32) -> Tensor {
    filled(rng, shape, |r| uniform(r, lo, hi))
}

/// Values in {-1, -0.5, 0, 0.5, 1}: comparisons and ties get equal elements.
fn quantized(rng: &mut Rng, shape: &[usize]) -> Tensor {
    filled(rng, shape, |r| r.range(0, 4) as f32 * 0.5 - 1.0)
}

/// With probability 1/8, `t` with one to three elements replaced by NaN or ±inf (for
/// ops whose kernel and interpreter both define them: propagation, saturation).
fn specials(rng: &mut Rng, t: Tensor, desc: &mut String) -> Tensor {
    specials_of(rng, t, desc, &[f32::NAN, f32::INFINITY, f32::NEG_INFINITY])
}

/// [`specials`] drawing from `values`.
fn specials_of(rng: &mut Rng, t: Tensor, desc: &mut String, values: &[f32]) -> Tensor {
    let n = t.numel();
    if n == 0 || !chance(rng, 8) {
        return t;
    }
    let mut v = t.view::<f32>().unwrap().into_owned();
    for _ in 0..rng.range(1, 3) {
        let i = rng.range(0, n - 1);
        v[i] = rng.pick(values);
        desc.push_str(&format!(" [{i}]={}", v[i]));
    }
    Tensor::from_vec(t.shape().to_vec(), v).unwrap()
}

/// Magnitude in [lo, hi], random sign.
fn signed(rng: &mut Rng, shape: &[usize], lo: f32, hi: f32) -> Tensor {
    filled(rng, shape, |r| {
        let v = uniform(r, lo, hi);
        if r.bool() { v } else { -v }
    })
}

fn rand_shape(rng: &mut Rng, rank_lo: usize, rank_hi: usize, dim_hi: usize) -> Vec<usize> {
    let rank = rng.range(rank_lo, rank_hi);
    (0..rank).map(|_| rng.range(1, dim_hi)).collect()
}

/// A shape that broadcasts to `out`: a suffix of it, some dims replaced by 1.
fn bcast_operand(rng: &mut Rng, out: &[usize]) -> Vec<usize> {
    let keep = if chance(rng, 3) {
        out.len()
    } else {
        rng.range(0, out.len())
    };
    out[out.len() - keep..]
        .iter()
        .map(|&d| if chance(rng, 3) { 1 } else { d })
        .collect()
}

fn divisors(n: usize) -> Vec<usize> {
    (1..=n).filter(|&d| n.is_multiple_of(d)).collect()
}

fn shuffle<T>(rng: &mut Rng, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = rng.range(0, i);
        v.swap(i, j);
    }
}

/// A random shape with `n` elements (rank 1 to 4).
fn factor_shape(rng: &mut Rng, n: usize) -> Vec<usize> {
    let rank = rng.range(1, 4);
    let mut rest = n;
    let mut shape = Vec::new();
    for _ in 1..rank {
        let d = rng.pick(&divisors(rest));
        shape.push(d);
        rest /= d;
    }
    shape.push(rest);
    shuffle(rng, &mut shape);
    shape
}

/// With probability 1/4, `x > 0` (a bool tensor) instead of `x`: data movement of
/// one-byte elements.
fn maybe_bool(b: &mut B, rng: &mut Rng, x: Value) -> (Value, bool) {
    if chance(rng, 4) {
        let zero = b.constant(Tensor::from_vec(vec![], vec![0f32]).unwrap());
        (b.node(Op::Binary(Binary::Greater), &[x, zero]), true)
    } else {
        (x, false)
    }
}

// ---------------------------------------------------------------------------------
// Convolution.

fn conv_case(rng: &mut Rng) -> Case {
    let spatial = rng.range(1, 3);
    let kind = rng.range(0, 9);
    let pointwise = kind == 0;
    let unit_input = kind == 1;
    let wide_stride = kind == 2;
    let large = kind == 3 && spatial < 3;
    let batch = rng.range(1, 2);
    let c = if large {
        rng.pick(&[8, 13, 16])
    } else {
        rng.pick(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16, 20])
    };
    let (groups, m) = match rng.range(0, 5) {
        0 | 1 => (
            1,
            if large {
                rng.pick(&[8, 16, 19])
            } else {
                rng.pick(&[1, 2, 3, 4, 5, 7, 8, 13, 16])
            },
        ),
        // Depthwise, then depthwise with channel multiplier 2.
        2 => (c, c),
        3 => (c, 2 * c),
        _ => {
            let g = rng.pick(&divisors(c));
            (g, g * rng.range(1, 3))
        }
    };
    let max_in = if large {
        20
    } else if pointwise && chance(rng, 3) {
        // Several blocks of output pixels (about 1024 per block).
        [1500, 40, 12][spatial - 1]
    } else {
        [12, 10, 6][spatial - 1]
    };
    let mut attrs = Conv {
        kernel: vec![],
        strides: vec![],
        dilations: vec![],
        pads: vec![],
        groups,
        epilogue: Default::default(),
    };
    let mut xs = vec![batch, c];
    for _ in 0..spatial {
        let k = if pointwise {
            1
        } else if wide_stride {
            rng.range(1, 2)
        } else if spatial == 2 && chance(rng, 6) {
            7
        } else if spatial == 3 && !chance(rng, 4) {
            rng.range(1, 3)
        } else {
            rng.range(1, 5)
        };
        let d = if (k >= 4 && spatial == 3) || k == 7 {
            rng.range(1, 2)
        } else {
            rng.range(1, 3)
        };
        let s = if pointwise {
            1
        } else if wide_stride {
            rng.range(k + 1, 3)
        } else {
            rng.range(1, 3)
        };
        let span = (k - 1) * d + 1;
        let (pb, pe, len) = if pointwise {
            (0, 0, rng.range(1, max_in))
        } else if unit_input {
            // A 1-wide axis: the pads must make room for the whole window.
            let pb = rng.range(0, span - 1);
            let pe = rng.range(span - 1 - pb, span - 1);
            (pb, pe, 1)
        } else {
            let mp = (span - 1).min(3);
            let (pb, pe) = (rng.range(0, mp), rng.range(0, mp));
            let lo = span.saturating_sub(pb + pe).max(1);
            (pb, pe, rng.range(lo, max_in.max(lo)))
        };
        attrs.kernel.push(k);
        attrs.strides.push(s);
        attrs.dilations.push(d);
        attrs.pads.push((pb, pe));
        xs.push(len);
    }
    let mut ws = vec![m, c / groups];
    ws.extend(&attrs.kernel);
    let const_w = rng.bool();
    let bias = rng.bool().then(|| rng.bool());
    let desc = format!("{attrs:?} x={xs:?} w={ws:?} const_w={const_w} bias(const)={bias:?}");
    let mut b = B::new(desc);
    let x = rng.tensor(&xs);
    let x = specials(rng, x, &mut b.desc);
    let x = b.input(x);
    let w = rng.tensor(&ws);
    let w = b.param(w, const_w);
    let mut ins = vec![x, w];
    if let Some(cb) = bias {
        let t = rng.tensor(&[m]);
        ins.push(b.param(t, cb));
    }
    let y = b.node(Op::Conv(attrs), &ins);
    b.out(y);
    b.done(RTOL, ATOL)
}

#[test]
fn conv() {
    run_family("conv", 800, conv_case);
}

fn conv_transpose_case(rng: &mut Rng) -> Case {
    let spatial = rng.range(1, 3);
    let batch = rng.range(1, 2);
    // Large cases run as several tasks.
    let large = spatial == 2 && chance(rng, 10);
    let c = if large {
        8
    } else {
        rng.pick(&[1, 2, 3, 4, 5, 6, 8, 9, 12])
    };
    let groups = if chance(rng, 3) {
        c
    } else {
        rng.pick(&divisors(c))
    };
    let mg = if large { 8 } else { rng.range(1, 4) };
    let m = groups * mg;
    let mut attrs = ConvTranspose {
        kernel: vec![],
        strides: vec![],
        dilations: vec![],
        pads: vec![],
        output_padding: vec![],
        groups,
        epilogue: Default::default(),
    };
    let mut xs = vec![batch, c];
    transposed_axes(rng, spatial, large, &mut attrs, &mut xs);
    let mut ws = vec![c, mg];
    ws.extend(&attrs.kernel);
    let const_w = rng.bool();
    let bias = rng.bool().then(|| rng.bool());
    let desc = format!("{attrs:?} x={xs:?} w={ws:?} const_w={const_w} bias(const)={bias:?}");
    let mut b = B::new(desc);
    let x = rng.tensor(&xs);
    let x = specials(rng, x, &mut b.desc);
    let x = b.input(x);
    let w = rng.tensor(&ws);
    let w = b.param(w, const_w);
    let mut ins = vec![x, w];
    if let Some(cb) = bias {
        let t = rng.tensor(&[m]);
        ins.push(b.param(t, cb));
    }
    let y = b.node(Op::ConvTranspose(attrs), &ins);
    b.out(y);
    b.done(RTOL, ATOL)
}

/// Random axes (kernel, stride, dilation, padding and output padding) of a transposed
/// convolution, pushed onto `attrs`, and the input's spatial sizes onto `xs`.
fn transposed_axes(
    rng: &mut Rng,
    spatial: usize,
    large: bool,
    attrs: &mut ConvTranspose,
    xs: &mut Vec<usize>,
) {
    for _ in 0..spatial {
        let k = rng.range(1, if spatial == 3 { 3 } else { 4 });
        let s = rng.range(1, 3);
        let d = rng.range(1, 2);
        let len = if large {
            rng.range(12, 16)
        } else {
            rng.range(1, [8, 6, 4][spatial - 1])
        };
        let op = rng.range(0, s - 1);
        let full = s * (len - 1) + op + (k - 1) * d + 1;
        let (mut pb, mut pe) = (rng.range(0, 3), rng.range(0, 3));
        while pb + pe >= full {
            if pb > 0 {
                pb -= 1;
            } else {
                pe -= 1;
            }
        }
        attrs.kernel.push(k);
        attrs.strides.push(s);
        attrs.dilations.push(d);
        attrs.pads.push((pb, pe));
        attrs.output_padding.push(op);
        xs.push(len);
    }
}

/// The scatter of a transposed convolution's columns (`Op::Col2Im`), grouped or not,
/// with a bias or not and a random epilogue; rows long enough for the vector loop at
/// stride 1; blocked (between reorders) for a third of the 2-D and 3-D cases.
fn col2im_case(rng: &mut Rng) -> Case {
    let spatial = rng.range(1, 3);
    let batch = rng.range(1, 2);
    let large = spatial < 3 && chance(rng, 4);
    let blocked = spatial > 1 && chance(rng, 3);
    let groups = rng.range(1, 2);
    let mg = if blocked {
        4 * rng.range(1, 2)
    } else {
        rng.range(1, 5)
    };
    let m = groups * mg;
    let mut attrs = ConvTranspose {
        kernel: vec![],
        strides: vec![],
        dilations: vec![],
        pads: vec![],
        output_padding: vec![],
        groups,
        epilogue: Epilogue {
            residual: chance(rng, 3),
            activation: random_activation(rng, true),
        },
    };
    let mut xs = vec![batch, 0];
    transposed_axes(rng, spatial, large, &mut attrs, &mut xs);
    xs[1] = m * attrs.kernel.iter().product::<usize>();
    let mut b = B::new(format!("{attrs:?} columns={xs:?} blocked={blocked}"));
    let x = rng.tensor(&xs);
    let x = b.input(x);
    let x = if blocked { b.reorder(x, BLOCKED) } else { x };
    let mut ins = vec![x];
    let extras = attrs.epilogue.residual || attrs.epilogue.activation == Some(Activation::PRelu);
    if extras || rng.bool() {
        let t = rng.tensor(&[m]);
        ins.push(b.param(t, rng.bool()));
    }
    if attrs.epilogue.residual {
        let ty = Op::Col2Im(ConvTranspose {
            epilogue: Epilogue::default(),
            ..attrs.clone()
        })
        .infer(&[&TensorType::f32(xs.clone())])
        .unwrap()
        .remove(0);
        let r = rng.tensor(&ty.shape);
        let r = b.input(r);
        ins.push(if blocked { b.reorder(r, BLOCKED) } else { r });
    }
    if attrs.epilogue.activation == Some(Activation::PRelu) {
        let mut slope = vec![m];
        slope.resize(1 + spatial, 1);
        let t = rng.tensor(&slope);
        ins.push(b.param(t, rng.bool()));
    }
    let y = if blocked {
        let y = b.blocked(Op::Col2Im(attrs), &ins);
        b.reorder(y, Layout::Plain)
    } else {
        b.node(Op::Col2Im(attrs), &ins)
    };
    b.out(y);
    b.done(RTOL, ATOL)
}

#[test]
fn col2im() {
    run_family("col2im", 600, col2im_case);
}

#[test]
fn conv_transpose() {
    run_family("conv_transpose", 600, conv_transpose_case);
}

// ---------------------------------------------------------------------------------
// Pooling.

fn pool_case(rng: &mut Rng) -> Case {
    let spatial = rng.range(1, 3);
    let kind = match rng.range(0, 2) {
        0 => PoolKind::Max,
        1 => PoolKind::Avg {
            count_include_pad: true,
        },
        _ => PoolKind::Avg {
            count_include_pad: false,
        },
    };
    let mut attrs = Pool {
        kind,
        kernel: vec![],
        strides: vec![],
        dilations: vec![],
        pads: vec![],
        ceil_mode: rng.bool(),
    };
    let large = spatial == 2 && chance(rng, 10);
    // Blocked channels (NC[D]HW4c, between reorders) for a third of the 2-D and 3-D cases.
    let blocked = spatial >= 2 && chance(rng, 3);
    let channels = if large {
        16
    } else if blocked {
        4 * rng.range(1, 3)
    } else {
        rng.range(1, 5)
    };
    let mut xs = vec![rng.range(1, 2), channels];
    let max_in = if large { 28 } else { [12, 10, 6][spatial - 1] };
    for _ in 0..spatial {
        let k = rng.range(1, [5, 5, 3][spatial - 1]);
        let s = rng.range(1, 3);
        let d = if chance(rng, 2) { 1 } else { rng.range(1, 3) };
        // Pads smaller than the kernel, as ONNX requires.
        let (pb, pe) = (rng.range(0, k - 1), rng.range(0, k - 1));
        let span = (k - 1) * d + 1;
        let lo = span.saturating_sub(pb + pe).max(1);
        let len = rng.range(lo, max_in.max(lo));
        attrs.kernel.push(k);
        attrs.strides.push(s);
        attrs.dilations.push(d);
        attrs.pads.push((pb, pe));
        xs.push(len);
    }
    let desc = format!("{attrs:?} x={xs:?} blocked={blocked}");
    let mut b = B::new(desc);
    let x = rng.tensor(&xs);
    let x = specials(rng, x, &mut b.desc);
    let x = b.input(x);
    let y = b.pool(attrs, x, blocked);
    b.out(y);
    b.done(RTOL, ATOL)
}

#[test]
fn pool() {
    run_family("pool", 800, pool_case);
}

/// Max pooling of inputs with NaN scattered densely (about one in eight), so that
/// windows hold a NaN before and after ordinary values: the output is NaN exactly
/// where the window holds one, in the plain and the blocked kernels.
fn max_pool_nan_case(rng: &mut Rng) -> Case {
    let blocked = rng.bool();
    let c = if blocked {
        4 * rng.range(1, 2)
    } else {
        rng.range(1, 5)
    };
    let xs = vec![1, c, rng.range(3, 14), rng.range(3, 14)];
    let k = rng.range(2, 3);
    let s = rng.range(1, 2);
    let attrs = Pool {
        kind: PoolKind::Max,
        kernel: vec![k, k],
        strides: vec![s, s],
        dilations: vec![1, 1],
        pads: vec![(rng.range(0, k - 1), rng.range(0, k - 1)); 2],
        ceil_mode: false,
    };
    let mut b = B::new(format!("{attrs:?} x={xs:?} blocked={blocked}"));
    let x = filled(rng, &xs, |rng| {
        if chance(rng, 8) {
            f32::NAN
        } else {
            uniform(rng, -1.0, 1.0)
        }
    });
    let x = b.input(x);
    let y = b.pool(attrs, x, blocked);
    b.out(y);
    b.done(RTOL, ATOL)
}

#[test]
fn max_pool_nan() {
    run_family("max_pool_nan", 200, max_pool_nan_case);
}

fn global_pool_case(rng: &mut Rng) -> Case {
    let spatial = rng.range(1, 3);
    let mut xs = vec![rng.range(1, 2), rng.range(1, 6)];
    for _ in 0..spatial {
        xs.push(rng.range(1, [40, 11, 6][spatial - 1]));
    }
    if chance(rng, 10) {
        xs = vec![2, 16, rng.range(40, 50), rng.range(40, 50)];
    }
    let kind = if rng.bool() {
        PoolKind::Max
    } else {
        PoolKind::Avg {
            count_include_pad: false,
        }
    };
    // Blocked channels (NC[D]HW4c, between reorders) for a third of the 2-D and 3-D cases.
    let blocked = xs.len() >= 4 && chance(rng, 3);
    if blocked {
        xs[1] = 4 * rng.range(1, 4);
    }
    let mut b = B::new(format!("global {kind:?} x={xs:?} blocked={blocked}"));
    let x = rng.tensor(&xs);
    let x = specials(rng, x, &mut b.desc);
    let x = b.input(x);
    let y = if blocked {
        let xb = b.reorder(x, BLOCKED);
        let y = b.node(Op::GlobalPool(kind), &[xb]);
        b.reorder(y, Layout::Plain)
    } else {
        b.node(Op::GlobalPool(kind), &[x])
    };
    b.out(y);
    b.done(RTOL, ATOL)
}

#[test]
fn global_pool() {
    run_family("global_pool", 300, global_pool_case);
}

// ---------------------------------------------------------------------------------
// Gemm and MatMul.

fn gemm_case(rng: &mut Rng) -> Case {
    // Sometimes large (and skewed) enough to split rows or columns between tasks.
    let hi = if chance(rng, 10) { 130 } else { 40 };
    let (m, n, k) = (rng.range(1, hi), rng.range(1, hi), rng.range(1, hi));
    let (trans_a, trans_b) = (rng.bool(), rng.bool());
    gemm_case_of(rng, [m, n, k], trans_a, trans_b)
}

/// One row times a transposed B: the matrix-vector kernel, with row counts around its
/// groups of four and inner sizes around its steps of eight.
fn gemv_case(rng: &mut Rng) -> Case {
    let hi = [0, 1].map(|_| if chance(rng, 4) { 300 } else { 40 });
    let (n, k) = (rng.range(1, hi[0]), rng.range(1, hi[1]));
    let trans_a = rng.bool();
    gemm_case_of(rng, [1, n, k], trans_a, true)
}

fn gemm_case_of(rng: &mut Rng, [m, n, k]: [usize; 3], trans_a: bool, trans_b: bool) -> Case {
    let g = Gemm {
        alpha: rng.pick(&[1.0, 1.0, 0.5, -1.25, 2.0]),
        beta: rng.pick(&[1.0, 1.0, 0.0, 0.75, -2.0]),
        trans_a,
        trans_b,
        epilogue: Default::default(),
    };
    let as_ = if g.trans_a { vec![k, m] } else { vec![m, k] };
    let bs = if g.trans_b { vec![n, k] } else { vec![k, n] };
    let cs: Option<Vec<usize>> = match rng.range(0, 7) {
        0 => None,
        1 => Some(vec![n]),
        2 => Some(vec![1, n]),
        3 => Some(vec![m, 1]),
        4 => Some(vec![1]),
        5 => Some(vec![1, 1]),
        _ => Some(vec![m, n]),
    };
    let const_b = rng.bool();
    let const_c = rng.bool();
    let desc = format!(
        "{g:?} m={m} n={n} k={k} a={as_:?} b={bs:?} c={cs:?} const_b={const_b} const_c={const_c}"
    );
    let mut b = B::new(desc);
    let a = rng.tensor(&as_);
    let a = specials(rng, a, &mut b.desc);
    let a = b.input(a);
    let bt = rng.tensor(&bs);
    let bt = specials(rng, bt, &mut b.desc);
    let bv = b.param(bt, const_b);
    let mut ins = vec![a, bv];
    if let Some(cs) = &cs {
        let t = rng.tensor(cs);
        // Not with beta = 0: see `gemm_beta_zero`.
        let t = if g.beta != 0.0 {
            specials(rng, t, &mut b.desc)
        } else {
            t
        };
        ins.push(b.param(t, const_c));
    }
    let y = b.node(Op::Gemm(g), &ins);
    b.out(y);
    b.done(RTOL, ATOL)
}

#[test]
fn gemm() {
    run_family("gemm", 800, gemm_case);
}

#[test]
fn gemv() {
    run_family("gemv", 300, gemv_case);
}

fn matmul_case(rng: &mut Rng) -> Case {
    let hi = if chance(rng, 4) { 40 } else { 16 };
    let (m, n, k) = (rng.range(1, hi), rng.range(1, hi), rng.range(1, hi));
    let batch = rand_shape(rng, 0, 2, 3);
    let mut sa = bcast_operand(rng, &batch);
    let mut sb = bcast_operand(rng, &batch);
    if chance(rng, 5) {
        sa = vec![k];
    } else {
        sa.extend([m, k]);
    }
    if chance(rng, 5) {
        sb = vec![k];
    } else {
        sb.extend([k, n]);
    }
    let const_b = rng.bool();
    let mut b = B::new(format!("matmul a={sa:?} b={sb:?} const_b={const_b}"));
    let a = rng.tensor(&sa);
    let a = specials(rng, a, &mut b.desc);
    let a = b.input(a);
    let bt = rng.tensor(&sb);
    let bv = b.param(bt, const_b);
    let y = b.node(
        Op::MatMul {
            bias: false,
            epilogue: Default::default(),
        },
        &[a, bv],
    );
    b.out(y);
    b.done(RTOL, ATOL)
}

#[test]
fn matmul() {
    run_family("matmul", 600, matmul_case);
}

// ---------------------------------------------------------------------------------
// Fused products: convolutions and matrix products with what the passes fuse into
// them (bias, residual, activation) and with random tiles (register tile, inner and
// column blocks), as the tiling pass records them.

fn random_activation(rng: &mut Rng, per_channel: bool) -> Option<Activation> {
    let u = |u| Some(Activation::Unary(u));
    match rng.range(0, 11) {
        0 | 1 => None,
        2 => u(Unary::Relu),
        3 => u(Unary::Clip {
            min: -0.5,
            max: rng.pick(&[0.5, 6.0]),
        }),
        4 => u(Unary::LeakyRelu { alpha: 0.1 }),
        5 => u(Unary::Elu { alpha: 1.0 }),
        6 => u(Unary::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        }),
        7 => u(Unary::HardSwish),
        8 => u(rng.pick(&[Unary::Sigmoid, Unary::Tanh])),
        9 => Some(Activation::Silu),
        _ if per_channel => Some(Activation::PRelu),
        _ => u(Unary::Relu),
    }
}

fn random_tile(rng: &mut Rng) -> Tile {
    let cols = 4 * rng.range(1, 4);
    Tile {
        rows: rng.range(1, 8),
        cols,
        k_block: rng.range(1, 40),
        col_block: cols * rng.range(1, 8),
        unroll: rng.range(1, 5),
    }
}

fn fused_case(rng: &mut Rng) -> Case {
    let kind = rng.range(0, 4);
    let e = Epilogue {
        residual: rng.bool(),
        activation: random_activation(rng, kind <= 2),
    };
    let tile = (kind != 2 && rng.bool()).then(|| random_tile(rng));
    let batch = rng.range(1, 2);
    let (op, x_shape, w_shape, bias_shape) = match kind {
        // Convolution (maybe grouped), depthwise convolution, transposed convolution.
        0..=2 => {
            let c = rng.pick(&[1, 3, 4, 5, 8, 12, 17]);
            let groups = match kind {
                1 => c,
                _ if chance(rng, 3) => rng.pick(&divisors(c)),
                _ => 1,
            };
            let m = groups * rng.pick(&[1, 2, 3, 5, 8]);
            // A transposed convolution's padding crops its output: keep some.
            let least = if kind == 2 { 3 } else { 1 };
            let h = rng.range(least, 12);
            let w = rng.range(least, 12);
            let k = rng.range(1, 3);
            let s = rng.range(1, 3);
            let pads = vec![(rng.range(0, 1), rng.range(0, 1)); 2];
            if kind == 2 {
                let attrs = ConvTranspose {
                    kernel: vec![k, k],
                    strides: vec![s, s],
                    dilations: vec![1, 1],
                    pads,
                    output_padding: vec![0, 0],
                    groups,
                    epilogue: e,
                };
                let ws = vec![c, m / groups, k, k];
                (Op::ConvTranspose(attrs), vec![batch, c, h, w], ws, vec![m])
            } else {
                let d = rng.range(1, 2);
                let attrs = Conv {
                    kernel: vec![k, k],
                    strides: vec![s, s],
                    dilations: vec![d, d],
                    pads,
                    groups,
                    epilogue: e,
                };
                let window = (k - 1) * d + 1;
                let ws = vec![m, c / groups, k, k];
                let op = if kind == 1 {
                    Op::DepthwiseConv(attrs)
                } else {
                    Op::Conv(attrs)
                };
                (
                    op,
                    vec![batch, c, h.max(window), w.max(window)],
                    ws,
                    vec![m],
                )
            }
        }
        // Gemm, MatMul with a bias.
        _ => {
            let hi = if chance(rng, 4) { 70 } else { 24 };
            let (m, n, k) = (rng.range(1, hi), rng.range(1, hi), rng.range(1, hi));
            if kind == 3 {
                let g = Gemm {
                    alpha: rng.pick(&[1.0, 0.5]),
                    beta: rng.pick(&[1.0, 2.0]),
                    trans_a: false,
                    trans_b: rng.bool(),
                    epilogue: e,
                };
                let bs = if g.trans_b { vec![n, k] } else { vec![k, n] };
                (Op::Gemm(g), vec![m, k], bs, vec![n])
            } else {
                let op = Op::MatMul {
                    bias: true,
                    epilogue: e,
                };
                let b = rng.range(1, 2);
                (op, vec![b, m, k], vec![k, n], vec![n])
            }
        }
    };
    let mut b = B::new(format!(
        "{op:?} x={x_shape:?} w={w_shape:?} tile={}",
        tile.map_or("-".into(), |t| t.to_string())
    ));
    let x = rng.tensor(&x_shape);
    let x = b.input(x);
    let w = rng.tensor(&w_shape);
    let w = b.param(w, rng.bool());
    let bias = rng.tensor(&bias_shape);
    let bias = b.param(bias, rng.bool());
    let mut ins = vec![x, w, bias];
    let types = [
        &TensorType::f32(x_shape.clone()),
        &TensorType::f32(w_shape.clone()),
        &TensorType::f32(bias_shape.clone()),
    ];
    let plain = match &op {
        Op::Conv(c) => Op::Conv(Conv {
            epilogue: Epilogue::default(),
            ..c.clone()
        }),
        Op::DepthwiseConv(c) => Op::DepthwiseConv(Conv {
            epilogue: Epilogue::default(),
            ..c.clone()
        }),
        Op::ConvTranspose(c) => Op::ConvTranspose(ConvTranspose {
            epilogue: Epilogue::default(),
            ..c.clone()
        }),
        Op::Gemm(g) => Op::Gemm(Gemm {
            epilogue: Epilogue::default(),
            ..g.clone()
        }),
        _ => Op::MatMul {
            bias: true,
            epilogue: Epilogue::default(),
        },
    };
    let out = plain
        .infer(&types)
        .unwrap_or_else(|err| panic!("invalid case {}: {err}", b.desc))
        .remove(0)
        .shape;
    if e.residual {
        let r = rng.tensor(&out);
        ins.push(b.input(r));
    }
    if e.activation == Some(Activation::PRelu) {
        let slope = if rng.bool() {
            vec![1, out[1], 1, 1]
        } else {
            vec![out[1], 1, 1]
        };
        let t = rng.tensor(&slope);
        ins.push(b.param(t, rng.bool()));
    }
    let y = b.node(op, &ins);
    b.g.node_mut(y.node).tile = tile;
    b.out(y);
    b.done(RTOL, ATOL)
}

#[test]
fn fused_products() {
    run_family("fused_products", 800, fused_case);
}

// ---------------------------------------------------------------------------------
// Depthwise convolution on plain tensors: rows vectorized four output columns at a
// time (two overlapping loads per vector at stride 2), single columns at the segment
// tails and at larger strides, with every padding and a random epilogue.

fn depthwise_case(rng: &mut Rng) -> Case {
    let spatial = if chance(rng, 8) { 3 } else { rng.range(1, 2) };
    let c = rng.pick(&[1, 2, 3, 4, 5, 8]);
    let m = c * rng.range(1, 2);
    let mut attrs = Conv {
        kernel: vec![],
        strides: vec![],
        dilations: vec![],
        pads: vec![],
        groups: c,
        epilogue: Epilogue {
            residual: chance(rng, 3),
            activation: random_activation(rng, true),
        },
    };
    let mut xs = vec![rng.range(1, 2), c];
    let mut out = vec![xs[0], m];
    for axis in 0..spatial {
        let k = if spatial == 3 {
            rng.range(1, 3)
        } else {
            rng.pick(&[1, 2, 3, 3, 5, 7])
        };
        let d = if k >= 5 { 1 } else { rng.range(1, 2) };
        let s = if chance(rng, 6) {
            rng.range(3, 4)
        } else {
            rng.range(1, 2)
        };
        let span = (k - 1) * d + 1;
        let mp = (span - 1).min(3);
        let (pb, pe) = (rng.range(0, mp), rng.range(0, mp));
        // The last axis (the vectorized row) up to several tiles of 32 columns.
        let hi = match (axis + 1 == spatial, spatial) {
            (true, _) if chance(rng, 3) => 90,
            (_, 3) => 6,
            _ => 20,
        };
        let lo = span.saturating_sub(pb + pe).max(1);
        let len = rng.range(lo, hi.max(lo));
        attrs.kernel.push(k);
        attrs.strides.push(s);
        attrs.dilations.push(d);
        attrs.pads.push((pb, pe));
        xs.push(len);
        out.push((len + pb + pe - span) / s + 1);
    }
    let mut ws = vec![m, 1];
    ws.extend(&attrs.kernel);
    let mut b = B::new(format!("{attrs:?} x={xs:?}"));
    let x = rng.tensor(&xs);
    let x = b.input(x);
    let w = rng.tensor(&ws);
    let w = b.param(w, rng.bool());
    let mut ins = vec![x, w];
    if attrs.epilogue.residual || attrs.epilogue.activation.is_some() || rng.bool() {
        let bias = rng.tensor(&[m]);
        ins.push(b.param(bias, rng.bool()));
    }
    if attrs.epilogue.residual {
        let r = rng.tensor(&out);
        ins.push(b.input(r));
    }
    if attrs.epilogue.activation == Some(Activation::PRelu) {
        let mut slope = vec![m];
        slope.extend(std::iter::repeat_n(1, spatial));
        let t = rng.tensor(&slope);
        ins.push(b.param(t, rng.bool()));
    }
    let y = b.node(Op::DepthwiseConv(attrs), &ins);
    b.out(y);
    b.done(RTOL, ATOL)
}

#[test]
fn depthwise_plain() {
    run_family("depthwise_plain", 500, depthwise_case);
}

// ---------------------------------------------------------------------------------
// Blocked layouts: direct convolution on NC[D]HWc tensors, and the ops that keep the
// layout (elementwise on equal shapes, channel concatenation), between reorders.

const BLOCKED: Layout = Layout::Blocked { block: 4 };

impl B {
    /// `v` reordered to `to`.
    fn reorder(&mut self, v: Value, to: Layout) -> Value {
        self.node(Op::Reorder { to }, &[v])
    }

    /// `attrs` pooling `x`, in the blocked layout between reorders when `blocked`.
    fn pool(&mut self, attrs: Pool, x: Value, blocked: bool) -> Value {
        if !blocked {
            return self.node(Op::Pool(attrs), &[x]);
        }
        let xb = self.reorder(x, BLOCKED);
        let y = self.node(Op::Pool(attrs), &[xb]);
        self.reorder(y, Layout::Plain)
    }

    /// A node whose output is blocked (a convolution; elementwise ops follow by
    /// themselves).
    fn blocked(&mut self, op: Op, ins: &[Value]) -> Value {
        let y = self.node(op, ins);
        self.g.node_mut(y.node).outputs[0].ty.layout = BLOCKED;
        y
    }
}

/// A random blocked convolution of `x` (blocked, `c` channels, spatial sizes `hw`, 2-D
/// or 3-D), plain or depthwise (at random, always when `depthwise`): output
/// channels in whole blocks, per-group channels too when grouped, with every padding,
/// stride and dilation the geometry allows, a random epilogue and maybe a tile.
fn blocked_conv(
    rng: &mut Rng,
    b: &mut B,
    x: Value,
    (c, hw): (usize, &[usize]),
    depthwise: bool,
) -> (Value, Vec<usize>) {
    let depthwise = c.is_multiple_of(4) && (depthwise || chance(rng, 3));
    let groups = if depthwise {
        c
    } else if c.is_multiple_of(4) && chance(rng, 4) {
        rng.pick(&divisors(c / 4))
    } else {
        1
    };
    let m = if depthwise {
        c
    } else {
        4 * groups * rng.range(1, if groups > 1 { 2 } else { 6 })
    };
    let mut attrs = Conv {
        kernel: vec![],
        strides: vec![],
        dilations: vec![],
        pads: vec![],
        groups,
        epilogue: Epilogue {
            residual: chance(rng, 3),
            activation: random_activation(rng, true),
        },
    };
    let mut out = vec![b.g.value_type(x).shape[0], m];
    for &len in hw {
        let k = if chance(rng, 8) { 7 } else { rng.range(1, 5) };
        let d = if k == 7 { 1 } else { rng.range(1, 2) };
        let s = if chance(rng, 6) {
            k + 1
        } else {
            rng.range(1, 3)
        };
        let span = (k - 1) * d + 1;
        // Pads up to the span less one, and sometimes one beside a 1-wide kernel
        // (outputs that read nothing but the padding).
        let mp = if span == 1 && chance(rng, 4) {
            1
        } else {
            (span - 1).min(3)
        };
        let (mut pb, mut pe) = (rng.range(0, mp), rng.range(0, mp));
        if len + pb + pe < span {
            pe = span - len - pb;
            pb = pb.min(span - 1);
        }
        attrs.kernel.push(k);
        attrs.strides.push(s);
        attrs.dilations.push(d);
        attrs.pads.push((pb, pe));
        out.push((len + pb + pe - span) / s + 1);
    }
    let mut ws = vec![m, c / groups];
    ws.extend(&attrs.kernel);
    b.desc += &format!(" conv{attrs:?} w={ws:?}");
    let w = b.constant(rng.tensor(&ws));
    let bias = rng.tensor(&[m]);
    let bias = b.param(bias, rng.bool());
    let mut ins = vec![x, w, bias];
    if attrs.epilogue.residual {
        let r = rng.tensor(&out);
        let r = b.input(r);
        ins.push(b.reorder(r, BLOCKED));
    }
    if attrs.epilogue.activation == Some(Activation::PRelu) {
        let mut slope = vec![m];
        slope.resize(1 + hw.len(), 1);
        let t = rng.tensor(&slope);
        ins.push(b.param(t, rng.bool()));
    }
    if !attrs.epilogue.residual && attrs.epilogue.activation.is_none() && rng.bool() {
        ins.pop();
    }
    let op = if depthwise {
        Op::DepthwiseConv(attrs)
    } else {
        Op::Conv(attrs)
    };
    let y = b.blocked(op, &ins);
    if !depthwise && chance(rng, 3) {
        // Pixels by channels, and cache blocks of output channels (whole tiles or not).
        let tile = Tile {
            rows: rng.range(1, 6),
            cols: 4 * rng.range(1, 5),
            k_block: 1,
            col_block: 4 * rng.range(1, 8),
            unroll: rng.pick(&[1, 2, 4]),
        };
        b.desc += &format!(" tile={tile}");
        b.g.node_mut(y.node).tile = Some(tile);
    }
    (y, out)
}

/// A blocked convolution with `spatial` (2 or 3) axes, then an op that keeps the layout.
fn blocked_case(rng: &mut Rng, spatial: usize) -> Case {
    let batch = rng.range(1, 2);
    let c = rng.pick(&[1, 2, 3, 4, 5, 7, 8, 12, 16, 20]);
    let hw = if chance(rng, 6) {
        vec![1; spatial]
    } else if spatial == 3 {
        vec![rng.range(1, 5), rng.range(1, 9), rng.range(1, 9)]
    } else {
        vec![rng.range(1, 13), rng.range(1, 13)]
    };
    let mut xs = vec![batch, c];
    xs.extend(&hw);
    let mut b = B::new(format!("x={xs:?}"));
    let x = rng.tensor(&xs);
    let x = b.input(x);
    let xb = b.reorder(x, BLOCKED);
    let (y, shape) = blocked_conv(rng, &mut b, xb, (c, &hw), false);
    let kind = rng.range(0, 7);
    let y = match kind {
        // A second convolution reading the first (chains of blocked layers).
        0 => blocked_conv(rng, &mut b, y, (shape[1], &shape[2..]), false).0,
        // Elementwise ops keep the layout.
        1 => {
            b.desc += " relu+add";
            let r = b.node(Op::Unary(Unary::Relu), &[y]);
            b.node(Op::Binary(Binary::Mul), &[r, y])
        }
        // Concatenation along channels of two blocked tensors.
        2 => {
            b.desc += " concat";
            let other = rng.tensor(&shape);
            let other = b.input(other);
            let other = b.reorder(other, BLOCKED);
            b.node(Op::Concat { axis: 1 }, &[other, y])
        }
        // Per-channel scale and shift (plain parameters) and a cheap activation; on
        // the blocked tensor, or reordered to plain first.
        3 => {
            let activation = rng
                .pick(&[
                    None,
                    Some(Unary::Relu),
                    Some(Unary::Clip {
                        min: -0.5,
                        max: 0.5,
                    }),
                ])
                .map(Activation::Unary);
            let plain = chance(rng, 3);
            b.desc += &format!(" scale_shift {activation:?} plain={plain}");
            let y = if plain {
                b.reorder(y, Layout::Plain)
            } else {
                y
            };
            let scale = b.constant(rng.tensor(&[shape[1]]));
            let shift = b.constant(rng.tensor(&[shape[1]]));
            let e = Epilogue {
                residual: false,
                activation,
            };
            let z = b.node(Op::ScaleShift(e), &[y, scale, shift]);
            if plain { b.reorder(z, BLOCKED) } else { z }
        }
        // A squeeze-and-excitation gate per image and channel, blocked too.
        4 => {
            b.desc += " channel_scale";
            let mut gs = vec![shape[0], shape[1]];
            gs.resize(shape.len(), 1);
            let gate = rng.tensor(&gs);
            let gate = b.input(gate);
            let gate = b.reorder(gate, BLOCKED);
            b.node(Op::ChannelScale, &[y, gate])
        }
        // Pooling on the blocked tensor (the 2-D kernel, or the generic one in 3-D).
        5 => {
            let mut attrs = Pool {
                kind: if rng.bool() {
                    PoolKind::Max
                } else {
                    PoolKind::Avg {
                        count_include_pad: rng.bool(),
                    }
                },
                kernel: vec![],
                strides: vec![],
                dilations: vec![],
                pads: vec![],
                ceil_mode: false,
            };
            for &len in &shape[2..] {
                let k = rng.range(1, len.min(3));
                let p = (rng.range(0, k - 1), rng.range(0, k - 1));
                attrs.kernel.push(k);
                attrs.strides.push(rng.range(1, 2));
                attrs.dilations.push(1);
                attrs.pads.push(p);
            }
            b.desc += &format!(" pool{attrs:?}");
            b.node(Op::Pool(attrs), &[y])
        }
        _ => y,
    };
    let y = b.reorder(y, Layout::Plain);
    b.out(y);
    if kind == 0 {
        // Sums of up to 600 products of the first convolution's outputs (up to about
        // 10): f32 rounding of such sums reaches 1e-4 absolute.
        b.done(1e-3, 1e-3)
    } else {
        b.done(RTOL, ATOL)
    }
}

#[test]
fn blocked_conv_family() {
    run_family("blocked_conv", 600, |rng| blocked_case(rng, 2));
}

#[test]
fn blocked_conv_3d_family() {
    run_family("blocked_conv_3d", 400, |rng| blocked_case(rng, 3));
}

/// A 1x1 convolution, stride 1, ungrouped, with `epilogue`.
fn pointwise(epilogue: Epilogue) -> Conv {
    Conv {
        kernel: vec![1, 1],
        strides: vec![1, 1],
        dilations: vec![1, 1],
        pads: vec![(0, 0); 2],
        groups: 1,
        epilogue,
    }
}

/// The x86-64-v3 code of a 1x1 convolution (128 to 512 channels) with a residual and
/// ReLU on a square plane of `width` (above 16, so not read as one flat row), in
/// tiles of `pixels`.
fn pointwise_listing(pixels: usize, width: usize) -> String {
    let mut rng = Rng(width as u64);
    let mut b = B::new(format!("width {width}"));
    let x = b.input(rng.tensor(&[1, 128, width, width]));
    let xb = b.reorder(x, BLOCKED);
    let w = b.constant(rng.tensor(&[512, 128, 1, 1]));
    let bias = b.constant(rng.tensor(&[512]));
    let r = b.input(rng.tensor(&[1, 512, width, width]));
    let rb = b.reorder(r, BLOCKED);
    let conv = pointwise(Epilogue {
        residual: true,
        activation: Some(Activation::Unary(Unary::Relu)),
    });
    let y = b.blocked(Op::Conv(conv), &[xb, w, bias, rb]);
    b.g.node_mut(y.node).tile = Some(Tile {
        rows: pixels,
        cols: 4,
        k_block: 128,
        col_block: 512,
        unroll: 2,
    });
    let y = b.reorder(y, Layout::Plain);
    b.out(y);
    let mut g = b.g;
    cnnc_passes::fold_constants(&mut g).unwrap();
    x86_64_v3_listing(&g)
}

/// The x86-64-v3 assembly of `g`'s object file (functions named `m_...`).
fn x86_64_v3_listing(g: &Graph) -> String {
    let isa = cnnc_codegen::target::isa(
        Some("x86_64-unknown-linux-gnu"),
        Some("x86-64-v3"),
        cnnc_codegen::target::Linking::Object,
    )
    .unwrap();
    let mut listing = cnnc_codegen::Listing::new(cnnc_codegen::ListingKind::Asm);
    cnnc_codegen::compile_object(g, isa, "m", Some(&mut listing)).unwrap();
    listing.text
}

#[test]
fn narrow_tiles_leave_a_register_for_the_epilogue() {
    // Rows of 17 to 28 pixels in tiles of 10 or 11 end in tails of every width; those
    // of 1 to 5 take partial sums. ReLU's zero stays live through the loops beside
    // them, which a tail with every register taken (6 pixels, 2 partial sums, at 28
    // pixels in tiles of 11) paid for with a spilled accumulator in every step.
    for pixels in [10, 11] {
        for width in 17..=28 {
            let code = pointwise_listing(pixels, width);
            let spills: Vec<&str> = code
                .lines()
                .filter(|l| l.contains("%xmm") && l.contains("%rsp"))
                .collect();
            assert!(
                spills.is_empty(),
                "{width} pixels in tiles of {pixels}:\n{}",
                spills.join("\n")
            );
        }
    }
}

/// The assembly of a model applying `u` to `[1, 8, 16, 16]` for x86-64-v3.
fn unary_listing(u: Unary) -> String {
    let mut rng = Rng(7);
    let mut b = B::new(format!("{u:?}"));
    let x = b.input(rng.tensor(&[1, 8, 16, 16]));
    let y = b.node(Op::Unary(u), &[x]);
    b.out(y);
    x86_64_v3_listing(&b.g)
}

#[test]
fn costly_activations_run_four_chains_side_by_side() {
    // Sigmoid's span function: in its loop over groups of four vectors, each step of
    // the chain comes four times in a row (the divides, the last step, most clearly),
    // and the constants are emitted once per step, not once per chain; so do the last
    // three, two or one vectors. Compiled with the optimizer, the chains would follow
    // each other.
    let code = unary_listing(Unary::Sigmoid);
    let listing = format!("\n{code}");
    let span = listing
        .split("\n; ")
        .find(|f| f.starts_with("m_act_Unary_Sigmoid_\n"))
        .unwrap_or_else(|| panic!("no span function for sigmoid:\n{code}"));
    let ops: Vec<&str> = span
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let divides = ops.iter().filter(|op| **op == "vdivps").count();
    // Four in the loop over groups, then one, two and three for the rest.
    assert_eq!(divides, 4 + 1 + 2 + 3, "{span}");
    for n in [4, 3, 2] {
        assert!(
            ops.windows(n).any(|w| w.iter().all(|op| *op == "vdivps")),
            "the divides of {n} chains are not side by side:\n{span}"
        );
    }
    let fmas = ops.iter().filter(|op| op.starts_with("vfmadd")).count();
    let constants = ops.iter().filter(|op| **op == "vbroadcastss").count();
    assert!(
        constants < fmas,
        "{constants} constants for {fmas} FMAs:\n{span}"
    );
    // The elementwise kernel calls it instead of computing sigmoid inline.
    assert!(code.contains("call"), "{code}");
}

#[test]
fn silu_reads_its_input_again_to_divide() {
    // SiLU's span function divides each input vector by its chain's result. Held
    // through the four chains, the inputs took registers the chains needed and were
    // spilled to the stack; loaded again for the divides, nothing touches the stack.
    let mut rng = Rng(7);
    let mut b = B::new("silu".to_string());
    let x = b.input(rng.tensor(&[1, 8, 16, 16]));
    let w = b.param(rng.tensor(&[8, 8, 1, 1]), false);
    let conv = pointwise(Epilogue {
        residual: false,
        activation: Some(Activation::Silu),
    });
    let y = b.node(Op::Conv(conv), &[x, w]);
    b.out(y);
    let code = x86_64_v3_listing(&b.g);
    let listing = format!("\n{code}");
    let span = listing
        .split("\n; ")
        .find(|f| f.starts_with("m_act_Silu\n"))
        .unwrap_or_else(|| panic!("no span function for SiLU:\n{code}"));
    assert_eq!(span.matches("vdivps").count(), 4 + 1 + 2 + 3, "{span}");
    assert!(!span.contains("(%rsp)"), "SiLU's chains spill:\n{span}");
}

/// Blocked depthwise convolutions on rows long enough for several tiles of every
/// width the kernel uses (eight pixels), a costly activation then running on each row.
fn blocked_depthwise_case(rng: &mut Rng) -> Case {
    let (batch, c) = (rng.range(1, 2), 4 * rng.range(1, 4));
    let hw = [rng.range(1, 5), rng.range(1, 70)];
    let mut b = B::new(format!("x=[{batch}, {c}, {}, {}]", hw[0], hw[1]));
    let x = rng.tensor(&[batch, c, hw[0], hw[1]]);
    let x = b.input(x);
    let xb = b.reorder(x, BLOCKED);
    let (y, _) = blocked_conv(rng, &mut b, xb, (c, &hw), true);
    let y = b.reorder(y, Layout::Plain);
    b.out(y);
    b.done(RTOL, ATOL)
}

#[test]
fn blocked_depthwise_family() {
    run_family("blocked_depthwise", 400, blocked_depthwise_case);
}

// ---------------------------------------------------------------------------------
// Pointwise convolutions on blocked tensors: planes up to 256 pixels are read as one
// row (and split into more cache blocks for the threads), larger ones row by row.

fn pointwise_case(rng: &mut Rng) -> Case {
    let batch = rng.range(1, 2);
    let groups = if chance(rng, 4) { rng.range(2, 3) } else { 1 };
    let c = groups * rng.pick(&[1, 3, 4, 8, 12, 16]);
    let c = if groups > 1 { 4 * c } else { c };
    let m = 4 * groups * rng.range(1, 12);
    let hw = [rng.range(1, 18), rng.range(1, 18)];
    let attrs = Conv {
        kernel: vec![1, 1],
        strides: vec![1, 1],
        dilations: vec![1, 1],
        pads: vec![(0, 0); 2],
        groups,
        epilogue: Epilogue {
            residual: chance(rng, 3),
            activation: random_activation(rng, true),
        },
    };
    let mut b = B::new(format!(
        "x=[{batch}, {c}, {}, {}] pointwise to {m} in {groups} groups",
        hw[0], hw[1]
    ));
    let x = rng.tensor(&[batch, c, hw[0], hw[1]]);
    let x = b.input(x);
    let x = b.reorder(x, BLOCKED);
    let w = b.constant(rng.tensor(&[m, c / groups, 1, 1]));
    let bias = rng.tensor(&[m]);
    let mut ins = vec![x, w, b.param(bias, rng.bool())];
    let out = [batch, m, hw[0], hw[1]];
    if attrs.epilogue.residual {
        let r = rng.tensor(&out);
        let r = b.input(r);
        ins.push(b.reorder(r, BLOCKED));
    }
    if attrs.epilogue.activation == Some(Activation::PRelu) {
        let t = rng.tensor(&[m, 1, 1]);
        ins.push(b.param(t, rng.bool()));
    }
    let y = b.blocked(Op::Conv(attrs), &ins);
    if chance(rng, 2) {
        let tile = Tile {
            rows: rng.range(1, 6),
            cols: 4 * rng.range(1, 4),
            k_block: 1,
            col_block: 4 * rng.range(1, 12),
            unroll: rng.pick(&[1, 2, 4]),
        };
        b.desc += &format!(" tile={tile}");
        b.g.node_mut(y.node).tile = Some(tile);
    }
    let y = b.reorder(y, Layout::Plain);
    b.out(y);
    b.done(RTOL, ATOL)
}

#[test]
fn pointwise_family() {
    run_family("pointwise", 300, pointwise_case);
}

/// A pointwise convolution on plain tensors whose planes are 1 to 13 vectors, without
/// bias or epilogue: the plane kernel (`plane_products.rs`), with any channel counts
/// (tiles of fewer rows, an odd last input channel), groups and images.
fn plane_products_case(rng: &mut Rng) -> Case {
    let groups = rng.pick(&[1, 1, 2, 3, 36]);
    let (c, m) = (groups * rng.range(1, 20), groups * rng.range(1, 20));
    let hw = rng.pick(&[
        [1, 4],
        [2, 2],
        [2, 4],
        [4, 2],
        [3, 4],
        [2, 6],
        [4, 4],
        [1, 16],
        [5, 4],
        [4, 7],
        [6, 6],
        [4, 11],
        [6, 8],
        [4, 13],
        [2, 26],
    ]);
    let batch = rng.range(1, 2);
    let attrs = Conv {
        kernel: vec![1, 1],
        strides: vec![1, 1],
        dilations: vec![1, 1],
        pads: vec![(0, 0); 2],
        groups,
        epilogue: Epilogue::default(),
    };
    // The shapes the plane kernel takes (with constant weights, on plain tensors).
    assert!(attrs.on_plane_kernel(&[batch, c, hw[0], hw[1]], 2, 4));
    let mut b = B::new(format!(
        "x=[{batch}, {c}, {}, {}] pointwise to {m} in {groups} groups, plain",
        hw[0], hw[1]
    ));
    let x = rng.tensor(&[batch, c, hw[0], hw[1]]);
    let x = b.input(x);
    let w = b.constant(rng.tensor(&[m, c / groups, 1, 1]));
    let y = b.node(Op::Conv(attrs), &[x, w]);
    b.out(y);
    b.done(RTOL, ATOL)
}

#[test]
fn plane_products_family() {
    run_family("plane_products", 200, plane_products_case);
}

// ---------------------------------------------------------------------------------
// Winograd: a 3x3 or 5x5 stride-1 convolution, grouped or not, rewritten into input
// transform, grouped pointwise products and output transform (with bias and
// epilogue), on blocked and plain tensors, every tile size of the kernel, every
// padding its window allows, sizes that are and are not whole tiles, down to 1x1.

fn winograd_case(rng: &mut Rng) -> Case {
    winograd_with(rng, Grid::Random)
}

/// The tile grids of a Winograd case.
#[derive(Clone, Copy, PartialEq)]
enum Grid {
    /// Up to 14x14 tiles.
    Random,
    /// 64 or 128 channels in and out and a number of tiles that puts the transformed
    /// tensors' planes a multiple of 2 KiB apart, whose `t*t` values of a tile share
    /// too few cache sets: the transforms stage runs of tiles.
    Crowded,
    /// 16x16 tiles of 64 input channels: planes of 4 KiB, which the pass pads with
    /// unused positions (`Winograd::plane`); half the cases for an L2 of 64 KiB, which
    /// puts 4 rows of tiles in a plane row.
    Padded,
    /// 7 to 14 rows of 8 to 12 tiles (more than a plane of plain products holds) and
    /// caches so small that the transformed tensors
    /// go in bands (`Winograd::band`) of 1 up to all of the rows, the last band
    /// overlapping the one before when the height does not divide the rows.
    Banded,
    /// Blocked, plain products (`Winograd::plain_products`, the transforms converting
    /// to and from blocks): 13 to 16 tiles and an L2 so small that every transform
    /// position's weights exceed half of it, or 30 to 49 tiles of 128 channels (rows
    /// that end inside a vector, planes padded to whole vectors); a third of them (and a
    /// seventh of the rest) pointwise convolutions under F(1x1, 1x1).
    Plain,
}

fn winograd_with(rng: &mut Rng, grid: Grid) -> Case {
    let crowded = matches!(grid, Grid::Crowded | Grid::Padded);
    let blocked = crowded || grid == Grid::Plain || rng.bool();
    // Plain products on a single row of output channels: 128 channels.
    let wide = grid == Grid::Plain && rng.bool();
    // Grouped as AlexNet's: groups of whole blocks when blocked.
    let groups = if crowded || wide {
        1
    } else {
        rng.pick(&[1, 1, 2, 3])
    };
    let (c, m) = if grid == Grid::Padded {
        (64, rng.pick(&[4, 8]))
    } else if wide {
        (128, 128)
    } else if crowded {
        (rng.pick(&[64, 128]), rng.pick(&[64, 128]))
    } else if blocked {
        (4 * groups * rng.range(1, 3), 4 * groups * rng.range(1, 3))
    } else {
        (groups * rng.range(1, 5), groups * rng.range(1, 5))
    };
    let batch = rng.range(1, 2);
    // F(1x1, 1x1) makes plain products of pointwise convolutions: a third of the plain
    // cases take it, the rest any transform.
    let (tile, r) = if grid == Grid::Plain && chance(rng, 3) {
        (1, 1)
    } else {
        rng.pick(&[(1, 1), (2, 3), (4, 3), (6, 3), (3, 4), (2, 5), (4, 5)])
    };
    // Tiles by rows and columns: 2 KiB / 16 bytes / 16 or 32 blocks = 8 or 4, times
    // 8 for either transform's planes (of `c` or `m` channels), and more than a plane
    // of plain products holds.
    let tiles = match grid {
        Grid::Random => None,
        Grid::Crowded => {
            let rows = rng.pick(&[1, 2, 4, 8]);
            Some([rows, 64 / rows])
        }
        Grid::Padded => Some([16, 16]),
        Grid::Banded => Some([rng.range(7, 14), rng.range(8, 12)]),
        Grid::Plain if wide => Some([rng.range(5, 7), rng.range(6, 7)]),
        Grid::Plain => Some(rng.pick(&[[4, 4], [2, 8], [1, 16], [3, 5], [2, 7], [1, 13]])),
    };
    let mut attrs = Conv {
        kernel: vec![r, r],
        strides: vec![1, 1],
        dilations: vec![1, 1],
        pads: vec![],
        groups,
        epilogue: Epilogue {
            residual: chance(rng, 3),
            activation: random_activation(rng, true),
        },
    };
    let mut xs = vec![batch, c];
    let mut out = vec![batch, m];
    for axis in 0..2 {
        // Plain grids keep their tiles: padding within the window's reach.
        let most = if grid == Grid::Plain {
            (r - 1) / 2
        } else {
            r - 1
        };
        let (pb, pe) = (rng.range(0, most), rng.range(0, most));
        let least = r.saturating_sub(pb + pe).max(1);
        let len = match tiles {
            // The last tile whole or not.
            Some(n) => (n[axis] * tile - rng.range(0, tile - 1) + r - 1)
                .saturating_sub(pb + pe)
                .max(least),
            None => rng.range(least, least + 13),
        };
        attrs.pads.push((pb, pe));
        xs.push(len);
        out.push(len + pb + pe + 1 - r);
    }
    let mut b = B::new(format!(
        "winograd F({tile}, {r}) x={xs:?} conv{attrs:?} blocked={blocked}"
    ));
    let x = rng.tensor(&xs);
    let x = b.input(x);
    let x = if blocked { b.reorder(x, BLOCKED) } else { x };
    let w = b.constant(rng.tensor(&[m, c / groups, r, r]));
    let bias = rng.tensor(&[m]);
    let mut ins = vec![x, w, b.param(bias, rng.bool())];
    if attrs.epilogue.residual {
        let r = rng.tensor(&out);
        let r = b.input(r);
        ins.push(if blocked { b.reorder(r, BLOCKED) } else { r });
    }
    if attrs.epilogue.activation == Some(Activation::PRelu) {
        let t = rng.tensor(&[m, 1, 1]);
        ins.push(b.param(t, rng.bool()));
    }
    let y = if blocked {
        b.blocked(Op::Conv(attrs), &ins)
    } else {
        b.node(Op::Conv(attrs), &ins)
    };
    let small_l2 = grid == Grid::Padded && rng.bool();
    let mut target = TargetInfo {
        l2_bytes: match grid {
            Grid::Plain => 32,
            _ if small_l2 => 64 << 10,
            _ => 1 << 20,
        },
        ..TargetInfo::default()
    };
    // Bands of up to `most` rows: L2 holds that many rows of both transformed
    // tensors, and all rows more than half of L3.
    if let (Grid::Banded, Some([rows, cols])) = (grid, tiles) {
        let most = rng.range(1, rows);
        let t = tile + r - 1;
        let row = batch * t * t * (c + m) * cols * 4;
        target.l2_bytes = row * most + 7;
        target.l3_bytes = 2 * row * rows - 1;
    }
    let rewritten =
        rewrite_with(&mut b.g, y.node, tile, &target).unwrap_or_else(|e| panic!("{}: {e}", b.desc));
    assert!(rewritten, "{}: not rewritten", b.desc);
    if grid == Grid::Padded {
        let plane = b.g.node_ids().find_map(|id| match &b.g.node(id).op {
            Op::WinogradInput(w) => Some(w.plane),
            _ => None,
        });
        let plane = plane.expect("an input transform");
        let rows = if small_l2 { 4 } else { 1 };
        assert!(
            plane[0] == rows && plane[0] * plane[1] > 256,
            "{}: plane {plane:?} not padded in {rows} rows",
            b.desc
        );
        b.desc += &format!(" plane={plane:?}");
    }
    let plain = b
        .g
        .node_ids()
        .any(|id| matches!(&b.g.node(id).op, Op::WinogradInput(w) if w.plain_products.is_some()));
    // Only the plain grids make plain products: the random ones have too few channels
    // (and a large L2), the others too many tiles.
    assert_eq!(plain, grid == Grid::Plain, "{}: plain products", b.desc);
    if grid == Grid::Banded {
        let band = b.g.node_ids().find_map(|id| match &b.g.node(id).op {
            Op::WinogradOutput(w) => Some(w.band),
            _ => None,
        });
        let band = band.expect("an output transform");
        assert!(band > 0, "{}: not banded", b.desc);
        b.desc += &format!(" band={band}");
    }
    let y = if blocked {
        b.reorder(y, Layout::Plain)
    } else {
        y
    };
    b.out(y);
    // The transforms' coefficients (up to 8 in the F(4x4) output transforms, 5 and
    // 5.25 in the input transforms of 6x6 and 8x8 tiles) scale the float32 rounding of
    // the products.
    b.done(1e-3, 1e-3)
}

#[test]
fn winograd_family() {
    run_family("winograd", 300, winograd_case);
}

#[test]
fn winograd_crowded_family() {
    run_family("winograd_crowded", 60, |rng| {
        winograd_with(rng, Grid::Crowded)
    });
}

#[test]
fn winograd_banded_family() {
    run_family("winograd_banded", 60, |rng| {
        winograd_with(rng, Grid::Banded)
    });
}

#[test]
fn winograd_plain_family() {
    run_family("winograd_plain", 60, |rng| winograd_with(rng, Grid::Plain));
}

#[test]
fn winograd_padded_family() {
    run_family("winograd_padded", 24, |rng| {
        winograd_with(rng, Grid::Padded)
    });
}

// ---------------------------------------------------------------------------------
// Elementwise.

/// The activation or math function, and the range its inputs are drawn from.
fn random_unary(rng: &mut Rng) -> (Unary, bool) {
    // (op, transcendental)
    match rng.range(0, 19) {
        0 => (Unary::Relu, false),
        1 => (
            Unary::LeakyRelu {
                alpha: uniform(rng, 0.01, 0.3),
            },
            false,
        ),
        2 => (
            Unary::Elu {
                alpha: uniform(rng, 0.1, 2.0),
            },
            true,
        ),
        3 => (
            Unary::Selu {
                alpha: rng.pick(&[1.673_263_2, 0.8]),
                gamma: rng.pick(&[1.050_701, 2.0]),
            },
            true,
        ),
        4 => (Unary::Sigmoid, true),
        5 => (
            Unary::HardSigmoid {
                alpha: rng.pick(&[0.2, 1.0 / 6.0, 0.5]),
                beta: rng.pick(&[0.5, 0.3]),
            },
            false,
        ),
        6 => (Unary::HardSwish, false),
        7 => (Unary::Tanh, true),
        8 => (Unary::Softplus, true),
        9 => (Unary::Softsign, false),
        10 => (Unary::Mish, true),
        11 => (Unary::Gelu { tanh: false }, true),
        12 => (Unary::Gelu { tanh: true }, true),
        13 => (Unary::Erf, true),
        14 => (Unary::Exp, true),
        15 => (Unary::Sqrt, false),
        16 => (Unary::Abs, false),
        17 => (Unary::Neg, false),
        _ => {
            let (lo, hi) = (uniform(rng, -2.0, 1.0), uniform(rng, -1.0, 2.0));
            // Sometimes min > max: every element becomes max.
            (Unary::Clip { min: lo, max: hi }, false)
        }
    }
}

fn unary_case(rng: &mut Rng) -> Case {
    let (u, transcendental) = random_unary(rng);
    let shape = if chance(rng, 15) {
        vec![66_000 + rng.range(0, 7)]
    } else {
        rand_shape(rng, 0, 4, 7)
    };
    // Small, moderate and large magnitudes (±30 saturates exp, sigmoid, tanh, ...).
    let scale = rng.pick(&[1.0, 4.0, 30.0]);
    let mut x = ranged(rng, &shape, -scale, scale);
    if u == Unary::Sqrt {
        x = ranged(rng, &shape, 0.0, scale);
    }
    let mut b = B::new(format!("{u:?} x={shape:?} scale={scale}"));
    let x = if u == (Unary::Gelu { tanh: false }) {
        // Not -inf: see `erf_saturates`.
        specials_of(rng, x, &mut b.desc, &[f32::NAN, f32::INFINITY])
    } else {
        specials(rng, x, &mut b.desc)
    };
    let xv = b.input(x);
    let y = b.node(Op::Unary(u), &[xv]);
    b.out(y);
    if transcendental {
        // exp, log, tanh and erf are inline polynomial/rational approximations good to
        // a few f32 ulps; compositions (mish = x tanh(softplus x), gelu, selu via
        // expm1) compound that, so 1e-4 relative (about 800 ulps). Results that cancel
        // towards zero get an absolute floor proportional to the input magnitude:
        // gelu(-20) = 0.5 x (1 + erf(x / sqrt 2)) where the approximated erf is an ulp
        // or two short of -1, so the kernel gives about -1.5e-6 instead of -0.
        b.done(1e-4, (2e-7 * scale as f64).max(1e-6))
    } else {
        // At most a couple of roundings apart (fma vs. separate multiply and add).
        b.done(1e-6, 1e-7)
    }
}

#[test]
fn unary() {
    run_family("unary", 1000, unary_case);
}

fn binary_case(rng: &mut Rng) -> Case {
    let op = rng.pick(&[
        Binary::Add,
        Binary::Sub,
        Binary::Mul,
        Binary::Div,
        Binary::Pow,
        Binary::Max,
        Binary::Min,
        Binary::PRelu,
    ]);
    let out = if chance(rng, 15) {
        vec![rng.range(2, 3), 150, rng.range(200, 230)]
    } else {
        rand_shape(rng, 0, 4, 7)
    };
    let sa = if op == Binary::PRelu {
        out.clone()
    } else {
        bcast_operand(rng, &out)
    };
    let mut sb = bcast_operand(rng, &out);
    let (mut rtol, atol) = (1e-6, 1e-7);
    // Constant scalar exponents take the specialized path.
    let pow_const = (op == Binary::Pow && chance(rng, 2)).then(|| {
        sb = vec![1; rng.range(0, 2)];
        rng.pick(&[2.0f32, 0.5, 3.0, -1.0, 1.7])
    });
    let (ta, tb) = match (op, pow_const) {
        (Binary::Div, _) => (rng.tensor(&sa), signed(rng, &sb, 0.5, 2.0)),
        (Binary::Pow, Some(c)) => {
            let base = if c == c.trunc() {
                // Integral exponents accept negative bases.
                signed(rng, &sa, 0.1, 2.0)
            } else {
                ranged(rng, &sa, 0.05, 3.0)
            };
            let exp = Tensor::from_vec(sb.clone(), vec![c]).unwrap();
            (base, exp)
        }
        (Binary::Pow, None) => {
            if chance(rng, 4) {
                // Negative bases with integral exponents.
                let e = filled(rng, &sb, |r| r.range(0, 6) as f32 - 3.0);
                (signed(rng, &sa, 0.1, 2.0), e)
            } else {
                (ranged(rng, &sa, 0.05, 3.0), ranged(rng, &sb, -2.5, 2.5))
            }
        }
        (Binary::Max | Binary::Min, _) if rng.bool() => (quantized(rng, &sa), quantized(rng, &sb)),
        _ => (rng.tensor(&sa), rng.tensor(&sb)),
    };
    if op == Binary::Pow {
        // The general power is exp(y log x) with the inline approximations (a few ulps
        // each, the error of log scaled by |y log x|); integral constant exponents are
        // products, exact to a couple of roundings.
        rtol = 1e-4;
    }
    // Which operand is a constant (never both: the node would be folded away), or
    // one value as both operands.
    let which = if pow_const.is_some() {
        2
    } else {
        rng.range(0, 4)
    };
    let desc = format!(
        "{op:?} a={sa:?} b={sb:?} const={} pow_const={pow_const:?}",
        ["none", "a", "b", "b", "none, b is a"][which]
    );
    let mut b = B::new(desc);
    // Not for Pow: pow(NaN, y) is wrong, see `log_keeps_nan`.
    let (ta, tb) = if op == Binary::Pow {
        (ta, tb)
    } else {
        let ta = specials(rng, ta, &mut b.desc);
        (ta, specials(rng, tb, &mut b.desc))
    };
    let a = if which == 1 {
        b.constant(ta)
    } else {
        b.input(ta)
    };
    let bv = match which {
        2 | 3 => b.constant(tb),
        4 => a,
        _ => b.input(tb),
    };
    let y = b.node(Op::Binary(op), &[a, bv]);
    b.out(y);
    b.done(rtol, atol)
}

#[test]
fn binary() {
    run_family("binary", 1000, binary_case);
}

/// Comparisons (bool results), bool-bool Equal, Where and Cast f32 -> bool -> f32.
fn compare_case(rng: &mut Rng) -> Case {
    let out = rand_shape(rng, 0, 4, 6);
    let cmp = rng.pick(&[Binary::Equal, Binary::Less, Binary::Greater]);
    let (sa, sb) = (bcast_operand(rng, &out), bcast_operand(rng, &out));
    let variant = rng.range(0, 3);
    let const_b = rng.bool();
    let (sx, sy) = (bcast_operand(rng, &out), bcast_operand(rng, &out));
    let desc = format!(
        "{cmp:?} a={sa:?} b={sb:?} const_b={const_b} variant={} x={sx:?} y={sy:?}",
        ["bool output", "where", "cast", "bool equal + where"][variant]
    );
    let mut b = B::new(desc);
    let ta = quantized(rng, &sa);
    let ta = specials(rng, ta, &mut b.desc);
    let a = b.input(ta);
    let tb = quantized(rng, &sb);
    let bv = b.param(tb, const_b);
    let c = b.node(Op::Binary(cmp), &[a, bv]);
    match variant {
        0 => b.out(c),
        1 | 3 => {
            let cond = if variant == 3 {
                let zero = b.constant(Tensor::from_vec(vec![], vec![0f32]).unwrap());
                let other = b.node(Op::Binary(Binary::Greater), &[a, zero]);
                let e = b.node(Op::Binary(Binary::Equal), &[c, other]);
                b.out(e);
                e
            } else if chance(rng, 3) {
                // A constant condition.
                let sc = bcast_operand(rng, &out);
                let n = sc.iter().product();
                let v: Vec<u8> = (0..n).map(|_| rng.bool() as u8).collect();
                b.desc += &format!(" const cond {sc:?}");
                b.constant(Tensor::from_vec(sc, v).unwrap())
            } else {
                c
            };
            let tx = rng.tensor(&sx);
            let x = b.input(tx);
            let ty = rng.tensor(&sy);
            let const_y = rng.bool();
            let y = b.param(ty, const_y);
            let w = b.node(Op::Where, &[cond, x, y]);
            b.out(w);
        }
        _ => {
            let to_bool = b.node(Op::Cast { to: DType::Bool }, &[a]);
            let back = b.node(Op::Cast { to: DType::F32 }, &[to_bool]);
            let same = b.node(Op::Cast { to: DType::F32 }, &[back]);
            let cmp_f = b.node(Op::Cast { to: DType::F32 }, &[c]);
            b.out(to_bool);
            b.out(same);
            b.out(cmp_f);
        }
    }
    b.done(0.0, 0.0)
}

#[test]
fn compare_where_cast() {
    run_family("compare_where_cast", 600, compare_case);
}

// ---------------------------------------------------------------------------------
// Softmax, normalizations, reductions.

fn softmax_case(rng: &mut Rng) -> Case {
    let mut shape = rand_shape(rng, 1, 4, 9);
    if chance(rng, 10) {
        let i = rng.range(0, shape.len() - 1);
        shape[i] = rng.range(60, 300);
    }
    let axis = if chance(rng, 3) {
        shape.len() - 1
    } else {
        rng.range(0, shape.len() - 1)
    };
    let log = rng.bool();
    let scale = rng.pick(&[1.0, 5.0, 20.0]);
    let mut b = B::new(format!(
        "softmax log={log} axis={axis} x={shape:?} scale={scale}"
    ));
    let x = ranged(rng, &shape, -scale, scale);
    let x = if log {
        // Not +inf: see `log_keeps_nan`.
        specials_of(rng, x, &mut b.desc, &[f32::NAN, f32::NEG_INFINITY])
    } else {
        specials(rng, x, &mut b.desc)
    };
    let x = b.input(x);
    let y = b.node(Op::Softmax { axis, log }, &[x]);
    b.out(y);
    // exp and log are inline approximations (a few ulps); log-softmax results near 0
    // are differences of values up to 20 in size, hence the absolute floor.
    b.done(1e-4, 1e-5)
}

#[test]
fn softmax() {
    run_family("softmax", 600, softmax_case);
}

fn batch_norm_case(rng: &mut Rng) -> Case {
    let rank = rng.range(2, 5);
    let mut xs = vec![rng.range(1, 2), rng.range(1, 20)];
    for _ in 2..rank {
        xs.push(rng.range(1, [0, 0, 0, 9, 6, 4][rank]));
    }
    if chance(rng, 10) {
        xs = vec![2, 16, rng.range(40, 50), rng.range(40, 50)];
    }
    let c = xs[1];
    let epsilon = rng.pick(&[1e-5, 1e-3, 0.1]);
    let consts: Vec<bool> = if rng.bool() {
        let all = rng.bool();
        vec![all; 4]
    } else {
        (0..4).map(|_| rng.bool()).collect()
    };
    let mut b = B::new(format!(
        "batch_norm eps={epsilon} x={xs:?} const(scale,bias,mean,var)={consts:?}"
    ));
    let x = rng.tensor(&xs);
    let x = b.input(x);
    let mut ins = vec![x];
    for (i, &k) in consts.iter().enumerate() {
        let t = if i == 3 {
            ranged(rng, &[c], 0.05, 2.0)
        } else {
            ranged(rng, &[c], -2.0, 2.0)
        };
        ins.push(b.param(t, k));
    }
    let y = b.node(Op::BatchNorm { epsilon }, &ins);
    b.out(y);
    b.done(RTOL, ATOL)
}

#[test]
fn batch_norm() {
    run_family("batch_norm", 400, batch_norm_case);
}

fn instance_norm_case(rng: &mut Rng) -> Case {
    let rank = rng.range(3, 5);
    let mut xs = vec![rng.range(1, 2), rng.range(1, 12)];
    for _ in 2..rank {
        xs.push(rng.range(1, [0, 0, 0, 30, 9, 5][rank]));
    }
    if chance(rng, 10) {
        xs = vec![2, 8, rng.range(40, 50), rng.range(40, 50)];
    }
    // Planes of at least 4 elements: with fewer (a zero or tiny variance) the kernel
    // loses accuracy, see `instance_norm_constant_plane` below.
    if xs[2..].iter().product::<usize>() < 4 {
        *xs.last_mut().unwrap() = 4;
    }
    let c = xs[1];
    let epsilon = rng.pick(&[1e-5, 1e-3]);
    let offset = rng.pick(&[0.0, 3.0]);
    let (cs, cb) = (rng.bool(), rng.bool());
    let mut b = B::new(format!(
        "instance_norm eps={epsilon} x={xs:?} offset={offset} const_scale={cs} const_bias={cb}"
    ));
    let x = ranged(rng, &xs, offset - 1.0, offset + 1.0);
    let x = b.input(x);
    let s = ranged(rng, &[c], -2.0, 2.0);
    let s = b.param(s, cs);
    let bias = ranged(rng, &[c], -2.0, 2.0);
    let bias = b.param(bias, cb);
    let y = b.node(Op::InstanceNorm { epsilon }, &[x, s, bias]);
    b.out(y);
    b.done(RTOL, ATOL)
}

#[test]
fn instance_norm() {
    run_family("instance_norm", 400, instance_norm_case);
}

/// Plain to blocked and back: every channel count around the block size (partial last
/// blocks), plane sizes that are and are not multiples of the four positions moved at
/// a time, 0-D to 3-D planes. Whole blocks pass through an elementwise op in the
/// blocked layout (the layout pass blocks no other tensor for elementwise ops).
fn reorder_case(rng: &mut Rng) -> Case {
    let rank = rng.range(2, 5);
    let mut xs = vec![rng.range(1, 3), rng.range(1, 13)];
    for _ in 2..rank {
        xs.push(rng.range(1, [0, 0, 0, 19, 9, 5][rank]));
    }
    let mut b = B::new(format!("x={xs:?}"));
    let x = rng.tensor(&xs);
    let x = b.input(x);
    let mut y = b.reorder(x, BLOCKED);
    if xs[1].is_multiple_of(4) {
        y = b.node(Op::Unary(Unary::Neg), &[y]);
    }
    let y = b.reorder(y, Layout::Plain);
    b.out(y);
    b.done(0.0, 0.0)
}

#[test]
fn reorder() {
    run_family("reorder", 300, reorder_case);
}

fn lrn_case(rng: &mut Rng) -> Case {
    let rank = rng.range(2, 5);
    let mut xs = vec![rng.range(1, 2), rng.range(1, 12)];
    for _ in 2..rank {
        xs.push(rng.range(1, [0, 0, 0, 9, 6, 4][rank]));
    }
    if chance(rng, 10) {
        xs = vec![2, 8, rng.range(30, 40), rng.range(30, 40)];
    }
    // Blocked (4-D): windows reaching one or two blocks either side, channels filling
    // their last block or not.
    let blocked = rank == 4 && chance(rng, 2);
    let l = Lrn {
        size: if blocked {
            rng.range(1, 11)
        } else {
            rng.range(1, 5)
        },
        alpha: rng.pick(&[1e-4, 1e-3, 0.5, 1.0]),
        beta: rng.pick(&[0.5, 0.75, 1.0]),
        bias: rng.pick(&[1.0, 2.0, 0.5]),
    };
    let scale = rng.pick(&[1.0, 3.0]);
    let mut b = B::new(format!("{l:?} x={xs:?} scale={scale} blocked={blocked}"));
    let x = ranged(rng, &xs, -scale, scale);
    let x = b.input(x);
    let y = if blocked {
        let x = b.reorder(x, BLOCKED);
        let y = b.blocked(Op::Lrn(l), &[x]);
        b.reorder(y, Layout::Plain)
    } else {
        b.node(Op::Lrn(l), &[x])
    };
    b.out(y);
    // The power is exp(-beta log(base)) with the inline approximations (a few ulps).
    b.done(RTOL, ATOL)
}

#[test]
fn lrn() {
    run_family("lrn", 400, lrn_case);
}

fn reduce_case(rng: &mut Rng) -> Case {
    let shape = if chance(rng, 10) {
        vec![rng.range(3, 5), 130, rng.range(120, 140)]
    } else {
        rand_shape(rng, 1, 4, 7)
    };
    let axes: Vec<usize> = if chance(rng, 12) {
        vec![]
    } else {
        let mut a: Vec<usize> = (0..shape.len()).filter(|_| rng.bool()).collect();
        if a.is_empty() {
            a.push(rng.range(0, shape.len() - 1));
        }
        a
    };
    let kind = if rng.bool() {
        ReduceKind::Sum
    } else {
        ReduceKind::Mean
    };
    let keep_dims = rng.bool();
    let count: usize = axes.iter().map(|&a| shape[a]).product();
    // A sum of `count` values in [-1, 1) accumulated in f32: partial sums wander to
    // about sqrt(count) in size and every addition rounds to half an ulp of one, so the
    // error grows like count * 2^-24 (5e-4 seen for 67 600 elements summing to -1.09).
    // Means divide the error by count again.
    let atol = match kind {
        ReduceKind::Sum => ATOL.max(3e-8 * count as f64),
        ReduceKind::Mean => ATOL,
    };
    let op = Op::Reduce {
        kind,
        axes,
        keep_dims,
    };
    let mut b = B::new(format!("{op:?} x={shape:?}"));
    let x = rng.tensor(&shape);
    let x = specials(rng, x, &mut b.desc);
    let x = b.input(x);
    let y = b.node(op, &[x]);
    b.out(y);
    b.done(RTOL, atol)
}

#[test]
fn reduce() {
    run_family("reduce", 600, reduce_case);
}

// ---------------------------------------------------------------------------------
// Resize.

fn resize_case(rng: &mut Rng) -> Case {
    let rank = rng.range(1, 4);
    let large = rank == 4 && chance(rng, 10);
    let shape: Vec<usize> = (0..rank)
        .map(|i| match (rank == 4 && i < 2, large) {
            (true, _) => rng.range(1, 3),
            (false, true) => rng.range(30, 40),
            (false, false) => rng.range(1, 8),
        })
        .collect();
    let mode = match rng.range(0, 3) {
        0 => ResizeMode::Nearest(rng.pick(&[
            NearestMode::RoundPreferFloor,
            NearestMode::RoundPreferCeil,
            NearestMode::Floor,
            NearestMode::Ceil,
        ])),
        1 => ResizeMode::Linear,
        _ => ResizeMode::Cubic {
            a: rng.pick(&[-0.75, -0.5]),
        },
    };
    let coord = rng.pick(&[
        CoordMode::HalfPixel,
        CoordMode::HalfPixelSymmetric,
        CoordMode::PytorchHalfPixel,
        CoordMode::AlignCorners,
        CoordMode::Asymmetric,
        CoordMode::TfHalfPixelForNn,
    ]);
    let mut scales = Vec::new();
    let mut sizes = Vec::new();
    for (i, &d) in shape.iter().enumerate() {
        // NCHW-like inputs usually keep N and C; other axes are resized half the time.
        let keep = if rank == 4 && i < 2 {
            !chance(rng, 6)
        } else {
            chance(rng, 3)
        };
        let s: f64 = if keep {
            1.0
        } else {
            rng.pick(&[0.25, 0.4, 0.5, 0.6, 0.75, 1.25, 1.5, 1.7, 2.0, 2.5, 3.0])
        };
        scales.push(s);
        sizes.push(((s * d as f64).floor() as usize).max(1));
    }
    // exclude_outside with nearest disagrees with the interpreter when the nearest
    // sample is outside the input: see `resize_nearest_exclude_outside` below.
    let exclude_outside = !matches!(mode, ResizeMode::Nearest(_)) && rng.bool();
    let r = Resize {
        mode,
        coord,
        scales,
        sizes,
        exclude_outside,
    };
    let mut b = B::new(format!("{r:?} x={shape:?}"));
    let x = rng.tensor(&shape);
    let x = b.input(x);
    let y = b.node(Op::Resize(r), &[x]);
    b.out(y);
    b.done(RTOL, ATOL)
}

#[test]
fn resize() {
    run_family("resize", 1000, resize_case);
}

/// Nearest up-sampling by 2 (YOLO's and U-Net's `Upsample`), rows of up to 40 values:
/// each input value written twice in a row, eight at a time, and the odd tail.
fn nearest_double_case(rng: &mut Rng) -> Case {
    let shape = vec![1, rng.range(1, 3), rng.range(1, 6), rng.range(1, 20)];
    let coord = rng.pick(&[
        CoordMode::Asymmetric,
        CoordMode::HalfPixel,
        CoordMode::PytorchHalfPixel,
    ]);
    let mode = ResizeMode::Nearest(rng.pick(&[NearestMode::Floor, NearestMode::RoundPreferFloor]));
    let scales = vec![1.0, 1.0, 2.0, 2.0];
    let sizes = shape
        .iter()
        .zip(&scales)
        .map(|(&d, &s)| (d as f64 * s) as usize)
        .collect();
    let r = Resize {
        mode,
        coord,
        scales,
        sizes,
        exclude_outside: false,
    };
    let mut b = B::new(format!("{r:?} x={shape:?}"));
    let x = rng.tensor(&shape);
    let x = b.input(x);
    let y = b.node(Op::Resize(r), &[x]);
    b.out(y);
    b.done(0.0, 0.0)
}

#[test]
fn resize_nearest_double() {
    run_family("resize_nearest_double", 200, nearest_double_case);
}

// ---------------------------------------------------------------------------------
// Data movement. Exact copies: any difference fails.

/// A shape big enough for copies to run as several tasks.
fn large_shape(rng: &mut Rng) -> Vec<usize> {
    vec![2, 3, rng.range(100, 130), rng.range(100, 110)]
}

fn transpose_case(rng: &mut Rng) -> Case {
    let shape = if chance(rng, 15) {
        large_shape(rng)
    } else {
        rand_shape(rng, 1, 5, 6)
    };
    let mut perm: Vec<usize> = (0..shape.len()).collect();
    shuffle(rng, &mut perm);
    let mut b = B::new(format!("transpose perm={perm:?} x={shape:?}"));
    let x = rng.tensor(&shape);
    let x = b.input(x);
    let (x, is_bool) = maybe_bool(&mut b, rng, x);
    b.desc += &format!(" bool={is_bool}");
    let y = b.node(Op::Transpose { perm }, &[x]);
    b.out(y);
    b.done(0.0, 0.0)
}

#[test]
fn transpose() {
    run_family("transpose", 400, transpose_case);
}

/// A channel shuffle of 1 to 8 groups, on plain tensors of any rank from 2 (any
/// dtype) or between reorders on blocked 4-D and 5-D ones (each group's channels in
/// whole blocks), sometimes large enough to split over every task.
fn channel_shuffle_case(rng: &mut Rng) -> Case {
    let groups = rng.range(1, 8);
    let rank = rng.range(2, 5);
    let blocked = rank >= 4 && chance(rng, 2);
    let per_group = if blocked {
        4 * rng.range(1, 4)
    } else {
        rng.range(1, 9)
    };
    let mut xs = vec![rng.range(1, 3), groups * per_group];
    for _ in 2..rank {
        xs.push(rng.range(1, [0, 0, 0, 19, 9, 5][rank]));
    }
    // Now and then an empty tensor: no positions.
    if rank > 2 && chance(rng, 25) {
        xs[2] = 0;
    }
    // Large: one image of one block a group, so that the tasks split the positions.
    if rank == 4 && chance(rng, 6) {
        xs = vec![
            1,
            groups * if blocked { 4 } else { 1 },
            rng.range(60, 90),
            rng.range(60, 90),
        ];
    }
    let mut b = B::new(format!(
        "channel_shuffle groups={groups} x={xs:?} blocked={blocked}"
    ));
    let x = rng.tensor(&xs);
    let x = b.input(x);
    let op = Op::ChannelShuffle { groups };
    let y = if blocked {
        let xb = b.reorder(x, BLOCKED);
        let y = b.blocked(op, &[xb]);
        b.reorder(y, Layout::Plain)
    } else {
        let (x, is_bool) = maybe_bool(&mut b, rng, x);
        b.desc += &format!(" bool={is_bool}");
        b.node(op, &[x])
    };
    b.out(y);
    b.done(0.0, 0.0)
}

#[test]
fn channel_shuffle() {
    run_family("channel_shuffle", 300, channel_shuffle_case);
}

fn slice_case(rng: &mut Rng) -> Case {
    let shape = rand_shape(rng, 1, 4, 8);
    let axes: Vec<SliceAxis> = shape
        .iter()
        .map(|&d| {
            if chance(rng, 4) {
                return SliceAxis {
                    start: 0,
                    step: 1,
                    len: d,
                };
            }
            let step = rng.pick(&[1isize, 1, 2, 3, -1, -1, -2, -3]);
            let start = rng.range(0, d - 1);
            // How many elements fit from `start` in the direction of `step`.
            let room = if step > 0 {
                (d - 1 - start) / step as usize + 1
            } else {
                start / step.unsigned_abs() + 1
            };
            let len = if chance(rng, 20) {
                0
            } else {
                rng.range(1, room)
            };
            SliceAxis { start, step, len }
        })
        .collect();
    let mut b = B::new(format!("slice {axes:?} x={shape:?}"));
    let x = rng.tensor(&shape);
    let x = b.input(x);
    let (x, is_bool) = maybe_bool(&mut b, rng, x);
    b.desc += &format!(" bool={is_bool}");
    let y = b.node(Op::Slice { axes }, &[x]);
    b.out(y);
    b.done(0.0, 0.0)
}

#[test]
fn slice() {
    run_family("slice", 600, slice_case);
}

fn concat_case(rng: &mut Rng) -> Case {
    let shape = if chance(rng, 15) {
        large_shape(rng)
    } else {
        rand_shape(rng, 1, 4, 6)
    };
    let axis = rng.range(0, shape.len() - 1);
    let n = rng.range(1, 4);
    let shapes: Vec<Vec<usize>> = (0..n)
        .map(|_| {
            let mut s = shape.clone();
            s[axis] = if chance(rng, 10) { 0 } else { rng.range(1, 5) };
            s
        })
        .collect();
    let consts: Vec<bool> = (0..n).map(|i| i > 0 && chance(rng, 3)).collect();
    let mut b = B::new(format!(
        "concat axis={axis} inputs={shapes:?} const={consts:?}"
    ));
    let to_bool = chance(rng, 4);
    b.desc += &format!(" bool={to_bool}");
    let zero = b.constant(Tensor::from_vec(vec![], vec![0f32]).unwrap());
    let ins: Vec<Value> = shapes
        .iter()
        .zip(&consts)
        .map(|(s, &k)| {
            let t = rng.tensor(s);
            let v = b.param(t, k);
            if to_bool {
                b.node(Op::Binary(Binary::Greater), &[v, zero])
            } else {
                v
            }
        })
        .collect();
    let y = b.node(Op::Concat { axis }, &ins);
    b.out(y);
    b.done(0.0, 0.0)
}

#[test]
fn concat() {
    run_family("concat", 400, concat_case);
}

fn split_case(rng: &mut Rng) -> Case {
    let mut shape = rand_shape(rng, 1, 4, 6);
    let axis = rng.range(0, shape.len() - 1);
    let parts = rng.range(1, 4);
    let sizes: Vec<usize> = (0..parts)
        .map(|_| if chance(rng, 5) { 0 } else { rng.range(1, 4) })
        .collect();
    shape[axis] = sizes.iter().sum();
    if shape[axis] == 0 {
        // Keep the input non-empty: the last part takes one row.
        shape[axis] = 1;
    }
    let mut sizes = sizes;
    let total: usize = sizes.iter().sum();
    *sizes.last_mut().unwrap() += shape[axis] - total;
    let op = Op::Split {
        axis,
        sizes: sizes.clone(),
    };
    let mut b = B::new(format!("{op:?} x={shape:?}"));
    let x = rng.tensor(&shape);
    let x = b.input(x);
    let (x, is_bool) = maybe_bool(&mut b, rng, x);
    b.desc += &format!(" bool={is_bool}");
    for v in b.multi(op, &[x], sizes.len()) {
        b.out(v);
    }
    b.done(0.0, 0.0)
}

#[test]
fn split() {
    run_family("split", 400, split_case);
}

fn pad_case(rng: &mut Rng) -> Case {
    let shape = if chance(rng, 15) {
        large_shape(rng)
    } else {
        rand_shape(rng, 1, 4, 6)
    };
    let mode = match rng.range(0, 2) {
        0 => PadMode::Constant(rng.pick(&[0.0, 1.5, -7.25])),
        1 => PadMode::Edge,
        _ => PadMode::Reflect,
    };
    let pads: Vec<(isize, isize)> = shape
        .iter()
        .map(|&d| {
            let d = d as isize;
            // Reflect pads stay below the axis length; negative pads crop but leave at
            // least one element.
            let hi = if mode == PadMode::Reflect { d - 1 } else { 3 };
            let mut side = || {
                if chance(rng, 4) {
                    -(rng.range(0, (d - 1) as usize) as isize)
                } else {
                    rng.range(0, hi as usize) as isize
                }
            };
            let (mut pb, mut pe) = (side(), side());
            while d + pb + pe < 1 {
                if pb < 0 {
                    pb += 1;
                } else {
                    pe += 1;
                }
            }
            (pb, pe)
        })
        .collect();
    let mut b = B::new(format!("pad {mode:?} pads={pads:?} x={shape:?}"));
    let x = rng.tensor(&shape);
    let x = b.input(x);
    // Constant padding is for f32 data only.
    let (x, is_bool) = if matches!(mode, PadMode::Constant(_)) {
        (x, false)
    } else {
        maybe_bool(&mut b, rng, x)
    };
    b.desc += &format!(" bool={is_bool}");
    let y = b.node(Op::Pad { pads, mode }, &[x]);
    b.out(y);
    b.done(0.0, 0.0)
}

#[test]
fn pad() {
    run_family("pad", 600, pad_case);
}

fn tile_case(rng: &mut Rng) -> Case {
    let shape = rand_shape(rng, 1, 4, 5);
    let repeats: Vec<usize> = shape
        .iter()
        .map(|_| if chance(rng, 25) { 0 } else { rng.range(1, 3) })
        .collect();
    let mut b = B::new(format!("tile repeats={repeats:?} x={shape:?}"));
    let x = rng.tensor(&shape);
    let x = b.input(x);
    let (x, is_bool) = maybe_bool(&mut b, rng, x);
    b.desc += &format!(" bool={is_bool}");
    let y = b.node(Op::Tile { repeats }, &[x]);
    b.out(y);
    b.done(0.0, 0.0)
}

#[test]
fn tile() {
    run_family("tile", 300, tile_case);
}

fn expand_case(rng: &mut Rng) -> Case {
    let out = rand_shape(rng, 0, 4, 5);
    let xs = bcast_operand(rng, &out);
    // The target may itself have 1s where the input has a larger dim (numpy both ways).
    let off = out.len() - xs.len();
    let target: Vec<usize> = out
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            if i >= off && xs[i - off] == d && chance(rng, 3) {
                1
            } else {
                d
            }
        })
        .collect();
    // A shorter target broadcasts too.
    let target = if chance(rng, 4) {
        target[rng.range(0, target.len())..].to_vec()
    } else {
        target
    };
    let mut b = B::new(format!("expand shape={target:?} x={xs:?}"));
    let x = rng.tensor(&xs);
    let x = b.input(x);
    let (x, is_bool) = maybe_bool(&mut b, rng, x);
    b.desc += &format!(" bool={is_bool}");
    let y = b.node(Op::Expand { shape: target }, &[x]);
    b.out(y);
    b.done(0.0, 0.0)
}

#[test]
fn expand() {
    run_family("expand", 400, expand_case);
}

fn depth_space_case(rng: &mut Rng) -> Case {
    let block = rng.range(1, 3);
    let mode = if rng.bool() {
        DepthToSpaceMode::Dcr
    } else {
        DepthToSpaceMode::Crd
    };
    let (n, c, h, w) = (
        rng.range(1, 2),
        rng.range(1, 4),
        rng.range(1, 5),
        rng.range(1, 5),
    );
    let to_space = rng.bool();
    let (xs, op) = if to_space {
        (
            vec![n, c * block * block, h, w],
            Op::DepthToSpace { block, mode },
        )
    } else {
        (
            vec![n, c, h * block, w * block],
            Op::SpaceToDepth { block, mode },
        )
    };
    let mut b = B::new(format!("{op:?} x={xs:?}"));
    let x = rng.tensor(&xs);
    let x = b.input(x);
    let (x, is_bool) = maybe_bool(&mut b, rng, x);
    b.desc += &format!(" bool={is_bool}");
    let y = b.node(op, &[x]);
    b.out(y);
    b.done(0.0, 0.0)
}

#[test]
fn depth_space() {
    run_family("depth_space", 300, depth_space_case);
}

fn gather_case(rng: &mut Rng) -> Case {
    let shape = rand_shape(rng, 1, 4, 6);
    let axis = rng.range(0, shape.len() - 1);
    let d = shape[axis] as i64;
    let is = rand_shape(rng, 0, 2, 4);
    let n: usize = is.iter().product();
    let idx: Vec<i64> = (0..n)
        .map(|_| rng.range(0, 2 * d as usize - 1) as i64 - d)
        .collect();
    let i64_indices = rng.bool();
    let mut b = B::new(format!(
        "gather axis={axis} x={shape:?} indices={is:?} {idx:?} i64={i64_indices}"
    ));
    let x = rng.tensor(&shape);
    let x = b.input(x);
    let (x, is_bool) = maybe_bool(&mut b, rng, x);
    b.desc += &format!(" bool={is_bool}");
    let t = if i64_indices {
        Tensor::from_vec(is, idx).unwrap()
    } else {
        Tensor::from_vec(is, idx.iter().map(|&i| i as i32).collect::<Vec<i32>>()).unwrap()
    };
    let i = b.constant(t);
    let y = b.node(Op::Gather { axis }, &[x, i]);
    b.out(y);
    b.done(0.0, 0.0)
}

#[test]
fn gather() {
    run_family("gather", 400, gather_case);
}

/// Views (Reshape, Identity) as graph outputs, as intermediates, of inputs and of
/// constants, and one value as several outputs.
fn reshape_identity_case(rng: &mut Rng) -> Case {
    let shape = rand_shape(rng, 1, 4, 6);
    let n: usize = shape.iter().product();
    let s1 = factor_shape(rng, n);
    let s2 = factor_shape(rng, n);
    let variant = rng.range(0, 4);
    let mut b = B::new(format!(
        "views variant={variant} x={shape:?} -> {s1:?}, {s2:?}"
    ));
    let t = rng.tensor(&shape);
    let x = b.input(t);
    match variant {
        0 => {
            let r = b.node(Op::Reshape { shape: s1 }, &[x]);
            b.out(r);
        }
        1 => {
            let r = b.node(Op::Unary(Unary::Relu), &[x]);
            let v = b.node(Op::Reshape { shape: s1 }, &[r]);
            let i = b.node(Op::Identity, &[r]);
            b.out(v);
            b.out(i);
            b.out(r);
        }
        2 => {
            let v = b.node(Op::Reshape { shape: s1 }, &[x]);
            let neg = b.node(Op::Unary(Unary::Neg), &[v]);
            let back = b.node(Op::Reshape { shape: s2 }, &[neg]);
            let i1 = b.node(Op::Identity, &[x]);
            let i2 = b.node(Op::Identity, &[i1]);
            b.out(back);
            b.out(i2);
        }
        3 => {
            let i = b.node(Op::Identity, &[x]);
            b.out(i);
            b.out(i);
            b.out(x);
        }
        _ => {
            let t = rng.tensor(&shape);
            let c = b.constant(t);
            let i = b.node(Op::Identity, &[c]);
            let r = b.node(Op::Reshape { shape: s1 }, &[c]);
            let sum = b.node(Op::Binary(Binary::Add), &[x, i]);
            b.out(i);
            b.out(r);
            b.out(sum);
        }
    }
    b.done(0.0, 0.0)
}

#[test]
fn reshape_identity() {
    run_family("reshape_identity", 300, reshape_identity_case);
}

/// Nearest-neighbour resize with `exclude_outside`: where the nearest sample lies
/// outside the input (Floor of a negative source coordinate), the interpreter gives
/// the sample weight 0 and outputs 0, while the kernel reads the clamped edge element.
/// Found by the `resize` family (seed 1779930947719803335) while it still drew
/// exclude_outside for every mode.
#[test]
fn resize_nearest_exclude_outside() {
    let r = Resize {
        mode: ResizeMode::Nearest(NearestMode::Floor),
        coord: CoordMode::HalfPixel,
        scales: vec![1.7],
        sizes: vec![8],
        exclude_outside: true,
    };
    let mut b = B::new(format!("{r:?} x=[5]"));
    let x = b.input(Tensor::from_vec(vec![5], vec![1f32, 2.0, 3.0, 4.0, 5.0]).unwrap());
    let y = b.node(Op::Resize(r), &[x]);
    b.out(y);
    let case = b.done(0.0, 0.0);
    // Output 0 has source coordinate 0.5 / 1.7 - 0.5 = -0.206: Floor picks index -1.
    // The interpreter gives [0, 1, 1, 2, 3, 3, 4, 4]; the kernel [1, 1, 1, 2, 3, 3, 4, 4].
    check(&case.graph, &case.inputs, 0.0, 0.0).unwrap_or_else(|e| panic!("{}: {e}", case.desc));
}

/// InstanceNorm of a plane with (near) zero variance and a mean far from zero: the
/// kernel computes `x * k + (bias - mean * k)` with `k = scale / sqrt(var + eps)`, so
/// the result carries the rounding error of `mean * k` (an ulp of ~2500 here, 2.4e-4),
/// while the interpreter computes `(x - mean) * k + bias` = bias exactly. Found by the
/// `instance_norm` family (seed 7173463716209360471, x=[2, 11, 1] with offset 3).
#[test]
fn instance_norm_constant_plane() {
    let mut b = B::new("instance_norm eps=1e-5 x=[1, 2, 1]".into());
    let x = b.input(Tensor::from_vec(vec![1, 2, 1], vec![3.9f32, -3.3]).unwrap());
    let s = b.constant(Tensor::from_vec(vec![2], vec![2f32, -2.0]).unwrap());
    let bias = b.constant(Tensor::from_vec(vec![2], vec![0.1f32, 0.1]).unwrap());
    let y = b.node(Op::InstanceNorm { epsilon: 1e-5 }, &[x, s, bias]);
    b.out(y);
    let case = b.done(RTOL, ATOL);
    // Every plane has one element, so the output is the bias: [0.1, 0.1]. The kernel
    // gives about [0.1002068, 0.1001652] (k = 2 / sqrt(1e-5) = 632.5, mean * k = 2467).
    check(&case.graph, &case.inputs, RTOL, ATOL).unwrap_or_else(|e| panic!("{}: {e}", case.desc));
}

/// Dropping a JIT-compiled model does not give its code memory back: the JIT module is
/// dropped without `free_memory`, so cranelift-jit leaks the arena (1 GiB of address
/// space reserved per model, and its mappings). A process that compiles many models
/// runs out of mappings (two per model; vm.max_map_count is 65530 by default):
/// `KERNELS_SCALE=10` over all families in one process aborts with "failed to set up
/// alternative stack guard page: Cannot allocate memory".
#[cfg(target_os = "linux")]
#[test]
fn jit_code_memory_is_freed() {
    let maps = || {
        std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .count()
    };
    let mut b = B::new("relu".into());
    let x = b.input(Tensor::from_vec(vec![4], vec![1f32, -2.0, 3.0, -4.0]).unwrap());
    let y = b.node(Op::Unary(Unary::Relu), &[x]);
    b.out(y);
    let case = b.done(0.0, 0.0);
    // Warm up (thread-local state, allocator arenas), then count.
    drop(common::compile(&case.graph));
    let before = maps();
    for _ in 0..200 {
        drop(common::compile(&case.graph));
    }
    let after = maps();
    assert!(
        after < before + 50,
        "200 compiled and dropped models left {} more mappings ({before} -> {after})",
        after - before
    );
}

/// Runs each graph built by `cases` through `check` and panics listing every failure.
fn check_all(cases: Vec<Case>) {
    let errors: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            check(&c.graph, &c.inputs, c.rtol, c.atol)
                .err()
                .map(|e| format!("{}: {e}", c.desc))
        })
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// The inline `log` does not keep NaN: it decodes the NaN's bits as 0.75 * 2^129 and
/// returns about 89.13. Seen by the `softmax` family as log-softmax of a row holding
/// +inf (the sum of exponentials is NaN): the other elements come out -inf instead
/// of NaN. The same `log` feeds the general Pow (exp(y log|x|)) and LRN. Kernel
/// outputs: log-softmax [-inf, NaN, -inf], pow [inf, 0, inf], lrn [NaN, 9.3e-30];
/// the interpreter gives NaN for all of them.
#[test]
fn log_keeps_nan() {
    let mut cases = Vec::new();
    // log-softmax of [1, inf, 2]: the interpreter gives NaN everywhere.
    let mut b = B::new("log_softmax axis=0 x=[1, inf, 2]".into());
    let x = b.input(Tensor::from_vec(vec![3], vec![1f32, f32::INFINITY, 2.0]).unwrap());
    let y = b.node(Op::Softmax { axis: 0, log: true }, &[x]);
    b.out(y);
    cases.push(b.done(RTOL, ATOL));
    // pow(NaN, y) for a run-time exponent: NaN for every y but 0.
    let mut b = B::new("pow x=[NaN, NaN, NaN] y=[2.5, -1.5, 3]".into());
    let x = b.input(Tensor::from_vec(vec![3], vec![f32::NAN; 3]).unwrap());
    let e = b.input(Tensor::from_vec(vec![3], vec![2.5f32, -1.5, 3.0]).unwrap());
    let y = b.node(Op::Binary(Binary::Pow), &[x, e]);
    b.out(y);
    cases.push(b.done(1e-4, ATOL));
    // LRN over channels [NaN, 1]: channel 1's window holds the NaN.
    let mut b = B::new("lrn size=3 x=[1, 2, 1] = [NaN, 1]".into());
    let x = b.input(Tensor::from_vec(vec![1, 2, 1], vec![f32::NAN, 1.0]).unwrap());
    let l = Lrn {
        size: 3,
        alpha: 1e-4,
        beta: 0.75,
        bias: 1.0,
    };
    let y = b.node(Op::Lrn(l), &[x]);
    b.out(y);
    cases.push(b.done(RTOL, ATOL));
    check_all(cases);
}

/// erf reaches ±1 exactly where float32 rounds it there (it once stopped at
/// -0.99999988), and gelu keeps its relative accuracy in the negative tail (it once
/// computed 1 + erf, which cancels: 0.9% off at -4.5, -1.8e-6 instead of -0 at -30).
#[test]
fn erf_saturates() {
    let mut cases = Vec::new();
    for u in [Unary::Erf, Unary::Gelu { tanh: false }] {
        let mut b = B::new(format!("{u:?} x=[-4.5, -30, -inf]"));
        let x =
            b.input(Tensor::from_vec(vec![3], vec![-4.5f32, -30.0, f32::NEG_INFINITY]).unwrap());
        let y = b.node(Op::Unary(u), &[x]);
        b.out(y);
        // About ten float32 ulps relative (erfc's error times x), and subnormal noise.
        cases.push(b.done(2e-6, 1e-30));
    }
    check_all(cases);
}

/// Gemm with beta = 0 never reads C (the BLAS convention), while the interpreter
/// computes `beta * C` as written: a NaN or infinite element of C gives NaN there
/// (0 * inf) and the kernel's plain product. Found by the `gemm` family with
/// non-finite inputs (e.g. seed 1445488724231070409).
#[test]
fn gemm_beta_zero() {
    let g = Gemm {
        alpha: 1.0,
        beta: 0.0,
        trans_a: false,
        trans_b: false,
        epilogue: Default::default(),
    };
    let mut b = B::new(format!("{g:?} a=[1, 1] b=[1, 2] c=[inf, NaN]"));
    let a = b.input(Tensor::from_vec(vec![1, 1], vec![2f32]).unwrap());
    let bm = b.input(Tensor::from_vec(vec![1, 2], vec![3f32, 4.0]).unwrap());
    let c = b.input(Tensor::from_vec(vec![2], vec![f32::INFINITY, f32::NAN]).unwrap());
    let y = b.node(Op::Gemm(g), &[a, bm, c]);
    b.out(y);
    // The interpreter: [NaN, NaN]; the kernel: [6, 8].
    check_all(vec![b.done(0.0, 0.0)]);
}

/// The matrix-vector kernel sums every row in the same order, whichever of its loops
/// takes the row (two groups side by side, a group alone, the last rows): rows alike
/// give outputs alike to the bit. AlexNet's conformance data needs it: logits near
/// 4e12 (ulps of 2.6e5) all equal, whose softmax any difference would skew.
#[test]
fn gemv_rows_alike_give_outputs_alike() {
    let mut rng = Rng(5);
    // 257 groups of four rows and three more; 8 * 65 + 3 columns (a tail of three).
    let (n, k) = (4 * 257 + 3, 523);
    let row = rng.tensor(&[k]);
    let row = row.view::<f32>().unwrap().to_vec();
    let bm: Vec<f32> = (0..n).flat_map(|_| row.iter().copied()).collect();
    let g = Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b: true,
        epilogue: Default::default(),
    };
    let mut b = B::new(format!("{g:?} n={n} k={k}, equal rows"));
    let a = b.input(rng.tensor(&[1, k]));
    let bm = b.constant(Tensor::from_vec(vec![n, k], bm).unwrap());
    let y = b.node(Op::Gemm(g), &[a, bm]);
    b.out(y);
    let case = b.done(RTOL, ATOL);
    let (info, exe) = common::compile(&case.graph);
    let y = &common::run(&info, &exe, &case.inputs, None)[0];
    let y = y.view::<f32>().unwrap();
    let unlike: Vec<usize> = (0..n)
        .filter(|&j| y[j].to_bits() != y[0].to_bits())
        .collect();
    assert!(unlike.is_empty(), "rows {unlike:?} differ from row 0");
}

/// A 1x1 convolution with padding only at the end has more output pixels than input
/// pixels: it is no pointwise product over the input as it lies. Found by the
/// `fused_products` family (seed 8407464158642665049).
#[test]
fn one_by_one_conv_with_end_padding() {
    let attrs = Conv {
        kernel: vec![1, 1],
        strides: vec![1, 1],
        dilations: vec![2, 2],
        pads: vec![(0, 1), (0, 1)],
        groups: 1,
        epilogue: Default::default(),
    };
    let mut rng = Rng(8407464158642665049);
    let mut b = B::new(format!("{attrs:?} x=[1, 1, 4, 7] w=[5, 1, 1, 1]"));
    let x = b.input(rng.tensor(&[1, 1, 4, 7]));
    let w = b.constant(rng.tensor(&[5, 1, 1, 1]));
    let y = b.node(Op::Conv(attrs), &[x, w]);
    b.out(y);
    check_all(vec![b.done(RTOL, ATOL)]);
}
