//! Normalizations (batch, instance, LRN), softmax and reductions.

use super::{floats, for_each_index, from_f64};
use crate::op::{Lrn, ReduceKind};
use crate::types::strides_of;
use crate::{DType, IrError, Tensor, TensorType};

/// Splits a shape around `axis` into (outer, axis length, inner) element counts.
fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

pub fn batch_norm(epsilon: f32, inputs: &[&Tensor]) -> Result<Tensor, IrError> {
    let x = floats(inputs[0])?;
    let [scale, bias, mean, var] = [1, 2, 3, 4].map(|i| floats(inputs[i]));
    let (scale, bias, mean, var) = (scale?, bias?, mean?, var?);
    let (outer, c, inner) = around(inputs[0].shape(), 1);
    let mut y = Vec::with_capacity(x.len());
    for o in 0..outer {
        for ch in 0..c {
            let k = scale[ch] as f64 / (var[ch] as f64 + epsilon as f64).sqrt();
            let plane = &x[(o * c + ch) * inner..][..inner];
            y.extend(
                plane
                    .iter()
                    .map(|&v| (v as f64 - mean[ch] as f64) * k + bias[ch] as f64),
            );
        }
    }
    from_f64(inputs[0].shape().to_vec(), y)
}

/// `x * scale[c] + shift[c]` per channel, rounded once.
pub fn scale_shift(inputs: &[&Tensor]) -> Result<Tensor, IrError> {
    let (x, scale, shift) = (floats(inputs[0])?, floats(inputs[1])?, floats(inputs[2])?);
    let (outer, c, inner) = around(inputs[0].shape(), 1);
    let mut y = Vec::with_capacity(x.len());
    for o in 0..outer {
        for ch in 0..c {
            let plane = &x[(o * c + ch) * inner..][..inner];
            y.extend(
                plane
                    .iter()
                    .map(|&v| v as f64 * scale[ch] as f64 + shift[ch] as f64),
            );
        }
    }
    from_f64(inputs[0].shape().to_vec(), y)
}

pub fn instance_norm(epsilon: f32, inputs: &[&Tensor]) -> Result<Tensor, IrError> {
    let (x, scale, bias) = (floats(inputs[0])?, floats(inputs[1])?, floats(inputs[2])?);
    let (outer, c, inner) = around(inputs[0].shape(), 1);
    let mut y = Vec::with_capacity(x.len());
    for o in 0..outer {
        for ch in 0..c {
            let plane = &x[(o * c + ch) * inner..][..inner];
            let mean = plane.iter().map(|&v| v as f64).sum::<f64>() / inner as f64;
            let var = plane
                .iter()
                .map(|&v| (v as f64 - mean).powi(2))
                .sum::<f64>()
                / inner as f64;
            let k = scale[ch] as f64 / (var + epsilon as f64).sqrt();
            y.extend(
                plane
                    .iter()
                    .map(|&v| (v as f64 - mean) * k + bias[ch] as f64),
            );
        }
    }
    from_f64(inputs[0].shape().to_vec(), y)
}

/// `y = x / (bias + alpha / size * sum of x^2 over nearby channels)^beta`, the window
/// spanning `floor((size-1)/2)` channels below and `ceil((size-1)/2)` above.
pub fn lrn(l: &Lrn, x: &Tensor) -> Result<Tensor, IrError> {
    let xv = floats(x)?;
    let (outer, c, inner) = around(x.shape(), 1);
    let (below, above) = ((l.size - 1) / 2, (l.size - 1).div_ceil(2));
    let mut y = vec![0.0; xv.len()];
    for o in 0..outer {
        for ch in 0..c {
            let lo = ch.saturating_sub(below);
            let hi = (ch + above).min(c - 1);
            for i in 0..inner {
                let at = |k: usize| xv[(o * c + k) * inner + i] as f64;
                let sq: f64 = (lo..=hi).map(|k| at(k) * at(k)).sum();
                let d = (l.bias as f64 + l.alpha as f64 / l.size as f64 * sq).powf(l.beta as f64);
                y[(o * c + ch) * inner + i] = at(ch) / d;
            }
        }
    }
    from_f64(x.shape().to_vec(), y)
}

pub fn softmax(x: &Tensor, axis: usize, log: bool) -> Result<Tensor, IrError> {
    let xv = floats(x)?;
    let (outer, len, inner) = around(x.shape(), axis);
    let mut y = vec![0.0; xv.len()];
    for o in 0..outer {
        for i in 0..inner {
            let idx = |k: usize| (o * len + k) * inner + i;
            let max = (0..len)
                .map(|k| xv[idx(k)] as f64)
                .fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = (0..len).map(|k| (xv[idx(k)] as f64 - max).exp()).sum();
            for k in 0..len {
                let d = xv[idx(k)] as f64 - max;
                y[idx(k)] = if log { d - sum.ln() } else { d.exp() / sum };
            }
        }
    }
    from_f64(x.shape().to_vec(), y)
}

pub fn reduce(
    kind: ReduceKind,
    axes: &[usize],
    x: &Tensor,
    out: &TensorType,
) -> Result<Tensor, IrError> {
    let shape = x.shape();
    // Output index of each input element: reduced axes contribute nothing.
    let kept: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    let kept_strides = strides_of(&kept);
    let count: usize = axes.iter().map(|&a| shape[a]).product();
    let mut targets = Vec::with_capacity(x.numel());
    for_each_index(shape, |idx| {
        let t = idx
            .iter()
            .zip(&kept_strides)
            .enumerate()
            .map(|(axis, (&i, &s))| if axes.contains(&axis) { 0 } else { i * s })
            .sum::<usize>();
        targets.push(t);
    });
    let n_out = out.numel();
    match x.dtype() {
        DType::F32 => {
            let mut acc = vec![0f64; n_out];
            for (&t, &v) in targets.iter().zip(floats(x)?.iter()) {
                acc[t] += v as f64;
            }
            if kind == ReduceKind::Mean {
                acc.iter_mut().for_each(|v| *v /= count as f64);
            }
            from_f64(out.shape.clone(), acc)
        }
        DType::I64 | DType::I32 => {
            let mut acc = vec![0i64; n_out];
            for (&t, v) in targets.iter().zip(x.to_i64s()?) {
                acc[t] = acc[t]
                    .checked_add(v)
                    .ok_or_else(|| IrError::eval("integer overflow in reduction"))?;
            }
            if kind == ReduceKind::Mean && count > 0 {
                acc.iter_mut().for_each(|v| *v /= count as i64);
            }
            let t = Tensor::from_vec(out.shape.clone(), acc)?;
            super::elementwise::cast(&t, x.dtype())
        }
        DType::Bool => Err(IrError::shape("cannot reduce bool")),
    }
}
