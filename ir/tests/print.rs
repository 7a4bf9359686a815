//! The printed form of a graph: deterministic, topologically ordered, constants shown
//! by value when small and by content hash otherwise.

use cnnc_ir::op::{Binary, Conv, Unary};
use cnnc_ir::{Graph, Op, Scalar, Tensor, TensorType, Value, print, verify};

fn sample() -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::f32(vec![1, 3, 8, 8])).unwrap();
    let w = g.add_const(
        "w",
        Tensor::from_vec(
            vec![4, 3, 3, 3],
            (0..108).map(|i| i as f32 / 100.0).collect(),
        )
        .unwrap(),
    );
    let b = g.add_const(
        "b",
        Tensor::from_vec(vec![4], vec![0.5f32, -1.0, 2.0, 0.0]).unwrap(),
    );
    let conv = Op::Conv(Conv {
        kernel: vec![3, 3],
        strides: vec![1, 1],
        dilations: vec![1, 1],
        pads: vec![(1, 1), (1, 1)],
        groups: 1,
        epilogue: Default::default(),
    });
    let c = g.add("c", conv, &[x, w, b]).unwrap();
    let r = g.add("r", Op::Unary(Unary::Relu), &[c]).unwrap();
    let split = g
        .add_node(
            "split",
            Op::Split {
                axis: 1,
                sizes: vec![2, 2],
            },
            &[r],
            vec!["s0".into(), "s1".into()],
        )
        .unwrap();
    let half = g.add_const(
        "half",
        Tensor::splat(vec![1, 2, 1, 1], Scalar::F32(0.5)).unwrap(),
    );
    let a = g
        .add("a", Op::Binary(Binary::Mul), &[Value::new(split, 0), half])
        .unwrap();
    let y = g
        .add("y", Op::Concat { axis: 1 }, &[a, Value::new(split, 1)])
        .unwrap();
    g.add_output("y", y);
    g.add_output("features", r);
    g
}

#[test]
fn prints_a_small_network() {
    let g = sample();
    verify(&g).unwrap();
    insta::assert_snapshot!(print(&g));
}

#[test]
fn printing_is_deterministic() {
    assert_eq!(print(&sample()), print(&sample()));
}
