//! Shape inference: `Op::infer` for every op, and the pub helpers in `cnnc_ir::infer`.
//!
//! Expected sizes are worked out by hand in the comments next to each assertion.
//! Window formula: `out = (in + pb + pe - ((k - 1) * d + 1)) / s + 1` (floor or ceil),
//! and with ceil_mode the last window must start inside the input or the left padding:
//! if `(out - 1) * s >= in + pb` then `out -= 1`.

use cnnc_ir::infer::{
    broadcast_shapes, broadcasts_to, matmul_shape, transposed_output, window_output,
};
use cnnc_ir::op::{
    Activation, Binary, Conv, ConvTranspose, CoordMode, DepthToSpaceMode, Epilogue, Gemm, Lrn,
    NearestMode, PadMode, Pool, PoolKind, ReduceKind, Resize, ResizeMode, SliceAxis, Unary,
};
use cnnc_ir::{DType, IrError, Layout, Op, Scalar, Tensor, TensorType};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

const BIG: usize = 1 << 63;

fn f32t(shape: &[usize]) -> TensorType {
    TensorType::f32(shape.to_vec())
}

fn i64t(shape: &[usize]) -> TensorType {
    TensorType::new(DType::I64, shape.to_vec())
}

fn i32t(shape: &[usize]) -> TensorType {
    TensorType::new(DType::I32, shape.to_vec())
}

fn boolt(shape: &[usize]) -> TensorType {
    TensorType::new(DType::Bool, shape.to_vec())
}

fn infer(op: Op, inputs: &[TensorType]) -> Result<Vec<TensorType>, IrError> {
    let refs: Vec<&TensorType> = inputs.iter().collect();
    op.infer(&refs)
}

/// Infers an op that must succeed with exactly one output.
#[track_caller]
fn ok1(op: Op, inputs: &[TensorType]) -> TensorType {
    let name = op.name();
    match infer(op, inputs) {
        Ok(mut v) => {
            assert_eq!(v.len(), 1, "{name} gave {} outputs: {v:?}", v.len());
            v.pop().unwrap()
        }
        Err(e) => panic!("{name} on {inputs:?} failed: {e}"),
    }
}

/// Infers an op that must fail with `IrError::Shape`; returns the message.
#[track_caller]
fn shape_err(op: Op, inputs: &[TensorType]) -> String {
    let name = op.name();
    match infer(op, inputs) {
        Err(e @ IrError::Shape(_)) => e.to_string(),
        other => panic!("{name} on {inputs:?}: expected a shape error, got {other:?}"),
    }
}

/// Infers an op that must fail with an error whose `is_unsupported()` is true.
#[track_caller]
fn unsupported_err(op: Op, inputs: &[TensorType]) {
    let name = op.name();
    match infer(op, inputs) {
        Err(e) if e.is_unsupported() => {}
        other => panic!("{name} on {inputs:?}: expected an unsupported error, got {other:?}"),
    }
}

fn conv(
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
    pads: &[(usize, usize)],
    groups: usize,
) -> Op {
    Op::Conv(Conv {
        kernel: kernel.to_vec(),
        strides: strides.to_vec(),
        dilations: dilations.to_vec(),
        pads: pads.to_vec(),
        groups,
        epilogue: Default::default(),
    })
}

/// Stride 1, dilation 1, no padding.
fn conv_plain(kernel: &[usize], groups: usize) -> Op {
    let n = kernel.len();
    conv(kernel, &vec![1; n], &vec![1; n], &vec![(0, 0); n], groups)
}

fn conv_t(
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
    pads: &[(usize, usize)],
    output_padding: &[usize],
    groups: usize,
) -> Op {
    Op::ConvTranspose(ConvTranspose {
        kernel: kernel.to_vec(),
        strides: strides.to_vec(),
        dilations: dilations.to_vec(),
        pads: pads.to_vec(),
        output_padding: output_padding.to_vec(),
        groups,
        epilogue: Default::default(),
    })
}

fn pool(
    kind: PoolKind,
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
    pads: &[(usize, usize)],
    ceil_mode: bool,
) -> Op {
    Op::Pool(Pool {
        kind,
        kernel: kernel.to_vec(),
        strides: strides.to_vec(),
        dilations: dilations.to_vec(),
        pads: pads.to_vec(),
        ceil_mode,
    })
}

/// Max pooling without dilation.
fn max_pool(kernel: &[usize], strides: &[usize], pads: &[(usize, usize)], ceil: bool) -> Op {
    pool(
        PoolKind::Max,
        kernel,
        strides,
        &vec![1; kernel.len()],
        pads,
        ceil,
    )
}

fn gemm(trans_a: bool, trans_b: bool) -> Op {
    Op::Gemm(Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a,
        trans_b,
        epilogue: Default::default(),
    })
}

fn bin(op: Binary) -> Op {
    Op::Binary(op)
}

fn sl(start: usize, step: isize, len: usize) -> SliceAxis {
    SliceAxis { start, step, len }
}

fn slice(axes: &[SliceAxis]) -> Op {
    Op::Slice {
        axes: axes.to_vec(),
    }
}

fn pad(pads: &[(isize, isize)], mode: PadMode) -> Op {
    Op::Pad {
        pads: pads.to_vec(),
        mode,
    }
}

fn resize(scales: &[f64], sizes: &[usize]) -> Op {
    Op::Resize(Resize {
        mode: ResizeMode::Nearest(NearestMode::RoundPreferFloor),
        coord: CoordMode::HalfPixel,
        scales: scales.to_vec(),
        sizes: sizes.to_vec(),
        exclude_outside: false,
    })
}

fn reduce(axes: &[usize], keep_dims: bool) -> Op {
    Op::Reduce {
        kind: ReduceKind::Sum,
        axes: axes.to_vec(),
        keep_dims,
    }
}

// ---------------------------------------------------------------------------------------
// window_output
// ---------------------------------------------------------------------------------------

#[test]
fn window_output_floor_basic() {
    // (5 - 3) / 1 + 1 = 3
    assert_eq!(window_output(5, 3, 1, 1, (0, 0), false).unwrap(), 3);
    // "same" padding: (5 + 2 - 3) / 1 + 1 = 5
    assert_eq!(window_output(5, 3, 1, 1, (1, 1), false).unwrap(), 5);
    // (7 + 2 - 3) / 2 + 1 = 3 + 1 = 4
    assert_eq!(window_output(7, 3, 2, 1, (1, 1), false).unwrap(), 4);
    // ResNet stem: (224 + 6 - 7) / 2 + 1 = 111 + 1 = 112
    assert_eq!(window_output(224, 7, 2, 1, (3, 3), false).unwrap(), 112);
    // floor rounds down: (6 - 3) / 2 + 1 = 1 + 1 = 2
    assert_eq!(window_output(6, 3, 2, 1, (0, 0), false).unwrap(), 2);
}

#[test]
fn window_output_asymmetric_pads() {
    // padded 10 + 0 + 1 = 11: (11 - 3) / 2 + 1 = 5
    assert_eq!(window_output(10, 3, 2, 1, (0, 1), false).unwrap(), 5);
    // padded 9 + 2 + 0 = 11: (11 - 3) / 1 + 1 = 9
    assert_eq!(window_output(9, 3, 1, 1, (2, 0), false).unwrap(), 9);
    // Only the sum of the pads matters in floor mode.
    assert_eq!(
        window_output(8, 2, 3, 1, (2, 0), false).unwrap(),
        window_output(8, 2, 3, 1, (0, 2), false).unwrap()
    );
}

#[test]
fn window_output_dilation() {
    // span (3 - 1) * 2 + 1 = 5: (7 - 5) / 1 + 1 = 3
    assert_eq!(window_output(7, 3, 1, 2, (0, 0), false).unwrap(), 3);
    // span (3 - 1) * 3 + 1 = 7, padded 12: (12 - 7) / 2 + 1 = 2 + 1 = 3
    assert_eq!(window_output(10, 3, 2, 3, (1, 1), false).unwrap(), 3);
    // ceil: ceil(5 / 2) + 1 = 4; last start (4 - 1) * 2 = 6 < 10 + 1, kept -> 4
    assert_eq!(window_output(10, 3, 2, 3, (1, 1), true).unwrap(), 4);
    // dilation 1 and kernel 1 is the identity
    assert_eq!(window_output(13, 1, 1, 5, (0, 0), false).unwrap(), 13);
}

#[test]
fn window_output_stride_larger_than_kernel() {
    // (10 - 2) / 3 + 1 = 2 + 1 = 3 (windows at 0, 3, 6; 9 left over)
    assert_eq!(window_output(10, 2, 3, 1, (0, 0), false).unwrap(), 3);
    // ceil: ceil(8 / 3) + 1 = 4; last start 3 * 3 = 9 < 10, kept -> 4
    assert_eq!(window_output(10, 2, 3, 1, (0, 0), true).unwrap(), 4);
    // (9 - 1) / 4 + 1 = 3, exact so ceil agrees
    assert_eq!(window_output(9, 1, 4, 1, (0, 0), false).unwrap(), 3);
    assert_eq!(window_output(9, 1, 4, 1, (0, 0), true).unwrap(), 3);
    // (6 - 1) / 4 + 1 = 2; ceil: ceil(5 / 4) + 1 = 3, last start 2 * 4 = 8 >= 6 -> 2
    assert_eq!(window_output(6, 1, 4, 1, (0, 0), false).unwrap(), 2);
    assert_eq!(window_output(6, 1, 4, 1, (0, 0), true).unwrap(), 2);
}

#[test]
fn window_output_ceil_mode_rounds_up() {
    // input 5, kernel 2, stride 2, no pads:
    // floor: (5 - 2) / 2 + 1 = 1 + 1 = 2
    assert_eq!(window_output(5, 2, 2, 1, (0, 0), false).unwrap(), 2);
    // ceil: ceil(3 / 2) + 1 = 3; last start (3 - 1) * 2 = 4 < 5 -> kept, 3
    assert_eq!(window_output(5, 2, 2, 1, (0, 0), true).unwrap(), 3);
    // input 6, kernel 3, stride 2: floor (3 / 2) + 1 = 2, ceil 2 + 1 = 3 (start 4 < 6)
    assert_eq!(window_output(6, 3, 2, 1, (0, 0), true).unwrap(), 3);
    // exact division: ceil mode changes nothing. (7 - 3) / 2 + 1 = 3
    assert_eq!(window_output(7, 3, 2, 1, (0, 0), true).unwrap(), 3);
}

#[test]
fn window_output_ceil_mode_drops_window_starting_in_right_pad() {
    // input 5, kernel 2, stride 2, pads (1, 1): padded 7, 7 - 2 = 5.
    // floor: 5 / 2 + 1 = 3.
    assert_eq!(window_output(5, 2, 2, 1, (1, 1), false).unwrap(), 3);
    // ceil: ceil(5 / 2) + 1 = 4, but the 4th window starts at (4 - 1) * 2 = 6 in padded
    // coordinates, and 6 >= 5 + 1 (input + left pad): it lies in the right pad -> 3.
    assert_eq!(window_output(5, 2, 2, 1, (1, 1), true).unwrap(), 3);

    // input 4, kernel 2, stride 2, pads (0, 1): padded 5, 5 - 2 = 3.
    // floor: 3 / 2 + 1 = 2; ceil: 2 + 1 = 3, last start 2 * 2 = 4 >= 4 + 0 -> 2.
    assert_eq!(window_output(4, 2, 2, 1, (0, 1), false).unwrap(), 2);
    assert_eq!(window_output(4, 2, 2, 1, (0, 1), true).unwrap(), 2);

    // The same pads moved to the left keep the extra window:
    // input 4, pads (1, 0): padded 5, ceil 3, last start 4 < 4 + 1 -> 3.
    assert_eq!(window_output(4, 2, 2, 1, (1, 0), true).unwrap(), 3);

    // input 5, pads (0, 1): padded 6, 6 - 2 = 4, exact: 3 either way (start 4 < 5).
    assert_eq!(window_output(5, 2, 2, 1, (0, 1), true).unwrap(), 3);
}

#[test]
fn window_output_one_by_one() {
    assert_eq!(window_output(1, 1, 1, 1, (0, 0), false).unwrap(), 1);
    assert_eq!(window_output(1, 1, 1, 1, (0, 0), true).unwrap(), 1);
    // 3x3 "same" on a single pixel: (1 + 2 - 3) / 1 + 1 = 1
    assert_eq!(window_output(1, 3, 1, 1, (1, 1), false).unwrap(), 1);
    // stride larger than the input: (1 - 1) / 2 + 1 = 1, ceil also 1
    assert_eq!(window_output(1, 1, 2, 1, (0, 0), true).unwrap(), 1);
    // window exactly the size of the input
    assert_eq!(window_output(7, 7, 1, 1, (0, 0), false).unwrap(), 1);
}

#[test]
fn window_output_rejects_window_larger_than_padded_input() {
    assert!(matches!(
        window_output(2, 3, 1, 1, (0, 0), false),
        Err(IrError::Shape(_))
    ));
    // padded 2 + 1 = 3 < 4
    assert!(window_output(2, 4, 1, 1, (1, 0), false).is_err());
    // dilated span (3 - 1) * 2 + 1 = 5 > padded 2 + 2 = 4
    assert!(window_output(2, 3, 1, 2, (1, 1), true).is_err());
    // empty axis without padding
    assert!(window_output(0, 1, 1, 1, (0, 0), false).is_err());
}

#[test]
fn window_output_rejects_zero_parameters() {
    assert!(window_output(5, 0, 1, 1, (0, 0), false).is_err());
    assert!(window_output(5, 1, 0, 1, (0, 0), false).is_err());
    assert!(window_output(5, 1, 1, 0, (0, 0), false).is_err());
}

#[test]
fn window_output_overflow_is_an_error() {
    // in + pads overflows
    assert!(window_output(usize::MAX, 1, 1, 1, (1, 0), false).is_err());
    assert!(window_output(1, 1, 1, 1, (usize::MAX, 1), false).is_err());
    // (k - 1) * d overflows
    assert!(window_output(10, usize::MAX, 1, 2, (0, 0), false).is_err());
    // (k - 1) * d + 1 overflows
    assert!(window_output(10, 2, 1, usize::MAX, (0, 0), false).is_err());
}

#[test]
fn window_output_huge_stride_with_ceil_mode_does_not_panic() {
    // input 1, kernel 1, stride 2^63, pads (0, 2^63 + 1), ceil_mode:
    // padded 2^63 + 2, padded - span = 2^63 + 1, ceil((2^63 + 1) / 2^63) + 1 = 3.
    // The ceil_mode check then computes (3 - 1) * 2^63 = 2^64, which overflows usize.
    // Whatever the answer (floor mode gives 2), it must be a result, not a panic.
    let floor = window_output(1, 1, BIG, 1, (0, BIG + 1), false).unwrap();
    assert_eq!(floor, 2);
    let r = std::panic::catch_unwind(|| window_output(1, 1, BIG, 1, (0, BIG + 1), true));
    match r {
        Ok(Ok(n)) => assert!(n <= 2, "ceil mode gave {n}"),
        Ok(Err(_)) => {}
        Err(_) => panic!("window_output panicked (unchecked (out - 1) * stride overflow)"),
    }
}

#[test]
fn pool_huge_stride_with_ceil_mode_does_not_panic() {
    // x [1, 1, 1] is a valid type; only the attributes are extreme (they come from the
    // model file). kernel 1, stride 2^63, pads (0, 2^63 + 1), ceil_mode.
    let x = f32t(&[1, 1, 1]);
    assert!(x.check_size().is_ok());
    let op = pool(PoolKind::Max, &[1], &[BIG], &[1], &[(0, BIG + 1)], true);
    let r = std::panic::catch_unwind(move || infer(op, &[x]));
    assert!(
        r.is_ok(),
        "pool infer panicked (unchecked (out - 1) * stride overflow)"
    );
}

// ---------------------------------------------------------------------------------------
// transposed_output
// ---------------------------------------------------------------------------------------

#[test]
fn transposed_output_formula() {
    // stride * (in - 1) + output_padding + (k - 1) * d + 1 - pb - pe
    // 1 * 2 + 0 + 2 + 1 - 0 = 5
    assert_eq!(transposed_output(3, 3, 1, 1, (0, 0), 0).unwrap(), 5);
    // 2 * 2 + 1 + 2 + 1 - 2 = 6
    assert_eq!(transposed_output(3, 3, 2, 1, (1, 1), 1).unwrap(), 6);
    // classic 2x upsampling: 2 * 3 + 0 + 3 + 1 - 2 = 8
    assert_eq!(transposed_output(4, 4, 2, 1, (1, 1), 0).unwrap(), 8);
    // dilation: 1 * 2 + 0 + 2 * 2 + 1 = 7
    assert_eq!(transposed_output(3, 3, 1, 2, (0, 0), 0).unwrap(), 7);
    // asymmetric pads: 2 * 4 + 0 + 2 + 1 - 0 - 1 = 10
    assert_eq!(transposed_output(5, 3, 2, 1, (0, 1), 0).unwrap(), 10);
    // asymmetric the other way gives the same size
    assert_eq!(transposed_output(5, 3, 2, 1, (1, 0), 0).unwrap(), 10);
    // single pixel, 1x1 kernel
    assert_eq!(transposed_output(1, 1, 1, 1, (0, 0), 0).unwrap(), 1);
    // stride > kernel: 3 * 3 + 0 + 1 + 1 = 11
    assert_eq!(transposed_output(4, 2, 3, 1, (0, 0), 0).unwrap(), 11);
}

#[test]
fn transposed_output_errors() {
    // empty axis
    assert!(transposed_output(0, 3, 1, 1, (0, 0), 0).is_err());
    // zero stride / dilation / kernel
    assert!(transposed_output(3, 3, 0, 1, (0, 0), 0).is_err());
    assert!(transposed_output(3, 3, 1, 0, (0, 0), 0).is_err());
    assert!(transposed_output(3, 0, 1, 1, (0, 0), 0).is_err());
    // pads crop everything: full 1, cropped 1
    assert!(transposed_output(1, 1, 1, 1, (1, 0), 0).is_err());
    // pads crop more than everything: full 5, cropped 6
    assert!(transposed_output(3, 3, 1, 1, (3, 3), 0).is_err());
    // overflow of the full size and of the pad sum
    assert!(transposed_output(usize::MAX, 1, 2, 1, (0, 0), 0).is_err());
    assert!(transposed_output(2, 1, 1, 1, (0, 0), usize::MAX).is_err());
    assert!(transposed_output(2, usize::MAX, 1, 2, (0, 0), 0).is_err());
    assert!(transposed_output(2, 1, 1, 1, (usize::MAX, 1), 0).is_err());
}

// ---------------------------------------------------------------------------------------
// broadcast_shapes / broadcasts_to / matmul_shape
// ---------------------------------------------------------------------------------------

#[test]
fn broadcast_shapes_numpy_rules() {
    assert_eq!(broadcast_shapes(&[2, 3], &[3]).unwrap(), vec![2, 3]);
    assert_eq!(broadcast_shapes(&[3], &[2, 3]).unwrap(), vec![2, 3]);
    assert_eq!(
        broadcast_shapes(&[2, 1, 4], &[3, 1]).unwrap(),
        vec![2, 3, 4]
    );
    assert_eq!(broadcast_shapes(&[], &[2, 2]).unwrap(), vec![2, 2]);
    assert_eq!(broadcast_shapes(&[], &[]).unwrap(), Vec::<usize>::new());
    assert_eq!(broadcast_shapes(&[1, 1], &[1]).unwrap(), vec![1, 1]);
    // zero-size dims broadcast against 1 only
    assert_eq!(broadcast_shapes(&[0], &[1]).unwrap(), vec![0]);
    assert_eq!(broadcast_shapes(&[1, 0], &[5, 1]).unwrap(), vec![5, 0]);
}

#[test]
fn broadcast_shapes_errors() {
    assert!(matches!(
        broadcast_shapes(&[2], &[3]),
        Err(IrError::Shape(_))
    ));
    assert!(broadcast_shapes(&[2, 3], &[3, 3]).is_err());
    assert!(broadcast_shapes(&[0], &[2]).is_err());
}

#[test]
fn broadcasts_to_is_unidirectional() {
    assert!(broadcasts_to(&[3], &[2, 3]));
    assert!(broadcasts_to(&[1, 3], &[2, 3]));
    assert!(broadcasts_to(&[3, 1], &[3, 4]));
    assert!(broadcasts_to(&[], &[4]));
    assert!(broadcasts_to(&[2, 3], &[2, 3]));
    assert!(broadcasts_to(&[1], &[0]));
    // the target may not grow
    assert!(!broadcasts_to(&[2, 3], &[3]));
    assert!(!broadcasts_to(&[4], &[1]));
    assert!(!broadcasts_to(&[2], &[2, 3]));
    assert!(!broadcasts_to(&[1, 1, 3], &[2, 3]));
}

#[test]
fn matmul_shape_2d_and_batched() {
    assert_eq!(matmul_shape(&[2, 3], &[3, 4]).unwrap(), vec![2, 4]);
    assert_eq!(matmul_shape(&[5, 2, 3], &[3, 4]).unwrap(), vec![5, 2, 4]);
    assert_eq!(matmul_shape(&[2, 3], &[5, 3, 4]).unwrap(), vec![5, 2, 4]);
    // batch axes broadcast: [5, 1] with [4] -> [5, 4]
    assert_eq!(
        matmul_shape(&[5, 1, 2, 3], &[4, 3, 6]).unwrap(),
        vec![5, 4, 2, 6]
    );
    assert_eq!(
        matmul_shape(&[1, 7, 2, 3], &[6, 1, 3, 1]).unwrap(),
        vec![6, 7, 2, 1]
    );
}

#[test]
fn matmul_shape_1d_promotion() {
    // [k] @ [k, n]: prepended 1 removed -> [n]
    assert_eq!(matmul_shape(&[3], &[3, 4]).unwrap(), vec![4]);
    // [m, k] @ [k]: appended 1 removed -> [m]
    assert_eq!(matmul_shape(&[2, 3], &[3]).unwrap(), vec![2]);
    // dot product: a scalar
    assert_eq!(matmul_shape(&[3], &[3]).unwrap(), Vec::<usize>::new());
    // 1-D with batched
    assert_eq!(matmul_shape(&[3], &[7, 3, 4]).unwrap(), vec![7, 4]);
    assert_eq!(matmul_shape(&[7, 2, 3], &[3]).unwrap(), vec![7, 2]);
}

#[test]
fn matmul_shape_errors() {
    assert!(matmul_shape(&[2, 3], &[4, 5]).is_err());
    assert!(matmul_shape(&[3], &[4]).is_err());
    assert!(matmul_shape(&[], &[3]).is_err());
    assert!(matmul_shape(&[3], &[]).is_err());
    // batch axes 2 and 3 do not broadcast
    assert!(matmul_shape(&[2, 2, 3], &[3, 3, 4]).is_err());
}

// ---------------------------------------------------------------------------------------
// Arity, Input, Const
// ---------------------------------------------------------------------------------------

#[test]
fn arity_table() {
    assert_eq!(Op::Input.arity(), (0, 0));
    assert_eq!(conv_plain(&[1], 1).arity(), (2, 3));
    assert_eq!(conv_t(&[1], &[1], &[1], &[(0, 0)], &[0], 1).arity(), (2, 3));
    assert_eq!(gemm(false, false).arity(), (2, 3));
    assert_eq!(Op::BatchNorm { epsilon: 1e-5 }.arity(), (5, 5));
    assert_eq!(Op::InstanceNorm { epsilon: 1e-5 }.arity(), (3, 3));
    assert_eq!(Op::Where.arity(), (3, 3));
    assert_eq!(
        Op::MatMul {
            bias: false,
            epilogue: Default::default()
        }
        .arity(),
        (2, 2)
    );
    assert_eq!(bin(Binary::Add).arity(), (2, 2));
    assert_eq!(Op::Gather { axis: 0 }.arity(), (2, 2));
    assert_eq!(Op::Concat { axis: 0 }.arity(), (1, usize::MAX));
    assert_eq!(Op::Identity.arity(), (1, 1));
    assert_eq!(Op::Unary(Unary::Relu).arity(), (1, 1));
}

#[test]
fn wrong_arity_is_a_shape_error_not_a_panic() {
    let x = f32t(&[1, 2, 3, 3]);
    shape_err(Op::Identity, &[]);
    shape_err(Op::Identity, &[x.clone(), x.clone()]);
    shape_err(Op::Unary(Unary::Relu), &[]);
    shape_err(bin(Binary::Add), std::slice::from_ref(&x));
    shape_err(
        Op::MatMul {
            bias: false,
            epilogue: Default::default(),
        },
        &[x.clone(), x.clone(), x.clone()],
    );
    shape_err(conv_plain(&[1, 1], 1), std::slice::from_ref(&x));
    shape_err(
        conv_plain(&[1, 1], 1),
        &[x.clone(), f32t(&[2, 2, 1, 1]), f32t(&[2]), f32t(&[2])],
    );
    shape_err(Op::BatchNorm { epsilon: 1e-5 }, &[x.clone(), f32t(&[2])]);
    shape_err(Op::Where, &[boolt(&[1]), x.clone()]);
    shape_err(Op::Concat { axis: 0 }, &[]);
    shape_err(Op::Gather { axis: 0 }, std::slice::from_ref(&x));
    let msg = shape_err(
        Op::Softmax {
            axis: 0,
            log: false,
        },
        &[x.clone(), x],
    );
    assert!(msg.contains("softmax"), "{msg}");
}

#[test]
fn input_is_not_inferred() {
    let e = infer(Op::Input, &[]).unwrap_err();
    assert!(matches!(e, IrError::Invalid(_)), "{e:?}");
}

#[test]
fn const_has_the_tensor_type() {
    let t = Tensor::from_vec(vec![2, 3], vec![0f32; 6]).unwrap();
    assert_eq!(ok1(Op::Const(t), &[]), f32t(&[2, 3]));
    let s = Tensor::scalar(Scalar::I64(7));
    assert_eq!(ok1(Op::Const(s), &[]), i64t(&[]));
    let b = Tensor::splat(vec![4, 1], Scalar::Bool(true)).unwrap();
    assert_eq!(ok1(Op::Const(b), &[]), boolt(&[4, 1]));
    // a const takes no inputs
    let t = Tensor::from_vec(vec![1], vec![1i32]).unwrap();
    shape_err(Op::Const(t), &[f32t(&[1])]);
}

// ---------------------------------------------------------------------------------------
// Conv
// ---------------------------------------------------------------------------------------

#[test]
fn conv_2d_same_padding_with_bias() {
    let op = conv(&[3, 3], &[1, 1], &[1, 1], &[(1, 1), (1, 1)], 1);
    let x = f32t(&[1, 3, 32, 32]);
    let w = f32t(&[16, 3, 3, 3]);
    assert_eq!(
        ok1(op.clone(), &[x.clone(), w.clone()]),
        f32t(&[1, 16, 32, 32])
    );
    assert_eq!(ok1(op, &[x, w, f32t(&[16])]), f32t(&[1, 16, 32, 32]));
}

#[test]
fn conv_2d_strided_stem() {
    // (224 + 6 - 7) / 2 + 1 = 112
    let op = conv(&[7, 7], &[2, 2], &[1, 1], &[(3, 3), (3, 3)], 1);
    let out = ok1(op, &[f32t(&[2, 3, 224, 224]), f32t(&[64, 3, 7, 7])]);
    assert_eq!(out, f32t(&[2, 64, 112, 112]));
}

#[test]
fn conv_2d_asymmetric_pads_and_strides() {
    // H: (10 + 0 + 1 - 3) / 2 + 1 = 8 / 2 + 1 = 5
    // W: (9 + 2 + 0 - 3) / 1 + 1 = 9
    let op = conv(&[3, 3], &[2, 1], &[1, 1], &[(0, 1), (2, 0)], 1);
    let out = ok1(op, &[f32t(&[1, 1, 10, 9]), f32t(&[2, 1, 3, 3])]);
    assert_eq!(out, f32t(&[1, 2, 5, 9]));
}

#[test]
fn conv_2d_dilation() {
    // span (3 - 1) * 2 + 1 = 5: (15 - 5) / 1 + 1 = 11
    let op = conv(&[3, 3], &[1, 1], &[2, 2], &[(0, 0), (0, 0)], 1);
    let out = ok1(op, &[f32t(&[1, 4, 15, 15]), f32t(&[8, 4, 3, 3])]);
    assert_eq!(out, f32t(&[1, 8, 11, 11]));
    // dilation and padding: span 5, (15 + 4 - 5) / 2 + 1 = 7 + 1 = 8
    let op = conv(&[3, 3], &[2, 2], &[2, 2], &[(2, 2), (2, 2)], 1);
    let out = ok1(op, &[f32t(&[1, 4, 15, 15]), f32t(&[8, 4, 3, 3])]);
    assert_eq!(out, f32t(&[1, 8, 8, 8]));
}

#[test]
fn conv_stride_larger_than_kernel() {
    // (10 - 2) / 3 + 1 = 3
    let op = conv(&[2, 2], &[3, 3], &[1, 1], &[(0, 0), (0, 0)], 1);
    let out = ok1(op, &[f32t(&[1, 1, 10, 10]), f32t(&[1, 1, 2, 2])]);
    assert_eq!(out, f32t(&[1, 1, 3, 3]));
}

#[test]
fn conv_1d() {
    // (10 + 4 - 5) / 3 + 1 = 3 + 1 = 4
    let op = conv(&[5], &[3], &[1], &[(2, 2)], 1);
    let out = ok1(op, &[f32t(&[1, 2, 10]), f32t(&[4, 2, 5]), f32t(&[4])]);
    assert_eq!(out, f32t(&[1, 4, 4]));
}

#[test]
fn conv_3d() {
    // D: (8 + 2 - 3) / 1 + 1 = 8
    // H: (9 + 0 - 3) / 2 + 1 = 3 + 1 = 4
    // W: (10 + 1 - 3) / 3 + 1 = 2 + 1 = 3
    let op = conv(
        &[3, 3, 3],
        &[1, 2, 3],
        &[1, 1, 1],
        &[(1, 1), (0, 0), (1, 0)],
        1,
    );
    let out = ok1(op, &[f32t(&[1, 2, 8, 9, 10]), f32t(&[4, 2, 3, 3, 3])]);
    assert_eq!(out, f32t(&[1, 4, 8, 4, 3]));
}

#[test]
fn conv_1x1_spatial() {
    let out = ok1(
        conv_plain(&[1, 1], 1),
        &[f32t(&[3, 3, 1, 1]), f32t(&[5, 3, 1, 1])],
    );
    assert_eq!(out, f32t(&[3, 5, 1, 1]));
    // 3x3 same conv on a 1x1 image
    let op = conv(&[3, 3], &[1, 1], &[1, 1], &[(1, 1), (1, 1)], 1);
    let out = ok1(op, &[f32t(&[1, 3, 1, 1]), f32t(&[5, 3, 3, 3])]);
    assert_eq!(out, f32t(&[1, 5, 1, 1]));
}

#[test]
fn conv_groups_and_depthwise() {
    // 8 input channels in 4 groups of 2, 4 output channels (1 per group)
    let out = ok1(
        conv_plain(&[3, 3], 4),
        &[f32t(&[1, 8, 5, 5]), f32t(&[4, 2, 3, 3])],
    );
    assert_eq!(out, f32t(&[1, 4, 3, 3]));
    // depthwise with multiplier 2
    let out = ok1(
        conv_plain(&[3, 3], 8),
        &[f32t(&[1, 8, 5, 5]), f32t(&[16, 1, 3, 3]), f32t(&[16])],
    );
    assert_eq!(out, f32t(&[1, 16, 3, 3]));
}

#[test]
fn conv_channel_mismatch_is_an_error() {
    // weight expects 2 input channels, input has 3
    let msg = shape_err(
        conv_plain(&[3, 3], 1),
        &[f32t(&[1, 3, 8, 8]), f32t(&[4, 2, 3, 3])],
    );
    assert!(msg.contains("channels"), "{msg}");
    // groups 2: weight [4, 2] expects 4 input channels, input has 8
    shape_err(
        conv_plain(&[3, 3], 2),
        &[f32t(&[1, 8, 8, 8]), f32t(&[4, 2, 3, 3])],
    );
}

#[test]
fn conv_groups_must_divide_channels() {
    // 6 input channels in 4 groups
    shape_err(
        conv_plain(&[3, 3], 4),
        &[f32t(&[1, 6, 8, 8]), f32t(&[4, 3, 3, 3])],
    );
    // 5 output channels in 2 groups
    shape_err(
        conv_plain(&[3, 3], 2),
        &[f32t(&[1, 4, 8, 8]), f32t(&[5, 2, 3, 3])],
    );
    // zero groups
    shape_err(
        conv_plain(&[3, 3], 0),
        &[f32t(&[1, 4, 8, 8]), f32t(&[4, 4, 3, 3])],
    );
}

#[test]
fn conv_kernel_larger_than_padded_input() {
    shape_err(
        conv_plain(&[3, 3], 1),
        &[f32t(&[1, 1, 2, 2]), f32t(&[1, 1, 3, 3])],
    );
    // padding 1 on one side only: 2 + 1 = 3 < 4
    let op = conv(&[4, 1], &[1, 1], &[1, 1], &[(1, 0), (0, 0)], 1);
    shape_err(op, &[f32t(&[1, 1, 2, 2]), f32t(&[1, 1, 4, 1])]);
    // dilation makes the window too big: span 5 > 4
    let op = conv(&[3, 3], &[1, 1], &[2, 2], &[(0, 0), (0, 0)], 1);
    shape_err(op, &[f32t(&[1, 1, 4, 4]), f32t(&[1, 1, 3, 3])]);
}

#[test]
fn conv_rank_and_attribute_mismatches() {
    let w = f32t(&[4, 3, 3, 3]);
    // input of rank 2
    shape_err(conv_plain(&[3, 3], 1), &[f32t(&[1, 3]), w.clone()]);
    // weight of rank 3 for a 4-D input
    shape_err(
        conv_plain(&[3, 3], 1),
        &[f32t(&[1, 3, 8, 8]), f32t(&[4, 3, 3])],
    );
    // attributes for 1 spatial axis on a 2-D image
    shape_err(conv_plain(&[3], 1), &[f32t(&[1, 3, 8, 8]), w.clone()]);
    // strides of the wrong length
    let op = conv(&[3, 3], &[1], &[1, 1], &[(0, 0), (0, 0)], 1);
    shape_err(op, &[f32t(&[1, 3, 8, 8]), w.clone()]);
    // weight kernel [3, 3] but attribute says [5, 5]
    shape_err(conv_plain(&[5, 5], 1), &[f32t(&[1, 3, 8, 8]), w.clone()]);
    // zero stride
    let op = conv(&[3, 3], &[0, 1], &[1, 1], &[(0, 0), (0, 0)], 1);
    shape_err(op, &[f32t(&[1, 3, 8, 8]), w.clone()]);
    // bias of the wrong length and rank
    shape_err(
        conv_plain(&[3, 3], 1),
        &[f32t(&[1, 3, 8, 8]), w.clone(), f32t(&[3])],
    );
    shape_err(
        conv_plain(&[3, 3], 1),
        &[f32t(&[1, 3, 8, 8]), w, f32t(&[1, 4])],
    );
}

#[test]
fn conv_non_f32_is_unsupported() {
    let op = conv_plain(&[3, 3], 1);
    unsupported_err(op.clone(), &[i64t(&[1, 3, 8, 8]), f32t(&[4, 3, 3, 3])]);
    unsupported_err(op.clone(), &[f32t(&[1, 3, 8, 8]), i64t(&[4, 3, 3, 3])]);
    unsupported_err(
        op.clone(),
        &[f32t(&[1, 3, 8, 8]), f32t(&[4, 3, 3, 3]), i32t(&[4])],
    );
    unsupported_err(op, &[boolt(&[1, 3, 8, 8]), f32t(&[4, 3, 3, 3])]);
}

#[test]
fn conv_group_channel_product_overflow_is_an_error() {
    // Input with 0 channels and weight [0, 2, 1]: 0 % groups == 0 for both channel
    // counts, so the check `w.shape[1] * groups == cin` computes 2 * 2^63, which
    // overflows. Both types have 0 elements, so they pass TensorType::check_size.
    let x = f32t(&[1, 0, 4]);
    let w = f32t(&[0, 2, 1]);
    assert!(x.check_size().is_ok() && w.check_size().is_ok());
    let op = conv_plain(&[1], BIG);
    let r = std::panic::catch_unwind(move || infer(op, &[x, w]));
    match r {
        Ok(Err(_)) => {}
        Ok(Ok(v)) => panic!("expected an error, got {v:?}"),
        Err(_) => panic!("conv infer panicked (unchecked w.shape[1] * groups overflow)"),
    }
}

// ---------------------------------------------------------------------------------------
// ConvTranspose
// ---------------------------------------------------------------------------------------

#[test]
fn conv_transpose_2d_stride_pads_output_padding() {
    // 2 * (5 - 1) + 1 + (3 - 1) + 1 - 1 - 1 = 10; weight [C=4, M/g=2] -> M = 2
    let op = conv_t(&[3, 3], &[2, 2], &[1, 1], &[(1, 1), (1, 1)], &[1, 1], 1);
    let out = ok1(op, &[f32t(&[1, 4, 5, 5]), f32t(&[4, 2, 3, 3]), f32t(&[2])]);
    assert_eq!(out, f32t(&[1, 2, 10, 10]));
}

#[test]
fn conv_transpose_groups() {
    // weight [4, 3] in 2 groups: M = 3 * 2 = 6; size 1 * 4 + 0 + 2 + 1 = 7
    let op = conv_t(&[3, 3], &[1, 1], &[1, 1], &[(0, 0), (0, 0)], &[0, 0], 2);
    let x = f32t(&[1, 4, 5, 5]);
    let w = f32t(&[4, 3, 3, 3]);
    assert_eq!(
        ok1(op.clone(), &[x.clone(), w.clone()]),
        f32t(&[1, 6, 7, 7])
    );
    assert_eq!(
        ok1(op.clone(), &[x.clone(), w.clone(), f32t(&[6])]),
        f32t(&[1, 6, 7, 7])
    );
    // bias sized for M/groups is wrong
    shape_err(op, &[x, w, f32t(&[3])]);
}

#[test]
fn conv_transpose_1d_dilation() {
    // 3 * (4 - 1) + 2 + (3 - 1) * 2 + 1 - 0 - 2 = 9 + 2 + 4 + 1 - 2 = 14
    let op = conv_t(&[3], &[3], &[2], &[(0, 2)], &[2], 1);
    let out = ok1(op, &[f32t(&[2, 3, 4]), f32t(&[3, 5, 3])]);
    assert_eq!(out, f32t(&[2, 5, 14]));
}

#[test]
fn conv_transpose_3d_asymmetric() {
    // D: 1 * 1 + 0 + 1 + 1 - 0 = 3
    // H: 2 * 2 + 1 + 1 + 1 - 1 = 6
    // W: 3 * 3 + 0 + 1 + 1 - 2 = 9
    let op = conv_t(
        &[2, 2, 2],
        &[1, 2, 3],
        &[1, 1, 1],
        &[(0, 0), (1, 0), (0, 2)],
        &[0, 1, 0],
        1,
    );
    let out = ok1(op, &[f32t(&[1, 1, 2, 3, 4]), f32t(&[1, 1, 2, 2, 2])]);
    assert_eq!(out, f32t(&[1, 1, 3, 6, 9]));
}

#[test]
fn conv_transpose_1x1() {
    let op = conv_t(&[1, 1], &[1, 1], &[1, 1], &[(0, 0), (0, 0)], &[0, 0], 1);
    let out = ok1(op, &[f32t(&[1, 3, 1, 1]), f32t(&[3, 7, 1, 1])]);
    assert_eq!(out, f32t(&[1, 7, 1, 1]));
}

#[test]
fn conv_transpose_errors() {
    let op = conv_t(&[3, 3], &[1, 1], &[1, 1], &[(0, 0), (0, 0)], &[0, 0], 1);
    // weight's first axis must be the input channels
    shape_err(op.clone(), &[f32t(&[1, 4, 5, 5]), f32t(&[3, 2, 3, 3])]);
    // kernel attribute does not match the weight
    shape_err(op.clone(), &[f32t(&[1, 4, 5, 5]), f32t(&[4, 2, 2, 2])]);
    // rank mismatch
    shape_err(op.clone(), &[f32t(&[1, 4, 5, 5]), f32t(&[4, 2, 3])]);
    shape_err(op.clone(), &[f32t(&[4, 5]), f32t(&[4, 2, 3, 3])]);
    // 4 input channels in 3 groups
    let g3 = conv_t(&[3, 3], &[1, 1], &[1, 1], &[(0, 0), (0, 0)], &[0, 0], 3);
    shape_err(g3, &[f32t(&[1, 4, 5, 5]), f32t(&[4, 2, 3, 3])]);
    let g0 = conv_t(&[3, 3], &[1, 1], &[1, 1], &[(0, 0), (0, 0)], &[0, 0], 0);
    shape_err(g0, &[f32t(&[1, 4, 5, 5]), f32t(&[4, 2, 3, 3])]);
    // output_padding of the wrong length
    let bad = conv_t(&[3, 3], &[1, 1], &[1, 1], &[(0, 0), (0, 0)], &[0], 1);
    shape_err(bad, &[f32t(&[1, 4, 5, 5]), f32t(&[4, 2, 3, 3])]);
    // pads crop the whole output: full 1 * 0 + 0 + 2 + 1 = 3, crop 2 + 1 = 3
    let crop = conv_t(&[3], &[1], &[1], &[(2, 1)], &[0], 1);
    shape_err(crop, &[f32t(&[1, 1, 1]), f32t(&[1, 1, 3])]);
    // empty spatial axis
    let one = conv_t(&[1], &[1], &[1], &[(0, 0)], &[0], 1);
    shape_err(one, &[f32t(&[1, 1, 0]), f32t(&[1, 1, 1])]);
    // M = w.shape[1] * groups overflows
    let big = conv_t(&[1], &[1], &[1], &[(0, 0)], &[0], 2);
    shape_err(big, &[f32t(&[1, 0, 1]), f32t(&[0, BIG, 1])]);
    // non-f32
    unsupported_err(op.clone(), &[i64t(&[1, 4, 5, 5]), f32t(&[4, 2, 3, 3])]);
    unsupported_err(op, &[f32t(&[1, 4, 5, 5]), f32t(&[4, 2, 3, 3]), i64t(&[2])]);
}

// ---------------------------------------------------------------------------------------
// Pool
// ---------------------------------------------------------------------------------------

#[test]
fn max_pool_2d() {
    // (32 - 2) / 2 + 1 = 16
    let out = ok1(
        max_pool(&[2, 2], &[2, 2], &[(0, 0), (0, 0)], false),
        &[f32t(&[1, 3, 32, 32])],
    );
    assert_eq!(out, f32t(&[1, 3, 16, 16]));
    // ResNet max pool: (112 + 2 - 3) / 2 + 1 = 55 + 1 = 56
    let out = ok1(
        max_pool(&[3, 3], &[2, 2], &[(1, 1), (1, 1)], false),
        &[f32t(&[2, 64, 112, 112])],
    );
    assert_eq!(out, f32t(&[2, 64, 56, 56]));
}

#[test]
fn avg_pool_2d_with_pads() {
    // (7 + 2 - 3) / 2 + 1 = 4, for both count_include_pad settings
    for count_include_pad in [false, true] {
        let op = pool(
            PoolKind::Avg { count_include_pad },
            &[3, 3],
            &[2, 2],
            &[1, 1],
            &[(1, 1), (1, 1)],
            false,
        );
        assert_eq!(ok1(op, &[f32t(&[1, 1, 7, 7])]), f32t(&[1, 1, 4, 4]));
    }
}

#[test]
fn pool_ceil_mode_adds_partial_window() {
    // input 5, kernel 2, stride 2: floor 2, ceil 3 (last window starts at 4 < 5)
    let x = f32t(&[1, 1, 5, 5]);
    let floor = max_pool(&[2, 2], &[2, 2], &[(0, 0), (0, 0)], false);
    let ceil = max_pool(&[2, 2], &[2, 2], &[(0, 0), (0, 0)], true);
    assert_eq!(ok1(floor, std::slice::from_ref(&x)), f32t(&[1, 1, 2, 2]));
    assert_eq!(ok1(ceil, &[x]), f32t(&[1, 1, 3, 3]));
}

#[test]
fn pool_ceil_mode_with_pads_drops_last_window() {
    // input 5, kernel 2, stride 2, pads (1, 1): padded 7.
    // floor: (7 - 2) / 2 + 1 = 3; ceil: ceil(5 / 2) + 1 = 4, but (4 - 1) * 2 = 6 >= 5 + 1,
    // so the 4th window would start in the right pad and is dropped -> 3.
    let x = f32t(&[1, 1, 5, 5]);
    for ceil in [false, true] {
        let op = pool(
            PoolKind::Avg {
                count_include_pad: true,
            },
            &[2, 2],
            &[2, 2],
            &[1, 1],
            &[(1, 1), (1, 1)],
            ceil,
        );
        assert_eq!(ok1(op, std::slice::from_ref(&x)), f32t(&[1, 1, 3, 3]));
    }
}

#[test]
fn pool_ceil_mode_asymmetric_pads_1d() {
    // input 4, kernel 2, stride 2, pads (0, 1): padded 5.
    // ceil: ceil(3 / 2) + 1 = 3, last start 4 >= 4 + 0 -> dropped -> 2
    let right = max_pool(&[2], &[2], &[(0, 1)], true);
    assert_eq!(ok1(right, &[f32t(&[1, 2, 4])]), f32t(&[1, 2, 2]));
    // pads (1, 0): ceil 3, last start 4 < 4 + 1 -> kept -> 3
    let left = max_pool(&[2], &[2], &[(1, 0)], true);
    assert_eq!(ok1(left, &[f32t(&[1, 2, 4])]), f32t(&[1, 2, 3]));
    // floor mode: (5 - 2) / 2 + 1 = 2 for both
    let floor = max_pool(&[2], &[2], &[(1, 0)], false);
    assert_eq!(ok1(floor, &[f32t(&[1, 2, 4])]), f32t(&[1, 2, 2]));
}

#[test]
fn pool_3d_floor_and_ceil() {
    // x [1, 2, 9, 9, 7], kernel [3, 2, 2], strides [2, 2, 1], pads [(1,1), (0,0), (0,1)]
    // D: padded 11, 11 - 3 = 8: floor 8/2 + 1 = 5, ceil 4 + 1 = 5
    // H: padded 9, 9 - 2 = 7: floor 3 + 1 = 4, ceil 4 + 1 = 5 (last start 8 < 9, kept)
    // W: padded 8, 8 - 2 = 6: 6 + 1 = 7 both (last start 6 < 7)
    let x = f32t(&[1, 2, 9, 9, 7]);
    let pads = [(1, 1), (0, 0), (0, 1)];
    let floor = max_pool(&[3, 2, 2], &[2, 2, 1], &pads, false);
    let ceil = max_pool(&[3, 2, 2], &[2, 2, 1], &pads, true);
    assert_eq!(ok1(floor, std::slice::from_ref(&x)), f32t(&[1, 2, 5, 4, 7]));
    assert_eq!(ok1(ceil, &[x]), f32t(&[1, 2, 5, 5, 7]));
}

#[test]
fn pool_dilation() {
    // span (3 - 1) * 3 + 1 = 7: (10 - 7) / 1 + 1 = 4
    let op = pool(PoolKind::Max, &[3], &[1], &[3], &[(0, 0)], false);
    assert_eq!(ok1(op, &[f32t(&[1, 1, 10])]), f32t(&[1, 1, 4]));
    // span 3, stride 3: floor (10 - 3) / 3 + 1 = 3; ceil ceil(7 / 3) + 1 = 4,
    // last start 3 * 3 = 9 < 10 -> kept
    let floor = pool(PoolKind::Max, &[2], &[3], &[2], &[(0, 0)], false);
    let ceil = pool(PoolKind::Max, &[2], &[3], &[2], &[(0, 0)], true);
    assert_eq!(ok1(floor, &[f32t(&[1, 1, 10])]), f32t(&[1, 1, 3]));
    assert_eq!(ok1(ceil, &[f32t(&[1, 1, 10])]), f32t(&[1, 1, 4]));
}

#[test]
fn pool_stride_larger_than_kernel_and_1x1() {
    // input 6, kernel 1, stride 4: floor 5/4 + 1 = 2; ceil 2 + 1 = 3 but start 8 >= 6 -> 2
    for ceil in [false, true] {
        let op = max_pool(&[1, 1], &[4, 4], &[(0, 0), (0, 0)], ceil);
        assert_eq!(ok1(op, &[f32t(&[1, 1, 6, 6])]), f32t(&[1, 1, 2, 2]));
    }
    // 1x1 input, 1x1 window
    let op = max_pool(&[1, 1], &[2, 2], &[(0, 0), (0, 0)], true);
    assert_eq!(ok1(op, &[f32t(&[4, 3, 1, 1])]), f32t(&[4, 3, 1, 1]));
}

#[test]
fn pool_errors() {
    // window larger than the input
    shape_err(
        max_pool(&[3, 3], &[1, 1], &[(0, 0), (0, 0)], false),
        &[f32t(&[1, 1, 2, 2])],
    );
    // ceil_mode does not make a too-large window fit
    shape_err(
        max_pool(&[3, 3], &[1, 1], &[(0, 0), (0, 0)], true),
        &[f32t(&[1, 1, 2, 2])],
    );
    // rank too small
    shape_err(max_pool(&[], &[], &[], false), &[f32t(&[1, 1])]);
    // attribute lengths for a 2-D pool on a 1-D input
    shape_err(
        max_pool(&[2, 2], &[2, 2], &[(0, 0), (0, 0)], false),
        &[f32t(&[1, 1, 4])],
    );
    // pads of the wrong length
    shape_err(
        max_pool(&[2, 2], &[2, 2], &[(0, 0)], false),
        &[f32t(&[1, 1, 4, 4])],
    );
    // zero stride
    shape_err(
        max_pool(&[2, 2], &[0, 2], &[(0, 0), (0, 0)], false),
        &[f32t(&[1, 1, 4, 4])],
    );
    // dtype
    unsupported_err(
        max_pool(&[2, 2], &[2, 2], &[(0, 0), (0, 0)], false),
        &[i64t(&[1, 1, 4, 4])],
    );
}

// ---------------------------------------------------------------------------------------
// GlobalPool, Lrn, BatchNorm, InstanceNorm
// ---------------------------------------------------------------------------------------

#[test]
fn global_pool_shapes() {
    let avg = Op::GlobalPool(PoolKind::Avg {
        count_include_pad: false,
    });
    let max = Op::GlobalPool(PoolKind::Max);
    assert_eq!(
        ok1(avg.clone(), &[f32t(&[2, 3, 7, 5])]),
        f32t(&[2, 3, 1, 1])
    );
    assert_eq!(ok1(max.clone(), &[f32t(&[1, 4, 9])]), f32t(&[1, 4, 1]));
    assert_eq!(
        ok1(max.clone(), &[f32t(&[1, 4, 2, 3, 4])]),
        f32t(&[1, 4, 1, 1, 1])
    );
    assert_eq!(
        ok1(avg.clone(), &[f32t(&[1, 4, 1, 1])]),
        f32t(&[1, 4, 1, 1])
    );
    shape_err(avg.clone(), &[f32t(&[2, 3])]);
    unsupported_err(max, &[i32t(&[1, 4, 2, 2])]);
    unsupported_err(avg, &[i64t(&[1, 4, 2, 2])]);
}

#[test]
fn lrn_keeps_shape() {
    let op = Op::Lrn(Lrn {
        size: 5,
        alpha: 1e-4,
        beta: 0.75,
        bias: 1.0,
    });
    assert_eq!(
        ok1(op.clone(), &[f32t(&[1, 96, 55, 55])]),
        f32t(&[1, 96, 55, 55])
    );
    assert_eq!(ok1(op.clone(), &[f32t(&[2, 3])]), f32t(&[2, 3]));
    shape_err(op.clone(), &[f32t(&[7])]);
    unsupported_err(op, &[i64t(&[1, 3, 4, 4])]);
    let zero = Op::Lrn(Lrn {
        size: 0,
        alpha: 1e-4,
        beta: 0.75,
        bias: 1.0,
    });
    shape_err(zero, &[f32t(&[1, 3, 4, 4])]);
}

#[test]
fn batch_norm_shapes() {
    let op = Op::BatchNorm { epsilon: 1e-5 };
    let p = f32t(&[3]);
    let params = |x: TensorType| vec![x, p.clone(), p.clone(), p.clone(), p.clone()];
    assert_eq!(
        ok1(op.clone(), &params(f32t(&[2, 3, 4, 4]))),
        f32t(&[2, 3, 4, 4])
    );
    // rank 2 (after a Gemm) is allowed
    assert_eq!(ok1(op.clone(), &params(f32t(&[5, 3]))), f32t(&[5, 3]));
    assert_eq!(ok1(op.clone(), &params(f32t(&[1, 3, 8]))), f32t(&[1, 3, 8]));
}

#[test]
fn batch_norm_errors() {
    let op = Op::BatchNorm { epsilon: 1e-5 };
    let p = f32t(&[3]);
    let x = f32t(&[2, 3, 4, 4]);
    // one parameter of the wrong length
    shape_err(
        op.clone(),
        &[x.clone(), p.clone(), p.clone(), f32t(&[4]), p.clone()],
    );
    // parameter of the wrong rank
    shape_err(
        op.clone(),
        &[x.clone(), p.clone(), f32t(&[1, 3]), p.clone(), p.clone()],
    );
    // rank 1 input
    shape_err(
        op.clone(),
        &[f32t(&[3]), p.clone(), p.clone(), p.clone(), p.clone()],
    );
    // dtypes
    unsupported_err(
        op.clone(),
        &[
            i64t(&[2, 3, 4, 4]),
            p.clone(),
            p.clone(),
            p.clone(),
            p.clone(),
        ],
    );
    unsupported_err(op, &[x, p.clone(), p.clone(), p, i64t(&[3])]);
}

#[test]
fn instance_norm_shapes_and_errors() {
    let op = Op::InstanceNorm { epsilon: 1e-5 };
    let p = f32t(&[4]);
    assert_eq!(
        ok1(op.clone(), &[f32t(&[2, 4, 5]), p.clone(), p.clone()]),
        f32t(&[2, 4, 5])
    );
    assert_eq!(
        ok1(op.clone(), &[f32t(&[1, 4, 3, 3, 3]), p.clone(), p.clone()]),
        f32t(&[1, 4, 3, 3, 3])
    );
    // needs a spatial axis
    shape_err(op.clone(), &[f32t(&[2, 4]), p.clone(), p.clone()]);
    // scale of the wrong length
    shape_err(op.clone(), &[f32t(&[2, 4, 5]), f32t(&[5]), p.clone()]);
    unsupported_err(op, &[i32t(&[2, 4, 5]), p.clone(), p]);
}

// ---------------------------------------------------------------------------------------
// Gemm, MatMul
// ---------------------------------------------------------------------------------------

#[test]
fn gemm_all_transpose_combinations() {
    // M = 4, K = 3, N = 5
    let a = f32t(&[4, 3]);
    let at = f32t(&[3, 4]);
    let b = f32t(&[3, 5]);
    let bt = f32t(&[5, 3]);
    let out = f32t(&[4, 5]);
    assert_eq!(ok1(gemm(false, false), &[a.clone(), b.clone()]), out);
    assert_eq!(ok1(gemm(true, false), &[at.clone(), b.clone()]), out);
    assert_eq!(ok1(gemm(false, true), &[a.clone(), bt.clone()]), out);
    assert_eq!(ok1(gemm(true, true), &[at.clone(), bt.clone()]), out);
    // the wrong transposition flags make the inner dimensions differ
    shape_err(gemm(true, false), &[a.clone(), b.clone()]);
    shape_err(gemm(false, true), &[a, b]);
    shape_err(gemm(true, true), &[at.clone(), f32t(&[3, 5])]);
}

#[test]
fn gemm_c_broadcasts_to_m_n() {
    let (a, b) = (f32t(&[4, 3]), f32t(&[3, 5]));
    for c in [&[5][..], &[1, 5], &[4, 1], &[4, 5], &[1, 1], &[1], &[]] {
        let out = ok1(gemm(false, false), &[a.clone(), b.clone(), f32t(c)]);
        assert_eq!(out, f32t(&[4, 5]), "C {c:?}");
    }
    // C that would need the output to grow, or does not match
    for c in [&[4][..], &[5, 4], &[2, 4, 5], &[8, 5]] {
        shape_err(gemm(false, false), &[a.clone(), b.clone(), f32t(c)]);
    }
}

#[test]
fn gemm_errors() {
    shape_err(gemm(false, false), &[f32t(&[4, 3]), f32t(&[4, 5])]);
    shape_err(gemm(false, false), &[f32t(&[2, 4, 3]), f32t(&[3, 5])]);
    shape_err(gemm(false, false), &[f32t(&[3]), f32t(&[3, 5])]);
    unsupported_err(gemm(false, false), &[i64t(&[4, 3]), f32t(&[3, 5])]);
    unsupported_err(gemm(false, false), &[f32t(&[4, 3]), i32t(&[3, 5])]);
    unsupported_err(
        gemm(false, false),
        &[f32t(&[4, 3]), f32t(&[3, 5]), i64t(&[5])],
    );
}

#[test]
fn matmul_op_shapes() {
    assert_eq!(
        ok1(
            Op::MatMul {
                bias: false,
                epilogue: Default::default()
            },
            &[f32t(&[2, 3]), f32t(&[3, 4])]
        ),
        f32t(&[2, 4])
    );
    assert_eq!(
        ok1(
            Op::MatMul {
                bias: false,
                epilogue: Default::default()
            },
            &[f32t(&[8, 1, 2, 3]), f32t(&[5, 3, 4])]
        ),
        f32t(&[8, 5, 2, 4])
    );
    assert_eq!(
        ok1(
            Op::MatMul {
                bias: false,
                epilogue: Default::default()
            },
            &[f32t(&[3]), f32t(&[3, 4])]
        ),
        f32t(&[4])
    );
    assert_eq!(
        ok1(
            Op::MatMul {
                bias: false,
                epilogue: Default::default()
            },
            &[f32t(&[2, 3]), f32t(&[3])]
        ),
        f32t(&[2])
    );
    assert_eq!(
        ok1(
            Op::MatMul {
                bias: false,
                epilogue: Default::default()
            },
            &[f32t(&[3]), f32t(&[3])]
        ),
        f32t(&[])
    );
    shape_err(
        Op::MatMul {
            bias: false,
            epilogue: Default::default(),
        },
        &[f32t(&[2, 3]), f32t(&[2, 3])],
    );
    shape_err(
        Op::MatMul {
            bias: false,
            epilogue: Default::default(),
        },
        &[f32t(&[]), f32t(&[2, 3])],
    );
    shape_err(
        Op::MatMul {
            bias: false,
            epilogue: Default::default(),
        },
        &[f32t(&[2, 2, 3]), f32t(&[3, 3, 1])],
    );
    unsupported_err(
        Op::MatMul {
            bias: false,
            epilogue: Default::default(),
        },
        &[i64t(&[2, 3]), i64t(&[3, 4])],
    );
}

// ---------------------------------------------------------------------------------------
// Unary, Binary, Where
// ---------------------------------------------------------------------------------------

fn all_unaries() -> Vec<Unary> {
    vec![
        Unary::Relu,
        Unary::LeakyRelu { alpha: 0.01 },
        Unary::Elu { alpha: 1.0 },
        Unary::Selu {
            alpha: 1.67,
            gamma: 1.05,
        },
        Unary::Sigmoid,
        Unary::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
        Unary::HardSwish,
        Unary::Tanh,
        Unary::Softplus,
        Unary::Softsign,
        Unary::Mish,
        Unary::Gelu { tanh: false },
        Unary::Gelu { tanh: true },
        Unary::Erf,
        Unary::Exp,
        Unary::Sqrt,
        Unary::Abs,
        Unary::Neg,
        Unary::Clip { min: 0.0, max: 6.0 },
    ]
}

#[test]
fn unary_keeps_f32_shape() {
    for u in all_unaries() {
        for shape in [&[][..], &[7], &[2, 3, 4, 5], &[0, 3]] {
            assert_eq!(ok1(Op::Unary(u), &[f32t(shape)]), f32t(shape), "{u:?}");
        }
    }
}

#[test]
fn unary_integer_inputs() {
    // Abs and Neg work on integers and keep the type
    for u in [Unary::Abs, Unary::Neg] {
        assert_eq!(ok1(Op::Unary(u), &[i64t(&[3])]), i64t(&[3]));
        assert_eq!(ok1(Op::Unary(u), &[i32t(&[2, 2])]), i32t(&[2, 2]));
        unsupported_err(Op::Unary(u), &[boolt(&[3])]);
    }
    // the rest are float-only
    for u in all_unaries() {
        if matches!(u, Unary::Abs | Unary::Neg) {
            continue;
        }
        unsupported_err(Op::Unary(u), &[i64t(&[3])]);
        assert!(
            infer(Op::Unary(u), &[boolt(&[3])]).is_err(),
            "{u:?} on bool"
        );
    }
}

#[test]
fn binary_arithmetic_broadcasts() {
    for op in [
        Binary::Add,
        Binary::Sub,
        Binary::Mul,
        Binary::Div,
        Binary::Pow,
        Binary::Max,
        Binary::Min,
    ] {
        assert_eq!(
            ok1(bin(op), &[f32t(&[2, 3, 4]), f32t(&[3, 1])]),
            f32t(&[2, 3, 4]),
            "{op:?}"
        );
        assert_eq!(ok1(bin(op), &[f32t(&[]), f32t(&[5])]), f32t(&[5]), "{op:?}");
        // integer arithmetic keeps the integer type
        assert_eq!(
            ok1(bin(op), &[i64t(&[4, 1]), i64t(&[1, 2])]),
            i64t(&[4, 2]),
            "{op:?}"
        );
        assert_eq!(ok1(bin(op), &[i32t(&[2]), i32t(&[2])]), i32t(&[2]));
    }
}

#[test]
fn binary_comparisons_give_bool() {
    for op in [Binary::Equal, Binary::Less, Binary::Greater] {
        assert!(op.is_comparison());
        assert_eq!(
            ok1(bin(op), &[f32t(&[2, 1]), f32t(&[1, 3])]),
            boolt(&[2, 3])
        );
        assert_eq!(ok1(bin(op), &[i64t(&[4]), i64t(&[])]), boolt(&[4]));
    }
    // Equal also compares booleans; ordering comparisons do not
    assert_eq!(
        ok1(bin(Binary::Equal), &[boolt(&[3]), boolt(&[3])]),
        boolt(&[3])
    );
    unsupported_err(bin(Binary::Less), &[boolt(&[3]), boolt(&[3])]);
    unsupported_err(bin(Binary::Greater), &[boolt(&[3]), boolt(&[3])]);
    assert!(!Binary::Add.is_comparison());
    assert!(!Binary::PRelu.is_comparison());
}

#[test]
fn binary_errors() {
    // shapes that do not broadcast
    shape_err(bin(Binary::Add), &[f32t(&[2, 3]), f32t(&[4])]);
    shape_err(bin(Binary::Equal), &[f32t(&[2]), f32t(&[3])]);
    // mixed dtypes
    shape_err(bin(Binary::Add), &[f32t(&[2]), i64t(&[2])]);
    shape_err(bin(Binary::Mul), &[i32t(&[2]), i64t(&[2])]);
    shape_err(bin(Binary::Equal), &[boolt(&[2]), f32t(&[2])]);
    // arithmetic on bool
    unsupported_err(bin(Binary::Add), &[boolt(&[2]), boolt(&[2])]);
}

#[test]
fn prelu_unidirectional_broadcast() {
    let x = f32t(&[2, 3, 4, 4]);
    // per-channel slope, as ONNX models store it
    assert_eq!(
        ok1(bin(Binary::PRelu), &[x.clone(), f32t(&[3, 1, 1])]),
        x.clone()
    );
    assert_eq!(ok1(bin(Binary::PRelu), &[x.clone(), f32t(&[1])]), x);
    assert_eq!(
        ok1(bin(Binary::PRelu), &[f32t(&[5]), f32t(&[])]),
        f32t(&[5])
    );
    // the slope may not make the output larger (bidirectional broadcast would give [2, 3])
    shape_err(bin(Binary::PRelu), &[f32t(&[3]), f32t(&[2, 3])]);
    shape_err(bin(Binary::PRelu), &[f32t(&[1, 3]), f32t(&[4, 3])]);
    // slope that does not fit at all
    shape_err(bin(Binary::PRelu), &[f32t(&[2, 3, 4, 4]), f32t(&[3])]);
    // float only
    shape_err(bin(Binary::PRelu), &[i64t(&[3]), i64t(&[3])]);
}

#[test]
fn where_broadcasts_three_ways() {
    // [2, 1], [1, 3], [] -> [2, 3]
    assert_eq!(
        ok1(Op::Where, &[boolt(&[2, 1]), f32t(&[1, 3]), f32t(&[])]),
        f32t(&[2, 3])
    );
    // the condition can be the largest operand
    assert_eq!(
        ok1(Op::Where, &[boolt(&[4, 2, 3]), i64t(&[3]), i64t(&[2, 1])]),
        i64t(&[4, 2, 3])
    );
    assert_eq!(
        ok1(Op::Where, &[boolt(&[]), boolt(&[2]), boolt(&[2])]),
        boolt(&[2])
    );
}

#[test]
fn where_errors() {
    // condition must be bool
    unsupported_err(Op::Where, &[f32t(&[2]), f32t(&[2]), f32t(&[2])]);
    // branches of different types
    shape_err(Op::Where, &[boolt(&[2]), f32t(&[2]), i64t(&[2])]);
    // shapes that do not broadcast
    shape_err(Op::Where, &[boolt(&[3]), f32t(&[2, 1]), f32t(&[2, 4])]);
    shape_err(Op::Where, &[boolt(&[4]), f32t(&[3]), f32t(&[3])]);
}

// ---------------------------------------------------------------------------------------
// Softmax, Reduce
// ---------------------------------------------------------------------------------------

#[test]
fn softmax_shapes_and_errors() {
    for log in [false, true] {
        let x = f32t(&[2, 10]);
        let op = Op::Softmax { axis: 1, log };
        assert_eq!(ok1(op, std::slice::from_ref(&x)), x);
        let op = Op::Softmax { axis: 0, log };
        assert_eq!(ok1(op, std::slice::from_ref(&x)), x);
        shape_err(Op::Softmax { axis: 2, log }, std::slice::from_ref(&x));
        shape_err(Op::Softmax { axis: 0, log }, &[f32t(&[])]);
        unsupported_err(Op::Softmax { axis: 0, log }, &[i64t(&[3])]);
    }
}

#[test]
fn reduce_keep_dims() {
    let x = f32t(&[2, 3, 4, 5]);
    assert_eq!(
        ok1(reduce(&[2, 3], true), std::slice::from_ref(&x)),
        f32t(&[2, 3, 1, 1])
    );
    assert_eq!(
        ok1(reduce(&[1], true), std::slice::from_ref(&x)),
        f32t(&[2, 1, 4, 5])
    );
    assert_eq!(
        ok1(reduce(&[0, 1, 2, 3], true), std::slice::from_ref(&x)),
        f32t(&[1, 1, 1, 1])
    );
    // no axes: unchanged
    assert_eq!(ok1(reduce(&[], true), std::slice::from_ref(&x)), x);
}

#[test]
fn reduce_drop_dims() {
    let x = f32t(&[2, 3, 4, 5]);
    assert_eq!(
        ok1(reduce(&[2, 3], false), std::slice::from_ref(&x)),
        f32t(&[2, 3])
    );
    assert_eq!(
        ok1(reduce(&[0, 2], false), std::slice::from_ref(&x)),
        f32t(&[3, 5])
    );
    assert_eq!(
        ok1(reduce(&[0, 1, 2, 3], false), std::slice::from_ref(&x)),
        f32t(&[])
    );
    // mean and integer inputs
    let mean = Op::Reduce {
        kind: ReduceKind::Mean,
        axes: vec![1],
        keep_dims: false,
    };
    assert_eq!(ok1(mean, &[i64t(&[4, 6])]), i64t(&[4]));
}

#[test]
fn reduce_errors() {
    let x = f32t(&[2, 3, 4]);
    // unsorted and duplicated axes
    shape_err(reduce(&[2, 1], true), std::slice::from_ref(&x));
    shape_err(reduce(&[1, 1], false), std::slice::from_ref(&x));
    // out of range
    shape_err(reduce(&[3], true), std::slice::from_ref(&x));
    shape_err(reduce(&[0], true), &[f32t(&[])]);
    // bool
    shape_err(reduce(&[0], true), &[boolt(&[3])]);
}

// ---------------------------------------------------------------------------------------
// Reshape, Transpose
// ---------------------------------------------------------------------------------------

#[test]
fn reshape_shapes() {
    let x = f32t(&[2, 3, 4]);
    assert_eq!(
        ok1(Op::Reshape { shape: vec![6, 4] }, std::slice::from_ref(&x)),
        f32t(&[6, 4])
    );
    assert_eq!(
        ok1(Op::Reshape { shape: vec![24] }, std::slice::from_ref(&x)),
        f32t(&[24])
    );
    assert_eq!(
        ok1(Op::Reshape { shape: vec![] }, &[f32t(&[1, 1])]),
        f32t(&[])
    );
    assert_eq!(
        ok1(
            Op::Reshape {
                shape: vec![1, 1, 1]
            },
            &[f32t(&[])]
        ),
        f32t(&[1, 1, 1])
    );
    assert_eq!(
        ok1(Op::Reshape { shape: vec![3, 0] }, &[i64t(&[0, 3])]),
        i64t(&[3, 0])
    );
}

#[test]
fn reshape_errors() {
    let x = f32t(&[2, 3, 4]);
    let msg = shape_err(Op::Reshape { shape: vec![5, 5] }, std::slice::from_ref(&x));
    assert!(msg.contains("reshape"), "{msg}");
    shape_err(Op::Reshape { shape: vec![25] }, std::slice::from_ref(&x));
    shape_err(Op::Reshape { shape: vec![] }, &[f32t(&[2])]);
    shape_err(Op::Reshape { shape: vec![0] }, std::slice::from_ref(&x));
    // the target's element count overflows
    shape_err(
        Op::Reshape {
            shape: vec![usize::MAX, 2],
        },
        &[x],
    );
}

#[test]
fn transpose_shapes() {
    let x = f32t(&[2, 3, 4]);
    assert_eq!(
        ok1(
            Op::Transpose {
                perm: vec![2, 0, 1]
            },
            std::slice::from_ref(&x)
        ),
        f32t(&[4, 2, 3])
    );
    assert_eq!(
        ok1(
            Op::Transpose {
                perm: vec![0, 1, 2]
            },
            std::slice::from_ref(&x)
        ),
        x
    );
    assert_eq!(
        ok1(Op::Transpose { perm: vec![1, 0] }, &[boolt(&[5, 1])]),
        boolt(&[1, 5])
    );
    assert_eq!(ok1(Op::Transpose { perm: vec![] }, &[f32t(&[])]), f32t(&[]));
}

#[test]
fn transpose_errors() {
    let x = f32t(&[2, 3, 4]);
    // duplicate entry
    shape_err(
        Op::Transpose {
            perm: vec![0, 0, 1],
        },
        std::slice::from_ref(&x),
    );
    // out of range entry
    shape_err(
        Op::Transpose {
            perm: vec![0, 1, 3],
        },
        std::slice::from_ref(&x),
    );
    // wrong length
    shape_err(Op::Transpose { perm: vec![1, 0] }, std::slice::from_ref(&x));
    shape_err(
        Op::Transpose {
            perm: vec![0, 1, 2, 3],
        },
        &[x],
    );
}

// ---------------------------------------------------------------------------------------
// Concat, Split
// ---------------------------------------------------------------------------------------

#[test]
fn concat_shapes() {
    assert_eq!(
        ok1(
            Op::Concat { axis: 1 },
            &[f32t(&[1, 2, 4]), f32t(&[1, 3, 4]), f32t(&[1, 0, 4])]
        ),
        f32t(&[1, 5, 4])
    );
    assert_eq!(
        ok1(Op::Concat { axis: 0 }, &[i64t(&[2]), i64t(&[1])]),
        i64t(&[3])
    );
    assert_eq!(
        ok1(Op::Concat { axis: 2 }, &[f32t(&[1, 2, 4])]),
        f32t(&[1, 2, 4])
    );
}

#[test]
fn concat_errors() {
    // other axes differ
    shape_err(
        Op::Concat { axis: 1 },
        &[f32t(&[1, 2, 4]), f32t(&[1, 3, 5])],
    );
    // rank differs
    shape_err(Op::Concat { axis: 0 }, &[f32t(&[1, 2]), f32t(&[1, 2, 1])]);
    // dtype differs
    shape_err(Op::Concat { axis: 0 }, &[f32t(&[2]), i64t(&[2])]);
    // axis out of range, including on scalars
    shape_err(Op::Concat { axis: 2 }, &[f32t(&[1, 2]), f32t(&[1, 2])]);
    shape_err(Op::Concat { axis: 0 }, &[f32t(&[]), f32t(&[])]);
    // the total overflows
    shape_err(Op::Concat { axis: 0 }, &[f32t(&[usize::MAX]), f32t(&[1])]);
}

#[test]
fn split_multiple_outputs() {
    let out = infer(
        Op::Split {
            axis: 0,
            sizes: vec![1, 2, 3],
        },
        &[f32t(&[6, 4])],
    )
    .unwrap();
    assert_eq!(out, vec![f32t(&[1, 4]), f32t(&[2, 4]), f32t(&[3, 4])]);
    let out = infer(
        Op::Split {
            axis: 2,
            sizes: vec![0, 5],
        },
        &[i32t(&[1, 2, 5])],
    )
    .unwrap();
    assert_eq!(out, vec![i32t(&[1, 2, 0]), i32t(&[1, 2, 5])]);
    let out = infer(
        Op::Split {
            axis: 1,
            sizes: vec![3],
        },
        &[f32t(&[2, 3])],
    )
    .unwrap();
    assert_eq!(out, vec![f32t(&[2, 3])]);
}

#[test]
fn split_errors() {
    let x = f32t(&[6, 4]);
    let split = |axis, sizes: &[usize]| Op::Split {
        axis,
        sizes: sizes.to_vec(),
    };
    // sizes do not add up
    shape_err(split(0, &[1, 2, 2]), std::slice::from_ref(&x));
    shape_err(split(1, &[3, 3]), std::slice::from_ref(&x));
    // no outputs
    shape_err(split(0, &[]), std::slice::from_ref(&x));
    // axis out of range
    shape_err(split(2, &[6]), std::slice::from_ref(&x));
    // the sum overflows
    shape_err(split(0, &[usize::MAX, 7]), &[x]);
}

// ---------------------------------------------------------------------------------------
// Slice, Pad
// ---------------------------------------------------------------------------------------

#[test]
fn slice_shapes() {
    // axis 0: 2, 3, 4 (last 4 < 10); axis 1: 4, 3, 2, 1, 0 reversed
    let out = ok1(slice(&[sl(2, 1, 3), sl(4, -1, 5)]), &[f32t(&[10, 5])]);
    assert_eq!(out, f32t(&[3, 5]));
    // step 2 and -2: 1, 3, 5, 7, 9; 9, 7, 5, 3, 1
    let out = ok1(slice(&[sl(1, 2, 5), sl(9, -2, 5)]), &[i64t(&[10, 10])]);
    assert_eq!(out, i64t(&[5, 5]));
    // step larger than the axis with len 1
    let out = ok1(slice(&[sl(3, 100, 1)]), &[f32t(&[4])]);
    assert_eq!(out, f32t(&[1]));
    // scalar: no axes
    assert_eq!(ok1(slice(&[]), &[f32t(&[])]), f32t(&[]));
}

#[test]
fn slice_empty_results_are_always_valid() {
    // len 0: start and step are not read
    let out = ok1(slice(&[sl(100, 0, 0), sl(0, 1, 2)]), &[f32t(&[3, 2])]);
    assert_eq!(out, f32t(&[0, 2]));
    let out = ok1(slice(&[sl(0, -1, 0)]), &[f32t(&[0])]);
    assert_eq!(out, f32t(&[0]));
}

#[test]
fn slice_out_of_range_errors() {
    let x = f32t(&[5]);
    // start beyond the axis
    shape_err(slice(&[sl(5, 1, 1)]), std::slice::from_ref(&x));
    // last index 2 + 3 * 1 = 5 beyond the axis
    shape_err(slice(&[sl(2, 1, 4)]), std::slice::from_ref(&x));
    // negative step running below 0: 4, 2, 0, -2
    shape_err(slice(&[sl(4, -2, 4)]), std::slice::from_ref(&x));
    // 1, 0, -1
    shape_err(slice(&[sl(1, -1, 3)]), std::slice::from_ref(&x));
    // zero step with len > 0
    shape_err(slice(&[sl(0, 0, 2)]), std::slice::from_ref(&x));
    // one axis entry per input axis
    shape_err(slice(&[sl(0, 1, 1), sl(0, 1, 1)]), std::slice::from_ref(&x));
    shape_err(slice(&[]), std::slice::from_ref(&x));
    // huge len and step do not overflow into range
    shape_err(slice(&[sl(0, isize::MAX, usize::MAX)]), &[x]);
}

#[test]
fn pad_grow_and_crop() {
    let x = f32t(&[2, 3]);
    let c = PadMode::Constant(0.0);
    assert_eq!(
        ok1(pad(&[(1, 2), (0, 0)], c), std::slice::from_ref(&x)),
        f32t(&[5, 3])
    );
    // negative pads crop: 3 - 1 - 1 = 1
    assert_eq!(
        ok1(pad(&[(0, 0), (-1, -1)], c), std::slice::from_ref(&x)),
        f32t(&[2, 1])
    );
    // crop one side, grow the other: 3 - 1 + 2 = 4
    assert_eq!(
        ok1(
            pad(&[(0, 0), (-1, 2)], PadMode::Edge),
            std::slice::from_ref(&x)
        ),
        f32t(&[2, 4])
    );
    // crop to nothing
    assert_eq!(
        ok1(
            pad(&[(-1, -1), (0, -3)], PadMode::Reflect),
            std::slice::from_ref(&x)
        ),
        f32t(&[0, 0])
    );
    // dtype is kept
    assert_eq!(ok1(pad(&[(2, 1)], c), &[i64t(&[3])]), i64t(&[6]));
    // rank 0 with no pads
    assert_eq!(ok1(pad(&[], c), &[f32t(&[])]), f32t(&[]));
}

#[test]
fn pad_empty_axis() {
    // constant padding can grow an empty axis
    let c = PadMode::Constant(1.5);
    assert_eq!(ok1(pad(&[(1, 1)], c), &[f32t(&[0])]), f32t(&[2]));
    // reflect and edge have nothing to copy from
    shape_err(pad(&[(1, 0)], PadMode::Reflect), &[f32t(&[0])]);
    shape_err(pad(&[(0, 1)], PadMode::Edge), &[f32t(&[0])]);
    // but leaving it empty is fine
    assert_eq!(
        ok1(pad(&[(0, 0), (1, 1)], PadMode::Edge), &[f32t(&[0, 2])]),
        f32t(&[0, 4])
    );
}

#[test]
fn pad_errors() {
    let x = f32t(&[2, 3]);
    let c = PadMode::Constant(0.0);
    // crop more than the axis: 3 - 2 - 2 < 0
    shape_err(pad(&[(0, 0), (-2, -2)], c), std::slice::from_ref(&x));
    shape_err(pad(&[(-3, 0), (0, 0)], c), std::slice::from_ref(&x));
    // wrong number of pads
    shape_err(pad(&[(1, 1)], c), std::slice::from_ref(&x));
    shape_err(pad(&[(0, 0), (0, 0), (0, 0)], c), std::slice::from_ref(&x));
    // the output size overflows usize (but not i128)
    shape_err(
        pad(&[(isize::MAX, isize::MAX), (0, 0)], c),
        &[f32t(&[usize::MAX, 3])],
    );
}

// ---------------------------------------------------------------------------------------
// Resize, DepthToSpace, SpaceToDepth
// ---------------------------------------------------------------------------------------

#[test]
fn resize_uses_sizes() {
    let x = f32t(&[1, 3, 4, 4]);
    assert_eq!(
        ok1(
            resize(&[1.0, 1.0, 2.0, 2.0], &[1, 3, 8, 8]),
            std::slice::from_ref(&x)
        ),
        f32t(&[1, 3, 8, 8])
    );
    // sizes are not always floor(scale * input)
    assert_eq!(
        ok1(
            resize(&[1.0, 1.0, 1.75, 2.25], &[1, 3, 7, 9]),
            std::slice::from_ref(&x)
        ),
        f32t(&[1, 3, 7, 9])
    );
    // downscale, other modes
    let op = Op::Resize(Resize {
        mode: ResizeMode::Cubic { a: -0.75 },
        coord: CoordMode::AlignCorners,
        scales: vec![1.0, 1.0, 0.5, 0.5],
        sizes: vec![1, 3, 2, 2],
        exclude_outside: true,
    });
    assert_eq!(ok1(op, std::slice::from_ref(&x)), f32t(&[1, 3, 2, 2]));
    let op = Op::Resize(Resize {
        mode: ResizeMode::Linear,
        coord: CoordMode::Asymmetric,
        scales: vec![3.0],
        sizes: vec![6],
        exclude_outside: false,
    });
    assert_eq!(ok1(op, &[f32t(&[2])]), f32t(&[6]));
}

#[test]
fn resize_errors() {
    let x = f32t(&[1, 3, 4, 4]);
    // wrong lengths
    shape_err(
        resize(&[1.0, 1.0, 2.0], &[1, 3, 8, 8]),
        std::slice::from_ref(&x),
    );
    shape_err(
        resize(&[1.0, 1.0, 2.0, 2.0], &[1, 3, 8]),
        std::slice::from_ref(&x),
    );
    // bad scales
    for bad in [0.0, -2.0, f64::INFINITY, f64::NAN] {
        shape_err(
            resize(&[1.0, 1.0, bad, 2.0], &[1, 3, 8, 8]),
            std::slice::from_ref(&x),
        );
    }
    // empty input
    shape_err(
        resize(&[1.0, 1.0, 2.0, 2.0], &[1, 3, 0, 8]),
        &[f32t(&[1, 3, 0, 4])],
    );
    // non-f32
    unsupported_err(
        resize(&[1.0, 1.0, 2.0, 2.0], &[1, 3, 8, 8]),
        &[i64t(&[1, 3, 4, 4])],
    );
}

#[test]
fn depth_to_space_shapes() {
    for mode in [DepthToSpaceMode::Dcr, DepthToSpaceMode::Crd] {
        // C 8 / 4 = 2, H 2 * 2 = 4, W 3 * 2 = 6
        let op = Op::DepthToSpace { block: 2, mode };
        assert_eq!(ok1(op, &[f32t(&[1, 8, 2, 3])]), f32t(&[1, 2, 4, 6]));
        let op = Op::DepthToSpace { block: 1, mode };
        assert_eq!(ok1(op, &[i64t(&[2, 3, 1, 1])]), i64t(&[2, 3, 1, 1]));
        let op = Op::DepthToSpace { block: 3, mode };
        assert_eq!(ok1(op, &[f32t(&[1, 9, 1, 1])]), f32t(&[1, 1, 3, 3]));
    }
}

#[test]
fn depth_to_space_errors() {
    let mode = DepthToSpaceMode::Dcr;
    // 6 channels not divisible by 4
    shape_err(Op::DepthToSpace { block: 2, mode }, &[f32t(&[1, 6, 2, 2])]);
    shape_err(Op::DepthToSpace { block: 2, mode }, &[f32t(&[8, 2, 2])]);
    shape_err(Op::DepthToSpace { block: 0, mode }, &[f32t(&[1, 8, 2, 2])]);
    // block * block overflows
    shape_err(
        Op::DepthToSpace {
            block: 1 << 32,
            mode,
        },
        &[f32t(&[1, 0, 1, 1])],
    );
    // spatial size overflows: 0 channels is divisible by anything
    shape_err(
        Op::DepthToSpace { block: 2, mode },
        &[f32t(&[1, 0, usize::MAX, 1])],
    );
}

#[test]
fn channel_shuffle_keeps_the_shape_and_needs_whole_groups() {
    let op = |groups| Op::ChannelShuffle { groups };
    assert_eq!(ok1(op(3), &[f32t(&[2, 12, 5, 7])]), f32t(&[2, 12, 5, 7]));
    assert_eq!(ok1(op(4), &[f32t(&[1, 8])]), f32t(&[1, 8]));
    // 12 channels are not 5 groups; no groups; no channel axis.
    shape_err(op(5), &[f32t(&[1, 12, 4, 4])]);
    shape_err(op(0), &[f32t(&[1, 12, 4, 4])]);
    shape_err(op(1), &[f32t(&[12])]);
}

#[test]
fn space_to_depth_shapes() {
    for mode in [DepthToSpaceMode::Dcr, DepthToSpaceMode::Crd] {
        // C 2 * 4 = 8, H 4 / 2 = 2, W 6 / 2 = 3
        let op = Op::SpaceToDepth { block: 2, mode };
        assert_eq!(ok1(op, &[f32t(&[1, 2, 4, 6])]), f32t(&[1, 8, 2, 3]));
        let op = Op::SpaceToDepth { block: 3, mode };
        assert_eq!(ok1(op, &[f32t(&[2, 1, 3, 3])]), f32t(&[2, 9, 1, 1]));
    }
}

#[test]
fn space_to_depth_errors() {
    let mode = DepthToSpaceMode::Crd;
    // 5 not divisible by 2
    shape_err(Op::SpaceToDepth { block: 2, mode }, &[f32t(&[1, 2, 5, 4])]);
    shape_err(Op::SpaceToDepth { block: 2, mode }, &[f32t(&[1, 2, 4, 5])]);
    shape_err(Op::SpaceToDepth { block: 2, mode }, &[f32t(&[2, 4, 4])]);
    shape_err(Op::SpaceToDepth { block: 0, mode }, &[f32t(&[1, 2, 4, 4])]);
    // channel count overflows
    shape_err(
        Op::SpaceToDepth { block: 2, mode },
        &[f32t(&[1, usize::MAX, 0, 0])],
    );
}

#[test]
fn space_to_depth_huge_block_is_an_error_not_a_panic() {
    // Empty spatial axes are divisible by any block, so block 2^32 passes the divisibility
    // check; then block * block = 2^64 overflows. The input has 0 elements and passes
    // TensorType::check_size, so this is reachable from a valid graph.
    let x = f32t(&[1, 1, 0, 0]);
    assert!(x.check_size().is_ok());
    let op = Op::SpaceToDepth {
        block: 1 << 32,
        mode: DepthToSpaceMode::Dcr,
    };
    let r = std::panic::catch_unwind(move || infer(op, &[x]));
    match r {
        Ok(Err(_)) => {}
        Ok(Ok(v)) => panic!("expected an error, got {v:?}"),
        Err(_) => panic!("space_to_depth infer panicked (unchecked block * block overflow)"),
    }
}

// ---------------------------------------------------------------------------------------
// Tile, Expand, Gather
// ---------------------------------------------------------------------------------------

#[test]
fn tile_shapes() {
    let op = |r: &[usize]| Op::Tile {
        repeats: r.to_vec(),
    };
    assert_eq!(ok1(op(&[2, 1]), &[f32t(&[2, 3])]), f32t(&[4, 3]));
    assert_eq!(ok1(op(&[1, 1]), &[i64t(&[2, 3])]), i64t(&[2, 3]));
    assert_eq!(ok1(op(&[0, 3]), &[f32t(&[2, 3])]), f32t(&[0, 9]));
    assert_eq!(ok1(op(&[]), &[f32t(&[])]), f32t(&[]));
    // wrong number of repeats
    shape_err(op(&[2]), &[f32t(&[2, 3])]);
    shape_err(op(&[2, 2, 2]), &[f32t(&[2, 3])]);
}

#[test]
fn tile_huge_repeats_are_rejected() {
    let x = f32t(&[2, 3]);
    // a single dim overflows: infer itself fails
    let msg = shape_err(
        Op::Tile {
            repeats: vec![usize::MAX, 1],
        },
        std::slice::from_ref(&x),
    );
    assert!(msg.contains("overflow"), "{msg}");
    // each dim fits but the element count does not: check_size rejects it
    let t = ok1(
        Op::Tile {
            repeats: vec![1 << 40, 1 << 30],
        },
        std::slice::from_ref(&x),
    );
    assert_eq!(t.shape, vec![1 << 41, 3 << 30]);
    assert!(matches!(t.check_size(), Err(IrError::Shape(_))));
    // the element count fits but the byte size is above MAX_TENSOR_BYTES
    let t = ok1(
        Op::Tile {
            repeats: vec![1 << 60, 1],
        },
        &[f32t(&[1, 1])],
    );
    assert!(t.check_size().is_err());
    // a modest tile passes
    let t = ok1(
        Op::Tile {
            repeats: vec![10, 10],
        },
        &[x],
    );
    assert!(t.check_size().is_ok());
}

#[test]
fn expand_broadcasts_both_ways() {
    let op = |s: &[usize]| Op::Expand { shape: s.to_vec() };
    assert_eq!(ok1(op(&[2, 1, 4]), &[f32t(&[3, 1])]), f32t(&[2, 3, 4]));
    // the target shape may be smaller than the input (numpy rules, both ways)
    assert_eq!(ok1(op(&[1]), &[f32t(&[2, 3])]), f32t(&[2, 3]));
    assert_eq!(ok1(op(&[2, 1]), &[i64t(&[3])]), i64t(&[2, 3]));
    assert_eq!(ok1(op(&[]), &[boolt(&[4])]), boolt(&[4]));
    shape_err(op(&[4]), &[f32t(&[3])]);
    shape_err(op(&[2, 2]), &[f32t(&[3, 1])]);
}

#[test]
fn gather_shapes() {
    let x = f32t(&[5, 4, 3]);
    // x[:axis] + idx + x[axis + 1:]
    assert_eq!(
        ok1(Op::Gather { axis: 1 }, &[x.clone(), i64t(&[2, 2])]),
        f32t(&[5, 2, 2, 3])
    );
    assert_eq!(
        ok1(Op::Gather { axis: 0 }, &[x.clone(), i64t(&[])]),
        f32t(&[4, 3])
    );
    assert_eq!(
        ok1(Op::Gather { axis: 2 }, &[x.clone(), i32t(&[7])]),
        f32t(&[5, 4, 7])
    );
    assert_eq!(
        ok1(Op::Gather { axis: 0 }, &[i64t(&[4]), i64t(&[0])]),
        i64t(&[0])
    );
}

#[test]
fn gather_errors() {
    let x = f32t(&[5, 4, 3]);
    shape_err(Op::Gather { axis: 3 }, &[x.clone(), i64t(&[2])]);
    shape_err(Op::Gather { axis: 0 }, &[f32t(&[]), i64t(&[])]);
    shape_err(Op::Gather { axis: 0 }, &[x.clone(), f32t(&[2])]);
    shape_err(Op::Gather { axis: 0 }, &[x, boolt(&[2])]);
}

// ---------------------------------------------------------------------------------------
// Cast, Shape, Identity
// ---------------------------------------------------------------------------------------

#[test]
fn cast_changes_only_dtype() {
    let x = f32t(&[2, 3]);
    for to in [DType::F32, DType::I64, DType::I32, DType::Bool] {
        assert_eq!(
            ok1(Op::Cast { to }, std::slice::from_ref(&x)),
            TensorType::new(to, vec![2, 3])
        );
    }
    assert_eq!(ok1(Op::Cast { to: DType::F32 }, &[boolt(&[])]), f32t(&[]));
}

#[test]
fn shape_op_gives_i64_vector() {
    let x = f32t(&[2, 3, 4, 5]);
    let op = |start, end| Op::Shape { start, end };
    assert_eq!(ok1(op(0, 4), std::slice::from_ref(&x)), i64t(&[4]));
    assert_eq!(ok1(op(1, 3), std::slice::from_ref(&x)), i64t(&[2]));
    assert_eq!(ok1(op(2, 2), std::slice::from_ref(&x)), i64t(&[0]));
    assert_eq!(ok1(op(4, 4), std::slice::from_ref(&x)), i64t(&[0]));
    assert_eq!(ok1(op(0, 0), &[f32t(&[])]), i64t(&[0]));
    assert_eq!(ok1(op(0, 1), &[boolt(&[7])]), i64t(&[1]));
    // start after end, end after the rank
    shape_err(op(3, 2), std::slice::from_ref(&x));
    shape_err(op(0, 5), std::slice::from_ref(&x));
    shape_err(op(5, 5), &[x]);
}

#[test]
fn identity_keeps_type_and_layout() {
    for t in [f32t(&[2, 3]), i64t(&[]), boolt(&[0, 4])] {
        assert_eq!(ok1(Op::Identity, std::slice::from_ref(&t)), t);
    }
    let blocked = TensorType {
        layout: Layout::Blocked { block: 8 },
        ..f32t(&[1, 16, 4, 4])
    };
    assert_eq!(ok1(Op::Identity, std::slice::from_ref(&blocked)), blocked);
}

// ---------------------------------------------------------------------------------------
// Cross-cutting
// ---------------------------------------------------------------------------------------

#[test]
fn layouts_of_outputs() {
    // Ops that follow their input's layout (pools, elementwise, concat) keep a blocked
    // one; a convolution's output layout is the layout pass's choice, plain by default.
    let x = TensorType {
        layout: Layout::Blocked { block: 8 },
        ..f32t(&[1, 16, 4, 4])
    };
    let out = ok1(
        max_pool(&[2, 2], &[2, 2], &[(0, 0), (0, 0)], false),
        std::slice::from_ref(&x),
    );
    assert_eq!(out.layout, x.layout);
    let out = ok1(Op::Unary(Unary::Relu), std::slice::from_ref(&x));
    assert_eq!(out.layout, x.layout);
    let out = ok1(conv_plain(&[1, 1], 1), &[x, f32t(&[8, 16, 1, 1])]);
    assert_eq!(out.layout, Layout::Plain);
}

#[test]
fn located_errors_keep_their_kind() {
    // Errors from infer keep is_unsupported through IrError::at.
    let e = infer(
        conv_plain(&[1, 1], 1),
        &[i64t(&[1, 1, 1, 1]), f32t(&[1, 1, 1, 1])],
    )
    .unwrap_err()
    .at("conv0", "conv");
    assert!(e.is_unsupported());
    assert!(matches!(e.root(), IrError::Unsupported(_)));
    let e = infer(Op::Reshape { shape: vec![3] }, &[f32t(&[2])])
        .unwrap_err()
        .at("r", "reshape");
    assert!(!e.is_unsupported());
    assert!(matches!(e.root(), IrError::Shape(_)));
}

#[test]
fn winograd_bands_keep_the_whole_plane() {
    // F(2x2, 3x3) on 8x8 outputs: 4 rows of 4 tiles, in bands of 3 (the last band
    // overlapping). The transformed tensor keeps its whole plane in the graph.
    let wg = |plane: [usize; 2], band: usize| cnnc_ir::op::Winograd {
        tile: 2,
        kernel: 3,
        pads: [1, 1],
        out: [8, 8],
        plane,
        band,
        plain_products: None,
        epilogue: Default::default(),
    };
    let x = f32t(&[1, 4, 8, 8]);
    let v = ok1(Op::WinogradInput(wg([4, 4], 3)), std::slice::from_ref(&x));
    assert_eq!(v.shape, [1, 64, 4, 4]);
    assert_eq!(wg([4, 4], 3).bands(), (2, 3));
    assert_eq!(wg([1, 16], 0).bands(), (1, 4));
    // Taller than the rows, or several rows of tiles a plane row.
    for (plane, band) in [([4, 4], 5), ([1, 16], 2)] {
        let e = shape_err(Op::WinogradInput(wg(plane, band)), std::slice::from_ref(&x));
        assert!(e.contains("bands of"), "{e}");
    }
}

#[test]
fn plain_products_convert_between_blocked_and_plain() {
    // F(2x2, 3x3) on 8x8 outputs of 4 blocked channels, the transformed tensors plain:
    // the input transform writes plain, the output transform blocked; the verifier
    // holds each side to its layout.
    let wg = cnnc_ir::op::Winograd {
        tile: 2,
        kernel: 3,
        pads: [1, 1],
        out: [8, 8],
        plane: [1, 16],
        band: 0,
        plain_products: Some(4),
        epilogue: Default::default(),
    };
    let mut g = cnnc_ir::Graph::new();
    let x = g.add_input("x", f32t(&[1, 4, 8, 8])).unwrap();
    let blocked = Layout::Blocked { block: 4 };
    let xb = g.add("xb", Op::Reorder { to: blocked }, &[x]).unwrap();
    let v = g.add("v", Op::WinogradInput(wg.clone()), &[xb]).unwrap();
    assert_eq!(g.value_type(v).layout, Layout::Plain);
    let bias = g.add_const("b", Tensor::from_vec(vec![4], vec![0f32; 4]).unwrap());
    let y = g.add("y", Op::WinogradOutput(wg), &[v, bias]).unwrap();
    assert_eq!(g.value_type(y).layout, blocked);
    let yp = g
        .add("yp", Op::Reorder { to: Layout::Plain }, &[y])
        .unwrap();
    g.add_output("out", yp);
    cnnc_ir::verify(&g).unwrap();
    // A blocked transformed input is not plain products.
    g.node_mut(v.node).outputs[0].ty.layout = blocked;
    let e = cnnc_ir::verify(&g).unwrap_err().to_string();
    assert!(e.contains("plain products"), "{e}");
}

#[test]
fn the_plane_kernel_takes_small_pointwise_planes() {
    let conv = |kernel: usize, epilogue: Epilogue| Conv {
        kernel: vec![kernel, kernel],
        strides: vec![1, 1],
        dilations: vec![1, 1],
        pads: vec![(0, 0); 2],
        groups: 2,
        epilogue,
    };
    let plain = conv(1, Epilogue::default());
    // Planes of 1 to 13 vectors of 4, weights but no bias.
    for x in [[1, 8, 1, 4], [2, 8, 4, 4], [1, 8, 4, 13], [1, 8, 1, 52]] {
        assert!(plain.on_plane_kernel(&x, 2, 4), "{x:?}");
    }
    // Not whole vectors, too large, with a bias, an epilogue or a 3x3 kernel.
    assert!(!plain.on_plane_kernel(&[1, 8, 7, 7], 2, 4));
    assert!(!plain.on_plane_kernel(&[1, 8, 1, 56], 2, 4));
    assert!(!plain.on_plane_kernel(&[1, 8, 4, 4], 3, 4));
    let relu = Epilogue {
        activation: Some(Activation::Unary(Unary::Relu)),
        ..Epilogue::default()
    };
    assert!(!conv(1, relu).on_plane_kernel(&[1, 8, 4, 4], 2, 4));
    assert!(!conv(3, Epilogue::default()).on_plane_kernel(&[1, 8, 4, 4], 2, 4));
}
