//! fold_batch_norm: a BatchNormalization (or a Mul/Add by a per-channel constant) after a
//! convolution or Gemm with constant weights that nothing else reads becomes part of the
//! weights and bias; any other BatchNormalization with constant statistics becomes a
//! ScaleShift. The tests show both, on every producer kind, and the cases that must not
//! fold (shared or non-constant producers, non-per-channel constants).

mod common;

use cnnc_ir::op::{Binary, ConvTranspose, Gemm, Unary};
use cnnc_ir::{Graph, Op};
use common::*;

const PASS: &str = "fold_batch_norm";

#[test]
fn conv_with_bias_then_batch_norm() {
    // 3 input and 6 output channels: not multiples of the vector width.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 3, 5, 5]);
    let y = add_conv(&mut g, "conv", x, 6, Op::Conv(conv2d(3, 1, 1, 1)), true);
    let y = add_bn(&mut g, "bn", y);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("conv_with_bias_then_batch_norm", r.text());
    assert_eq!((r.changes, r.count("batch_norm")), (1, 0));
}

#[test]
fn strided_conv_without_bias_asymmetric_pads_batch_two() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[2, 4, 7, 6]);
    let mut c = conv2d(3, 2, 0, 1);
    c.pads = vec![(0, 2), (1, 0)];
    let y = add_conv(&mut g, "conv", x, 5, Op::Conv(c), false);
    let y = add_bn(&mut g, "bn", y);
    let y = g.add("relu", Op::Unary(Unary::Relu), &[y]).unwrap();
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!(
        "strided_conv_without_bias_asymmetric_pads_batch_two",
        r.text()
    );
    assert_eq!((r.changes, r.count("batch_norm")), (1, 0));
}

#[test]
fn grouped_and_depthwise_convs() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 6, 4, 4]);
    let y = add_conv(&mut g, "grouped", x, 4, Op::Conv(conv2d(1, 1, 0, 2)), true);
    let y = add_bn(&mut g, "bn1", y);
    // Channel multiplier 2: 4 channels in, 8 out.
    let y = add_conv(
        &mut g,
        "dw",
        y,
        8,
        Op::DepthwiseConv(conv2d(3, 1, 1, 4)),
        false,
    );
    let y = add_bn(&mut g, "bn2", y);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("grouped_and_depthwise_convs", r.text());
    assert_eq!((r.changes, r.count("batch_norm")), (2, 0));
}

#[test]
fn grouped_conv_transpose() {
    // Weight [C, M/groups, k, k] with C = 4, M = 6, two groups.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 4, 3, 3]);
    let w = random_const(&mut g, "deconv.w", &[4, 3, 2, 2]);
    let b = random_const(&mut g, "deconv.b", &[6]);
    let op = Op::ConvTranspose(ConvTranspose {
        kernel: vec![2, 2],
        strides: vec![2, 2],
        dilations: vec![1, 1],
        pads: vec![(0, 1), (1, 0)],
        output_padding: vec![0, 0],
        groups: 2,
        epilogue: Default::default(),
    });
    let y = g.add("deconv", op, &[x, w, b]).unwrap();
    let y = add_bn(&mut g, "bn", y);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("grouped_conv_transpose", r.text());
    assert_eq!((r.changes, r.count("batch_norm")), (1, 0));
}

fn gemm(alpha: f32, beta: f32, trans_b: bool) -> Op {
    Op::Gemm(Gemm {
        alpha,
        beta,
        trans_a: false,
        trans_b,
        epilogue: Default::default(),
    })
}

#[test]
fn gemm_with_transposed_weight_and_vector_bias() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[3, 5]);
    let w = random_const(&mut g, "fc.w", &[6, 5]);
    let c = random_const(&mut g, "fc.b", &[6]);
    let y = g.add("fc", gemm(0.5, 2.0, true), &[x, w, c]).unwrap();
    let y = add_bn(&mut g, "bn", y);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("gemm_with_transposed_weight_and_vector_bias", r.text());
    assert_eq!((r.changes, r.count("batch_norm")), (1, 0));
}

#[test]
fn gemm_with_matrix_bias_and_without_bias() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[3, 5]);
    let w1 = random_const(&mut g, "fc1.w", &[5, 7]);
    let c1 = random_const(&mut g, "fc1.c", &[3, 7]);
    let y = g.add("fc1", gemm(1.0, -1.5, false), &[x, w1, c1]).unwrap();
    let y = add_bn(&mut g, "bn1", y);
    let w2 = random_const(&mut g, "fc2.w", &[7, 2]);
    let y = g.add("fc2", gemm(1.0, 1.0, false), &[y, w2]).unwrap();
    let y = add_bn(&mut g, "bn2", y);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("gemm_with_matrix_bias_and_without_bias", r.text());
    assert_eq!((r.changes, r.count("batch_norm")), (2, 0));
}

#[test]
fn gemm_with_column_and_single_value_bias() {
    // C of [M, 1] (one value per row) and of [1]: both broadcast to [M, N].
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[3, 5]);
    let w1 = random_const(&mut g, "fc1.w", &[4, 5]);
    let c1 = random_const(&mut g, "fc1.c", &[3, 1]);
    let y = g.add("fc1", gemm(2.0, 0.5, true), &[x, w1, c1]).unwrap();
    let y = add_bn(&mut g, "bn1", y);
    let w2 = random_const(&mut g, "fc2.w", &[4, 3]);
    let c2 = random_const(&mut g, "fc2.c", &[1]);
    let y = g.add("fc2", gemm(1.0, 3.0, false), &[y, w2, c2]).unwrap();
    let y = add_bn(&mut g, "bn2", y);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("gemm_with_column_and_single_value_bias", r.text());
    assert_eq!((r.changes, r.count("batch_norm")), (2, 0));
}

#[test]
fn scalar_mul_folds_into_gemm() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[2, 3]);
    let w = random_const(&mut g, "fc.w", &[3, 4]);
    let y = g.add("fc", gemm(1.0, 1.0, false), &[x, w]).unwrap();
    let s = g.add_const("s", tensor(&[1], vec![-2.5]));
    let y = g.add("mul", Op::Binary(Binary::Mul), &[y, s]).unwrap();
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("scalar_mul_folds_into_gemm", r.text());
    assert_eq!((r.changes, r.count("mul")), (1, 0));
}

#[test]
fn per_channel_mul_and_add_fold_into_conv() {
    // How converters spell a batch norm: Mul by [C,1,1], then Add of [1,C,1,1].
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 2, 4, 4]);
    let y = add_conv(&mut g, "conv", x, 3, Op::Conv(conv2d(3, 1, 1, 1)), true);
    let s = random_const(&mut g, "s", &[3, 1, 1]);
    let y = g.add("mul", Op::Binary(Binary::Mul), &[s, y]).unwrap();
    let b = random_const(&mut g, "b", &[1, 3, 1, 1]);
    let y = g.add("add", Op::Binary(Binary::Add), &[y, b]).unwrap();
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("per_channel_mul_and_add_fold_into_conv", r.text());
    assert_eq!((r.changes, r.count("mul"), r.count("add")), (2, 0, 0));
}

#[test]
fn batch_norm_of_an_input_becomes_scale_shift() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[2, 3, 2, 3]);
    let y = add_bn(&mut g, "bn", x);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("batch_norm_of_an_input_becomes_scale_shift", r.text());
    assert_eq!((r.changes, r.count("scale_shift")), (1, 1));
}

#[test]
fn conv_read_twice_keeps_its_weights() {
    // The conv output also feeds a Relu: folding would change what the Relu sees.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 2, 3, 3]);
    let y = add_conv(&mut g, "conv", x, 3, Op::Conv(conv2d(1, 1, 0, 1)), true);
    let z = add_bn(&mut g, "bn", y);
    let r = g.add("relu", Op::Unary(Unary::Relu), &[y]).unwrap();
    let sum = g.add("sum", Op::Binary(Binary::Add), &[z, r]).unwrap();
    g.add_output("y", sum);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("conv_read_twice_keeps_its_weights", r.text());
    assert_eq!((r.changes, r.count("scale_shift")), (1, 1));
}

#[test]
fn conv_that_is_a_graph_output_keeps_its_weights() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 2, 3, 3]);
    let y = add_conv(&mut g, "conv", x, 3, Op::Conv(conv2d(3, 1, 1, 1)), false);
    let z = add_bn(&mut g, "bn", y);
    g.add_output("features", y);
    g.add_output("y", z);
    let r = rewrite(PASS, g);
    assert_eq!((r.count("scale_shift"), r.count("conv")), (1, 1));
}

#[test]
fn conv_with_run_time_weights_or_fused_activation_keeps_them() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 2, 3, 3]);
    let w = input(&mut g, "w", &[2, 2, 1, 1]);
    let y = g
        .add("conv", Op::Conv(conv2d(1, 1, 0, 1)), &[x, w])
        .unwrap();
    let y = add_bn(&mut g, "bn1", y);
    let mut relu_conv = conv2d(1, 1, 0, 1);
    relu_conv.epilogue.activation = Some(cnnc_ir::op::Activation::Unary(Unary::Relu));
    let y = add_conv(&mut g, "conv_relu", y, 2, Op::Conv(relu_conv), true);
    let y = add_bn(&mut g, "bn2", y);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("conv_with_run_time_weights_or_fused_activation", r.text());
    assert_eq!((r.changes, r.count("scale_shift")), (2, 2));
}

#[test]
fn batch_norm_with_run_time_statistics_stays() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 2, 3, 3]);
    let var = input(&mut g, "var", &[2]);
    let y = add_conv(&mut g, "conv", x, 2, Op::Conv(conv2d(1, 1, 0, 1)), true);
    let gamma = random_const(&mut g, "gamma", &[2]);
    let beta = random_const(&mut g, "beta", &[2]);
    let mean = random_const(&mut g, "mean", &[2]);
    let abs = g.add("abs", Op::Unary(Unary::Abs), &[var]).unwrap();
    let y = g
        .add(
            "bn",
            Op::BatchNorm { epsilon: 1e-5 },
            &[y, gamma, beta, mean, abs],
        )
        .unwrap();
    g.add_output("y", y);
    rewrite(PASS, g).assert_unchanged();
}

#[test]
fn constants_that_vary_along_other_axes_do_not_fold() {
    // [C] broadcasts along the last axis (W == C here), [1,1,H,W] along space: neither
    // is a per-channel scale.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 3, 2, 3]);
    let y = add_conv(&mut g, "conv1", x, 3, Op::Conv(conv2d(1, 1, 0, 1)), true);
    let s = random_const(&mut g, "s", &[3]);
    let y = g.add("mul", Op::Binary(Binary::Mul), &[y, s]).unwrap();
    let y = add_conv(&mut g, "conv2", y, 3, Op::Conv(conv2d(1, 1, 0, 1)), true);
    let b = random_const(&mut g, "b", &[1, 1, 2, 3]);
    let y = g.add("add", Op::Binary(Binary::Add), &[y, b]).unwrap();
    g.add_output("y", y);
    rewrite(PASS, g).assert_unchanged();
}

#[test]
fn resnet50_bottleneck() {
    // res2_0: three conv+BN (+relu) and a projection conv+BN into the residual add.
    let g = cut("onnx-conformance/models/resnet50")
        .input("r3", &[1, 64, 5, 5])
        .strip("gpu_0/")
        .randomize(50)
        .outputs(&["r15"]);
    let r = rewrite_prepared(PASS, g);
    insta::assert_snapshot!("resnet50_bottleneck", r.text());
    assert_eq!((r.changes, r.count("batch_norm")), (4, 0));
}

#[test]
fn densenet121_batch_norm_after_concat_becomes_scale_shift() {
    // The pre-activation BNs read a max pool and a concat: nothing to fold into. The BN
    // after the 1x1 conv folds, and so do the Caffe scale layer's Mul and Add after it.
    let g = cut("onnx-conformance/models/densenet121_random")
        .input("r7", &[1, 64, 4, 4])
        .outputs(&["r28"]);
    let r = rewrite_prepared(PASS, g);
    insta::assert_snapshot!("densenet121_batch_norm_after_concat", r.text());
    assert_eq!((r.count("batch_norm"), r.count("scale_shift")), (0, 2));
}

#[test]
fn inception_v2_conv_batch_norm_scale() {
    // conv2/3x3_reduce: Conv, BatchNormalization, then the scale layer's Mul and Add.
    let g = cut("onnx-conformance/models/inception_v2")
        .input("r7", &[1, 64, 5, 5])
        .randomize(2)
        .outputs(&["r14"]);
    let r = rewrite_prepared(PASS, g);
    insta::assert_snapshot!("inception_v2_conv_batch_norm_scale", r.text());
    assert_eq!((r.changes, r.count("conv"), r.count("relu")), (3, 1, 1));
}

#[test]
fn pytorch_batch_norm_2d_eval() {
    let g = cut("onnx-conformance/pytorch-converted/test_BatchNorm2d_eval").outputs(&["5"]);
    let r = rewrite_prepared(PASS, g);
    insta::assert_snapshot!("pytorch_batch_norm_2d_eval", r.text());
    assert_eq!((r.changes, r.count("scale_shift")), (1, 1));
}
