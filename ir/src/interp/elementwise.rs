//! Unary activations and math, broadcasting binary ops, Where and Cast.

use super::{broadcast_map, by_dtype, floats};
use crate::op::{Binary, Unary};
use crate::{DType, Element, IrError, Tensor, TensorType};

/// One activation or math function on one value, in f64.
pub fn unary_f64(u: Unary, x: f64) -> f64 {
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    // ln(1 + e^x) without overflow for large x.
    let softplus = |x: f64| x.max(0.0) + (-x.abs()).exp().ln_1p();
    match u {
        Unary::Relu => {
            if x.is_nan() {
                x
            } else {
                x.max(0.0)
            }
        }
        Unary::LeakyRelu { alpha } => {
            if x < 0.0 {
                alpha as f64 * x
            } else {
                x
            }
        }
        Unary::Elu { alpha } => {
            if x < 0.0 {
                alpha as f64 * x.exp_m1()
            } else {
                x
            }
        }
        Unary::Selu { alpha, gamma } => {
            let y = if x > 0.0 {
                x
            } else {
                alpha as f64 * x.exp() - alpha as f64
            };
            gamma as f64 * y
        }
        Unary::Sigmoid => sigmoid(x),
        Unary::HardSigmoid { alpha, beta } => (alpha as f64 * x + beta as f64).clamp(0.0, 1.0),
        Unary::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
        Unary::Tanh => x.tanh(),
        Unary::Softplus => softplus(x),
        Unary::Softsign => x / (1.0 + x.abs()),
        Unary::Mish => x * softplus(x).tanh(),
        Unary::Gelu { tanh: false } => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
        Unary::Gelu { tanh: true } => {
            let k = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
        }
        Unary::Erf => libm::erf(x),
        Unary::Exp => x.exp(),
        Unary::Sqrt => x.sqrt(),
        Unary::Abs => x.abs(),
        Unary::Neg => -x,
        Unary::Clip { min, max } => {
            if x.is_nan() {
                x
            } else {
                x.max(min as f64).min(max as f64)
            }
        }
    }
}

pub fn unary(u: Unary, x: &Tensor) -> Result<Tensor, IrError> {
    let shape = x.shape().to_vec();
    match (u, x.dtype()) {
        (_, DType::F32) => {
            let y: Vec<f32> = floats(x)?
                .iter()
                .map(|&v| unary_f64(u, v as f64) as f32)
                .collect();
            Tensor::from_vec(shape, y)
        }
        (Unary::Abs | Unary::Neg, DType::I64) => {
            let y: Option<Vec<i64>> = x
                .view::<i64>()?
                .iter()
                .map(|&v| {
                    if u == Unary::Abs {
                        v.checked_abs()
                    } else {
                        v.checked_neg()
                    }
                })
                .collect();
            Tensor::from_vec(shape, y.ok_or_else(|| IrError::eval("integer overflow"))?)
        }
        (Unary::Abs | Unary::Neg, DType::I32) => {
            let y: Option<Vec<i32>> = x
                .view::<i32>()?
                .iter()
                .map(|&v| {
                    if u == Unary::Abs {
                        v.checked_abs()
                    } else {
                        v.checked_neg()
                    }
                })
                .collect();
            Tensor::from_vec(shape, y.ok_or_else(|| IrError::eval("integer overflow"))?)
        }
        (_, dtype) => Err(IrError::shape(format!(
            "{} does not accept {dtype}",
            u.name()
        ))),
    }
}

/// numpy `maximum`/`minimum`: NaN wins.
fn nan_max(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.max(b)
    }
}
fn nan_min(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.min(b)
    }
}

fn f32_op(op: Binary, a: f32, b: f32) -> f32 {
    match op {
        Binary::Add => a + b,
        Binary::Sub => a - b,
        Binary::Mul => a * b,
        Binary::Div => a / b,
        Binary::Pow => (a as f64).powf(b as f64) as f32,
        Binary::Max => nan_max(a, b),
        Binary::Min => nan_min(a, b),
        Binary::PRelu => {
            if a < 0.0 {
                a * b
            } else {
                a
            }
        }
        Binary::Equal | Binary::Less | Binary::Greater => unreachable!("comparisons handled apart"),
    }
}

/// Integer arithmetic for shape computations; overflow and division by zero are errors.
fn int_op(op: Binary, a: i64, b: i64) -> Result<i64, IrError> {
    let r = match op {
        Binary::Add => a.checked_add(b),
        Binary::Sub => a.checked_sub(b),
        Binary::Mul => a.checked_mul(b),
        // Truncating, as ONNX's integer Div.
        Binary::Div => {
            if b == 0 {
                return Err(IrError::eval("integer division by zero"));
            }
            a.checked_div(b)
        }
        Binary::Pow => u32::try_from(b).ok().and_then(|e| a.checked_pow(e)),
        Binary::Max => Some(a.max(b)),
        Binary::Min => Some(a.min(b)),
        Binary::PRelu | Binary::Equal | Binary::Less | Binary::Greater => {
            unreachable!("not integer arithmetic")
        }
    };
    r.ok_or_else(|| IrError::eval(format!("integer overflow in {a} {} {b}", op.name())))
}

fn compare<T: Element>(op: Binary, a: T, b: T) -> u8 {
    (match op {
        Binary::Equal => a == b,
        Binary::Less => a < b,
        Binary::Greater => a > b,
        _ => unreachable!("not a comparison"),
    }) as u8
}

pub fn binary(op: Binary, a: &Tensor, b: &Tensor, out: &TensorType) -> Result<Tensor, IrError> {
    let shape = out.shape.clone();
    let (ia, ib) = (
        broadcast_map(a.shape(), &shape),
        broadcast_map(b.shape(), &shape),
    );
    if op.is_comparison() {
        return by_dtype!(a.dtype(), T => {
            let (va, vb) = (a.view::<T>()?, b.view::<T>()?);
            let y: Vec<u8> = ia.iter().zip(&ib).map(|(&i, &j)| compare(op, va[i], vb[j])).collect();
            Tensor::from_vec(shape, y)
        });
    }
    match a.dtype() {
        DType::F32 => {
            let (va, vb) = (floats(a)?, floats(b)?);
            let y: Vec<f32> = ia
                .iter()
                .zip(&ib)
                .map(|(&i, &j)| f32_op(op, va[i], vb[j]))
                .collect();
            Tensor::from_vec(shape, y)
        }
        DType::I64 | DType::I32 => {
            let (va, vb) = (a.to_i64s()?, b.to_i64s()?);
            let y: Vec<i64> = ia
                .iter()
                .zip(&ib)
                .map(|(&i, &j)| int_op(op, va[i], vb[j]))
                .collect::<Result<_, _>>()?;
            let t = Tensor::from_vec(shape, y)?;
            if a.dtype() == DType::I32 {
                cast(&t, DType::I32)
            } else {
                Ok(t)
            }
        }
        DType::Bool => Err(IrError::shape(format!(
            "{} does not accept bool",
            op.name()
        ))),
    }
}

pub fn where_(inputs: &[&Tensor], out: &TensorType) -> Result<Tensor, IrError> {
    let (c, x, y) = (inputs[0], inputs[1], inputs[2]);
    let shape = out.shape.clone();
    let ic = broadcast_map(c.shape(), &shape);
    let ix = broadcast_map(x.shape(), &shape);
    let iy = broadcast_map(y.shape(), &shape);
    let vc = c.view::<u8>()?;
    by_dtype!(x.dtype(), T => {
        let (vx, vy) = (x.view::<T>()?, y.view::<T>()?);
        let r: Vec<T> = (0..ic.len())
            .map(|k| if vc[ic[k]] != 0 { vx[ix[k]] } else { vy[iy[k]] })
            .collect();
        Tensor::from_vec(shape, r)
    })
}

/// numpy `astype`: float to integer truncates toward zero (saturating), anything to
/// bool tests for non-zero.
pub fn cast(x: &Tensor, to: DType) -> Result<Tensor, IrError> {
    if x.dtype() == to {
        return Ok(x.clone());
    }
    let shape = x.shape().to_vec();
    let vals = x.to_f64s();
    match (x.dtype(), to) {
        (DType::I64, DType::I32) => {
            let v: Vec<i32> = x.view::<i64>()?.iter().map(|&v| v as i32).collect();
            Tensor::from_vec(shape, v)
        }
        (DType::I32, DType::I64) => Tensor::from_vec(shape, x.to_i64s()?),
        (DType::I64, DType::F32) => {
            let v: Vec<f32> = x.view::<i64>()?.iter().map(|&v| v as f32).collect();
            Tensor::from_vec(shape, v)
        }
        (_, DType::F32) => {
            Tensor::from_vec(shape, vals.iter().map(|&v| v as f32).collect::<Vec<_>>())
        }
        (_, DType::I64) => {
            Tensor::from_vec(shape, vals.iter().map(|&v| v as i64).collect::<Vec<_>>())
        }
        (_, DType::I32) => {
            Tensor::from_vec(shape, vals.iter().map(|&v| v as i32).collect::<Vec<_>>())
        }
        (_, DType::Bool) => Tensor::from_vec(
            shape,
            vals.iter().map(|&v| (v != 0.0) as u8).collect::<Vec<_>>(),
        ),
    }
}
