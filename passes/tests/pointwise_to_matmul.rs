//! pointwise_to_matmul: a 1x1 convolution with stride 1, no padding and one group is a
//! matrix product over the pixel axis, `[M, C] x [N, C, pixels] -> [N, M, pixels]`,
//! between two reshapes, with the bias as `[M, 1]` and the epilogue kept. The tests show
//! bias, batch, residual and activation cases, 1-D and 3-D maps, run-time weights, and
//! the 1x1 convolutions that must stay (strided, padded, grouped, PRelu). At -O2 the
//! pass sees only the convolutions layout assignment leaves plain (the blocked ones
//! have a direct kernel); the model cuts here are prepared without it.

mod common;

use cnnc_ir::op::{Activation, Unary};
use cnnc_ir::{Graph, Op};
use common::*;

const PASS: &str = "pointwise_to_matmul";

#[test]
fn pointwise_conv_with_bias() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 3, 2, 3]);
    let y = add_conv(&mut g, "conv", x, 5, Op::Conv(conv2d(1, 1, 0, 1)), true);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("pointwise_conv_with_bias", r.text());
    assert_eq!((r.changes, r.count("conv"), r.count("matmul")), (1, 0, 1));
}

#[test]
fn no_bias_batch_three_one_pixel() {
    // A 1x1 map: pixels = 1.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[3, 7, 1, 1]);
    let y = add_conv(&mut g, "conv", x, 2, Op::Conv(conv2d(1, 1, 0, 1)), false);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("no_bias_batch_three_one_pixel", r.text());
    assert_eq!((r.changes, r.count("matmul")), (1, 1));
}

#[test]
fn residual_and_activation_epilogue_kept() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[2, 4, 3, 3]);
    let mut c = conv2d(1, 1, 0, 1);
    c.epilogue.residual = true;
    c.epilogue.activation = Some(Activation::Unary(Unary::Relu));
    let w = random_const(&mut g, "conv.w", &[4, 4, 1, 1]);
    let b = random_const(&mut g, "conv.b", &[4]);
    let y = g.add("conv", Op::Conv(c), &[x, w, b, x]).unwrap();
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("residual_and_activation_epilogue_kept", r.text());
    assert_eq!((r.changes, r.count("matmul")), (1, 1));
}

#[test]
fn one_and_three_dimensional_maps() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 2, 5]);
    let mut c = conv2d(1, 1, 0, 1);
    c.kernel = vec![1];
    c.strides = vec![1];
    c.dilations = vec![3];
    c.pads = vec![(0, 0)];
    let y = add_conv(&mut g, "conv1d", x, 3, Op::Conv(c), true);
    g.add_output("y1", y);
    let v = input(&mut g, "v", &[1, 2, 2, 2, 3]);
    let mut c = conv2d(1, 1, 0, 1);
    c.kernel = vec![1; 3];
    c.strides = vec![1; 3];
    c.dilations = vec![1; 3];
    c.pads = vec![(0, 0); 3];
    let y = add_conv(&mut g, "conv3d", v, 3, Op::Conv(c), true);
    g.add_output("y3", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("one_and_three_dimensional_maps", r.text());
    assert_eq!((r.changes, r.count("matmul")), (2, 2));
}

#[test]
fn run_time_weight_is_reshaped_by_a_node() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 3, 2, 2]);
    let w = input(&mut g, "w", &[2, 3, 1, 1]);
    let b = input(&mut g, "b", &[2]);
    let y = g
        .add("conv", Op::Conv(conv2d(1, 1, 0, 1)), &[x, w, b])
        .unwrap();
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("run_time_weight_is_reshaped_by_a_node", r.text());
    assert_eq!((r.changes, r.count("reshape")), (1, 4));
}

#[test]
fn convolutions_that_stay() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 4, 4, 4]);
    let a = add_conv(&mut g, "strided", x, 4, Op::Conv(conv2d(1, 2, 0, 1)), true);
    g.add_output("strided", a);
    let b = add_conv(&mut g, "padded", x, 4, Op::Conv(conv2d(1, 1, 1, 1)), true);
    g.add_output("padded", b);
    let c = add_conv(&mut g, "grouped", x, 4, Op::Conv(conv2d(1, 1, 0, 2)), true);
    g.add_output("grouped", c);
    let d = add_conv(&mut g, "spatial", x, 4, Op::Conv(conv2d(3, 1, 1, 1)), true);
    g.add_output("spatial", d);
    let e = add_conv(
        &mut g,
        "dw",
        x,
        4,
        Op::DepthwiseConv(conv2d(1, 1, 0, 4)),
        true,
    );
    g.add_output("dw", e);
    let mut prelu = conv2d(1, 1, 0, 1);
    prelu.epilogue.activation = Some(Activation::PRelu);
    let w = random_const(&mut g, "prelu.w", &[4, 4, 1, 1]);
    let bias = random_const(&mut g, "prelu.b", &[4]);
    let slope = random_const(&mut g, "prelu.slope", &[4, 1, 1]);
    let f = g
        .add("prelu", Op::Conv(prelu), &[x, w, bias, slope])
        .unwrap();
    g.add_output("prelu", f);
    rewrite(PASS, g).assert_unchanged();
}

#[test]
fn squeezenet_fire_module() {
    // The squeeze and expand1x1 convolutions become products; expand3x3 stays.
    let g = cut("onnx-conformance/models/squeezenet_random")
        .input("r2", &[1, 64, 5, 5])
        .strip("fire2/")
        .outputs(&["r9"]);
    let r = rewrite_prepared_plain(PASS, g);
    insta::assert_snapshot!("squeezenet_fire_module", r.text());
    assert_eq!((r.changes, r.count("conv")), (2, 1));
}

#[test]
fn resnet50_strided_projection_after_its_subsample() {
    // res3_0: the 1x1 stride-2 projection, which reads a subsample since
    // subsample_pointwise, becomes a product like the 1x1 convolutions around the 3x3.
    let g = cut("onnx-conformance/models/resnet50")
        .input("r35", &[1, 256, 6, 6])
        .strip("gpu_0/")
        .randomize(3)
        .outputs(&["r47"]);
    let r = rewrite_prepared_plain(PASS, g);
    insta::assert_snapshot!("resnet50_strided_projection_after_its_subsample", r.text());
    assert_eq!((r.changes, r.count("conv")), (3, 1));
}
