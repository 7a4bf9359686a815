//! channel_shuffle: reshape [N, g, C/g, ..] -> transpose (0 2 1 ..) -> reshape [N, C, ..]
//! becomes one ChannelShuffle (the spatial axes may be merged in the middle); one
//! group is no shuffle at all; anything else that looks similar (another
//! permutation, a split of the batch axis, a different final shape) is left alone.
//! Through the whole pipeline a ShuffleNet unit whose groups fill whole channel
//! blocks stays blocked from the grouped convolution to the depthwise one.

mod common;

use cnnc_ir::op::{Activation, Epilogue, Unary};
use cnnc_ir::{Graph, Op, Value};
use common::*;

const PASS: &str = "channel_shuffle";

/// `x` reshaped to `split`, its axes permuted by `perm`, reshaped to `back`.
fn spelled(g: &mut Graph, x: Value, split: &[usize], perm: &[usize], back: &[usize]) -> Value {
    let s = g
        .add(
            "split",
            Op::Reshape {
                shape: split.to_vec(),
            },
            &[x],
        )
        .unwrap();
    let t = g
        .add(
            "swap",
            Op::Transpose {
                perm: perm.to_vec(),
            },
            &[s],
        )
        .unwrap();
    g.add(
        "shuffled",
        Op::Reshape {
            shape: back.to_vec(),
        },
        &[t],
    )
    .unwrap()
}

fn shuffle_of(split: &[usize], perm: &[usize], back: &[usize], x: &[usize]) -> Rewrite {
    let mut g = Graph::new();
    let x = input(&mut g, "x", x);
    let y = spelled(&mut g, x, split, perm, back);
    g.add_output("y", y);
    rewrite(PASS, g)
}

#[test]
fn reshape_transpose_reshape_becomes_a_shuffle() {
    let r = shuffle_of(
        &[1, 3, 4, 5, 5],
        &[0, 2, 1, 3, 4],
        &[1, 12, 5, 5],
        &[1, 12, 5, 5],
    );
    insta::assert_snapshot!("reshape_transpose_reshape_becomes_a_shuffle", r.text());
    assert_eq!(
        (r.changes, r.count("channel_shuffle"), r.count("transpose")),
        (3, 1, 0)
    );
}

#[test]
fn merged_spatial_axes_and_other_ranks() {
    for (split, perm, x) in [
        (&[2, 4, 3, 35][..], &[0, 2, 1, 3][..], &[2, 12, 5, 7][..]),
        (&[1, 2, 3], &[0, 2, 1], &[1, 6]),
        (&[1, 2, 4, 3, 2, 2], &[0, 2, 1, 3, 4, 5], &[1, 8, 3, 2, 2]),
    ] {
        let r = shuffle_of(split, perm, x, x);
        assert_eq!(r.count("channel_shuffle"), 1, "{}", r.text());
        assert_eq!(r.count("transpose") + r.count("reshape"), 0);
    }
}

#[test]
fn one_group_is_no_shuffle() {
    for split in [[1, 1, 12, 5, 5], [1, 12, 1, 5, 5]] {
        let r = shuffle_of(&split, &[0, 2, 1, 3, 4], &[1, 12, 5, 5], &[1, 12, 5, 5]);
        assert_eq!(r.after.node_ids().count(), 1, "{}", r.text());
    }
}

#[test]
fn lookalikes_stay() {
    let x = [2, 12, 5, 5];
    for (split, perm, back) in [
        // Another permutation.
        (&[2, 3, 4, 5, 5][..], &[0, 2, 1, 4, 3][..], &x[..]),
        // The batch axis split rather than the channels, or merged into a spatial one.
        (&[1, 2, 12, 5, 5], &[0, 2, 1, 3, 4], &x),
        (&[1, 3, 4, 10, 5], &[0, 2, 1, 3, 4], &x),
        // Back to another shape.
        (&[2, 3, 4, 5, 5], &[0, 2, 1, 3, 4], &[2, 12, 25]),
    ] {
        shuffle_of(split, perm, back, &x).assert_unchanged();
    }
}

#[test]
fn a_transpose_read_elsewhere_stays_for_its_reader() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 8, 3, 3]);
    let y = spelled(&mut g, x, &[1, 2, 4, 3, 3], &[0, 2, 1, 3, 4], &[1, 8, 3, 3]);
    g.add_output("y", y);
    let swap = g
        .node_ids()
        .find(|&id| g.node(id).outputs[0].name == "swap")
        .unwrap();
    g.add_output("swapped", Value::new(swap, 0));
    let r = rewrite(PASS, g);
    assert_eq!(
        (r.count("channel_shuffle"), r.count("transpose")),
        (1, 1),
        "{}",
        r.text()
    );
}

#[test]
fn a_shufflenet_unit_stays_blocked() {
    // Grouped 1x1 convolution with ReLU, shuffle of 4 groups of 8 channels, depthwise
    // 3x3: no reorder between the convolutions.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 16, 6, 6]);
    let y = add_conv(&mut g, "gconv", x, 32, Op::Conv(conv2d(1, 1, 0, 4)), true);
    let y = g.add("relu", Op::Unary(Unary::Relu), &[y]).unwrap();
    let y = spelled(
        &mut g,
        y,
        &[1, 4, 8, 6, 6],
        &[0, 2, 1, 3, 4],
        &[1, 32, 6, 6],
    );
    let mut dw = conv2d(3, 1, 1, 32);
    dw.epilogue = Epilogue {
        residual: false,
        activation: Some(Activation::Unary(Unary::Relu)),
    };
    let y = add_conv(&mut g, "dw", y, 32, Op::Conv(dw), true);
    g.add_output("y", y);
    let text = pipeline(g);
    insta::assert_snapshot!("a_shufflenet_unit_stays_blocked", text);
    let after = text.split("after:").nth(1).unwrap();
    assert!(after.contains("channel_shuffle(%gconv)"), "{after}");
    assert_eq!(after.matches("reorder(").count(), 2, "{after}");
}
