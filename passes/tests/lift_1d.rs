//! lift_1d: 1-D convolutions, depthwise convolutions and pools become 2-D ones of
//! height 1 between reshapes; a chain of them (with unary ops between) stays 2-D, a
//! fused residual and PRelu slope follow, and 2-D, 3-D and transposed convolutions are
//! left alone. Through the whole pipeline a 1-D block runs blocked from end to end.

mod common;

use cnnc_ir::op::{Activation, Conv, Epilogue, Pool, PoolKind, Unary};
use cnnc_ir::{Graph, Op, Value};
use common::*;

const PASS: &str = "lift_1d";

fn conv1d(
    kernel: usize,
    stride: usize,
    pads: (usize, usize),
    dilation: usize,
    groups: usize,
) -> Conv {
    Conv {
        kernel: vec![kernel],
        strides: vec![stride],
        dilations: vec![dilation],
        pads: vec![pads],
        groups,
        epilogue: Epilogue::default(),
    }
}

fn pool1d(kind: PoolKind, kernel: usize, stride: usize, pads: (usize, usize)) -> Op {
    Op::Pool(Pool {
        kind,
        kernel: vec![kernel],
        strides: vec![stride],
        dilations: vec![1],
        pads: vec![pads],
        ceil_mode: false,
    })
}

/// Conv 3 (strided, asymmetric padding) -> Relu -> MaxPool 2 -> depthwise 5
/// (dilated) -> AvgPool 3 -> Conv 1: an audio-style stack of 1-D ops.
fn one_dimensional_stack(g: &mut Graph) -> Value {
    let x = input(g, "x", &[2, 6, 41]);
    let c = add_conv(g, "conv", x, 8, Op::Conv(conv1d(3, 2, (1, 2), 1, 1)), true);
    let r = g.add("relu", Op::Unary(Unary::Relu), &[c]).unwrap();
    let p = g
        .add("pool", pool1d(PoolKind::Max, 2, 2, (0, 0)), &[r])
        .unwrap();
    let d = add_conv(
        g,
        "dw",
        p,
        8,
        Op::DepthwiseConv(conv1d(5, 1, (4, 4), 2, 8)),
        true,
    );
    let avg = PoolKind::Avg {
        count_include_pad: false,
    };
    let a = g.add("avg", pool1d(avg, 3, 1, (1, 1)), &[d]).unwrap();
    add_conv(g, "mix", a, 4, Op::Conv(conv1d(1, 1, (0, 0), 1, 1)), false)
}

#[test]
fn a_chain_of_one_dimensional_ops_stays_two_dimensional() {
    let mut g = Graph::new();
    let y = one_dimensional_stack(&mut g);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!(
        "a_chain_of_one_dimensional_ops_stays_two_dimensional",
        r.text()
    );
    // Six ops lifted; one reshape into 2-D at the input, one out at the end.
    assert_eq!((r.changes, r.count("reshape")), (6, 2), "{}", r.text());
}

#[test]
fn residual_and_prelu_slope_follow_the_convolution() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 4, 16]);
    let res = input(&mut g, "res", &[1, 8, 16]);
    let mut c = conv1d(3, 1, (1, 1), 1, 1);
    c.epilogue = Epilogue {
        residual: true,
        activation: Some(Activation::PRelu),
    };
    let w = random_const(&mut g, "w", &[8, 4, 3]);
    let b = random_const(&mut g, "b", &[8]);
    let slope = random_const(&mut g, "slope", &[8, 1]);
    let y = g.add("conv", Op::Conv(c), &[x, w, b, res, slope]).unwrap();
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("residual_and_prelu_slope_follow_the_convolution", r.text());
    assert_eq!(r.changes, 1);
}

#[test]
fn other_ranks_and_transposed_convolutions_are_left_alone() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 4, 6, 6]);
    let y = add_conv(&mut g, "conv2d", x, 4, Op::Conv(conv2d(3, 1, 1, 1)), true);
    let z = input(&mut g, "z", &[1, 4, 5, 5, 5]);
    let mut c3 = conv2d(3, 1, 1, 1);
    (c3.kernel, c3.strides, c3.dilations) = (vec![3; 3], vec![1; 3], vec![1; 3]);
    c3.pads = vec![(1, 1); 3];
    let z = add_conv(&mut g, "conv3d", z, 4, Op::Conv(c3), false);
    // A unary op on a plain 1-D tensor has nothing to gain.
    let s = input(&mut g, "s", &[1, 4, 9]);
    let s = g.add("tanh", Op::Unary(Unary::Tanh), &[s]).unwrap();
    g.add_output("y", y);
    g.add_output("z", z);
    g.add_output("s", s);
    rewrite(PASS, g).assert_unchanged();
}

#[test]
fn one_dimensional_block_through_the_pipeline() {
    // Blocked from the first reorder to the last: the 2-D kernels run every op.
    let mut g = Graph::new();
    let y = one_dimensional_stack(&mut g);
    g.add_output("y", y);
    let text = pipeline(g);
    let after = text.split("after:").nth(1).expect("the result");
    assert_eq!(after.matches("reorder").count(), 2, "{text}");
    insta::assert_snapshot!("one_dimensional_block_through_the_pipeline", text);
}
