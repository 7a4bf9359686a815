//! fold_constants: every node whose inputs are all constants, and every Shape (which
//! reads only a static type), is evaluated by the interpreter and becomes a constant;
//! dead nodes go. The tests show shape arithmetic, multi-output ops and integer chains
//! disappearing, and run-time computations staying.

mod common;

use cnnc_ir::op::{Binary, Unary};
use cnnc_ir::{DType, Graph, Op, Scalar, Tensor, Value};
use common::*;

const PASS: &str = "fold_constants";

#[test]
fn shape_gather_cast_chain_becomes_a_scale() {
    // x / sqrt(x.shape[3]), as attention exports normalize by the head size.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[2, 3, 4, 5]);
    let shape = g
        .add("shape", Op::Shape { start: 0, end: 4 }, &[x])
        .unwrap();
    let idx = g.add_const("idx", Tensor::scalar(Scalar::I64(3)));
    let dim = g.add("dim", Op::Gather { axis: 0 }, &[shape, idx]).unwrap();
    let dim = g.add("dim_f", Op::Cast { to: DType::F32 }, &[dim]).unwrap();
    let root = g.add("root", Op::Unary(Unary::Sqrt), &[dim]).unwrap();
    let y = g.add("y", Op::Binary(Binary::Div), &[x, root]).unwrap();
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("shape_gather_cast_chain", r.text());
    assert_eq!((r.changes, r.after.node_count()), (4, 3));
}

#[test]
fn partial_shape_concat_and_reduce() {
    // Shape of the spatial axes, concatenated with a constant, summed to one float.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 2, 3, 7]);
    let hw = g.add("hw", Op::Shape { start: 2, end: 4 }, &[x]).unwrap();
    let one = g.add_const("one", Tensor::from_vec(vec![1], vec![1i64]).unwrap());
    let dims = g.add("dims", Op::Concat { axis: 0 }, &[hw, one]).unwrap();
    let dims = g
        .add("dims_f", Op::Cast { to: DType::F32 }, &[dims])
        .unwrap();
    let n = g
        .add(
            "n",
            Op::Reduce {
                kind: cnnc_ir::op::ReduceKind::Sum,
                axes: vec![0],
                keep_dims: false,
            },
            &[dims],
        )
        .unwrap();
    let y = g.add("y", Op::Binary(Binary::Mul), &[x, n]).unwrap();
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("partial_shape_concat_and_reduce", r.text());
    assert_eq!(r.changes, 4);
}

#[test]
fn constant_arithmetic_split_identity_and_reshape() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[3, 2]);
    let a = g.add_const("a", tensor(&[3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    let b = g.add_const("b", Tensor::splat(vec![3, 2], Scalar::F32(0.5)).unwrap());
    let ab = g.add("ab", Op::Binary(Binary::Mul), &[a, b]).unwrap();
    let split = g
        .add_node(
            "split",
            Op::Split {
                axis: 0,
                sizes: vec![1, 2],
            },
            &[ab],
            vec!["top".into(), "rest".into()],
        )
        .unwrap();
    let top = g
        .add("top_id", Op::Identity, &[Value::new(split, 0)])
        .unwrap();
    let rest = g
        .add(
            "rest_flat",
            Op::Reshape { shape: vec![4] },
            &[Value::new(split, 1)],
        )
        .unwrap();
    let rest = g
        .add("rest_back", Op::Reshape { shape: vec![2, 2] }, &[rest])
        .unwrap();
    let c = g.add("c", Op::Concat { axis: 0 }, &[top, rest]).unwrap();
    let y = g.add("y", Op::Binary(Binary::Add), &[x, c]).unwrap();
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("constant_arithmetic_split_identity_and_reshape", r.text());
    assert_eq!((r.changes, r.after.node_count()), (6, 3));
}

#[test]
fn constant_graph_output() {
    // An output that depends on no input at all becomes a constant output.
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[2]);
    let a = g.add_const("a", tensor(&[2], vec![-1.0, 4.0]));
    let r = g.add("abs", Op::Unary(Unary::Abs), &[a]).unwrap();
    let y = g.add("y", Op::Unary(Unary::Neg), &[x]).unwrap();
    g.add_output("abs", r);
    g.add_output("y", y);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("constant_graph_output", r.text());
    assert_eq!(r.changes, 1);
}

#[test]
fn run_time_computation_stays() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 3, 2, 2]);
    let w = random_const(&mut g, "w", &[3, 1, 1]);
    let y = g.add("mul", Op::Binary(Binary::Mul), &[x, w]).unwrap();
    let y = g.add("relu", Op::Unary(Unary::Relu), &[y]).unwrap();
    g.add_output("y", y);
    rewrite(PASS, g).assert_unchanged();
}

#[test]
fn flexattention_expanded_head_size_scale() {
    // The ONNX function expansion computes 1/sqrt(sqrt(head size)) from Shape, Gather,
    // Cast, Sqrt, Div, Identity and Cast at run time; all of it is static.
    let g = cut("onnx-conformance/node/test_flexattention_expanded_ver26")
        .strip("FlexAttention_test_flexattention_expanded_function_")
        .outputs(&["Y"]);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("flexattention_expanded_head_size_scale", r.text());
    assert_eq!(
        (r.count("shape"), r.count("gather"), r.count("sqrt")),
        (0, 0, 0)
    );
}

#[test]
fn mobilenet_v2_shared_biases_behind_identities() {
    // The exporter shares equal biases through Identity nodes of constants.
    let g = cut("bench-models/mobilenet_v2")
        .input(
            "/features/features.2/conv/conv.2/Conv_output_0",
            &[1, 24, 3, 3],
        )
        .strip("/features/")
        .outputs(&["/features/features.3/Add_output_0"]);
    let r = rewrite(PASS, g);
    insta::assert_snapshot!("mobilenet_v2_shared_biases_behind_identities", r.text());
    assert_eq!(r.count("identity"), 0);
}
