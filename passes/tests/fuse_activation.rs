//! fuse_activation: an activation whose input comes from a convolution or matrix product
//! that nothing else reads becomes that producer's epilogue: the fusable unary ops as
//! themselves, `x * sigmoid(x)` as SiLU, PRelu with a constant per-channel slope (into
//! convolutions only); ReLU, Clip and LeakyRelu into a ScaleShift. The tests show each
//! producer kind and activation, activations after a fused residual, and the cases
//! that must stay separate.

mod common;

use cnnc_ir::op::{Activation, Binary, Gemm, PoolKind, Unary};
use cnnc_ir::{Graph, Op, Value};
use common::*;

const PASS: &str = "fuse_activation";

fn unary(g: &mut Graph, name: &str, u: Unary, x: Value) -> Value {
    g.add(name, Op::Unary(u), &[x]).unwrap()
}

/// `x * sigmoid(x)`, the sigmoid on the left when `sigmoid_first`.
fn silu(g: &mut Graph, name: &str, x: Value, sigmoid_first: bool) -> Value {
    let s = unary(g, &format!("{name}.sigmoid"), Unary::Sigmoid, x);
    let ins = if sigmoid_first { [s, x] } else { [x, s] };
    g.add(name, Op::Binary(Binary::Mul), &ins).unwrap()
}

fn gemm() -> Op {
    Op::Gemm(Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b: false,
        epilogue: Default::default(),
    })
}

#[test]
fn relu_clip_and_leaky_relu_after_convs() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 3, 5, 5]);
    let y = add_conv(&mut g, "conv", x, 6, Op::Conv(conv2d(3, 2, 1, 1)), true);
    let y = unary(&mut g, "relu", Unary::Relu, y);
    let y = add_conv(
        &mut g,
        "dw",
        y,
        6,
        Op::DepthwiseConv(conv2d(3, 1, 1, 6)),
        false,
    );
    let y = unary(&mut g, "relu6", Unary::Clip { min: 0.0, max: 6.0 }, y);
    let y = add_conv(&mut g, "pw", y, 5, Op::Conv(conv2d(1, 1, 0, 1)), true);
    let y = unary(&mut g, "leaky", Unary::LeakyRelu { alpha: 0.1 }, y);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("relu_clip_and_leaky_relu_after_convs", r.text());
    assert_eq!((r.changes, r.after.node_count()), (3, 10));
}

#[test]
fn cheap_activations_into_scale_shift_costly_ones_stay() {
    // DenseNet's batch normalizations after a concatenation, each before a ReLU.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 4, 3, 3]);
    let mut outs = Vec::new();
    let acts = [
        Unary::Relu,
        Unary::Clip { min: 0.0, max: 6.0 },
        Unary::LeakyRelu { alpha: 0.1 },
        Unary::Sigmoid,
    ];
    for (i, u) in acts.into_iter().enumerate() {
        let scale = random_const(&mut g, &format!("scale{i}"), &[4]);
        let shift = random_const(&mut g, &format!("shift{i}"), &[4]);
        let s = g
            .add(
                format!("bn{i}"),
                Op::ScaleShift(Default::default()),
                &[x, scale, shift],
            )
            .unwrap();
        outs.push(unary(&mut g, &format!("act{i}"), u, s));
    }
    for (i, y) in outs.into_iter().enumerate() {
        g.add_output(format!("y{i}"), y);
    }
    let r = rewrite(PASS, g);
    insta::assert_snapshot!(
        "cheap_activations_into_scale_shift_costly_ones_stay",
        r.text()
    );
    assert_eq!((r.changes, r.count("sigmoid")), (3, 1));
}

#[test]
fn silu_in_both_operand_orders() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[2, 2, 3, 3]);
    let y = add_conv(&mut g, "a", x, 3, Op::Conv(conv2d(3, 1, 1, 1)), true);
    let y = silu(&mut g, "a.silu", y, false);
    let y = add_conv(&mut g, "b", y, 3, Op::Conv(conv2d(1, 1, 0, 1)), false);
    let y = silu(&mut g, "b.silu", y, true);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("silu_in_both_operand_orders", r.text());
    assert_eq!((r.changes, r.count("sigmoid"), r.count("mul")), (2, 0, 0));
}

#[test]
fn matrix_products_and_conv_transpose() {
    let mut g = Graph::new();
    let a = input(&mut g, "a", &[3, 4]);
    let w = random_const(&mut g, "fc.w", &[4, 5]);
    let fc = g.add("fc", gemm(), &[a, w]).unwrap();
    let fc = unary(
        &mut g,
        "fc.act",
        Unary::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
        fc,
    );
    g.add_output("fc", fc);
    let b = input(&mut g, "b", &[2, 3, 4]);
    let m = random_const(&mut g, "mm.w", &[4, 2]);
    let mm = Op::MatMul {
        bias: false,
        epilogue: Default::default(),
    };
    let mm = g.add("mm", mm, &[b, m]).unwrap();
    let mm = unary(&mut g, "mm.act", Unary::Gelu { tanh: true }, mm);
    g.add_output("mm", mm);
    let x = input(&mut g, "x", &[1, 2, 2, 2]);
    let dw = random_const(&mut g, "deconv.w", &[2, 3, 3, 3]);
    let deconv = Op::ConvTranspose(cnnc_ir::op::ConvTranspose {
        kernel: vec![3, 3],
        strides: vec![2, 2],
        dilations: vec![1, 1],
        pads: vec![(1, 1), (1, 1)],
        output_padding: vec![1, 1],
        groups: 1,
        epilogue: Default::default(),
    });
    let d = g.add("deconv", deconv, &[x, dw]).unwrap();
    let d = unary(&mut g, "deconv.act", Unary::HardSwish, d);
    g.add_output("deconv", d);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("matrix_products_and_conv_transpose", r.text());
    assert_eq!(r.changes, 3);
}

#[test]
fn per_channel_prelu_into_conv() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 2, 3, 3]);
    let y = add_conv(&mut g, "conv", x, 3, Op::Conv(conv2d(3, 1, 1, 1)), true);
    let slope = g.add_const("slope", tensor(&[3, 1, 1], vec![0.25, -0.5, 2.0]));
    let y = g
        .add("prelu", Op::Binary(Binary::PRelu), &[y, slope])
        .unwrap();
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("per_channel_prelu_into_conv", r.text());
    assert_eq!((r.changes, r.count("prelu")), (1, 0));
}

#[test]
fn relu_after_fused_residual() {
    // Relu(Add(conv, x)) after fuse_residual: one convolution does all three.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 3, 3, 3]);
    let y = add_conv(&mut g, "conv", x, 3, Op::Conv(conv2d(3, 1, 1, 1)), true);
    let y = g.add("add", Op::Binary(Binary::Add), &[y, x]).unwrap();
    let y = unary(&mut g, "relu", Unary::Relu, y);
    g.add_output("y", y);
    apply("fuse_residual", &mut g);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("relu_after_fused_residual", r.text());
    assert_eq!((r.changes, r.after.node_count()), (1, 4));
}

#[test]
fn activations_that_stay() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 2, 3, 3]);
    // The conv is also a graph output.
    let a = add_conv(&mut g, "a", x, 2, Op::Conv(conv2d(1, 1, 0, 1)), true);
    let a_relu = unary(&mut g, "a.relu", Unary::Relu, a);
    g.add_output("a", a);
    g.add_output("a_relu", a_relu);
    // The conv is read by the activation and another node.
    let b = add_conv(&mut g, "b", x, 2, Op::Conv(conv2d(1, 1, 0, 1)), true);
    let b_tanh = unary(&mut g, "b.tanh", Unary::Tanh, b);
    let b_sum = g
        .add("b.sum", Op::Binary(Binary::Add), &[b, b_tanh])
        .unwrap();
    g.add_output("b_sum", b_sum);
    // x * sigmoid(x) whose sigmoid is read elsewhere too.
    let c = add_conv(&mut g, "c", x, 2, Op::Conv(conv2d(1, 1, 0, 1)), true);
    let c_sig = unary(&mut g, "c.sigmoid", Unary::Sigmoid, c);
    let c_mul = g
        .add("c.mul", Op::Binary(Binary::Mul), &[c, c_sig])
        .unwrap();
    g.add_output("c_mul", c_mul);
    g.add_output("c_gate", c_sig);
    // Not activations the epilogue has.
    let d = add_conv(&mut g, "d", x, 2, Op::Conv(conv2d(1, 1, 0, 1)), true);
    let d = unary(&mut g, "d.exp", Unary::Exp, d);
    g.add_output("d_exp", d);
    let e = add_conv(&mut g, "e", x, 2, Op::Conv(conv2d(1, 1, 0, 1)), true);
    let e = unary(&mut g, "e.abs", Unary::Abs, e);
    g.add_output("e_abs", e);
    // The conv already has an activation.
    let mut relu_conv = conv2d(1, 1, 0, 1);
    relu_conv.epilogue.activation = Some(Activation::Unary(Unary::Relu));
    let f = add_conv(&mut g, "f", x, 2, Op::Conv(relu_conv), true);
    let f = unary(&mut g, "f.sigmoid", Unary::Sigmoid, f);
    g.add_output("f_sigmoid", f);
    // A producer without an epilogue.
    let p = g.add("p", Op::GlobalPool(PoolKind::Max), &[x]).unwrap();
    let p = unary(&mut g, "p.relu", Unary::Relu, p);
    g.add_output("p_relu", p);
    rewrite(PASS, g).assert_unchanged();
}

#[test]
fn prelu_that_stays() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 2, 3, 3]);
    // A run-time slope.
    let s = input(&mut g, "s", &[2, 1, 1]);
    let a = add_conv(&mut g, "a", x, 2, Op::Conv(conv2d(1, 1, 0, 1)), true);
    let a = g
        .add("a.prelu", Op::Binary(Binary::PRelu), &[a, s])
        .unwrap();
    g.add_output("a", a);
    // One slope for all channels.
    let one = g.add_const("one", tensor(&[1], vec![0.1]));
    let b = add_conv(&mut g, "b", x, 2, Op::Conv(conv2d(1, 1, 0, 1)), true);
    let b = g
        .add("b.prelu", Op::Binary(Binary::PRelu), &[b, one])
        .unwrap();
    g.add_output("b", b);
    // Into a Gemm: PRelu is fused into convolutions only.
    let v = input(&mut g, "v", &[3, 2]);
    let w = random_const(&mut g, "fc.w", &[2, 2]);
    let fc = g.add("fc", gemm(), &[v, w]).unwrap();
    let slope = g.add_const("fc.slope", tensor(&[2], vec![0.1, 0.2]));
    let fc = g
        .add("fc.prelu", Op::Binary(Binary::PRelu), &[fc, slope])
        .unwrap();
    g.add_output("fc", fc);
    rewrite(PASS, g).assert_unchanged();
}

#[test]
fn prelu_slope_along_width_stays() {
    // slope [3] against [1,3,2,3] varies along the last axis (W = 3 = C). The epilogue
    // slope means one value per output channel (code generation reads it so), so this
    // PRelu must stay a separate node.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 2, 2, 3]);
    let y = add_conv(&mut g, "conv", x, 3, Op::Conv(conv2d(1, 1, 0, 1)), true);
    let slope = g.add_const("slope", tensor(&[3], vec![0.25, -0.5, 2.0]));
    let y = g
        .add("prelu", Op::Binary(Binary::PRelu), &[y, slope])
        .unwrap();
    g.add_output("y", y);
    rewrite(PASS, g).assert_unchanged();
}

#[test]
fn mobilenet_v2_relu6_as_clip() {
    let g = cut("bench-models/mobilenet_v2")
        .input(
            "/features/features.2/conv/conv.2/Conv_output_0",
            &[1, 24, 5, 5],
        )
        .strip("/features/")
        .outputs(&["/features/features.3/Add_output_0"]);
    let r = rewrite_prepared(PASS, g);
    insta::assert_snapshot!("mobilenet_v2_relu6_as_clip", r.text());
    assert_eq!((r.changes, r.count("clip")), (2, 0));
}

#[test]
fn efficientnet_b0_silu() {
    // MBConv features.2.1: SiLU after the expand and depthwise convs and inside the
    // squeeze-excite branch; the gate's Sigmoid fuses as itself.
    let g = cut("bench-models/efficientnet_b0")
        .input(
            "/features/features.2/features.2.0/block/block.3/block.3.0/Conv_output_0",
            &[1, 24, 5, 5],
        )
        .strip("/features/features.2/")
        .outputs(&["/features/features.2/features.2.1/Add_output_0"]);
    let r = rewrite_prepared(PASS, g);
    insta::assert_snapshot!("efficientnet_b0_silu", r.text());
    assert_eq!((r.changes, r.count("sigmoid")), (4, 0));
}

#[test]
fn squeezenet_fire_module() {
    // fire2: squeeze 1x1 + Relu, expand 1x1 and 3x3 each + Relu, concat.
    let g = cut("onnx-conformance/models/squeezenet_random")
        .input("r2", &[1, 64, 5, 5])
        .strip("fire2/")
        .outputs(&["r9"]);
    let r = rewrite_prepared(PASS, g);
    insta::assert_snapshot!("squeezenet_fire_module", r.text());
    assert_eq!((r.changes, r.count("relu")), (3, 0));
}
