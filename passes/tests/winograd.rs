//! winograd: blocked 3x3, 4x4 and 5x5 stride-1 convolutions that the cost model prices
//! below the direct kernel (and pointwise ones of small planes whose weights do not fit
//! L2, through plain products) become input transform, grouped pointwise products and
//! output transform (with the bias and epilogue); the result stays within a relative
//! L2 error of 1e-4 of the convolution on every geometry and grouping, every tile size,
//! plain and blocked.

mod common;

use cnnc_ir::op::{Activation, Epilogue, Unary, Winograd};
use cnnc_ir::{Graph, Op, Tensor, Value, interp};
use cnnc_passes::TargetInfo;
use cnnc_passes::winograd::rewrite_with;
use common::*;

const PASS: &str = "winograd";

/// The largest relative L2 error over the outputs of `after` against `before`, on
/// random inputs.
fn rel_l2(before: &Graph, after: &Graph, seed: u64) -> f64 {
    let mut rng = Rng::new(seed);
    let inputs: Vec<Tensor> = before
        .inputs()
        .iter()
        .map(|&id| rng.tensor(&before.node(id).outputs[0].ty.shape))
        .collect();
    let want = interp::run(before, &inputs).unwrap();
    let got = interp::run(after, &inputs).unwrap();
    want.iter()
        .zip(&got)
        .map(|(w, g)| {
            let (w, g) = (w.view::<f32>().unwrap(), g.view::<f32>().unwrap());
            let err: f64 = w
                .iter()
                .zip(g.iter())
                .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                .sum();
            let norm: f64 = w.iter().map(|a| (*a as f64).powi(2)).sum();
            (err / norm.max(f64::MIN_POSITIVE)).sqrt()
        })
        .fold(0.0, f64::max)
}

/// A 3x3 convolution of `x` with bias and an epilogue (ReLU, and a residual when
/// `residual` is given).
fn conv3x3(
    g: &mut Graph,
    name: &str,
    x: Value,
    m: usize,
    pads: [(usize, usize); 2],
    residual: Option<Value>,
) -> Value {
    grouped_conv3x3(g, name, x, m, 1, pads, residual)
}

/// [`conv3x3`] in `groups` groups.
fn grouped_conv3x3(
    g: &mut Graph,
    name: &str,
    x: Value,
    m: usize,
    groups: usize,
    pads: [(usize, usize); 2],
    residual: Option<Value>,
) -> Value {
    grouped_conv(g, name, x, [m, 3, groups], pads, residual)
}

/// An `r x r` convolution to `m` channels in `groups` groups, as [`conv3x3`].
fn grouped_conv(
    g: &mut Graph,
    name: &str,
    x: Value,
    [m, r, groups]: [usize; 3],
    pads: [(usize, usize); 2],
    residual: Option<Value>,
) -> Value {
    let mut attrs = conv2d(r, 1, 0, groups);
    attrs.pads = pads.to_vec();
    attrs.epilogue = Epilogue {
        residual: residual.is_some(),
        activation: Some(Activation::Unary(Unary::Relu)),
    };
    let c = g.value_type(x).shape[1];
    let w = random_const(g, &format!("{name}.w"), &[m, c / groups, r, r]);
    let b = random_const(g, &format!("{name}.b"), &[m]);
    let mut ins = vec![x, w, b];
    ins.extend(residual);
    g.add(name, Op::Conv(attrs), &ins).unwrap()
}

/// The pass on `g` after the passes before it: the rewrite (from the prepared graph,
/// so the snapshot shows this pass alone) and its relative L2 error against `g`.
fn prepared_rewrite(mut g: Graph) -> (Rewrite, f64) {
    let before = g.clone();
    prepare(PASS, &mut g);
    let prepared = g.clone();
    let changes = apply(PASS, &mut g);
    let r = Rewrite {
        pass: PASS.into(),
        changes,
        before: prepared,
        after: g,
    };
    let err = rel_l2(&before, &r.after, 1);
    (r, err)
}

#[test]
fn resnet_basic_block_convs_become_winograd() {
    // Both 3x3 convolutions of a ResNet basic block (the second with the
    // residual): F(4x4) tiles, the bias and epilogue on the output transform, which
    // keeps the convolution's name.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 16, 12, 12]);
    let y = conv3x3(&mut g, "conv1", x, 16, [(1, 1); 2], None);
    let y = conv3x3(&mut g, "conv2", y, 16, [(1, 1); 2], Some(x));
    g.add_output("y", y);
    let (r, err) = prepared_rewrite(g);
    insta::assert_snapshot!("resnet_basic_block_convs_become_winograd", r.text());
    assert_eq!((r.changes, r.count("winograd_output")), (2, 2));
    assert!(err <= 1e-4, "relative L2 error {err:e}");
}

#[test]
fn alexnet_grouped_conv_becomes_winograd() {
    // AlexNet's conv4 in miniature: two groups of whole blocks. The products are one
    // pointwise convolution of t*t*2 groups: product xi of group g is group xi*2+g.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 16, 12, 12]);
    let y = grouped_conv3x3(&mut g, "conv4", x, 24, 2, [(1, 1); 2], None);
    g.add_output("y", y);
    let (r, err) = prepared_rewrite(g);
    insta::assert_snapshot!("alexnet_grouped_conv_becomes_winograd", r.text());
    assert_eq!((r.changes, r.count("winograd_output")), (1, 1));
    assert!(err <= 1e-4, "relative L2 error {err:e}");
}

#[test]
fn alexnet_5x5_conv_becomes_winograd() {
    // AlexNet's conv2 in miniature: a 5x5 kernel in two groups of whole blocks, padded
    // by 2, as F(4x4, 5x5): 8x8 input tiles, 64 products per group.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 32, 14, 14]);
    let y = grouped_conv(&mut g, "conv2", x, [64, 5, 2], [(2, 2); 2], None);
    g.add_output("y", y);
    let (r, err) = prepared_rewrite(g);
    insta::assert_snapshot!("alexnet_5x5_conv_becomes_winograd", r.text());
    assert_eq!((r.changes, r.count("winograd_output")), (1, 1));
    assert!(err <= 1e-4, "relative L2 error {err:e}");
}

/// The Winograd attributes the pass gives one 3x3 convolution from `c` to `m`
/// channels on `hw x hw` images, padded by 1.
fn chosen(c: usize, m: usize, hw: usize) -> Winograd {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, c, hw, hw]);
    let y = conv3x3(&mut g, "conv", x, m, [(1, 1); 2], None);
    g.add_output("y", y);
    prepare(PASS, &mut g);
    apply(PASS, &mut g);
    let w = g.node_ids().find_map(|id| match &g.node(id).op {
        Op::WinogradOutput(w) => Some(w.clone()),
        _ => None,
    });
    w.expect("a Winograd convolution")
}

/// The output tile of [`chosen`].
fn chosen_tile(c: usize, m: usize, hw: usize) -> usize {
    chosen(c, m, hw).tile
}

#[test]
fn large_images_take_6x6_tiles_deep_layers_4x4() {
    // VGG-19's shallow layers at 224x224 and 112x112: F(6x6) multiplies a fifth less
    // than F(4x4). At 56x56 it saves under a tenth, not worth its larger code. The
    // 512-channel layers at 28x28 and 14x14: F(6x6)'s transformed weights (67 MB at
    // 28x28) would stream from memory for few tiles each, F(4x4)'s are 1.8x smaller.
    assert_eq!(chosen_tile(64, 64, 224), 6);
    assert_eq!(chosen_tile(128, 128, 112), 6);
    assert_eq!(chosen_tile(256, 256, 56), 4);
    assert_eq!(chosen_tile(512, 512, 28), 4);
    assert_eq!(chosen_tile(512, 512, 14), 4);
}

#[test]
fn small_planes_of_large_weights_take_plain_products() {
    // VGG-19's 512 channels at 14x14 (4x4 tiles of F(4x4), 1 MB of weights a
    // position) and ResNet-50's at 7x7 (F(2x2)): plain, one plane row of 16 tiles.
    for hw in [14, 7] {
        let w = chosen(512, 512, hw);
        assert_eq!(w.plain_products, Some(4), "512 channels at {hw}");
        assert_eq!((w.plane, w.band), ([1, 16], 0), "512 channels at {hw}");
    }
    // VGG-19's 28x28 layers: 49 tiles, padded to 13 vectors, a single row of output
    // channels a register tile; ResNet-50's 128 channels there too.
    for c in [512, 256, 128] {
        let w = chosen(c, 512.max(c), 28);
        assert_eq!((w.plain_products, w.plane), (Some(4), [1, 52]), "{c} at 28");
    }
    // ResNet-50's 256 at 14x14: its 256 KB a position stay in L2, where the blocked
    // products run faster. 64 channels at 28x28: the transforms would cost more than
    // the products gain. 196 tiles at 56x56 are more than a register tile, 9 at 12x12
    // three vectors, whose tile runs slower than the blocked one.
    assert_eq!(chosen(256, 256, 14).plain_products, None);
    assert_eq!(chosen(64, 64, 28).plain_products, None);
    assert_eq!(chosen(256, 256, 56).plain_products, None);
    assert_eq!(chosen(512, 512, 12).plain_products, None);
}

/// The Winograd attributes the pass gives a pointwise convolution from `c` to `m`
/// channels on `hw x hw` images with a residual, if it rewrites it.
fn chosen_pointwise(c: usize, m: usize, hw: usize) -> Option<Winograd> {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, c, hw, hw]);
    let r = input(&mut g, "r", &[1, m, hw, hw]);
    let y = grouped_conv(&mut g, "conv", x, [m, 1, 1], [(0, 0); 2], Some(r));
    g.add_output("y", y);
    prepare(PASS, &mut g);
    apply(PASS, &mut g);
    g.node_ids().find_map(|id| match &g.node(id).op {
        Op::WinogradOutput(w) => Some(w.clone()),
        _ => None,
    })
}

#[test]
fn pointwise_convs_of_small_planes_with_large_weights_take_plain_products() {
    // ResNet-50's last stage (7x7: 49 pixels in 13 vectors, 2 to 8 MB of weights) and
    // EfficientNet-B0's 320 -> 1280: F(1x1, 1x1), one plane row, the residual and the
    // activation in the output transform.
    for (c, m) in [(1024, 2048), (2048, 512), (512, 2048), (320, 1280)] {
        let w = chosen_pointwise(c, m, 7).expect("rewritten");
        assert_eq!((w.tile, w.kernel), (1, 1), "{c} -> {m}");
        assert_eq!(
            (w.plain_products, w.plane),
            (Some(4), [1, 52]),
            "{c} -> {m}"
        );
        assert!(w.epilogue.residual, "{c} -> {m}");
    }
    // Weights that fit L2 (MobileNet-v2's 160 -> 960: 614 KB), planes beyond a
    // register tile (14x14) or too small for the plane kernel's single row (5x5: 7
    // vectors), too few channels: the blocked kernel.
    assert_eq!(chosen_pointwise(160, 960, 7), None);
    assert_eq!(chosen_pointwise(1024, 1024, 14), None);
    assert_eq!(chosen_pointwise(1024, 2048, 5), None);
    assert_eq!(chosen_pointwise(64, 8192, 7), None);
}

#[test]
fn large_transformed_tensors_go_in_bands() {
    // U-Net's 256x256 layers and VGG-19's 224x224 and 112x112 ones: the transformed
    // input and products together beyond half of L3, a row of tiles of both beyond
    // L2: bands of one row.
    for (c, m, hw) in [(32, 32, 256), (64, 32, 256), (64, 64, 224), (128, 128, 112)] {
        let w = chosen(c, m, hw);
        assert_eq!(w.band, 1, "{c} -> {m} at {hw}");
        assert_eq!(w.plane[0], w.tiles()[0], "one row of tiles a plane row");
    }
    // 8 channels at 508x508 under F(6x6): 85 rows of tiles, 3 fit L2; bands of 2
    // compute 86 rows (the last band overlaps the one before by a row), of 3 87.
    let w = chosen(8, 8, 508);
    assert_eq!((w.tile, w.band, w.bands()), (6, 2, (43, 2)));
    // 16 MB of weights would not stay in L3 from band to band; 64 channels at 56x56
    // (3.6 MB) stay in cache whole.
    assert_eq!(chosen(256, 256, 112).band, 0);
    assert_eq!(chosen(64, 64, 56).band, 0);
}

#[test]
fn what_stays_direct() {
    // Stride 2, dilation 2, groups of 2 channels (not whole blocks), a 7x7 kernel, a
    // plain convolution (its input
    // channels do not fill a block, so the stem stays plain), a single 2x2 output
    // with few channels (too little work for the transforms to pay).
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 16, 16, 16]);
    let mut stride2 = conv2d(3, 2, 1, 1);
    stride2.epilogue.activation = None;
    let a = add_conv(&mut g, "stride2", x, 16, Op::Conv(stride2), true);
    let mut dilated = conv2d(3, 1, 2, 1);
    dilated.dilations = vec![2, 2];
    let b = add_conv(&mut g, "dilated", x, 16, Op::Conv(dilated), true);
    let c = add_conv(&mut g, "grouped", x, 16, Op::Conv(conv2d(3, 1, 1, 8)), true);
    let d = add_conv(&mut g, "seven", x, 16, Op::Conv(conv2d(7, 1, 3, 1)), true);
    let rgb = input(&mut g, "rgb", &[1, 3, 16, 16]);
    let e = add_conv(&mut g, "stem", rgb, 16, Op::Conv(conv2d(3, 1, 1, 1)), true);
    let tiny_in = input(&mut g, "tiny_in", &[1, 4, 4, 4]);
    let f = add_conv(
        &mut g,
        "tiny",
        tiny_in,
        4,
        Op::Conv(conv2d(3, 1, 0, 1)),
        true,
    );
    for (name, v) in [("a", a), ("b", b), ("c", c), ("d", d), ("e", e), ("f", f)] {
        g.add_output(name, v);
    }
    prepare(PASS, &mut g);
    let before = g.clone();
    let changes = apply(PASS, &mut g);
    assert_eq!(changes, 0);
    assert_eq!(print_of(&before), print_of(&g));
}

fn print_of(g: &Graph) -> String {
    cnnc_ir::print(g)
}

#[test]
fn every_geometry_stays_within_the_error_bound() {
    // Random channels (blocked: whole blocks; plain: any), sizes from 1x1 up, every
    // asymmetric padding the window allows, every tile of 1x1, 3x3, 4x4 and 5x5; batch
    // 1 or 2.
    let mut rng = Rng::new(7);
    let mut pick = |n: usize| ((rng.unit() + 1.0) / 2.0 * n as f32) as usize % n;
    for case in 0..160 {
        let blocked = case % 2 == 0;
        let groups = [1, 1, 2, 3][pick(4)];
        let (c, m) = if blocked {
            (4 * groups * (1 + pick(8)), 4 * groups * (1 + pick(8)))
        } else {
            (groups * (1 + pick(12)), groups * (1 + pick(12)))
        };
        let batch = 1 + pick(2);
        let (tile, r) = [(1, 1), (2, 3), (4, 3), (6, 3), (3, 4), (2, 5), (4, 5)][pick(7)];
        let mut pads = [(0, 0); 2];
        let mut hw = [0; 2];
        for a in 0..2 {
            pads[a] = (pick(r), pick(r));
            let least = r.saturating_sub(pads[a].0 + pads[a].1).max(1);
            hw[a] = least + pick(18);
        }
        let mut g = Graph::new();
        let x = input(&mut g, "x", &[batch, c, hw[0], hw[1]]);
        let y = grouped_conv(&mut g, "conv", x, [m, r, groups], pads, None);
        g.add_output("y", y);
        let before = g.clone();
        if blocked {
            apply("assign_layout", &mut g);
        }
        let id = g
            .node_ids()
            .find(|&id| matches!(g.node(id).op, Op::Conv(_)))
            .unwrap();
        let desc = format!(
            "case {case}: x=[{batch},{c},{}x{}] m={m} groups={groups} pads={pads:?} F({tile}, {r}) blocked={blocked}",
            hw[0], hw[1]
        );
        assert!(
            rewrite_with(&mut g, id, tile, &TargetInfo::default()).unwrap(),
            "{desc}"
        );
        cnnc_ir::verify(&g).unwrap_or_else(|e| panic!("{desc}: {e}"));
        let err = rel_l2(&before, &g, case);
        assert!(err <= 1e-4, "{desc}: relative L2 error {err:e}");
    }
}
