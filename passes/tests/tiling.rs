//! tiling: every Conv, Gemm and MatMul gets the register tile and cache blocks the cost
//! model picks for the target (`TargetInfo::default()` here, so the snapshots do not
//! depend on the machine). The tests show a ResNet-sized convolution, a 1x1
//! convolution as a matrix product, a classifier's one-row Gemm, a skinny product,
//! and ops that get no tile; tiling never changes what the graph computes.

mod common;

use cnnc_ir::op::{Gemm, Tile};
use cnnc_ir::{Graph, Op};
use common::*;

const PASS: &str = "tiling";

fn tile_of(g: &Graph, name: &str) -> Option<Tile> {
    g.node_ids()
        .find(|&id| g.node(id).name == name)
        .and_then(|id| g.node(id).tile)
}

#[test]
fn a_resnet_convolution_gets_eight_accumulators_and_blocks() {
    // 64 -> 64 channels, 3x3, at 12x12: K = 576 is split so the slivers stay in L1.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 64, 12, 12]);
    let y = add_conv(&mut g, "conv", x, 64, Op::Conv(conv2d(3, 1, 1, 1)), true);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("resnet_convolution", r.text());
    let t = tile_of(&r.after, "conv").unwrap();
    assert_eq!((t.rows * t.cols / 4, r.changes), (8, 1), "{t}");
    assert!(t.k_block < 576 && 576_usize.div_ceil(t.k_block) == 2, "{t}");
}

#[test]
fn pipeline_products_and_a_classifier_row() {
    // After the pipeline's pointwise rewrite: a MatMul over pixels; then a Gemm of one
    // row (batch 1) into 10 classes, with 13 input channels (no multiple of 4).
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 13, 5, 5]);
    let y = add_conv(
        &mut g,
        "pointwise",
        x,
        7,
        Op::Conv(conv2d(1, 1, 0, 1)),
        true,
    );
    let flat = g
        .add(
            "flat",
            Op::Reshape {
                shape: vec![1, 175],
            },
            &[y],
        )
        .unwrap();
    let w = random_const(&mut g, "fc.w", &[10, 175]);
    let b = random_const(&mut g, "fc.b", &[10]);
    let gemm = Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b: true,
        epilogue: Default::default(),
    };
    let z = g.add("fc", Op::Gemm(gemm), &[flat, w, b]).unwrap();
    g.add_output("z", z);
    let r = rewrite_prepared(PASS, g);
    insta::assert_snapshot!("pipeline_products_and_a_classifier_row", r.text());
    // One row with [N, K] weights: the matrix-vector kernel, which has no tile.
    assert_eq!(tile_of(&r.after, "fc"), None);
    assert_eq!(r.count("matmul"), 1);
}

#[test]
fn a_skinny_product_gets_a_narrow_tall_tile() {
    // 200 output channels over 3 pixels: one vector column, many rows.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 8, 1, 3]);
    let mut c = conv2d(1, 1, 0, 1);
    c.kernel = vec![1, 3];
    c.pads = vec![(0, 0), (1, 1)];
    let y = add_conv(&mut g, "conv", x, 200, Op::Conv(c), false);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    let t = tile_of(&r.after, "conv").unwrap();
    assert_eq!(t.cols, 4, "{t}");
    assert!(t.rows >= 2, "{t}");
}

#[test]
fn depthwise_convolutions_get_no_tile() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 6, 7, 7]);
    let y = add_conv(&mut g, "dw", x, 6, Op::Conv(conv2d(3, 1, 1, 6)), true);
    g.add_output("y", y);
    let r = rewrite_prepared(PASS, g);
    assert_eq!(r.count("depthwise_conv"), 1);
    r.assert_unchanged();
}

#[test]
fn a_three_channel_stem_leaves_registers_for_its_lanes() {
    // An RGB stem's only input block has three valid lanes, which a step walks one by
    // one: three broadcasts and three weight vectors live beside the accumulators, so
    // its tile has at most nine (eleven spilled: 7x7 stride 2, 5.2 ms against 4.5).
    // Eight input channels step through whole blocks and may take more. (At stride 2
    // both would be split into phases first: unstrided, as VGG's stem.)
    let mut g = Graph::new();
    let rgb = input(&mut g, "rgb", &[1, 3, 112, 112]);
    let wide = input(&mut g, "wide", &[1, 8, 112, 112]);
    let stem = add_conv(&mut g, "stem", rgb, 64, Op::Conv(conv2d(7, 1, 3, 1)), true);
    let other = add_conv(
        &mut g,
        "other",
        wide,
        64,
        Op::Conv(conv2d(7, 1, 3, 1)),
        true,
    );
    g.add_output("stem", stem);
    g.add_output("other", other);
    prepare(PASS, &mut g);
    apply(PASS, &mut g);
    let accumulators = |name: &str| {
        let t = tile_of(&g, name).unwrap();
        t.rows * t.cols / 4
    };
    // Sixteen registers less three broadcasts, three weights and a copy.
    assert!(accumulators("stem") <= 9, "{}", accumulators("stem"));
    assert!(accumulators("other") > 9, "{}", accumulators("other"));
}
