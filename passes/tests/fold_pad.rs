//! fold_pad: an explicit constant Pad of the spatial axes, read only by a window op, is
//! folded into it: zero padding into a (depthwise) convolution's pads, -inf padding into
//! a max pool's, zero padding into an average pool without pads (which then counts the
//! padding). The tests show each, asymmetric pads added to the op's own, and every case
//! the pass must leave alone.

mod common;

use cnnc_ir::op::{PadMode, Pool, PoolKind};
use cnnc_ir::{Graph, Op, Value};
use common::*;

const PASS: &str = "fold_pad";

fn pad(g: &mut Graph, x: Value, pads: &[(isize, isize)], value: f32) -> Value {
    let op = Op::Pad {
        pads: pads.to_vec(),
        mode: PadMode::Constant(value),
    };
    g.add("pad", op, &[x]).unwrap()
}

fn pool(kind: PoolKind, kernel: usize, stride: usize, pad: usize, ceil_mode: bool) -> Op {
    Op::Pool(Pool {
        kind,
        kernel: vec![kernel; 2],
        strides: vec![stride; 2],
        dilations: vec![1; 2],
        pads: vec![(pad, pad); 2],
        ceil_mode,
    })
}

const AVG: PoolKind = PoolKind::Avg {
    count_include_pad: false,
};

#[test]
fn asymmetric_zero_pad_into_conv_with_own_pads() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[2, 3, 5, 4]);
    let p = pad(&mut g, x, &[(0, 0), (0, 0), (1, 2), (0, 3)], 0.0);
    let y = add_conv(&mut g, "conv", p, 5, Op::Conv(conv2d(3, 2, 1, 1)), true);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("asymmetric_zero_pad_into_conv_with_own_pads", r.text());
    assert_eq!((r.changes, r.count("pad")), (1, 0));
}

#[test]
fn zero_pad_into_depthwise_conv() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 3, 3, 3]);
    let p = pad(&mut g, x, &[(0, 0), (0, 0), (1, 1), (1, 1)], 0.0);
    let y = add_conv(
        &mut g,
        "dw",
        p,
        3,
        Op::DepthwiseConv(conv2d(3, 1, 0, 3)),
        false,
    );
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("zero_pad_into_depthwise_conv", r.text());
    assert_eq!((r.changes, r.count("pad")), (1, 0));
}

#[test]
fn zero_pad_into_one_dimensional_conv() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 2, 6]);
    let p = pad(&mut g, x, &[(0, 0), (0, 0), (2, 0)], 0.0);
    let mut c = conv2d(3, 1, 0, 1);
    c.kernel = vec![3];
    c.strides = vec![1];
    c.dilations = vec![2];
    c.pads = vec![(0, 1)];
    let y = add_conv(&mut g, "conv", p, 2, Op::Conv(c), true);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("zero_pad_into_one_dimensional_conv", r.text());
    assert_eq!((r.changes, r.count("pad")), (1, 0));
}

#[test]
fn minus_infinity_pad_into_max_pool() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 2, 5, 5]);
    let p = pad(
        &mut g,
        x,
        &[(0, 0), (0, 0), (0, 1), (1, 0)],
        f32::NEG_INFINITY,
    );
    let y = g
        .add("pool", pool(PoolKind::Max, 3, 2, 1, false), &[p])
        .unwrap();
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("minus_infinity_pad_into_max_pool", r.text());
    assert_eq!((r.changes, r.count("pad")), (1, 0));
}

#[test]
fn zero_pad_into_average_pool_counts_the_padding() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 3, 4, 4]);
    let p = pad(&mut g, x, &[(0, 0), (0, 0), (1, 1), (1, 1)], 0.0);
    let y = g.add("pool", pool(AVG, 3, 1, 0, false), &[p]).unwrap();
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("zero_pad_into_average_pool_counts_the_padding", r.text());
    assert_eq!((r.changes, r.count("pad")), (1, 0));
}

/// A graph `pad -> op` whose Pad must stay.
fn stays(pads: &[(isize, isize)], value: f32, op: Op) {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 2, 4, 4]);
    let p = pad(&mut g, x, pads, value);
    let y = match op {
        Op::Conv(_) => add_conv(&mut g, "conv", p, 2, op, true),
        op => g.add("op", op, &[p]).unwrap(),
    };
    g.add_output("y", y);
    rewrite(PASS, g).assert_unchanged();
}

const SPATIAL: &[(isize, isize)] = &[(0, 0), (0, 0), (1, 1), (1, 1)];

#[test]
fn non_zero_pad_before_conv_stays() {
    stays(SPATIAL, 1.0, Op::Conv(conv2d(3, 1, 0, 1)));
}

#[test]
fn zero_pad_before_max_pool_stays() {
    // Zero is not -inf: a window of negative values would see the zero.
    stays(SPATIAL, 0.0, pool(PoolKind::Max, 3, 1, 0, false));
}

#[test]
fn pad_before_average_pool_with_own_pads_stays() {
    stays(SPATIAL, 0.0, pool(AVG, 3, 1, 1, false));
}

#[test]
fn pad_of_batch_or_channels_stays() {
    stays(
        &[(0, 0), (1, 0), (1, 1), (1, 1)],
        0.0,
        Op::Conv(conv2d(3, 1, 0, 1)),
    );
}

#[test]
fn cropping_pad_stays() {
    stays(
        &[(0, 0), (0, 0), (1, -1), (0, 0)],
        0.0,
        Op::Conv(conv2d(1, 1, 0, 1)),
    );
}

#[test]
fn reflect_pad_stays() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 2, 4, 4]);
    let op = Op::Pad {
        pads: SPATIAL.to_vec(),
        mode: PadMode::Reflect,
    };
    let p = g.add("pad", op, &[x]).unwrap();
    let y = add_conv(&mut g, "conv", p, 2, Op::Conv(conv2d(3, 1, 0, 1)), false);
    g.add_output("y", y);
    rewrite(PASS, g).assert_unchanged();
}

#[test]
fn pad_read_twice_or_as_output_stays() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 2, 4, 4]);
    let p = pad(&mut g, x, SPATIAL, 0.0);
    let a = add_conv(&mut g, "a", p, 2, Op::Conv(conv2d(3, 1, 0, 1)), false);
    let b = add_conv(&mut g, "b", p, 2, Op::Conv(conv2d(3, 1, 0, 1)), false);
    g.add_output("a", a);
    g.add_output("b", b);
    rewrite(PASS, g).assert_unchanged();

    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 2, 4, 4]);
    let p = pad(&mut g, x, SPATIAL, 0.0);
    let a = add_conv(&mut g, "a", p, 2, Op::Conv(conv2d(3, 1, 0, 1)), false);
    g.add_output("padded", p);
    g.add_output("a", a);
    rewrite(PASS, g).assert_unchanged();
}

#[test]
fn minus_infinity_pad_stays_before_a_ceil_mode_max_pool_it_would_shrink() {
    // Padded to 7 rows, a 2x2 stride-2 ceil-mode pool has 4 windows (the last starts at
    // row 6, inside its input). With the pad folded, row 6 lies in the end padding,
    // where no window may start, so the pool would have 3: the pass leaves it. (That
    // last window sees only padding, so its output is -inf and the harness's
    // comparison, which wants finite outputs, does not apply.)
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 1, 5, 5]);
    let p = pad(
        &mut g,
        x,
        &[(0, 0), (0, 0), (0, 2), (0, 2)],
        f32::NEG_INFINITY,
    );
    let y = g
        .add("pool", pool(PoolKind::Max, 2, 2, 0, true), &[p])
        .unwrap();
    g.add_output("y", y);
    assert_eq!(apply(PASS, &mut g), 0);
}

#[test]
fn zero_pad_stays_before_a_ceil_mode_average_pool_it_would_shrink() {
    // As above: the window that starts in the explicit padding would be dropped.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 1, 5, 5]);
    let p = pad(&mut g, x, &[(0, 0), (0, 0), (0, 2), (0, 2)], 0.0);
    let y = g.add("pool", pool(AVG, 2, 2, 0, true), &[p]).unwrap();
    g.add_output("y", y);
    rewrite(PASS, g).assert_unchanged();
}

#[test]
fn pytorch_zero_pad_2d_alone_stays() {
    // ZeroPad2d with nothing after it: the model's output is the padded tensor.
    let g = cut("onnx-conformance/pytorch-converted/test_ZeroPad2d").outputs(&["1"]);
    rewrite_prepared(PASS, g).assert_unchanged();
}
