//! Placement of values in memory: in-place elementwise ops and concatenations write
//! where their results are needed, never over bytes another op still reads; identical
//! constants are stored once. Each case checks the answer against the interpreter and
//! the memory or launches it expects.

mod common;

use cnnc_ir::op::{Binary, Conv, Unary};
use cnnc_ir::{Graph, Layout, Op, Tensor, TensorType, Value};
use common::{Rng, check, compile};

const SHAPE: [usize; 4] = [1, 3, 5, 7];
/// Bytes of one `SHAPE` tensor, rounded to the arena alignment.
const ONE: usize = (3 * 5 * 7 * 4usize).div_ceil(64) * 64;

fn input(g: &mut Graph, name: &str, shape: &[usize]) -> Value {
    g.add_input(name, TensorType::f32(shape.to_vec())).unwrap()
}

fn unary(g: &mut Graph, name: &str, u: Unary, x: Value) -> Value {
    g.add(name, Op::Unary(u), &[x]).unwrap()
}

fn binary(g: &mut Graph, name: &str, b: Binary, x: Value, y: Value) -> Value {
    g.add(name, Op::Binary(b), &[x, y]).unwrap()
}

fn concat(g: &mut Graph, name: &str, ins: &[Value]) -> Value {
    g.add(name, Op::Concat { axis: 1 }, ins).unwrap()
}

fn run_check(g: &Graph, seed: u64) {
    let mut rng = Rng(seed);
    let inputs: Vec<Tensor> = g
        .inputs()
        .iter()
        .map(|&i| rng.tensor(&g.value_type(Value::new(i, 0)).shape))
        .collect();
    check(g, &inputs, 1e-5, 1e-6).unwrap_or_else(|e| panic!("{e}\n{}", cnnc_ir::print(g)));
}

#[test]
fn an_elementwise_chain_reuses_one_buffer() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &SHAPE);
    let a = unary(&mut g, "a", Unary::Sigmoid, x);
    let b = unary(&mut g, "b", Unary::Relu, a);
    let c = binary(&mut g, "c", Binary::Mul, b, x);
    let d = unary(&mut g, "d", Unary::Tanh, c);
    g.add_output("d", d);
    run_check(&g, 1);
    let (info, _) = compile(&g);
    assert_eq!(info.workspace_size, ONE, "a, b and c share one buffer");
}

#[test]
fn an_input_read_twice_is_not_overwritten() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &SHAPE);
    let a = unary(&mut g, "a", Unary::Sigmoid, x);
    let b = unary(&mut g, "b", Unary::Relu, a);
    let c = unary(&mut g, "c", Unary::Tanh, a);
    let d = binary(&mut g, "d", Binary::Add, b, c);
    g.add_output("d", d);
    run_check(&g, 2);
}

#[test]
fn graph_inputs_and_outputs_are_never_overwritten() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &SHAPE);
    let a = unary(&mut g, "a", Unary::Neg, x);
    let b = unary(&mut g, "b", Unary::Exp, a);
    g.add_output("a", a);
    g.add_output("b", b);
    run_check(&g, 3);
}

#[test]
fn concat_pieces_are_written_in_place() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &SHAPE);
    let a = unary(&mut g, "a", Unary::Relu, x);
    let b = unary(&mut g, "b", Unary::Sigmoid, x);
    let k = Tensor::from_vec(vec![1, 2, 5, 7], vec![0.5f32; 70]).unwrap();
    let k = g.add_const("k", k);
    // The graph input and the constant are copied; `a` and `b` are computed in place,
    // straight into the caller's output buffer.
    let y = concat(&mut g, "y", &[a, x, b, k]);
    g.add_output("y", y);
    run_check(&g, 4);
    let (info, _) = compile(&g);
    assert_eq!(info.launches, 4, "relu, sigmoid and two copies");
    assert_eq!(info.workspace_size, 0);
}

#[test]
fn a_concat_of_views_and_in_place_chains() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &[1, 105]);
    let a = unary(&mut g, "a", Unary::Sigmoid, x);
    let a = unary(&mut g, "a2", Unary::Relu, a);
    let a = g
        .add(
            "a3",
            Op::Reshape {
                shape: SHAPE.to_vec(),
            },
            &[a],
        )
        .unwrap();
    let b = input(&mut g, "b", &SHAPE);
    let b = unary(&mut g, "b1", Unary::Tanh, b);
    let y = concat(&mut g, "y", &[b, a]);
    let z = unary(&mut g, "z", Unary::Abs, y);
    g.add_output("z", z);
    run_check(&g, 5);
    let (info, _) = compile(&g);
    assert_eq!(info.launches, 4, "no copies");
    assert_eq!(info.workspace_size, 2 * ONE, "one buffer holds the chain");
}

/// DenseNet's dense block: each layer reads all features so far (a 3x3 convolution
/// after an activation) and the block concatenates its output to them. The features
/// are read by the next layer too, so they stay where they are: the chain of
/// concatenations becomes one buffer, each concat a prefix of the next, with no copies.
#[test]
fn a_dense_block_concatenates_without_copies() {
    let mut g = Graph::new();
    let mut rng = Rng(6);
    let x = input(&mut g, "x", &SHAPE);
    let growth = 2;
    let mut features = unary(&mut g, "stem", Unary::Relu, x);
    let layers = 4;
    for i in 0..layers {
        let channels = g.value_type(features).shape[1];
        let t = unary(&mut g, &format!("act{i}"), Unary::Tanh, features);
        let w = g.add_const(format!("w{i}"), rng.tensor(&[growth, channels, 3, 3]));
        let conv = Conv {
            kernel: vec![3, 3],
            strides: vec![1, 1],
            dilations: vec![1, 1],
            pads: vec![(1, 1), (1, 1)],
            groups: 1,
            epilogue: Default::default(),
        };
        let t = g.add(format!("conv{i}"), Op::Conv(conv), &[t, w]).unwrap();
        features = concat(&mut g, &format!("concat{i}"), &[features, t]);
    }
    let y = unary(&mut g, "head", Unary::Sigmoid, features);
    g.add_output("y", y);
    run_check(&g, 6);
    let (info, _) = compile(&g);
    assert_eq!(info.launches, 1 + 2 * layers + 1, "no copies");
}

/// The same dense block on blocked channels (NCHW4c, as layout assignment makes it):
/// whole channel blocks make a blocked concatenation the same bytes as a plain one, so
/// the pieces are still written in place.
#[test]
fn a_blocked_dense_block_concatenates_without_copies() {
    let blocked = Layout::Blocked { block: 4 };
    let mut g = Graph::new();
    let mut rng = Rng(7);
    let x = input(&mut g, "x", &[1, 8, 5, 7]);
    let xb = g.add("x/c4", Op::Reorder { to: blocked }, &[x]).unwrap();
    let growth = 4;
    let mut features = unary(&mut g, "stem", Unary::Relu, xb);
    let layers = 3;
    for i in 0..layers {
        let channels = g.value_type(features).shape[1];
        let t = unary(&mut g, &format!("act{i}"), Unary::Tanh, features);
        let w = g.add_const(format!("w{i}"), rng.tensor(&[growth, channels, 3, 3]));
        let conv = Conv {
            kernel: vec![3, 3],
            strides: vec![1, 1],
            dilations: vec![1, 1],
            pads: vec![(1, 1), (1, 1)],
            groups: 1,
            epilogue: Default::default(),
        };
        let t = g.add(format!("conv{i}"), Op::Conv(conv), &[t, w]).unwrap();
        g.node_mut(t.node).outputs[0].ty.layout = blocked;
        features = concat(&mut g, &format!("concat{i}"), &[features, t]);
    }
    let y = unary(&mut g, "head", Unary::Sigmoid, features);
    let y = g.add("y", Op::Reorder { to: Layout::Plain }, &[y]).unwrap();
    g.add_output("y", y);
    cnnc_ir::verify(&g).unwrap();
    run_check(&g, 7);
    let (info, _) = compile(&g);
    assert_eq!(info.launches, 2 + 2 * layers + 2, "reorders, no copies");
}

/// A concatenation holding a piece that a later op reads must not be overwritten in
/// place, even by the concat's only reader.
#[test]
fn a_shared_piece_pins_its_concatenation() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &SHAPE);
    let c0 = unary(&mut g, "c0", Unary::Relu, x);
    let s = unary(&mut g, "s", Unary::Sigmoid, x);
    let k = concat(&mut g, "k", &[c0, s]);
    // `p` would overwrite `k`, and with it `c0`, which `w` reads after `p` ran.
    let p = unary(&mut g, "p", Unary::Neg, k);
    let id = g
        .add_node(
            "halves",
            Op::Split {
                axis: 1,
                sizes: vec![3, 3],
            },
            &[p],
            vec!["h0".into(), "h1".into()],
        )
        .unwrap();
    let w = binary(&mut g, "w", Binary::Add, c0, Value::new(id, 0));
    g.add_output("w", w);
    g.add_output("h1", Value::new(id, 1));
    run_check(&g, 7);
}

/// Constants with the same bytes (shared biases, repeated weights) are stored once.
#[test]
fn identical_constants_are_stored_once() {
    let mut g = Graph::new();
    let x = input(&mut g, "x", &SHAPE);
    let k = Tensor::from_vec(SHAPE.to_vec(), (0..105).map(|i| i as f32).collect()).unwrap();
    let a = g.add_const("a", k.clone());
    let b = g.add_const("b", k);
    let y = binary(&mut g, "y", Binary::Mul, x, a);
    let z = binary(&mut g, "z", Binary::Sub, y, b);
    g.add_output("z", z);
    run_check(&g, 8);
    let (info, _) = compile(&g);
    assert_eq!(info.constant_bytes, 105 * 4);
}
