//! eliminate_identities (and its second run, cleanup): Identity nodes, Reshapes to the
//! same shape, Reshapes of Reshapes and identity Transposes are bypassed, and nodes no
//! output needs are dropped. The tests show each, graph outputs that end up naming an
//! input, and data movement that must stay (ShuffleNet's channel shuffle).

mod common;

use cnnc_ir::Op;
use cnnc_ir::op::{Binary, Unary};
use common::*;

const PASS: &str = "eliminate_identities";

#[test]
fn identities_around_a_relu() {
    let mut g = cnnc_ir::Graph::new();
    let x = input(&mut g, "x", &[2, 3]);
    let a = g.add("dropout", Op::Identity, &[x]).unwrap();
    let a = g.add("relu", Op::Unary(Unary::Relu), &[a]).unwrap();
    let a = g.add("out", Op::Identity, &[a]).unwrap();
    g.add_output("y", a);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("identities_around_a_relu", r.text());
    assert_eq!((r.changes, r.count("identity")), (2, 0));
}

#[test]
fn reshape_chains_and_same_shape_reshapes() {
    // [2,3,4] -> [6,4] -> [24] -> [2,12]: the last reads x; [2,12] -> [2,12] goes.
    let mut g = cnnc_ir::Graph::new();
    let x = input(&mut g, "x", &[2, 3, 4]);
    let a = g
        .add("r1", Op::Reshape { shape: vec![6, 4] }, &[x])
        .unwrap();
    let a = g.add("r2", Op::Reshape { shape: vec![24] }, &[a]).unwrap();
    let a = g
        .add("r3", Op::Reshape { shape: vec![2, 12] }, &[a])
        .unwrap();
    let a = g
        .add("same", Op::Reshape { shape: vec![2, 12] }, &[a])
        .unwrap();
    let a = g.add("neg", Op::Unary(Unary::Neg), &[a]).unwrap();
    g.add_output("y", a);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("reshape_chains_and_same_shape_reshapes", r.text());
    assert_eq!(r.count("reshape"), 1);
}

#[test]
fn reshape_chain_back_to_the_input_shape() {
    // Reshape(Reshape(x)) to x's own shape disappears altogether.
    let mut g = cnnc_ir::Graph::new();
    let x = input(&mut g, "x", &[1, 4, 2, 2]);
    let a = g
        .add("flat", Op::Reshape { shape: vec![1, 16] }, &[x])
        .unwrap();
    let a = g
        .add(
            "back",
            Op::Reshape {
                shape: vec![1, 4, 2, 2],
            },
            &[a],
        )
        .unwrap();
    let a = g.add("relu", Op::Unary(Unary::Relu), &[a]).unwrap();
    g.add_output("y", a);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("reshape_chain_back_to_the_input_shape", r.text());
    assert_eq!(r.count("reshape"), 0);
}

#[test]
fn identity_transpose_goes_real_transpose_stays() {
    let mut g = cnnc_ir::Graph::new();
    let x = input(&mut g, "x", &[2, 3, 4]);
    let a = g
        .add(
            "keep",
            Op::Transpose {
                perm: vec![0, 1, 2],
            },
            &[x],
        )
        .unwrap();
    let a = g
        .add(
            "swap",
            Op::Transpose {
                perm: vec![0, 2, 1],
            },
            &[a],
        )
        .unwrap();
    g.add_output("y", a);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("identity_transpose_goes_real_transpose_stays", r.text());
    assert_eq!((r.changes, r.count("transpose")), (1, 1));
}

#[test]
fn dead_nodes_and_unused_constants() {
    let mut g = cnnc_ir::Graph::new();
    let x = input(&mut g, "x", &[3]);
    let unused = random_const(&mut g, "unused", &[3]);
    let dead = g
        .add("dead", Op::Binary(Binary::Mul), &[x, unused])
        .unwrap();
    g.add("dead_too", Op::Unary(Unary::Exp), &[dead]).unwrap();
    let y = g.add("abs", Op::Unary(Unary::Abs), &[x]).unwrap();
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("dead_nodes_and_unused_constants", r.text());
    assert_eq!((r.changes, r.after.node_count()), (3, 2));
}

#[test]
fn outputs_that_become_an_input_or_each_other() {
    // y = Identity(x) and z = Identity(y): both outputs now name the graph input.
    let mut g = cnnc_ir::Graph::new();
    let x = input(&mut g, "x", &[2, 2]);
    let y = g.add("y", Op::Identity, &[x]).unwrap();
    let z = g.add("z", Op::Identity, &[y]).unwrap();
    g.add_output("y", y);
    g.add_output("z", z);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("outputs_that_become_an_input_or_each_other", r.text());
    assert_eq!((r.changes, r.after.node_count()), (2, 1));
}

#[test]
fn shufflenet_channel_shuffle_stays() {
    // Reshape, Transpose, Reshape: data moves, nothing is an identity.
    let g = cut("onnx-conformance/models/shufflenet_random")
        .input("r19", &[1, 136, 28, 28])
        .outputs(&["r22"]);
    rewrite(PASS, g).assert_unchanged();
}

#[test]
fn group_normalization_expanded_reshape_chains() {
    // The expansion reshapes [3,4,2,2] to [3,2,2,2,2] to [3,2,8], and back again to
    // [3,4,2,2] and [3,4,4]: the second of each pair reads the first's input.
    let g = cut("onnx-conformance/node/test_group_normalization_example_expanded")
        .strip("GroupNormalization_test_group_normalization_example_expanded_function_")
        .outputs(&["y"]);
    let r = rewrite_prepared(PASS, g);
    insta::assert_snapshot!("group_normalization_expanded_reshape_chains", r.text());
    assert_eq!(r.changes, 4);
}

#[test]
fn cleanup_drops_what_pointwise_to_matmul_left() {
    // pointwise_to_matmul reshapes the weight into a new constant; the old one is dead
    // until the final cleanup.
    let mut g = cnnc_ir::Graph::new();
    let x = input(&mut g, "x", &[1, 3, 2, 2]);
    let y = add_conv(&mut g, "conv", x, 2, Op::Conv(conv2d(1, 1, 0, 1)), true);
    g.add_output("y", y);
    apply("pointwise_to_matmul", &mut g);
    let r = rewrite("cleanup", g);
    insta::assert_snapshot!("cleanup_drops_what_pointwise_to_matmul_left", r.text());
    assert_eq!((r.changes, r.count("const")), (2, 2));
}
