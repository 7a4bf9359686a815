//! depthwise: a convolution with one group per input channel (and any channel
//! multiplier) becomes a DepthwiseConv, which has a kernel of its own. The tests show
//! strided, padded, 1-D and multiplier cases, grouped convolutions that stay, and the
//! depthwise layers of MobileNetV2 and ShuffleNet.

mod common;

use cnnc_ir::{Graph, Op};
use common::*;

const PASS: &str = "depthwise";

#[test]
fn strided_asymmetric_depthwise_conv() {
    // 5 channels (not a multiple of the vector width), pads on one side of each axis.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 5, 4, 3]);
    let mut c = conv2d(3, 2, 0, 5);
    c.pads = vec![(1, 0), (0, 2)];
    let y = add_conv(&mut g, "conv", x, 5, Op::Conv(c), true);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("strided_asymmetric_depthwise_conv", r.text());
    assert_eq!((r.changes, r.count("depthwise_conv")), (1, 1));
}

#[test]
fn one_dimensional_depthwise_conv_batch_three() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[3, 2, 7]);
    let mut c = conv2d(3, 1, 1, 2);
    c.kernel = vec![3];
    c.strides = vec![1];
    c.dilations = vec![2];
    c.pads = vec![(2, 2)];
    let y = add_conv(&mut g, "conv", x, 2, Op::Conv(c), false);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("one_dimensional_depthwise_conv_batch_three", r.text());
    assert_eq!((r.changes, r.count("depthwise_conv")), (1, 1));
}

#[test]
fn grouped_and_dense_convs_stay() {
    // Two groups of two channels; one group; a single channel (groups == C == 1).
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 4, 3, 3]);
    let y = add_conv(&mut g, "grouped", x, 4, Op::Conv(conv2d(3, 1, 1, 2)), true);
    let y = add_conv(&mut g, "dense", y, 1, Op::Conv(conv2d(1, 1, 0, 1)), true);
    let y = add_conv(&mut g, "single", y, 1, Op::Conv(conv2d(3, 1, 1, 1)), true);
    g.add_output("y", y);
    rewrite(PASS, g).assert_unchanged();
}

#[test]
fn pytorch_depthwise_with_multiplier() {
    // Conv2d(4, 8, 3, groups=4) on a batch of 2.
    let g = cut("onnx-conformance/pytorch-converted/test_Conv2d_depthwise_with_multiplier")
        .outputs(&["3"]);
    let r = rewrite_prepared(PASS, g);
    insta::assert_snapshot!("pytorch_depthwise_with_multiplier", r.text());
    assert_eq!(r.count("depthwise_conv"), 1);
}

#[test]
fn mobilenet_v2_strided_depthwise_block() {
    // features.2: 1x1 expand, 3x3 depthwise stride 2, 1x1 project.
    let g = cut("bench-models/mobilenet_v2")
        .input(
            "/features/features.1/conv/conv.1/Conv_output_0",
            &[1, 16, 6, 6],
        )
        .strip("/features/")
        .outputs(&["/features/features.2/conv/conv.2/Conv_output_0"]);
    let r = rewrite_prepared(PASS, g);
    insta::assert_snapshot!("mobilenet_v2_strided_depthwise_block", r.text());
    assert_eq!((r.changes, r.count("conv")), (1, 2));
}

#[test]
fn shufflenet_unit_group_convs_stay_depthwise_goes() {
    // 1x1 convs with 4 groups stay convolutions; the 3x3 with 136 groups is depthwise.
    let g = cut("onnx-conformance/models/shufflenet_random")
        .input("r28", &[1, 136, 28, 28])
        .strip("gpu_0/")
        .outputs(&["r40"]);
    let r = rewrite_prepared(PASS, g);
    insta::assert_snapshot!("shufflenet_unit", r.text());
    assert_eq!((r.changes, r.count("conv")), (1, 2));
}
