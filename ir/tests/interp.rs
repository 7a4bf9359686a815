//! Reference-interpreter semantics that the conformance data does not pin down.

use cnnc_ir::interp::{ConstEval, eval, run};
use cnnc_ir::op::{Binary, PadMode, Unary};
use cnnc_ir::{DType, Graph, Op, Scalar, Tensor, TensorType};

fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_vec(shape.to_vec(), v.to_vec()).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.view::<f32>().unwrap().to_vec()
}

#[test]
fn reflect_padding_wider_than_the_axis_keeps_mirroring() {
    let x = f32s(&[3], &[1.0, 2.0, 3.0]);
    let op = Op::Pad {
        pads: vec![(4, 4)],
        mode: PadMode::Reflect,
    };
    let out = op.infer(&[&x.ty()]).unwrap();
    let y = eval(&op, &[&x], &out).unwrap();
    // numpy.pad([1, 2, 3], 4, mode="reflect")
    assert_eq!(
        values(&y[0]),
        [1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0]
    );
}

#[test]
fn channel_shuffle_transposes_the_groups_of_channels() {
    // 6 channels in 2 groups (0 1 2 | 3 4 5) of 2 positions: channel c holds 10c, 10c+1.
    let x = f32s(
        &[1, 6, 2],
        &[
            0.0, 1.0, 10.0, 11.0, 20.0, 21.0, 30.0, 31.0, 40.0, 41.0, 50.0, 51.0,
        ],
    );
    let op = Op::ChannelShuffle { groups: 2 };
    let out = op.infer(&[&x.ty()]).unwrap();
    // Channels 0 3 1 4 2 5, as numpy's x.reshape(1, 2, 3, 2).transpose(0, 2, 1, 3).
    assert_eq!(
        values(&eval(&op, &[&x], &out).unwrap()[0]),
        [
            0.0, 1.0, 30.0, 31.0, 10.0, 11.0, 40.0, 41.0, 20.0, 21.0, 50.0, 51.0
        ]
    );
}

#[test]
fn negative_pads_crop() {
    let x = f32s(&[5], &[1.0, 2.0, 3.0, 4.0, 5.0]);
    let op = Op::Pad {
        pads: vec![(-1, 2)],
        mode: PadMode::Edge,
    };
    let out = op.infer(&[&x.ty()]).unwrap();
    assert_eq!(
        values(&eval(&op, &[&x], &out).unwrap()[0]),
        [2.0, 3.0, 4.0, 5.0, 5.0, 5.0]
    );
}

#[test]
fn splat_inputs_give_splat_outputs_without_materializing() {
    let big = Tensor::splat(vec![1 << 20, 1 << 10], Scalar::F32(-2.0)).unwrap();
    let op = Op::Unary(Unary::Relu);
    let out = op.infer(&[&big.ty()]).unwrap();
    let y = eval(&op, &[&big], &out).unwrap();
    assert_eq!(y[0].splat_value(), Some(Scalar::F32(0.0)));

    let op = Op::Transpose { perm: vec![1, 0] };
    let out = op.infer(&[&big.ty()]).unwrap();
    let y = eval(&op, &[&big], &out).unwrap();
    assert_eq!(y[0].shape(), &[1 << 10, 1 << 20]);
    assert_eq!(y[0].splat_value(), Some(Scalar::F32(-2.0)));
}

#[test]
fn integer_shape_arithmetic_is_checked() {
    let a = Tensor::from_vec(vec![1], vec![i64::MAX]).unwrap();
    let b = Tensor::from_vec(vec![1], vec![2i64]).unwrap();
    let op = Op::Binary(Binary::Mul);
    let out = op.infer(&[&a.ty(), &b.ty()]).unwrap();
    assert!(eval(&op, &[&a, &b], &out).is_err());

    let zero = Tensor::from_vec(vec![1], vec![0i64]).unwrap();
    let op = Op::Binary(Binary::Div);
    assert!(eval(&op, &[&b, &zero], &out).is_err());
}

#[test]
fn gather_index_out_of_range_is_an_error() {
    let x = f32s(&[3], &[1.0, 2.0, 3.0]);
    let idx = Tensor::from_vec(vec![2], vec![-1i64, 3]).unwrap();
    let op = Op::Gather { axis: 0 };
    let out = op.infer(&[&x.ty(), &idx.ty()]).unwrap();
    let e = eval(&op, &[&x, &idx], &out).unwrap_err();
    assert!(e.to_string().contains("out of range"), "{e}");
}

#[test]
fn max_and_min_propagate_nan() {
    let a = f32s(&[2], &[f32::NAN, 1.0]);
    let b = f32s(&[2], &[0.0, f32::NAN]);
    for op in [Binary::Max, Binary::Min] {
        let op = Op::Binary(op);
        let out = op.infer(&[&a.ty(), &b.ty()]).unwrap();
        let y = values(&eval(&op, &[&a, &b], &out).unwrap()[0]);
        assert!(y.iter().all(|v| v.is_nan()), "{y:?}");
    }
}

#[test]
fn run_checks_input_types() {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::f32(vec![2, 2])).unwrap();
    let y = g.add("y", Op::Unary(Unary::Neg), &[x]).unwrap();
    g.add_output("y", y);
    let e = run(&g, &[f32s(&[4], &[1.0; 4])]).unwrap_err();
    assert!(
        e.to_string().contains("'x'") && e.to_string().contains("f32[2,2]"),
        "{e}"
    );
    assert!(run(&g, &[]).is_err());
    let y = run(&g, &[f32s(&[2, 2], &[1.0, -2.0, 3.0, -4.0])]).unwrap();
    assert_eq!(values(&y[0]), [-1.0, 2.0, -3.0, 4.0]);
}

#[test]
fn const_eval_sees_through_shape_but_not_inputs() {
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::f32(vec![2, 3, 5])).unwrap();
    let s = g.add("s", Op::Shape { start: 1, end: 3 }, &[x]).unwrap();
    let k = g.add_const("k", Tensor::from_vec(vec![2], vec![10i64, 1]).unwrap());
    let m = g.add("m", Op::Binary(Binary::Mul), &[s, k]).unwrap();
    let r = g.add("r", Op::Unary(Unary::Neg), &[x]).unwrap();
    let mut ce = ConstEval::new();
    let v = ce.value(&g, m).unwrap().unwrap();
    assert_eq!(v.dtype(), DType::I64);
    assert_eq!(v.to_i64s().unwrap(), [30, 5]);
    assert!(ce.value(&g, r).unwrap().is_none());
}

#[test]
fn cast_follows_numpy() {
    let x = f32s(&[4], &[-1.7, 0.0, 2.9, 0.5]);
    let op = Op::Cast { to: DType::I64 };
    let out = op.infer(&[&x.ty()]).unwrap();
    assert_eq!(
        eval(&op, &[&x], &out).unwrap()[0].to_i64s().unwrap(),
        [-1, 0, 2, 0]
    );
    let op = Op::Cast { to: DType::Bool };
    let out = op.infer(&[&x.ty()]).unwrap();
    assert_eq!(
        eval(&op, &[&x], &out).unwrap()[0]
            .view::<u8>()
            .unwrap()
            .as_ref(),
        [1, 0, 1, 1]
    );
}

#[test]
fn matmul_adds_its_broadcast_bias_then_the_epilogue() {
    let a = f32s(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let b = f32s(&[2, 2], &[1.0, 0.0, 0.0, 1.0]);
    let row = f32s(&[2, 1], &[10.0, -20.0]);
    let op = Op::MatMul {
        bias: true,
        epilogue: Default::default(),
    };
    let out = op.infer(&[&a.ty(), &b.ty(), &row.ty()]).unwrap();
    let y = eval(&op, &[&a, &b, &row], &out).unwrap();
    assert_eq!(values(&y[0]), [11.0, 12.0, -17.0, -16.0]);
    let relu = Op::MatMul {
        bias: true,
        epilogue: cnnc_ir::op::Epilogue {
            residual: false,
            activation: Some(cnnc_ir::op::Activation::Unary(Unary::Relu)),
        },
    };
    let y = eval(&relu, &[&a, &b, &row], &out).unwrap();
    assert_eq!(values(&y[0]), [11.0, 12.0, 0.0, 0.0]);
}
