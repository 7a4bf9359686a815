//! Fused epilogues, computed exactly as the unfused ops would be: the residual added in
//! float32 (an Add), then the activation (as its Unary op, or PRelu's and SiLU's
//! float32 products), so fusion changes no bit of the interpreter's results.

use super::broadcast_map;
use super::elementwise::unary_f64;
use crate::op::{Activation, Epilogue, Unary};
use crate::{IrError, Tensor};

pub fn apply(e: &Epilogue, y: Tensor, extra: &[&Tensor]) -> Result<Tensor, IrError> {
    let shape = y.shape().to_vec();
    let mut v = y.view::<f32>()?.into_owned();
    let mut next = extra.iter();
    if e.residual {
        let r = next.next().expect("arity checked").view::<f32>()?;
        v.iter_mut().zip(r.iter()).for_each(|(a, b)| *a += b);
    }
    match e.activation {
        None => {}
        Some(Activation::Unary(u)) => v
            .iter_mut()
            .for_each(|a| *a = unary_f64(u, *a as f64) as f32),
        Some(Activation::PRelu) => {
            let slope = next.next().expect("arity checked");
            let s = slope.view::<f32>()?;
            for (a, i) in v.iter_mut().zip(broadcast_map(slope.shape(), &shape)) {
                if *a < 0.0 {
                    *a *= s[i];
                }
            }
        }
        Some(Activation::Silu) => v
            .iter_mut()
            .for_each(|a| *a *= unary_f64(Unary::Sigmoid, *a as f64) as f32),
    }
    Tensor::from_vec(shape, v)
}
