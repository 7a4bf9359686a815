//! conv_transpose_gemm: a transposed convolution with constant weights becomes a
//! pointwise convolution (its multiply-adds, weights `[M*K, C/g, 1...]`) and a col2im
//! (the scatter, with the bias and the epilogue), in 1-D to 3-D, grouped, strided,
//! dilated, padded and with output padding; groups of fewer than four input channels
//! and run-time weights keep the transposed convolution, ungrouped ones of few input
//! channels do not. Every rewrite is checked
//! against the interpreter.

mod common;

use cnnc_ir::op::{Activation, ConvTranspose, Unary};
use cnnc_ir::{Graph, Op, Value};
use common::*;

const PASS: &str = "conv_transpose_gemm";

/// A transposed convolution of `kernel` per axis with stride `stride`, no padding.
fn transposed(kernel: &[usize], stride: usize, groups: usize) -> ConvTranspose {
    let n = kernel.len();
    ConvTranspose {
        kernel: kernel.to_vec(),
        strides: vec![stride; n],
        dilations: vec![1; n],
        pads: vec![(0, 0); n],
        output_padding: vec![0; n],
        groups,
        epilogue: Default::default(),
    }
}

/// `c(x)` to `m` channels with random constant weights `[C, m/groups, kernel...]` and,
/// with `bias`, a random bias.
fn add_transposed(
    g: &mut Graph,
    name: &str,
    x: Value,
    m: usize,
    c: ConvTranspose,
    bias: bool,
) -> Value {
    let mut shape = vec![g.value_type(x).shape[1], m / c.groups];
    shape.extend(&c.kernel);
    let w = random_const(g, &format!("{name}.w"), &shape);
    let mut ins = vec![x, w];
    if bias {
        ins.push(random_const(g, &format!("{name}.b"), &[m]));
    }
    g.add(name, Op::ConvTranspose(c), &ins).unwrap()
}

#[test]
fn unet_up_convolution() {
    // U-Net's 2x2 stride-2 up-convolution with a bias and a fused ReLU: the product has
    // 4 taps x 4 output channels, the col2im keeps the bias and the ReLU.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 8, 3, 3]);
    let mut c = transposed(&[2, 2], 2, 1);
    c.epilogue.activation = Some(Activation::Unary(Unary::Relu));
    let y = add_transposed(&mut g, "up", x, 4, c, true);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("unet_up_convolution", r.text());
    assert_eq!((r.changes, r.count("conv"), r.count("col2im")), (1, 1, 1));
}

#[test]
fn grouped_dilated_padded_with_residual() {
    // Two groups of 4 input channels, overlapping taps (kernel 3, stride 2, dilation
    // 2), asymmetric padding and output padding, and a residual.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[2, 8, 4, 5]);
    let mut c = transposed(&[3, 2], 2, 2);
    c.dilations = vec![2, 1];
    c.pads = vec![(1, 0), (0, 2)];
    c.output_padding = vec![1, 0];
    c.epilogue.residual = true;
    let mut shape = vec![8, 3];
    shape.extend(&c.kernel);
    let w = random_const(&mut g, "up.w", &shape);
    let b = random_const(&mut g, "up.b", &[6]);
    let res = input(&mut g, "res", &[2, 6, 11, 8]);
    let y = g.add("up", Op::ConvTranspose(c), &[x, w, b, res]).unwrap();
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("grouped_dilated_padded_with_residual", r.text());
    assert_eq!((r.changes, r.count("col2im")), (1, 1));
}

#[test]
fn one_and_three_dimensional() {
    for (kernel, spatial) in [(vec![4], vec![7]), (vec![2, 3, 2], vec![3, 2, 4])] {
        let mut g = Graph::new();
        let mut shape = vec![1, 4];
        shape.extend(&spatial);
        let x = input(&mut g, "x", &shape);
        let y = add_transposed(&mut g, "up", x, 5, transposed(&kernel, 2, 1), false);
        g.add_output("y", y);
        let r = rewrite(PASS, g);
        assert_eq!((r.changes, r.count("col2im")), (1, 1), "{}", r.text());
    }
}

#[test]
fn three_input_channels_ungrouped() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 3, 4, 4]);
    let y = add_transposed(&mut g, "up", x, 2, transposed(&[3, 3], 2, 1), true);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    assert_eq!((r.changes, r.count("col2im")), (1, 1), "{}", r.text());
}

#[test]
fn small_groups_and_run_time_weights_keep_the_scatter() {
    // A depthwise transposed convolution (one input channel per group), groups of two,
    // and weights that are a graph input.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 8, 4, 4]);
    let d = add_transposed(&mut g, "dw", x, 8, transposed(&[2, 2], 2, 8), true);
    let p = add_transposed(&mut g, "pairs", x, 8, transposed(&[3, 3], 1, 4), true);
    let w = input(&mut g, "w", &[8, 2, 2, 2]);
    let rt = g
        .add(
            "runtime",
            Op::ConvTranspose(transposed(&[2, 2], 2, 1)),
            &[x, w],
        )
        .unwrap();
    g.add_output("d", d);
    g.add_output("p", p);
    g.add_output("rt", rt);
    rewrite(PASS, g).assert_unchanged();
}
