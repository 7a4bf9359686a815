mod common;

use cnnc_ir::op::{Binary, Unary};
use cnnc_ir::{Graph, Op, TensorType};
use common::*;

#[test]
fn relu_add_transpose() {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::f32(vec![2, 3, 5])).unwrap();
    let y = g.add_input("y", TensorType::f32(vec![3, 1])).unwrap();
    let r = g.add("r", Op::Unary(Unary::Relu), &[x]).unwrap();
    let a = g.add("a", Op::Binary(Binary::Add), &[r, y]).unwrap();
    let t = g
        .add(
            "t",
            Op::Transpose {
                perm: vec![2, 0, 1],
            },
            &[a],
        )
        .unwrap();
    g.add_output("t", t);
    g.add_output("a", a);
    let mut rng = Rng(7);
    let ins = [rng.tensor(&[2, 3, 5]), rng.tensor(&[3, 1])];
    check(&g, &ins, 1e-6, 1e-7).unwrap();
}
