//! The -O2 pipeline on one block of each model family: every pass in order, each result
//! verified, the interpreter's outputs unchanged, and the snapshot shows what each pass
//! did and the block as code generation receives it.

mod common;

use common::*;

#[test]
fn resnet50_bottleneck() {
    // Conv-BN-Relu x3 and a projection into the residual add: four convolutions, two as
    // matrix products, the last with the residual and Relu fused.
    let g = cut("onnx-conformance/models/resnet50")
        .input("r3", &[1, 64, 5, 5])
        .strip("gpu_0/")
        .randomize(50)
        .outputs(&["r15"]);
    insta::assert_snapshot!("resnet50_bottleneck", pipeline(g));
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
    insta::assert_snapshot!("mobilenet_v2_inverted_residual", pipeline(g));
}

#[test]
fn efficientnet_b0_mbconv_with_squeeze_excite() {
    let g = cut("bench-models/efficientnet_b0")
        .input(
            "/features/features.2/features.2.0/block/block.3/block.3.0/Conv_output_0",
            &[1, 24, 5, 5],
        )
        .strip("/features/features.2/")
        .outputs(&["/features/features.2/features.2.1/Add_output_0"]);
    insta::assert_snapshot!("efficientnet_b0_mbconv", pipeline(g));
}

#[test]
fn densenet121_dense_layer() {
    let g = cut("onnx-conformance/models/densenet121_random")
        .input("r7", &[1, 64, 4, 4])
        .outputs(&["r28"]);
    insta::assert_snapshot!("densenet121_dense_layer", pipeline(g));
}

#[test]
fn shufflenet_unit() {
    let g = cut("onnx-conformance/models/shufflenet_random")
        .input("r28", &[1, 136, 28, 28])
        .strip("gpu_0/")
        .outputs(&["r40"]);
    insta::assert_snapshot!("shufflenet_unit", pipeline(g));
}

#[test]
fn flexattention_expanded() {
    let g = cut("onnx-conformance/node/test_flexattention_expanded_ver26")
        .strip("FlexAttention_test_flexattention_expanded_function_")
        .outputs(&["Y"]);
    insta::assert_snapshot!("flexattention_expanded", pipeline(g));
}
