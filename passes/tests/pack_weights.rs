//! pack_weights: a Gemm whose constant B is transposed (`[N, K]`, as Linear layers
//! export it) gets B transposed once at compile time to the `[K, N]` the GEMM tile reads.
//! The tests show the repacking (with a fused epilogue and an odd shape), and the Gemms
//! that stay: B already `[K, N]`, or B computed at run time.

mod common;

use cnnc_ir::op::{Activation, Gemm, Unary};
use cnnc_ir::{Graph, Op, Scalar, Tensor};
use common::*;

const PASS: &str = "pack_weights";

fn gemm(trans_b: bool) -> Gemm {
    Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b,
        epilogue: Default::default(),
    }
}

#[test]
fn transposed_weight_is_packed() {
    // N = 3, K = 2: small enough to read the transposition in the snapshot.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[4, 2]);
    let w = g.add_const("w", tensor(&[3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    let b = random_const(&mut g, "b", &[3]);
    let y = g.add("fc", Op::Gemm(gemm(true)), &[x, w, b]).unwrap();
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("transposed_weight_is_packed", r.text());
    assert_eq!(r.changes, 1);
}

#[test]
fn packed_with_transposed_input_and_fused_epilogue() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[5, 3]);
    let w = random_const(&mut g, "w", &[7, 5]);
    let c = random_const(&mut g, "c", &[3, 7]);
    let skip = input(&mut g, "skip", &[3, 7]);
    let mut op = gemm(true);
    op.trans_a = true;
    op.alpha = 0.5;
    op.beta = 2.0;
    op.epilogue.residual = true;
    op.epilogue.activation = Some(Activation::Unary(Unary::Relu));
    let y = g.add("fc", Op::Gemm(op), &[x, w, c, skip]).unwrap();
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("packed_with_transposed_input_and_fused_epilogue", r.text());
    assert_eq!(r.changes, 1);
}

#[test]
fn gemms_that_stay() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[2, 3]);
    // B already [K, N].
    let w = random_const(&mut g, "w", &[3, 4]);
    let a = g.add("plain", Op::Gemm(gemm(false)), &[x, w]).unwrap();
    g.add_output("plain", a);
    // B transposed but computed at run time.
    let v = input(&mut g, "v", &[4, 3]);
    let b = g.add("run_time", Op::Gemm(gemm(true)), &[x, v]).unwrap();
    g.add_output("run_time", b);
    // One row of A (batch 1): the matrix-vector kernel reads B's [N, K] rows.
    let one = input(&mut g, "one", &[1, 3]);
    let w = random_const(&mut g, "w_nk", &[4, 3]);
    let c = g.add("batch_one", Op::Gemm(gemm(true)), &[one, w]).unwrap();
    g.add_output("batch_one", c);
    rewrite(PASS, g).assert_unchanged();
}

#[test]
fn splat_weight_stays_a_splat() {
    // The light zoo models' Linear weights are ConstantOfShape splats, which cost no
    // memory; transposed, a splat is the same splat.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[2, 4]);
    let w = g.add_const("w", Tensor::splat(vec![6, 4], Scalar::F32(0.02)).unwrap());
    let y = g.add("fc", Op::Gemm(gemm(true)), &[x, w]).unwrap();
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    let packed: Vec<&Tensor> = r
        .after
        .node_ids()
        .filter_map(|id| match &r.after.node(id).op {
            Op::Const(t) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(packed.len(), 1);
    assert_eq!(packed[0].splat_value(), Some(Scalar::F32(0.02)));
}

#[test]
fn pytorch_linear() {
    // nn.Linear(10, 8) exports Gemm(x, W[8,10], b, transB=1).
    let g = cut("onnx-conformance/pytorch-converted/test_Linear").outputs(&["3"]);
    let r = rewrite_prepared(PASS, g);
    insta::assert_snapshot!("pytorch_linear", r.text());
    assert_eq!(r.changes, 1);
}

#[test]
fn pytorch_addmm_with_run_time_operands_stays() {
    let g = cut("onnx-conformance/pytorch-operator/test_operator_addmm").outputs(&["4"]);
    rewrite_prepared(PASS, g).assert_unchanged();
}
