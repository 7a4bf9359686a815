//! assign_layout: 2-D and 3-D convolutions with constant weights and whole blocks of
//! output channels write blocked (NC[D]HW4c) tensors; elementwise ops on equal shapes
//! and channel concatenations and pools of blocked tensors stay blocked; reorders appear only where
//! a consumer needs plain NCHW (graph outputs, LRN, broadcasting ops), one per
//! tensor however many consumers need it. The tests show chains from real models and
//! every reason a convolution or a follower stays plain.

mod common;

use cnnc_ir::op::{Binary, Lrn, Pool, PoolKind, Unary};
use cnnc_ir::{Graph, Layout, Op, Value};
use common::*;

const PASS: &str = "assign_layout";

fn relu(g: &mut Graph, name: &str, x: Value) -> Value {
    g.add(name, Op::Unary(Unary::Relu), &[x]).unwrap()
}

/// The layout of the tensor `name` after the pass.
fn layout_of(r: &Rewrite, name: &str) -> Layout {
    let g = &r.after;
    let id = g
        .node_ids()
        .find(|&id| g.node(id).outputs[0].name == name)
        .unwrap_or_else(|| panic!("no tensor {name}"));
    g.node(id).outputs[0].ty.layout
}

const C4: Layout = Layout::Blocked { block: 4 };

#[test]
fn rgb_stem_conv_relu_pool() {
    // The RGB input (3 channels) is reordered into a padded block; the ReLU and the
    // max pool keep the blocked layout; the graph output goes back to plain.
    let mut g = Graph::new();
    let x = input(&mut g, "image", &[1, 3, 9, 9]);
    let y = add_conv(&mut g, "stem", x, 8, Op::Conv(conv2d(3, 2, 1, 1)), true);
    let y = relu(&mut g, "relu", y);
    let pool = Op::Pool(Pool {
        kind: PoolKind::Max,
        kernel: vec![2, 2],
        strides: vec![2, 2],
        dilations: vec![1, 1],
        pads: vec![(0, 0); 2],
        ceil_mode: false,
    });
    let p = g.add("pool", pool, &[y]).unwrap();
    g.add_output("pool", p);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("rgb_stem_conv_relu_pool", r.text());
    assert_eq!((r.changes, r.count("reorder")), (5, 2));
    assert_eq!(layout_of(&r, "pool"), C4);
}

#[test]
fn squeezenet_fire_module() {
    // Squeeze, both expands and their concatenation stay blocked: the concat writes
    // whole channel blocks, so it can still place its pieces in place.
    let g = cut("onnx-conformance/models/squeezenet_random")
        .input("r2", &[1, 64, 5, 5])
        .strip("fire2/")
        .outputs(&["r9"]);
    let r = rewrite_prepared(PASS, g);
    insta::assert_snapshot!("squeezenet_fire_module", r.text());
    assert_eq!(r.count("reorder"), 2);
    assert_eq!(layout_of(&r, "r9"), C4);
}

#[test]
fn resnet50_bottleneck_with_residual() {
    // The residual (the block's input) is read blocked by the last convolution.
    let g = cut("onnx-conformance/models/resnet50")
        .input("r35", &[1, 256, 6, 6])
        .strip("gpu_0/")
        .randomize(3)
        .outputs(&["r47"]);
    let r = rewrite_prepared(PASS, g);
    insta::assert_snapshot!("resnet50_bottleneck_with_residual", r.text());
    assert_eq!(r.count("reorder"), 2);
}

#[test]
fn one_reorder_for_every_plain_consumer() {
    // A blocked tensor read by a softmax and by a broadcasting Mul: both read one plain
    // copy; the graph output that is the blocked tensor itself gets its own name back.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 4, 5, 5]);
    let y = add_conv(&mut g, "conv", x, 4, Op::Conv(conv2d(3, 1, 1, 1)), true);
    let softmax = Op::Softmax {
        axis: 1,
        log: false,
    };
    let n = g.add("softmax", softmax, &[y]).unwrap();
    let s = random_const(&mut g, "scale", &[4, 1, 1]);
    let m = g.add("mul", Op::Binary(Binary::Mul), &[y, s]).unwrap();
    g.add_output("softmax", n);
    g.add_output("mul", m);
    g.add_output("conv", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("one_reorder_for_every_plain_consumer", r.text());
    assert_eq!(r.count("reorder"), 2);
    assert_eq!(layout_of(&r, "mul"), Layout::Plain);
}

#[test]
fn lrn_between_blocked_convs_stays_blocked() {
    // GoogLeNet's conv -> LRN -> conv: the LRN follows its blocked input, no reorders.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 8, 6, 6]);
    let a = add_conv(&mut g, "a", x, 8, Op::Conv(conv2d(3, 1, 1, 1)), true);
    let lrn = Op::Lrn(Lrn {
        size: 5,
        alpha: 1e-4,
        beta: 0.75,
        bias: 1.0,
    });
    let n = g.add("lrn", lrn, &[a]).unwrap();
    let b = add_conv(&mut g, "b", n, 8, Op::Conv(conv2d(1, 1, 0, 1)), true);
    g.add_output("y", b);
    let r = rewrite(PASS, g);
    assert_eq!(layout_of(&r, "lrn"), Layout::Blocked { block: 4 });
    // Into the first convolution and out of the last.
    assert_eq!(r.count("reorder"), 2, "{}", r.text());
}

#[test]
fn residual_add_of_two_blocked_convs_stays_blocked() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[2, 8, 4, 4]);
    let a = add_conv(&mut g, "a", x, 8, Op::Conv(conv2d(1, 1, 0, 1)), true);
    let b = add_conv(&mut g, "b", x, 8, Op::Conv(conv2d(3, 1, 1, 2)), false);
    let s = g.add("sum", Op::Binary(Binary::Add), &[a, b]).unwrap();
    let y = relu(&mut g, "relu", s);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("residual_add_of_two_blocked_convs_stays_blocked", r.text());
    assert_eq!(layout_of(&r, "sum"), C4);
    assert_eq!(r.count("reorder"), 2);
}

/// A cubic convolution of `kernel` with padding `pad` (stride 1).
fn conv3d(kernel: usize, pad: usize, groups: usize) -> cnnc_ir::op::Conv {
    cnnc_ir::op::Conv {
        kernel: vec![kernel; 3],
        strides: vec![1; 3],
        dilations: vec![1; 3],
        pads: vec![(pad, pad); 3],
        groups,
        epilogue: Default::default(),
    }
}

#[test]
fn c3d_block_stays_blocked_in_3d() {
    // C3D / 3-D ResNet: conv3d -> ReLU -> max pool (1x2x2) -> conv3d -> global average
    // pool, and a 3-D depthwise convolution of the pool (X3D), all on NCDHW4c tensors.
    // An LRN (4-D kernels only) reads a plain copy.
    let mut g = Graph::new();
    let x = input(&mut g, "clip", &[1, 3, 4, 8, 8]);
    let a = add_conv(&mut g, "conv1", x, 8, Op::Conv(conv3d(3, 1, 1)), true);
    let a = relu(&mut g, "relu1", a);
    let pool = Op::Pool(Pool {
        kind: PoolKind::Max,
        kernel: vec![1, 2, 2],
        strides: vec![1, 2, 2],
        dilations: vec![1; 3],
        pads: vec![(0, 0); 3],
        ceil_mode: false,
    });
    let p = g.add("pool1", pool, &[a]).unwrap();
    let b = add_conv(&mut g, "conv2", p, 8, Op::Conv(conv3d(3, 1, 1)), true);
    let gap = g
        .add(
            "gap",
            Op::GlobalPool(PoolKind::Avg {
                count_include_pad: false,
            }),
            &[b],
        )
        .unwrap();
    g.add_output("gap", gap);
    let lrn = Op::Lrn(Lrn {
        size: 3,
        alpha: 1e-4,
        beta: 0.75,
        bias: 1.0,
    });
    let n = g.add("lrn", lrn, &[b]).unwrap();
    g.add_output("lrn", n);
    let d = add_conv(&mut g, "dw", p, 8, Op::DepthwiseConv(conv3d(3, 1, 8)), true);
    g.add_output("dw", d);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("c3d_block_stays_blocked_in_3d", r.text());
    for name in ["conv1", "relu1", "pool1", "conv2", "gap", "dw"] {
        assert_eq!(layout_of(&r, name), C4, "{name}");
    }
    assert_eq!(layout_of(&r, "lrn"), Layout::Plain);
    // Into conv1; conv2 to plain for the LRN; the global pool's and the depthwise
    // convolution's outputs.
    assert_eq!(r.count("reorder"), 4, "{}", r.text());
}

#[test]
fn unet_decoder_stays_blocked() {
    // U-Net: the up-convolution (2x2 stride 2, lowered to a pointwise product and a
    // col2im) writes whole blocks of 4 channels; it, the concatenation with the skip
    // connection and the convolution after them stay blocked. A 2-channel
    // up-convolution's col2im reads plain columns.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 8, 3, 3]);
    let skip = input(&mut g, "skip", &[1, 4, 6, 6]);
    let s = add_conv(&mut g, "enc", skip, 4, Op::Conv(conv2d(3, 1, 1, 1)), true);
    let b = add_conv(&mut g, "bottom", x, 8, Op::Conv(conv2d(3, 1, 1, 1)), true);
    let up = |g: &mut Graph, name: &str, m: usize| {
        let c = cnnc_ir::op::ConvTranspose {
            kernel: vec![2, 2],
            strides: vec![2, 2],
            dilations: vec![1, 1],
            pads: vec![(0, 0); 2],
            output_padding: vec![0, 0],
            groups: 1,
            epilogue: Default::default(),
        };
        let w = random_const(g, &format!("{name}.w"), &[8, m, 2, 2]);
        let bias = random_const(g, &format!("{name}.b"), &[m]);
        g.add(name, Op::ConvTranspose(c), &[b, w, bias]).unwrap()
    };
    let u = up(&mut g, "up", 4);
    let cat = g.add("cat", Op::Concat { axis: 1 }, &[s, u]).unwrap();
    let y = add_conv(&mut g, "dec", cat, 4, Op::Conv(conv2d(3, 1, 1, 1)), true);
    g.add_output("y", y);
    let narrow = up(&mut g, "narrow", 2);
    g.add_output("narrow", narrow);
    let r = rewrite_prepared(PASS, g);
    insta::assert_snapshot!("unet_decoder_stays_blocked", r.text());
    for name in ["up", "cat", "dec"] {
        assert_eq!(layout_of(&r, name), C4, "{name}");
    }
    assert_eq!(layout_of(&r, "narrow"), Layout::Plain);
    // Into both first convolutions, the narrow product's columns, and out of dec.
    assert_eq!(r.count("reorder"), 4, "{}", r.text());
}

#[test]
fn convolutions_that_stay_plain() {
    // 6 output channels (not whole blocks), run-time weights, a 1-D convolution, and
    // groups of 2 channels: no blocked kernel, so nothing changes.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 4, 6, 6]);
    let a = add_conv(&mut g, "six", x, 6, Op::Conv(conv2d(3, 1, 1, 1)), true);
    g.add_output("six", a);
    let w = input(&mut g, "w", &[4, 4, 1, 1]);
    let b = g
        .add("runtime_w", Op::Conv(conv2d(1, 1, 0, 1)), &[x, w])
        .unwrap();
    g.add_output("runtime_w", b);
    let line = input(&mut g, "line", &[1, 4, 9]);
    let mut c1 = conv2d(3, 1, 1, 1);
    c1.kernel = vec![3];
    c1.strides = vec![1];
    c1.dilations = vec![1];
    c1.pads = vec![(1, 1)];
    let c = add_conv(&mut g, "one_d", line, 4, Op::Conv(c1), true);
    g.add_output("one_d", c);
    let d = add_conv(&mut g, "grouped", x, 8, Op::Conv(conv2d(3, 1, 1, 2)), true);
    g.add_output("grouped", d);
    let r = rewrite(PASS, g);
    r.assert_unchanged();
}

#[test]
fn max_pool_after_a_plain_op_is_blocked() {
    // AlexNet/GoogLeNet: LRN (plain) then a max pool before a convolution. The pool's
    // blocked kernel is worth reordering its input; the convolution then reads it.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 8, 9, 9]);
    let lrn = Op::Lrn(Lrn {
        size: 3,
        alpha: 1e-4,
        beta: 0.75,
        bias: 1.0,
    });
    let n = g.add("lrn", lrn, &[x]).unwrap();
    let pool = Op::Pool(Pool {
        kind: PoolKind::Max,
        kernel: vec![3, 3],
        strides: vec![2, 2],
        dilations: vec![1, 1],
        pads: vec![(0, 0); 2],
        ceil_mode: true,
    });
    let p = g.add("pool", pool, &[n]).unwrap();
    let y = add_conv(&mut g, "conv", p, 8, Op::Conv(conv2d(1, 1, 0, 1)), true);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("max_pool_after_a_plain_op_is_blocked", r.text());
    assert_eq!(layout_of(&r, "pool"), C4);
    assert_eq!(r.count("reorder"), 2);
}

#[test]
fn depthwise_before_a_blocked_convolution_is_blocked() {
    // ShuffleNet: a channel shuffle (plain) feeds a depthwise convolution whose only
    // consumer is a blocked convolution. The reorder that convolution needs moves
    // before the depthwise one, which then runs blocked; one reorder either way.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 8, 6, 6]);
    let s = relu(&mut g, "shuffled", x);
    let d = add_conv(
        &mut g,
        "dw",
        s,
        8,
        Op::DepthwiseConv(conv2d(3, 2, 1, 8)),
        true,
    );
    let y = add_conv(&mut g, "pw", d, 8, Op::Conv(conv2d(1, 1, 0, 1)), true);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!(
        "depthwise_before_a_blocked_convolution_is_blocked",
        r.text()
    );
    assert_eq!(r.count("reorder"), 2);
    assert_eq!(layout_of(&r, "shuffled"), Layout::Plain);
    assert_eq!(layout_of(&r, "dw"), C4);
}

#[test]
fn depthwise_after_a_plain_op_with_a_plain_consumer_stays_plain() {
    // Its output is also a graph output (plain), or goes to an op with no blocked
    // kernel: a reorder of its input would be one more.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 8, 6, 6]);
    let s = relu(&mut g, "shuffled", x);
    let d = add_conv(
        &mut g,
        "dw",
        s,
        8,
        Op::DepthwiseConv(conv2d(3, 1, 1, 8)),
        true,
    );
    let y = add_conv(&mut g, "pw", d, 8, Op::Conv(conv2d(1, 1, 0, 1)), true);
    g.add_output("y", y);
    g.add_output("dw", d);
    let e = add_conv(
        &mut g,
        "dw2",
        s,
        8,
        Op::DepthwiseConv(conv2d(3, 1, 1, 8)),
        true,
    );
    let lrn = Op::Lrn(Lrn {
        size: 3,
        alpha: 1e-4,
        beta: 0.75,
        bias: 1.0,
    });
    let n = g.add("lrn", lrn, &[e]).unwrap();
    g.add_output("lrn", n);
    let r = rewrite(PASS, g);
    assert_eq!(layout_of(&r, "dw"), Layout::Plain);
    assert_eq!(layout_of(&r, "dw2"), Layout::Plain);
}
