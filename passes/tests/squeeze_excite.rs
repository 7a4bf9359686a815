//! squeeze_excite: `x * s` with `s` of shape `[N, C, 1...]` and `x` of `[N, C, spatial...]`
//! (more than one pixel) becomes a ChannelScale, a per-image per-channel scale instead
//! of a broadcasting multiply. The tests show both operand orders, batches, 1-D maps,
//! multiplies that are not gates, and EfficientNet's squeeze-and-excitation block.

mod common;

use cnnc_ir::op::{Binary, PoolKind, Unary};
use cnnc_ir::{Graph, Op, Value};
use common::*;

const PASS: &str = "squeeze_excite";

fn mul(g: &mut Graph, name: &str, a: Value, b: Value) -> Value {
    g.add(name, Op::Binary(Binary::Mul), &[a, b]).unwrap()
}

/// sigmoid(global average pool of x): a gate of shape `[N, C, 1...]`.
fn gate(g: &mut Graph, name: &str, x: Value) -> Value {
    let p = g
        .add(
            format!("{name}.pool"),
            Op::GlobalPool(PoolKind::Avg {
                count_include_pad: false,
            }),
            &[x],
        )
        .unwrap();
    g.add(name, Op::Unary(Unary::Sigmoid), &[p]).unwrap()
}

#[test]
fn gate_on_either_side_batch_two() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[2, 3, 3, 2]);
    let s = gate(&mut g, "gate", x);
    let a = mul(&mut g, "gated", x, s);
    let s2 = gate(&mut g, "gate2", a);
    let b = mul(&mut g, "gated2", s2, a);
    g.add_output("y", b);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("gate_on_either_side_batch_two", r.text());
    assert_eq!((r.changes, r.count("channel_scale")), (2, 2));
}

#[test]
fn one_dimensional_feature_map() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 5, 7]);
    let s = input(&mut g, "s", &[1, 5, 1]);
    let y = mul(&mut g, "gated", s, x);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("one_dimensional_feature_map", r.text());
    assert_eq!((r.changes, r.count("channel_scale")), (1, 1));
}

#[test]
fn multiplies_that_are_not_gates() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[2, 3, 2, 2]);
    // One gate for the whole batch ([1,C,1,1] against N = 2).
    let s1 = input(&mut g, "s1", &[1, 3, 1, 1]);
    let a = mul(&mut g, "a", x, s1);
    g.add_output("a", a);
    // A constant per-channel scale without the batch axis.
    let s2 = random_const(&mut g, "s2", &[3, 1, 1]);
    let b = mul(&mut g, "b", x, s2);
    g.add_output("b", b);
    // A spatial mask.
    let s3 = input(&mut g, "s3", &[2, 1, 2, 2]);
    let c = mul(&mut g, "c", x, s3);
    g.add_output("c", c);
    // Same shapes: an elementwise product.
    let d = mul(&mut g, "d", x, x);
    g.add_output("d", d);
    // A 1x1 map: nothing to broadcast over.
    let p = input(&mut g, "p", &[2, 3, 1, 1]);
    let e = mul(&mut g, "e", p, p);
    g.add_output("e", e);
    // Both operands broadcast: the output is larger than x.
    let f = mul(&mut g, "f", s1, s3);
    g.add_output("f", f);
    rewrite(PASS, g).assert_unchanged();
}

#[test]
fn efficientnet_b0_squeeze_excite_block() {
    // features.2.1 after activation fusion: pool, fc1 (SiLU), fc2 (sigmoid), Mul.
    let g = cut("bench-models/efficientnet_b0")
        .input(
            "/features/features.2/features.2.0/block/block.3/block.3.0/Conv_output_0",
            &[1, 24, 5, 5],
        )
        .strip("/features/features.2/")
        .outputs(&["/features/features.2/features.2.1/Add_output_0"]);
    let r = rewrite_prepared(PASS, g);
    insta::assert_snapshot!("efficientnet_b0_squeeze_excite_block", r.text());
    assert_eq!((r.changes, r.count("mul")), (1, 0));
}
