//! Activations and math (unary), arithmetic and comparisons (binary, with the pre-opset-7
//! `broadcast`/`axis` form), Sum/Max/Min, PRelu, Clip, Where, Cast, Dropout, Identity.

use cnnc_ir::op::{Binary, Unary};
use cnnc_ir::{DType, Op, Tensor, Value};
use rand_mt::Mt;

use crate::error::{Result, bail, unsupported};
use crate::import::NodeCx;
use crate::ops::axis;
use crate::tensor::dtype_of;

pub fn unary(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let a = &cx.attrs;
    let u = match cx.op_type() {
        "Relu" => Unary::Relu,
        "LeakyRelu" => Unary::LeakyRelu {
            alpha: a.float_or("alpha", 0.01)?,
        },
        "Elu" => Unary::Elu {
            alpha: a.float_or("alpha", 1.0)?,
        },
        "Selu" => Unary::Selu {
            alpha: a.float_or("alpha", 1.673_263_2)?,
            gamma: a.float_or("gamma", 1.050_701)?,
        },
        "Sigmoid" => Unary::Sigmoid,
        "HardSigmoid" => Unary::HardSigmoid {
            alpha: a.float_or("alpha", 0.2)?,
            beta: a.float_or("beta", 0.5)?,
        },
        "HardSwish" => Unary::HardSwish,
        "Tanh" => Unary::Tanh,
        "Softplus" => Unary::Softplus,
        "Softsign" => Unary::Softsign,
        "Mish" => Unary::Mish,
        "Gelu" => match a.string_or("approximate", "none")?.as_str() {
            "none" => Unary::Gelu { tanh: false },
            "tanh" => Unary::Gelu { tanh: true },
            other => bail!("unknown approximate '{other}'"),
        },
        "Erf" => Unary::Erf,
        "Exp" => Unary::Exp,
        "Sqrt" => Unary::Sqrt,
        "Abs" => Unary::Abs,
        "Neg" => Unary::Neg,
        other => unreachable!("dispatched {other}"),
    };
    let x = cx.input(0)?;
    Ok(vec![cx.add(Op::Unary(u), &[x])?])
}

fn binary_op(op_type: &str) -> Binary {
    match op_type {
        "Add" | "Sum" => Binary::Add,
        "Sub" => Binary::Sub,
        "Mul" => Binary::Mul,
        "Div" => Binary::Div,
        "Pow" => Binary::Pow,
        "Max" => Binary::Max,
        "Min" => Binary::Min,
        "Equal" => Binary::Equal,
        "Less" => Binary::Less,
        "Greater" => Binary::Greater,
        other => unreachable!("dispatched {other}"),
    }
}

pub fn binary(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let op = binary_op(cx.op_type());
    let (a, mut b) = (cx.input(0)?, cx.input(1)?);
    if cx.opset() < 7 {
        b = legacy_broadcast(cx, a, b)?;
    }
    // Pow's exponent may have another numeric type than its base (opset 12+).
    if op == Binary::Pow && cx.ty(b).dtype != cx.ty(a).dtype {
        let to = cx.ty(a).dtype;
        b = cx.add(Op::Cast { to }, &[b])?;
    }
    Ok(vec![cx.add(Op::Binary(op), &[a, b])?])
}

/// Before opset 7, `B` broadcast to `A` only with `broadcast=1`, aligned at `axis` (or at
/// the trailing axes). Aligning explicitly by reshaping `B` gives numpy semantics.
fn legacy_broadcast(cx: &mut NodeCx, a: Value, b: Value) -> Result<Value> {
    let (sa, sb) = (cx.ty(a).shape.clone(), cx.ty(b).shape.clone());
    if !cx.attrs.bool_or("broadcast", false)? {
        if sa != sb {
            bail!("operands {sa:?} and {sb:?} differ and broadcast is not set");
        }
        cx.attrs.ignore(&["axis"]);
        return Ok(b);
    }
    let Some(ax) = cx.attrs.int("axis")? else {
        return Ok(b);
    };
    let start = axis(ax, sa.len())?;
    if start + sb.len() > sa.len() {
        bail!("B {sb:?} does not fit A {sa:?} at axis {start}");
    }
    let mut shape = sb.clone();
    shape.resize(sa.len() - start, 1);
    cx.add(Op::Reshape { shape }, &[b])
}

pub fn variadic(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let op = binary_op(cx.op_type());
    let inputs = cx.inputs();
    let Some((&first, rest)) = inputs.split_first() else {
        bail!("needs at least one input");
    };
    if rest.is_empty() {
        return Ok(vec![cx.add(Op::Identity, &[first])?]);
    }
    // Left to right, as the ONNX reference accumulates.
    let mut acc = first;
    for &v in rest {
        acc = cx.add(Op::Binary(op), &[acc, v])?;
    }
    Ok(vec![acc])
}

pub fn prelu(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let (x, mut slope) = (cx.input(0)?, cx.input(1)?);
    let (sx, ss) = (cx.ty(x).shape.clone(), cx.ty(slope).shape.clone());
    // Before opset 7 a 1-D slope was per channel (axis 1), not numpy-broadcast.
    if cx.opset() < 7 && ss.len() == 1 && sx.len() > 2 && ss[0] == sx[1] && ss[0] != 1 {
        let mut shape = vec![1; sx.len() - 1];
        shape[0] = ss[0];
        slope = cx.add(Op::Reshape { shape }, &[slope])?;
    }
    Ok(vec![cx.add(Op::Binary(Binary::PRelu), &[x, slope])?])
}

pub fn clip(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let (min, max) = if cx.opset() < 11 {
        (cx.attrs.float("min")?, cx.attrs.float("max")?)
    } else {
        (cx.static_scalar(1, "min")?, cx.static_scalar(2, "max")?)
    };
    let x = cx.input(0)?;
    let u = Unary::Clip {
        min: min.unwrap_or(f32::NEG_INFINITY),
        max: max.unwrap_or(f32::INFINITY),
    };
    Ok(vec![cx.add(Op::Unary(u), &[x])?])
}

pub fn where_(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let inputs = (0..3).map(|i| cx.input(i)).collect::<Result<Vec<_>>>()?;
    Ok(vec![cx.add(Op::Where, &inputs)?])
}

pub fn cast(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let Some(to) = cx.attrs.int("to")? else {
        bail!("'to' is required");
    };
    let to = i32::try_from(to)
        .map_err(|_| crate::error::ImportError::invalid(format!("unknown data type {to}")))?;
    let to = dtype_of(to)?;
    // `saturate` only concerns float8 targets, which are unsupported anyway.
    cx.attrs.ignore(&["saturate"]);
    let x = cx.input(0)?;
    Ok(vec![cx.add(Op::Cast { to }, &[x])?])
}

pub fn identity(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let x = cx.input(0)?;
    Ok(vec![cx.add(Op::Identity, &[x])?])
}

/// Inference Dropout is the identity (its mask all true). In training mode with a
/// fixed `seed` the mask is deterministic: it is the one numpy's `RandomState(seed)`
/// draws, as the ONNX reference does, so it becomes a constant.
pub fn dropout(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let x = cx.input(0)?;
    let shape = cx.ty(x).shape.clone();
    let (ratio, training) = if cx.opset() >= 12 {
        let ratio = cx.static_scalar(1, "ratio")?.unwrap_or(0.5);
        let training = match cx.static_input(2, "training_mode")? {
            None => false,
            Some(t) if t.dtype() == DType::Bool && t.numel() == 1 => t.view::<u8>()?[0] != 0,
            Some(t) => bail!("training_mode must be one bool, got {}", t.ty()),
        };
        (ratio, training)
    } else {
        // Older opsets have no training semantics worth honouring at inference.
        cx.attrs.ignore(&["ratio", "is_test"]);
        (0.0, false)
    };
    let seed = cx.attrs.int("seed")?;
    let mask: Vec<u8> = if training && ratio != 0.0 {
        let Some(seed) = seed else {
            unsupported!("training-mode Dropout without a seed (its output is random)");
        };
        if !(0.0..1.0).contains(&ratio) {
            bail!("ratio {ratio} must be in [0, 1)");
        }
        let seed = u32::try_from(seed).map_err(|_| {
            crate::error::ImportError::unsupported(format!(
                "Dropout seed {seed} (numpy seeds are 32-bit)"
            ))
        })?;
        numpy_uniform(seed, shape.iter().product())
            .into_iter()
            .map(|u| (u >= ratio as f64) as u8)
            .collect()
    } else {
        vec![1; shape.iter().product()]
    };
    let y = if mask.iter().all(|&m| m == 1) {
        cx.add(Op::Identity, &[x])?
    } else {
        // numpy computes mask * x * scale with scale = 1 / (1 - ratio) in float32; a
        // kept element is x * scale, a dropped one x * 0.
        let scale = 1.0f32 / (1.0f32 - ratio);
        let factors: Vec<f32> = mask
            .iter()
            .map(|&m| if m == 1 { scale } else { 0.0 })
            .collect();
        let f = cx.constant(Tensor::from_vec(shape.clone(), factors)?);
        cx.add(Op::Binary(Binary::Mul), &[x, f])?
    };
    let mut outs = vec![y];
    if cx.output_used(1) {
        // The mask is bool from opset 10, the input's type before.
        let mask = if cx.opset() < 10 {
            Tensor::from_vec(shape, mask.iter().map(|&m| m as f32).collect::<Vec<_>>())?
        } else {
            Tensor::from_vec(shape, mask)?
        };
        outs.push(cx.constant(mask));
    }
    Ok(outs)
}

/// `numpy.random.RandomState(seed).uniform(0, 1, n)`: MT19937 seeded with `seed`, each
/// double built from two 32-bit draws (27 + 26 bits).
fn numpy_uniform(seed: u32, n: usize) -> Vec<f64> {
    let mut mt = Mt::new(seed);
    (0..n)
        .map(|_| {
            let a = (mt.next_u32() >> 5) as f64;
            let b = (mt.next_u32() >> 6) as f64;
            (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
        })
        .collect()
}
