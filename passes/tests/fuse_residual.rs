//! fuse_residual: `Add(y, r)` where `y` comes from a convolution or matrix product that
//! nothing else reads, and `r` has the output's type, becomes that producer with a
//! residual epilogue (a missing bias made explicit as zeros). The tests show every
//! producer kind, both operand orders, and the adds that must stay: shared producers,
//! broadcasting residuals, producers that already have an epilogue.

mod common;

use cnnc_ir::op::{Binary, ConvTranspose, Gemm};
use cnnc_ir::{Graph, Op, Value};
use common::*;

const PASS: &str = "fuse_residual";

fn add(g: &mut Graph, name: &str, a: Value, b: Value) -> Value {
    g.add(name, Op::Binary(Binary::Add), &[a, b]).unwrap()
}

#[test]
fn conv_plus_skip_connection() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 3, 4, 4]);
    let y = add_conv(&mut g, "conv", x, 3, Op::Conv(conv2d(3, 1, 1, 1)), true);
    let y = add(&mut g, "add", y, x);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("conv_plus_skip_connection", r.text());
    assert_eq!((r.changes, r.count("add")), (1, 0));
}

#[test]
fn skip_first_and_conv_without_bias_batch_two() {
    // Add(r, conv): the residual on the left; the conv gets an explicit zero bias.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[2, 6, 3, 3]);
    let r = input(&mut g, "r", &[2, 5, 2, 2]);
    let y = add_conv(&mut g, "conv", x, 5, Op::Conv(conv2d(2, 1, 0, 1)), false);
    let y = add(&mut g, "add", r, y);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("skip_first_and_conv_without_bias_batch_two", r.text());
    assert_eq!((r.changes, r.count("add")), (1, 0));
}

#[test]
fn matrix_products_and_conv_transpose() {
    let mut g = Graph::new();
    let a = input(&mut g, "a", &[3, 4]);
    let w = random_const(&mut g, "fc.w", &[5, 4]);
    let gemm = Op::Gemm(Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b: true,
        epilogue: Default::default(),
    });
    let fc = g.add("fc", gemm, &[a, w]).unwrap();
    let skip = input(&mut g, "skip", &[3, 5]);
    let fc = add(&mut g, "fc_add", fc, skip);
    g.add_output("fc", fc);

    let b = input(&mut g, "b", &[2, 4, 3]);
    let bt = g
        .add(
            "bt",
            Op::Transpose {
                perm: vec![0, 2, 1],
            },
            &[b],
        )
        .unwrap();
    let mm = g
        .add(
            "mm",
            Op::MatMul {
                bias: false,
                epilogue: Default::default(),
            },
            &[b, bt],
        )
        .unwrap();
    let c = random_const(&mut g, "mm.skip", &[2, 4, 4]);
    let mm = add(&mut g, "mm_add", c, mm);
    g.add_output("mm", mm);

    let x = input(&mut g, "x", &[1, 2, 3, 3]);
    let dw = random_const(&mut g, "deconv.w", &[2, 3, 2, 2]);
    let deconv = Op::ConvTranspose(ConvTranspose {
        kernel: vec![2, 2],
        strides: vec![2, 2],
        dilations: vec![1, 1],
        pads: vec![(0, 0), (0, 0)],
        output_padding: vec![0, 0],
        groups: 1,
        epilogue: Default::default(),
    });
    let d = g.add("deconv", deconv, &[x, dw]).unwrap();
    let up = input(&mut g, "up", &[1, 3, 6, 6]);
    let d = add(&mut g, "deconv_add", d, up);
    g.add_output("deconv", d);

    let r = rewrite(PASS, g);
    insta::assert_snapshot!("matrix_products_and_conv_transpose", r.text());
    assert_eq!((r.changes, r.count("add")), (3, 0));
}

#[test]
fn add_of_two_convs_fuses_into_the_first() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 2, 3, 3]);
    let a = add_conv(&mut g, "a", x, 4, Op::Conv(conv2d(1, 1, 0, 1)), true);
    let b = add_conv(&mut g, "b", x, 4, Op::Conv(conv2d(3, 1, 1, 1)), true);
    let y = add(&mut g, "add", a, b);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("add_of_two_convs_fuses_into_the_first", r.text());
    assert_eq!((r.changes, r.count("conv")), (1, 2));
}

#[test]
fn second_add_stays_when_the_epilogue_is_taken() {
    // (conv + r1) + r2: the conv takes r1; it cannot take r2 as well.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 2, 2, 2]);
    let r1 = input(&mut g, "r1", &[1, 2, 2, 2]);
    let r2 = input(&mut g, "r2", &[1, 2, 2, 2]);
    let y = add_conv(&mut g, "conv", x, 2, Op::Conv(conv2d(1, 1, 0, 1)), true);
    let y = add(&mut g, "add1", y, r1);
    let y = add(&mut g, "add2", y, r2);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("second_add_stays_when_the_epilogue_is_taken", r.text());
    assert_eq!((r.changes, r.count("add")), (1, 1));
}

#[test]
fn adds_that_stay() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 3, 2, 2]);
    // The conv is read by the add and by a graph output.
    let a = add_conv(&mut g, "a", x, 3, Op::Conv(conv2d(1, 1, 0, 1)), true);
    let a_sum = add(&mut g, "a_sum", a, x);
    g.add_output("a", a);
    g.add_output("a_sum", a_sum);
    // A bias-like [1,C,1,1] operand broadcasts: it is no residual.
    let b = add_conv(&mut g, "b", x, 3, Op::Conv(conv2d(1, 1, 0, 1)), true);
    let bias = random_const(&mut g, "bias", &[1, 3, 1, 1]);
    let b_sum = add(&mut g, "b_sum", b, bias);
    g.add_output("b_sum", b_sum);
    // conv + conv of the same value.
    let c = add_conv(&mut g, "c", x, 3, Op::Conv(conv2d(1, 1, 0, 1)), true);
    let c_sum = add(&mut g, "c_sum", c, c);
    g.add_output("c_sum", c_sum);
    // The conv is read twice, by two adds.
    let d = add_conv(&mut g, "d", x, 3, Op::Conv(conv2d(1, 1, 0, 1)), true);
    let d1 = add(&mut g, "d1", d, x);
    let d2 = add(&mut g, "d2", x, d);
    let d_sum = g.add("d_sum", Op::Binary(Binary::Mul), &[d1, d2]).unwrap();
    g.add_output("d_sum", d_sum);
    // A producer with no epilogue (a pool).
    let p = g
        .add("p", Op::GlobalPool(cnnc_ir::op::PoolKind::Max), &[x])
        .unwrap();
    let p_sum = add(&mut g, "p_sum", p, p);
    g.add_output("p_sum", p_sum);
    rewrite(PASS, g).assert_unchanged();
}

#[test]
fn resnet50_bottleneck_projection_becomes_the_residual() {
    // After batch-norm folding the block ends in Add(conv 2c, conv 1): conv 2c takes
    // the projection as its residual; the Relu after it is the next pass's.
    let g = cut("onnx-conformance/models/resnet50")
        .input("r3", &[1, 64, 5, 5])
        .strip("gpu_0/")
        .randomize(50)
        .outputs(&["r15"]);
    let r = rewrite_prepared(PASS, g);
    insta::assert_snapshot!("resnet50_bottleneck", r.text());
    assert_eq!((r.changes, r.count("add")), (1, 0));
}

#[test]
fn mobilenet_v2_inverted_residual() {
    let g = cut("bench-models/mobilenet_v2")
        .input(
            "/features/features.2/conv/conv.2/Conv_output_0",
            &[1, 24, 5, 5],
        )
        .strip("/features/")
        .outputs(&["/features/features.3/Add_output_0"]);
    let r = rewrite_prepared(PASS, g);
    insta::assert_snapshot!("mobilenet_v2_inverted_residual", r.text());
    assert_eq!((r.changes, r.count("add")), (1, 0));
}
