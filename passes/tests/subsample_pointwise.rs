//! subsample_pointwise: a strided 1x1 convolution without padding becomes a 1x1 max
//! pool of its stride (the subsample) feeding the same convolution at stride 1, in 1-D,
//! 2-D (per-axis strides, grouped, with a fused epilogue) and 3-D; padded or
//! larger-kernel convolutions are left alone.

mod common;

use cnnc_ir::op::{Activation, Conv};
use cnnc_ir::{Graph, Op};
use common::*;

const PASS: &str = "subsample_pointwise";

fn pointwise(strides: &[usize], groups: usize) -> Conv {
    let n = strides.len();
    Conv {
        kernel: vec![1; n],
        strides: strides.to_vec(),
        dilations: vec![1; n],
        pads: vec![(0, 0); n],
        groups,
        epilogue: Default::default(),
    }
}

#[test]
fn strided_pointwise_conv_reads_a_subsample() {
    let mut g = Graph::new();
    // Odd sizes: the last row and column are read at stride 2 and at stride 3.
    let x = input(&mut g, "x", &[1, 8, 7, 9]);
    let y = add_conv(&mut g, "down", x, 12, Op::Conv(pointwise(&[2, 3], 1)), true);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("strided_pointwise_conv_reads_a_subsample", r.text());
    assert_eq!((r.changes, r.count("max_pool")), (1, 1));
}

#[test]
fn grouped_conv_keeps_its_epilogue_and_other_readers() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[2, 8, 6, 6]);
    let mut c = pointwise(&[2, 2], 2);
    c.epilogue.activation = Some(Activation::Silu);
    let y = add_conv(&mut g, "down", x, 4, Op::Conv(c), false);
    let z = add_conv(&mut g, "same", x, 4, Op::Conv(pointwise(&[1, 1], 1)), false);
    g.add_output("y", y);
    g.add_output("z", z);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!(
        "grouped_conv_keeps_its_epilogue_and_other_readers",
        r.text()
    );
    assert_eq!((r.changes, r.count("max_pool"), r.count("conv")), (1, 1, 2));
}

#[test]
fn one_and_three_dimensional_convs() {
    for strides in [vec![3], vec![2, 1, 2]] {
        let mut g = Graph::new();
        let mut shape = vec![1, 5];
        shape.extend(std::iter::repeat_n(7, strides.len()));
        let x = input(&mut g, "x", &shape);
        let y = add_conv(&mut g, "down", x, 3, Op::Conv(pointwise(&strides, 1)), true);
        g.add_output("y", y);
        let r = rewrite(PASS, g);
        assert_eq!((r.changes, r.count("max_pool")), (1, 1), "{}", r.text());
    }
}

#[test]
fn padded_unstrided_or_wider_convs_are_left_alone() {
    let mut padded = pointwise(&[2, 2], 1);
    padded.pads = vec![(1, 0), (0, 0)];
    let mut wide = conv2d(3, 2, 1, 1);
    wide.kernel = vec![1, 3];
    for c in [padded, pointwise(&[1, 1], 1), conv2d(3, 2, 1, 1), wide] {
        let mut g = Graph::new();
        let x = input(&mut g, "x", &[1, 4, 6, 6]);
        let y = add_conv(&mut g, "conv", x, 4, Op::Conv(c), true);
        g.add_output("y", y);
        rewrite(PASS, g).assert_unchanged();
    }
}
