//! space_to_depth: a strided convolution whose phases Winograd would
//! compute below the direct kernel's cost becomes Pad -> SpaceToDepth -> a stride-1
//! convolution of `ceil(k / s)` taps; the result equals the convolution on every
//! geometry (kernel, stride, channels, asymmetric padding, sizes whose last rows no
//! output reads); deep ones split as stems do (ZFNet's 5x5/2 conv2); unstrided or
//! small convolutions are left alone.

mod common;

use cnnc_ir::op::{Activation, Conv, Epilogue, Unary};
use cnnc_ir::{Graph, Op};
use cnnc_passes::TargetInfo;
use cnnc_passes::space_to_depth::split_with;
use common::*;

const PASS: &str = "space_to_depth";

fn strided(k: usize, s: usize, pads: [(usize, usize); 2]) -> Conv {
    Conv {
        kernel: vec![k, k],
        strides: vec![s, s],
        dilations: vec![1, 1],
        pads: pads.to_vec(),
        groups: 1,
        epilogue: Epilogue {
            residual: false,
            activation: Some(Activation::Unary(Unary::Relu)),
        },
    }
}

#[test]
fn a_stem_splits_into_phases() {
    // ResNet's stem, smaller: 7x7 stride 2, padding 3, on 3 channels.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 3, 64, 64]);
    let y = add_conv(
        &mut g,
        "stem",
        x,
        16,
        Op::Conv(strided(7, 2, [(3, 3); 2])),
        true,
    );
    g.add_output("y", y);
    let r = rewrite_prepared_plain(PASS, g);
    insta::assert_snapshot!("a_stem_splits_into_phases", r.text());
    assert_eq!(
        (r.changes, r.count("pad"), r.count("space_to_depth")),
        (1, 1, 1)
    );
}

#[test]
fn every_geometry_computes_the_same() {
    let mut rng = Rng::new(11);
    let mut pick = |lo: usize, hi: usize| {
        lo + ((rng.unit() + 1.0) / 2.0 * (hi - lo + 1) as f32) as usize % (hi - lo + 1)
    };
    for case in 0..60 {
        let s = pick(2, 4);
        // Whole blocks of phase channels: any count at stride 2 or 4, 4 at stride 3.
        let c = if s == 3 { 4 } else { pick(1, 4) };
        let k = pick(s + 1, 11);
        let pads = [
            (pick(0, k - 1), pick(0, k - 1)),
            (pick(0, k - 1), pick(0, k - 1)),
        ];
        let hw: Vec<usize> = pads
            .iter()
            .map(|&(b, e)| k.saturating_sub(b + e).max(1) + pick(0, 12))
            .collect();
        let mut g = Graph::new();
        let x = input(&mut g, "x", &[pick(1, 2), c, hw[0], hw[1]]);
        let y = add_conv(
            &mut g,
            "conv",
            x,
            4 * pick(1, 3),
            Op::Conv(strided(k, s, pads)),
            case % 3 > 0,
        );
        g.add_output("y", y);
        let before = g.clone();
        let id = g
            .node_ids()
            .find(|&id| matches!(g.node(id).op, Op::Conv(_)))
            .unwrap();
        let desc = format!("case {case}: x={hw:?}x{c} k={k} s={s} pads={pads:?}");
        assert!(
            split_with(&mut g, id, &TargetInfo::default()).unwrap(),
            "{desc}"
        );
        cnnc_ir::verify(&g).unwrap_or_else(|e| panic!("{desc}: {e}"));
        same_outputs(&before, &g, case);
    }
}

#[test]
fn a_deep_5x5_stride_2_convolution_splits() {
    // ZFNet's conv2 in miniature: 5x5 stride 2 on 32 channels, 128 phase channels
    // under a 3x3 kernel, which Winograd takes.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 32, 31, 31]);
    let y = add_conv(
        &mut g,
        "conv2",
        x,
        64,
        Op::Conv(strided(5, 2, [(1, 1); 2])),
        true,
    );
    g.add_output("y", y);
    let r = rewrite_prepared_plain(PASS, g);
    assert_eq!(
        (r.changes, r.count("pad"), r.count("space_to_depth")),
        (1, 1, 1),
        "{}",
        r.text()
    );
}

#[test]
fn unstrided_or_small_convolutions_are_left_alone() {
    // Each would have Winograd phases (4x4 taps: F(3x3, 4x4)) but for one condition.
    let cases = [
        // No stride: nothing to split.
        ([1, 4, 64, 64], strided(4, 1, [(2, 1); 2]), false),
        // Too small for the transforms and copies to pay, though it could split.
        ([1, 3, 8, 8], strided(7, 2, [(3, 3); 2]), true),
    ];
    for (shape, conv, splits) in cases {
        let mut g = Graph::new();
        let x = input(&mut g, "x", &shape);
        let y = add_conv(&mut g, "conv", x, 16, Op::Conv(conv), true);
        g.add_output("y", y);
        let mut forced = g.clone();
        let id = forced
            .node_ids()
            .find(|&id| matches!(forced.node(id).op, Op::Conv(_)))
            .unwrap();
        assert_eq!(
            split_with(&mut forced, id, &TargetInfo::default()).unwrap(),
            splits,
            "{shape:?}"
        );
        rewrite_prepared_plain(PASS, g).assert_unchanged();
    }
}

#[test]
fn convolutions_whose_phases_would_be_pointwise_are_left_alone() {
    // Patchifying stems (4x4/4, 2x2/2) and 1x1/2 convolutions: their phases would be
    // 1x1, which Winograd's F(1x1, 1x1) computes with no fewer multiplies.
    let cases = [
        ([1, 64, 56, 56], strided(2, 2, [(0, 0); 2]), 256),
        ([1, 64, 56, 56], strided(4, 4, [(0, 0); 2]), 256),
        ([1, 128, 28, 28], strided(1, 2, [(0, 0); 2]), 256),
    ];
    for (shape, conv, m) in cases {
        let mut g = Graph::new();
        let x = input(&mut g, "x", &shape);
        let y = add_conv(&mut g, "conv", x, m, Op::Conv(conv), true);
        g.add_output("y", y);
        rewrite_prepared_plain(PASS, g).assert_unchanged();
    }
}
