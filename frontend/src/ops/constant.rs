//! Constant, ConstantOfShape and Range: ops whose outputs are fixed at compile time,
//! imported directly as constants.

use cnnc_ir::{DType, Scalar, Tensor, Value};

use crate::error::{Result, bail, unsupported};
use crate::import::NodeCx;
use crate::ops::sizes;

pub fn constant(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let tensor_attr = cx.attr_tensor("value")?;
    let a = &cx.attrs;
    let t = if let Some(t) = tensor_attr {
        t
    } else if let Some(v) = a.float("value_float")? {
        Tensor::scalar(Scalar::F32(v))
    } else if let Some(v) = a.floats("value_floats")? {
        Tensor::from_vec(vec![v.len()], v)?
    } else if let Some(v) = a.int("value_int")? {
        Tensor::scalar(Scalar::I64(v))
    } else if let Some(v) = a.ints("value_ints")? {
        Tensor::from_vec(vec![v.len()], v)?
    } else if a.has("value_string") || a.has("value_strings") {
        unsupported!("string constants");
    } else if a.has("sparse_value") {
        unsupported!("sparse constants");
    } else {
        bail!("has no value attribute");
    };
    Ok(vec![cx.constant(t)])
}

pub fn constant_of_shape(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let Some(shape) = cx.static_ints(0, "shape")? else {
        bail!("the shape input is required");
    };
    let shape = sizes(&shape, "shape")?;
    let value = match cx.attr_tensor("value")? {
        None => Scalar::F32(0.0),
        Some(t) if t.numel() == 1 => t.get(0).expect("one element"),
        Some(t) => bail!("value must have one element, got {}", t.ty()),
    };
    let t = Tensor::splat(shape, value)?;
    Ok(vec![cx.constant(t)])
}

pub fn range(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let mut args = Vec::new();
    for (i, what) in ["start", "limit", "delta"].into_iter().enumerate() {
        match cx.static_input(i, what)? {
            Some(t) if t.numel() == 1 => args.push(t),
            Some(t) => bail!("{what} must be a scalar, got {}", t.ty()),
            None => bail!("{what} is required"),
        }
    }
    let dtype = args[0].dtype();
    if args.iter().any(|t| t.dtype() != dtype) {
        bail!("start, limit and delta have different types");
    }
    let t = match dtype {
        DType::F32 => {
            let [s, l, d] = [0, 1, 2].map(|i| args[i].view::<f32>().map(|v| v[0]));
            let (s, l, d) = (s?, l?, d?);
            let n = count((l as f64 - s as f64) / d as f64)?;
            Tensor::from_vec(
                vec![n],
                (0..n).map(|i| s + i as f32 * d).collect::<Vec<f32>>(),
            )?
        }
        DType::I64 | DType::I32 => {
            let [s, l, d] = [0, 1, 2].map(|i| args[i].to_i64s().map(|v| v[0]));
            let (s, l, d) = (s?, l?, d?);
            let n = count((l as f64 - s as f64) / d as f64)?;
            let v: Vec<i64> = (0..n as i64).map(|i| s + i * d).collect();
            if dtype == DType::I32 {
                Tensor::from_vec(vec![n], v.iter().map(|&x| x as i32).collect::<Vec<_>>())?
            } else {
                Tensor::from_vec(vec![n], v)?
            }
        }
        DType::Bool => bail!("Range of bool"),
    };
    Ok(vec![cx.constant(t)])
}

/// `max(ceil(steps), 0)` elements, refusing absurd counts (and a zero delta's NaN/inf).
fn count(steps: f64) -> Result<usize> {
    let n = steps.ceil().max(0.0);
    if n.is_nan() || n > (1u64 << 32) as f64 {
        bail!("range of {steps} elements is not supported");
    }
    Ok(n as usize)
}
